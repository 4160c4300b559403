//! The virtio-blk self-test: every disk is read through buffers spread over RAM and
//! checksummed; a disk labelled `PSERIES-DDW-SCRATCH` also gets its first half copied onto its
//! second half (plan in `drivers::selftest::disk`). The device is driven by `virtio-drivers`
//! over RTAS config space, with DMA through the device's own handle on its PE.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::cpu;
use drivers::devices::VIRTIO_BLK;
use drivers::dma::{DeviceHandle, DmaMode, DmaTranslation};
use drivers::pci::{ConfigAccess, Function, Width};
use drivers::selftest::disk::{copy_steps, crc_chunks, is_scratch, CRC_CHUNK, SECTOR};
use drivers::virtio::PlatformTransport;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;

use crate::boundary::memory::PhysBuffer;
use crate::boundary::virtio_hal::{self, blk_request, Blk, BlkOp, HalGuard, KernelHal};
use crate::boundary::xics::IntxLine;
use crate::kv;
use crate::system::Phb;

/// Seconds a request may take before the disk is declared hung.
const IO_TIMEOUT_S: u64 = 10;
/// Sectors per copy step (1 MiB).
const COPY_SECTORS: u64 = 2048;

/// What one disk's test needs.
pub struct DiskTest<'a> {
    /// Report prefix (`blk.<n>`; `event.<n>.blk` for a serving-mode re-test).
    pub name: String,
    /// Its PHB.
    pub phb: &'a Phb<'a>,
    /// The function.
    pub function: &'a Function,
    /// The spread buffers (those of at least 1 MiB are used).
    pub buffers: &'a mut [PhysBuffer],
    /// Timebase ticks per second.
    pub hz: u64,
}

/// Runs the test on one disk and reports `blk.<n>.*`; `Err` is the sentence for
/// `blk.<n>.status`.
pub fn run(test: DiskTest<'_>) -> Result<(), String> {
    let DiskTest { name: prefix, phb, function, buffers, hz } = test;
    let key = |name: &str| format!("{prefix}.{name}");
    kv!(key("pe"), "{}", phb.index);
    kv!(key("bdf"), "{}", function.bdf);
    let (blk, guard) = open(&key, phb, function)?;
    let result = drive(&key, blk, buffers, hz, &guard);
    report_wakes(&key, &guard);
    if let Some(error) = guard.error() {
        return Err(format!("DMA mapping failed: {error}"));
    }
    result
}

/// The disk of `function`, initialised, with its DMA handle bound to the HAL (for as long as
/// the guard lives); reports `access_platform` and the DMA mode.
pub(super) fn open(
    key: &dyn Fn(&str) -> String,
    phb: &Phb<'_>,
    function: &Function,
) -> Result<(Blk, HalGuard), String> {
    for bar in function.bars.iter().filter(|b| b.kind.is_memory() && b.size > 0) {
        if phb.info.bus_to_cpu(drivers::devtree::phb::PciSpace::Mem64, bar.bus_addr, bar.size).is_none() {
            return Err(format!(
                "BAR {} at bus address {:#x}+{:#x} is outside the PHB's memory windows",
                bar.index, bar.bus_addr, bar.size
            ));
        }
    }
    let cfg = phb.cfg.clone().ok_or("the PHB has no config-space access")?;
    let pe = phb.pe.as_ref().ok_or("the disk's PE was not set up")?;
    // The HAL serves this device's MMIO from now on, and its DMA once its mode is known.
    let mut guard = virtio_hal::bind(phb.info.ranges.clone());
    let mut root = PciRoot::new(cfg);
    let df = DeviceFunction {
        bus: function.bdf.bus,
        device: function.bdf.device,
        function: function.bdf.function,
    };
    let inner =
        PciTransport::new::<KernelHal, _>(&mut root, df).map_err(|e| format!("virtio PCI transport: {e}"))?;
    let mut transport = PlatformTransport::new(inner);
    let translated = transport.access_platform();
    kv!(key("access_platform"), "{}", if translated { "yes" } else { "no" });
    let translation = if translated { DmaTranslation::Iommu } else { DmaTranslation::Bypass };
    let handle =
        DeviceHandle::new(&pe.state, VIRTIO_BLK.dma_mask(), translation).map_err(|e| e.to_string())?;
    report_mode(key, handle.dma().mode, VIRTIO_BLK.dma_mask_bits);
    guard.attach(handle);
    let mut blk: Blk = VirtIOBlk::new(transport).map_err(|e| format!("virtio-blk initialisation: {e}"))?;
    match intx_line(phb, function) {
        Ok(line) => {
            kv!(key("irq"), "{:#x}", line.source());
            blk.enable_interrupts();
            guard.route_interrupt(line);
        }
        Err(why) => {
            kv!(key("irq"), "none: {why}; completions are polled");
            // Asking the device not to interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT, virtio 1.1
            // §2.6.7) spares it raising one per request.
            blk.disable_interrupts();
        }
    }
    Ok((blk, guard))
}

