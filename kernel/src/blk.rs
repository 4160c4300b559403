//! The virtio-blk self-test: every disk is read through buffers spread over RAM and
//! checksummed; a disk labelled `PSERIES-DDW-SCRATCH` also gets its first half copied onto its
//! second half (plan in `drivers::selftest`). The device is driven by `virtio-drivers` over
//! RTAS config space, with DMA through the device's mode (`dma_context`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::cpu;
use drivers::addr::PhysAddr;
use drivers::devtree::phb::PhbInfo;
use drivers::dma::DmaMode;
use drivers::iommu::DmaMask;
use drivers::pci::Function;
use drivers::selftest::{copy_steps, crc_chunks, is_scratch, SECTOR};
use drivers::virtio::PlatformTransport;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;

use crate::dma_context::{self, ActiveDevice};
use crate::kv;
use crate::pci_config::RtasConfigSpace;
use crate::pe_setup::PES;
use crate::phys::PhysBuffer;
use crate::virtio_hal::KernelHal;

/// Virtio's PCI vendor ID.
pub const VIRTIO_VENDOR: u16 = 0x1af4;

/// True for a virtio-blk function (transitional 0x1001 or modern 0x1042).
pub fn is_virtio_blk(f: &Function) -> bool {
    f.vendor_id == VIRTIO_VENDOR && matches!(f.device_id, 0x1001 | 0x1042)
}

/// Seconds a request may take before the disk is declared hung.
const IO_TIMEOUT_S: u64 = 10;
/// Sectors per copy step (1 MiB).
const COPY_SECTORS: u64 = 2048;

type Blk = VirtIOBlk<KernelHal, PlatformTransport<PciTransport>>;

/// What one disk's test needs.
pub struct DiskTest<'a> {
    /// Report index (`blk.<n>`).
    pub n: usize,
    /// PHB (and PE) index.
    pub pe: usize,
    /// The PHB.
    pub phb: &'a PhbInfo,
    /// The function.
    pub function: &'a Function,
    /// Config space of its PHB.
    pub cfg: RtasConfigSpace,
    /// The spread buffers.
    pub buffers: &'a mut [PhysBuffer],
    /// Timebase ticks per second.
    pub hz: u64,
}

/// Runs the test on one disk and reports `blk.<n>.*`; `Err` is the sentence for
/// `blk.<n>.status`.
pub fn run(test: DiskTest<'_>) -> Result<(), String> {
    let DiskTest { n, pe, phb, function, cfg, buffers, hz } = test;
    let key = |name: &str| format!("blk.{n}.{name}");
    kv!(key("pe"), "{pe}");
    kv!(key("bdf"), "{}", function.bdf);
    for bar in function.bars.iter().filter(|b| b.kind.is_memory() && b.size > 0) {
        if dma_context::mmio_cpu_addr(&phb.ranges, bar.bus_addr, bar.size).is_none() {
            return Err(format!(
                "BAR {} at bus address {:#x}+{:#x} is outside the PHB's memory windows",
                bar.index, bar.bus_addr, bar.size
            ));
        }
    }
    let mut root = PciRoot::new(cfg);
    let df = DeviceFunction {
        bus: function.bdf.bus,
        device: function.bdf.device,
        function: function.bdf.function,
    };
    let mut transport = PlatformTransport::new(
        // The BARs were checked above, so the HAL's MMIO translation cannot fail; the ranges
        // it uses are the active device's, set just below for the transport's own lookups.
        {
            let _guard = dma_context::activate(ActiveDevice {
                pe,
                dma: drivers::dma::DeviceDma { mode: DmaMode::Bypass, mask: DmaMask::from_bits(64) },
                ranges: phb.ranges.clone(),
                live: Vec::new(),
                error: None,
                maps: 0,
            });
            PciTransport::new::<KernelHal, _>(&mut root, df)
                .map_err(|e| format!("virtio PCI transport: {e}"))?
        },
    );
    let translated = transport.access_platform();
    kv!(key("access_platform"), "{}", if translated { "yes" } else { "no" });
    let mask = DmaMask::from_bits(64);
    let mode = PES.lock().get(pe).ok_or("the disk's PE was not set up")?.dma.choose_mode(mask, translated);
    let mode = mode.map_err(|e| e.to_string())?;
    report_mode(&key, mode, 64);
    let guard = dma_context::activate(ActiveDevice {
        pe,
        dma: drivers::dma::DeviceDma { mode, mask },
        ranges: phb.ranges.clone(),
        live: Vec::new(),
        error: None,
        maps: 0,
    });
    let result = drive(&key, transport, buffers, hz, &guard);
    if let Some(error) = guard.error() {
        return Err(format!("DMA mapping failed: {error}"));
    }
    result
}

fn report_mode(key: &dyn Fn(&str) -> String, mode: DmaMode, bits: u32) {
    kv!(key("dma"), "{}", mode.name());
    match mode {
        DmaMode::Direct { offset, .. } => kv!(key("dma_offset"), "{offset:#x}"),
        DmaMode::DdwIommu { liobn } | DmaMode::DefaultIommu { liobn } => kv!(key("dma_liobn"), "{liobn}"),
        DmaMode::Bypass => {}
    }
    kv!(key("dma_mask_bits"), "{bits}");
}