/// The function's INTx pin (config byte 0x3d) routed through its PHB's `interrupt-map` to the
/// boot processor.
fn intx_line(phb: &Phb<'_>, function: &Function) -> Result<IntxLine, String> {
    let mut cfg = phb.cfg.clone().ok_or("the PHB has no config-space access")?;
    let pin = cfg
        .read(function.bdf, drivers::pci::header::INTERRUPT_PIN, Width::Byte)
        .map_err(|e| format!("reading the interrupt pin failed: {e:?}"))? as u8;
    if pin == 0 {
        return Err(String::from("the function has no INTx pin"));
    }
    let map = phb.info.interrupt_map.as_ref().ok_or("the PHB has no usable interrupt-map")?;
    let source = map
        .source(function.bdf, pin)
        .ok_or_else(|| format!("the PHB's interrupt-map has no entry for {} pin {pin}", function.bdf))?;
    IntxLine::route(source)
}

/// Reports how many waits the device's interrupt ended.
pub(super) fn report_wakes(key: &dyn Fn(&str) -> String, guard: &HalGuard) {
    if let Some(line) = guard.interrupt() {
        kv!(key("irq_wakes"), "{}", line.wakes());
    }
}

pub(super) fn report_mode(key: &dyn Fn(&str) -> String, mode: DmaMode, bits: u32) {
    kv!(key("dma"), "{}", mode.name());
    match mode {
        DmaMode::Direct { offset, .. } => kv!(key("dma_offset"), "{offset:#x}"),
        DmaMode::Hybrid { offset, liobn, .. } => {
            kv!(key("dma_offset"), "{offset:#x}");
            kv!(key("dma_liobn"), "{liobn}");
        }
        DmaMode::DdwIommu { liobn } | DmaMode::DefaultIommu { liobn } => kv!(key("dma_liobn"), "{liobn}"),
        DmaMode::Bypass => {}
    }
    kv!(key("dma_mask_bits"), "{bits}");
}

fn drive(
    key: &dyn Fn(&str) -> String,
    mut blk: Blk,
    buffers: &mut [PhysBuffer],
    hz: u64,
    guard: &HalGuard,
) -> Result<(), String> {
    let mut buffers: Vec<&mut PhysBuffer> =
        buffers.iter_mut().filter(|b| b.bytes_len() as u64 >= CRC_CHUNK).collect();
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
    let io = |blk: &mut Blk, op, sector, buf: &mut [u8]| blk_request(blk, op, sector, buf, timeout, guard);
    io(&mut blk, BlkOp::Read, 0, &mut buffers[0].bytes()[..SECTOR as usize])?;
    let scratch = is_scratch(&buffers[0].bytes()[..SECTOR as usize]);
    kv!(key("scratch"), "{}", if scratch { "yes" } else { "no" });
    let (mut bytes, mut ticks) = (0u64, 0u64);
    let count = buffers.len();
    for (k, first, sectors_in_chunk) in crc_chunks(sectors) {
        let buffer = &mut buffers[k as usize % count];
        let len = (sectors_in_chunk * SECTOR) as usize;
        let start = cpu::timebase();
        io(&mut blk, BlkOp::Read, first, &mut buffer.bytes()[..len])?;
        ticks += cpu::timebase().wrapping_sub(start);
        bytes += len as u64;
        kv!(key(&format!("crc.{k}")), "{:08x}", crc32fast::hash(&buffer.bytes()[..len]));
    }
    let us = ticks.saturating_mul(1_000_000) / hz.max(1);
    kv!(key("read_bytes"), "{bytes}");
    kv!(key("read_us"), "{us}");
    let tenths = (bytes * 10).checked_div(us).unwrap_or(0); // bytes/µs = MB/s
    kv!(key("read_mbps"), "{}.{}", tenths / 10, tenths % 10);
    if !scratch {
        kv!(key("copy"), "skipped");
        kv!(key("maps"), "{}", guard.maps());
        return Ok(());
    }
    let mut copied = 0;
    for (i, (src, dst, sectors_in_step)) in copy_steps(sectors, COPY_SECTORS).into_iter().enumerate() {
        let buffer = &mut buffers[i % count];
        let len = (sectors_in_step * SECTOR) as usize;
        io(&mut blk, BlkOp::Read, src, &mut buffer.bytes()[..len])?;
        io(&mut blk, BlkOp::Write, dst, &mut buffer.bytes()[..len])?;
        copied += sectors_in_step;
    }
    blk.flush().map_err(|e| format!("virtio-blk flush: {e}"))?;
    kv!(key("copy"), "done");
    kv!(key("copied_sectors"), "{copied}");
    kv!(key("maps"), "{}", guard.maps());
    Ok(())
}