fn drive(
    key: &dyn Fn(&str) -> String,
    transport: PlatformTransport<PciTransport>,
    buffers: &mut [PhysBuffer],
    hz: u64,
    guard: &dma_context::ActiveGuard,
) -> Result<(), String> {
    let mut blk: Blk = VirtIOBlk::new(transport).map_err(|e| format!("virtio-blk initialisation: {e}"))?;
    if buffers.is_empty() {
        return Err("no RAM buffer could be placed".into());
    }
    let sectors = blk.capacity();
    kv!(key("sectors"), "{sectors}");
    let list: Vec<String> = buffers.iter().map(|b| format!("{}", b.phys())).collect();
    kv!(key("buffers"), "{}", list.join(","));
    if sectors == 0 {
        return Err("the disk is empty".into());
    }
    let timeout = hz * IO_TIMEOUT_S;
    io(&mut blk, false, 0, &mut buffers[0].bytes()[..SECTOR as usize], timeout, guard)?;
    let scratch = is_scratch(&buffers[0].bytes()[..SECTOR as usize]);
    kv!(key("scratch"), "{}", if scratch { "yes" } else { "no" });
    let (mut bytes, mut ticks) = (0u64, 0u64);
    for (k, first, count) in crc_chunks(sectors) {
        let buffer = &mut buffers[k as usize % buffers.len()];
        let len = (count * SECTOR) as usize;
        let start = cpu::timebase();
        io(&mut blk, false, first, &mut buffer.bytes()[..len], timeout, guard)?;
        ticks += cpu::timebase().wrapping_sub(start);
        bytes += len as u64;
        kv!(key(&format!("crc.{k}")), "{:08x}", crc32fast::hash(&buffer.bytes()[..len]));
    }
    let us = ticks.saturating_mul(1_000_000) / hz.max(1);
    kv!(key("read_bytes"), "{bytes}");
    kv!(key("read_us"), "{us}");
    let tenths = (bytes * 10).checked_div(us).unwrap_or(0); // bytes/µs = MB/s
    kv!(key("read_mbps"), "{}.{}", tenths / 10, tenths % 10);
    kv!(key("maps"), "{}", guard.maps());
    if !scratch {
        kv!(key("copy"), "skipped");
        return Ok(());
    }
    let mut copied = 0;
    for (i, (src, dst, count)) in copy_steps(sectors, COPY_SECTORS).into_iter().enumerate() {
        let buffer = &mut buffers[i % buffers.len()];
        let len = (count * SECTOR) as usize;
        io(&mut blk, false, src, &mut buffer.bytes()[..len], timeout, guard)?;
        io(&mut blk, true, dst, &mut buffer.bytes()[..len], timeout, guard)?;
        copied += count;
    }
    blk.flush().map_err(|e| format!("virtio-blk flush: {e}"))?;
    kv!(key("copy"), "done");
    kv!(key("copied_sectors"), "{copied}");
    Ok(())
}

/// One request, polled with a timeout; `write` sends `buf` to `sector`, else reads into it.
fn io(
    blk: &mut Blk,
    write: bool,
    sector: u64,
    buf: &mut [u8],
    timeout: u64,
    guard: &dma_context::ActiveGuard,
) -> Result<(), String> {
    let what = if write { "write" } else { "read" };
    let fail = |e: virtio_drivers::Error| format!("virtio-blk {what} of sector {sector}: {e}");
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: req, buf and resp stay untouched until the request completes below; if it never
    // does, the error return drops the device, whose reset stops it before the buffers are
    // reused.
    let token = unsafe {
        if write {
            blk.write_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        } else {
            blk.read_blocks_nb(sector as usize, &mut req, buf, &mut resp)
        }
    }
    .map_err(fail)?;
    if let Some(error) = guard.error() {
        return Err(format!("DMA mapping failed: {error}"));
    }
    let start = cpu::timebase();
    while blk.peek_used() != Some(token) {
        if cpu::timebase().wrapping_sub(start) > timeout {
            return Err(format!(
                "virtio-blk {what} of sector {sector} did not complete within {IO_TIMEOUT_S} s"
            ));
        }
        core::hint::spin_loop();
    }
    // SAFETY: the same buffers as submitted.
    unsafe {
        if write {
            blk.complete_write_blocks(token, &req, buf, &mut resp)
        } else {
            blk.complete_read_blocks(token, &req, buf, &mut resp)
        }
    }
    .map_err(fail)
}

/// Places the self-test buffers (`len` bytes each) and reports them.
pub fn buffers(
    ram: &[drivers::addr::PhysRange],
    reserved: &crate::phys::Reserved,
    len: u64,
) -> Vec<PhysBuffer> {
    drivers::placement::place_buffers(ram, &reserved.0, len)
        .into_iter()
        .map(|(spot, at): (_, PhysAddr)| {
            kv!(format!("selftest.buffer.{}", spot.name()), "{at}");
            // SAFETY: placed inside RAM, outside every reservation, not overlapping each other.
            unsafe { PhysBuffer::new(at, len as usize) }
        })
        .collect()
}
