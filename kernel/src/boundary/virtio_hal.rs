//! The `virtio-drivers` HAL: queue memory from the heap, every buffer shared through the
//! device's DMA handle (bypass, direct DDW, or TCEs in a window), MMIO through the PHB's
//! `ranges`.
//!
//! `virtio-drivers`' `Hal` has only static methods, so the device being driven is bound here
//! for the life of a [`HalGuard`] ([`drivers::virtio_dma::HalBinding`] keeps the bookkeeping,
//! host-tested). One device at a time; the binding's lock is the only lock taken here before
//! the device's PE lock, and nothing takes them the other way round.

use core::ptr::NonNull;
use drivers::addr::{BusAddr, PhysAddr};
use drivers::devtree::phb::PciRange;
use drivers::dma::{DeviceHandle, DmaMemory};
use drivers::iommu::DmaDirection;
use drivers::nvme::controller::CHECK_EVERY;
use drivers::virtio_dma::HalBinding;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

use drivers::pci::{Bdf, ConfigAccess, Width};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

use super::hypervisor::PeHypervisor;
use super::memory::{HeapPages, SharedRegion};
use super::xics::IntxLine;
use crate::pci_config::RtasConfigSpace;
use arch_ppc64::hcall::Wake;

/// What virtio-drivers hands the device: its own queue pages, or a caller's buffer.
pub enum VirtioMemory {
    /// Queue memory from [`Hal::dma_alloc`].
    Pages(HeapPages),
    /// A buffer from [`Hal::share`].
    Shared(SharedRegion),
}

// SAFETY: both variants are `DmaMemory` themselves; this forwards to them.
unsafe impl DmaMemory for VirtioMemory {
    fn phys(&self) -> PhysAddr {
        match self {
            VirtioMemory::Pages(pages) => pages.phys(),
            VirtioMemory::Shared(region) => region.phys(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            VirtioMemory::Pages(pages) => pages.len(),
            VirtioMemory::Shared(region) => region.len(),
        }
    }
}

type Binding = HalBinding<PeHypervisor, VirtioMemory>;

static BINDING: Mutex<Option<Binding>> = Mutex::new(None);

/// How long a wait for virtio-blk gives the processor up at a time: 5 µs of the 512 MHz
/// timebase (`hcall::cede_for`), then the used ring is polled again. Ceding rather than
/// conferring stops the vCPU, so QEMU's main loop and I/O worker have the host's cores (and
/// its global lock, which every hypercall takes) while the request is served. 4 KiB reads at
/// queue depth 1 (`bench=io`, alternating boots on the loaded 2-core TCG host): 45–48 MB/s
/// ceding 5 µs against 23–33 conferring on every poll; 0.25 or 20 µs alarms, or spinning
/// without any hypercall, were no better.
const CEDE_TICKS: u32 = 2560;

/// With the device's interrupt routed, how long a wait may last without it: 1 ms of the
/// 512 MHz timebase, a backstop for a lost interrupt. Waking on the interrupt, as Linux does,
/// means one wake-up per completion instead of one every 5 µs; 4 KiB reads at depth 1 were as
/// fast either way within this host's noise (alternating boots: 41–56 against 50–54 MB/s).
const IRQ_ALARM_TICKS: u32 = 512_000;

/// The device bound to the HAL; unbound when dropped. Its interrupt line, if routed, ends
/// the waits for it.
pub struct HalGuard {
    line: Option<IntxLine>,
}

/// Binds a device behind a PHB with `ranges` (MMIO only, until [`HalGuard::attach`]).
pub fn bind(ranges: alloc::vec::Vec<PciRange>) -> HalGuard {
    *BINDING.lock() = Some(Binding::new(ranges));
    HalGuard { line: None }
}

impl HalGuard {
    /// Waits for the device end on `line`, its interrupt.
    pub fn route_interrupt(&mut self, line: IntxLine) {
        self.line = Some(line);
    }

    /// The device's routed interrupt, if any.
    pub fn interrupt(&self) -> Option<&IntxLine> {
        self.line.as_ref()
    }

    /// Gives the processor up until the device interrupts (the alarm only as a backstop:
    /// [`IRQ_ALARM_TICKS`]) or, with no routed interrupt, for [`CEDE_TICKS`].
    fn wait(&self, blk: &mut Blk) {
        match &self.line {
            Some(line) => {
                if arch_ppc64::hcall::cede_for(IRQ_ALARM_TICKS) == Wake::External {
                    line.take(|| {
                        let _ = blk.ack_interrupt();
                    });
                }
            }
            None => {
                let _ = arch_ppc64::hcall::cede_for(CEDE_TICKS);
            }
        }
    }

    /// Lets the device DMA through `device`.
    pub fn attach(&self, device: DeviceHandle<PeHypervisor>) {
        if let Some(binding) = BINDING.lock().as_mut() {
            binding.attach(device);
        }
    }

    /// The first DMA failure so far.
    pub fn error(&self) -> Option<alloc::string::String> {
        BINDING.lock().as_ref().and_then(|b| b.error().map(alloc::string::String::from))
    }

    /// Buffers shared so far.
    pub fn maps(&self) -> u64 {
        BINDING.lock().as_ref().map_or(0, Binding::maps)
    }
}

impl Drop for HalGuard {
    fn drop(&mut self) {
        // Mappings still live are dropped with the binding: their memory stays out of use.
        *BINDING.lock() = None;
    }
}

/// The kernel's HAL.
pub struct KernelHal;

fn direction(direction: BufferDirection) -> DmaDirection {
    match direction {
        BufferDirection::DriverToDevice => DmaDirection::ToDevice,
        BufferDirection::DeviceToDriver => DmaDirection::FromDevice,
        BufferDirection::Both => DmaDirection::Bidirectional,
    }
}

fn share(memory: VirtioMemory, dir: BufferDirection) -> Option<BusAddr> {
    let mut binding = BINDING.lock();
    let bus = binding.as_mut()?.share(memory, direction(dir));
    (bus != drivers::virtio_dma::NO_DMA_ADDRESS).then_some(bus)
}

// SAFETY: dma_alloc returns zeroed, page-aligned heap memory owned by the caller until
// dma_dealloc; mmio_phys_to_virt returns the BAR's CPU address through the bound PHB's ranges
// (mapped cache-inhibited), which nothing else uses.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, dir: BufferDirection) -> (u64, NonNull<u8>) {
        let Some(memory) = pages.checked_mul(PAGE_SIZE).and_then(|bytes| HeapPages::zeroed(bytes, PAGE_SIZE))
        else {
            return (0, NonNull::dangling());
        };
        let ptr = memory.ptr();
        // A failed share drops the pages (or keeps them if they may still be mapped); 0 tells
        // virtio-drivers the allocation failed (heap pages never sit at physical 0).
        match share(VirtioMemory::Pages(memory), dir) {
            Some(bus) => (bus.get(), ptr),
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: u64, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        let back = BINDING.lock().as_mut().and_then(|b| b.unshare(BusAddr(paddr)));
        // Dropping the pages frees them; pages that did not come back stay allocated.
        match back {
            Some(memory) => {
                drop(memory);
                0
            }
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: u64, size: usize) -> NonNull<u8> {
        let cpu = BINDING.lock().as_ref().and_then(|b| b.mmio_cpu_addr(paddr, size as u64));
        // The caller checked every BAR against the ranges before creating the transport.
        match cpu.and_then(|addr| NonNull::new(addr.get() as *mut u8)) {
            Some(ptr) => ptr,
            None => panic!("virtio BAR region {paddr:#x}+{size:#x} is outside the PHB's memory windows"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, dir: BufferDirection) -> u64 {
        // SAFETY: `Hal::share`'s contract: the buffer stays valid and untouched until the
        // matching `unshare`, which drops the region.
        let region = unsafe { SharedRegion::new(buffer) };
        // A failure answers an address no window or RAM has, and the error is recorded for the
        // driver, which fails the device.
        share(VirtioMemory::Shared(region), dir)
            .map_or(drivers::virtio_dma::NO_DMA_ADDRESS.get(), BusAddr::get)
    }

    unsafe fn unshare(paddr: u64, _buffer: NonNull<[u8]>, _dir: BufferDirection) {
        let back = BINDING.lock().as_mut().and_then(|b| b.unshare(BusAddr(paddr)));
        drop(back);
    }
}

/// `virtio-drivers`' view of config space (32-bit registers; absent devices read all ones).
impl ConfigurationAccess for RtasConfigSpace {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        let bdf = Bdf { bus: df.bus, device: df.device, function: df.function };
        self.clone().read(bdf, u16::from(offset), Width::Dword).unwrap_or(u32::MAX)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let bdf = Bdf { bus: df.bus, device: df.device, function: df.function };
        // A failed write shows up as the device not working; the read side reports it.
        let _ = self.write(bdf, u16::from(offset), Width::Dword, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        // Clones share the PHB's call counter; RTAS config calls are independent of each other.
        self.clone()
    }
}

/// What one block request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkOp {
    /// Read sectors into the buffer.
    Read,
    /// Write the buffer to sectors.
    Write,
}

impl BlkOp {
    fn name(self) -> &'static str {
        match self {
            BlkOp::Read => "read",
            BlkOp::Write => "write",
        }
    }
}

/// A virtio-blk device over PCI through the kernel's HAL.
pub type Blk = virtio_drivers::device::blk::VirtIOBlk<
    KernelHal,
    drivers::virtio::PlatformTransport<virtio_drivers::transport::pci::PciTransport>,
>;

/// One request on `blk` at `sector` with `buf`, polled for at most `timeout` timebase ticks.
/// A DMA failure recorded by the HAL fails the request before it is waited for.
pub fn blk_request(
    blk: &mut Blk,
    op: BlkOp,
    sector: u64,
    buf: &mut [u8],
    timeout: u64,
    guard: &HalGuard,
) -> Result<(), alloc::string::String> {
    use alloc::format;
    use virtio_drivers::device::blk::{BlkReq, BlkResp};
    let what = op.name();
    let fail = |e: virtio_drivers::Error| format!("virtio-blk {what} of sector {sector}: {e}");
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: req, buf and resp stay borrowed, untouched, until the request completes below;
    // if it never does, the error return leads the caller to drop the device, whose transport
    // resets it (virtio-drivers `PciTransport::drop`) before the buffers are used again.
    let token = unsafe {
        match op {
            BlkOp::Write => blk.write_blocks_nb(sector as usize, &mut req, buf, &mut resp),
            BlkOp::Read => blk.read_blocks_nb(sector as usize, &mut req, buf, &mut resp),
        }
    }
    .map_err(fail)?;
    if let Some(error) = guard.error() {
        return Err(format!("DMA mapping failed: {error}"));
    }
    let start = arch_ppc64::cpu::timebase();
    let mut spins = 0u32;
    while blk.peek_used() != Some(token) {
        // The clock only now and then: under emulation each timebase read leaves the
        // translated code (see drivers::nvme::controller::CHECK_EVERY).
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(CHECK_EVERY) && arch_ppc64::cpu::timebase().wrapping_sub(start) > timeout {
            return Err(format!("virtio-blk {what} of sector {sector} did not complete in time"));
        }
        guard.wait(blk);
    }
    // SAFETY: the same buffers as submitted, for the token the device returned.
    unsafe {
        match op {
            BlkOp::Write => blk.complete_write_blocks(token, &req, buf, &mut resp),
            BlkOp::Read => blk.complete_read_blocks(token, &req, buf, &mut resp),
        }
    }
    .map_err(fail)
}

/// `requests` sequential requests of `sectors` sectors each from `first`, at most `depth` in
/// flight, each in its own `sectors × 512`-byte slice of `region` (slot `k` uses slice `k`);
/// waits at most `timeout` ticks for any one completion. The queue holds one descriptor per
/// request (virtio-drivers negotiates indirect descriptors), so `depth` may be the queue's size.
pub fn blk_stream(
    blk: &mut Blk,
    op: BlkOp,
    (first, sectors, requests): (u64, u64, u64),
    depth: usize,
    region: &mut [u8],
    timeout: u64,
    guard: &HalGuard,
) -> Result<(), alloc::string::String> {
    use alloc::format;
    use alloc::vec::Vec;
    use virtio_drivers::device::blk::{BlkReq, BlkResp};
    let size = (sectors * 512) as usize;
    let depth = depth.clamp(1, region.len() / size.max(1));
    if depth == 0 || size == 0 {
        return Err(format!("no room for {size}-byte requests in {} bytes", region.len()));
    }
    // Fixed storage: each slot's header, status and data stay where they are while in flight.
    let mut reqs: Vec<BlkReq> = (0..depth).map(|_| BlkReq::default()).collect();
    let mut resps: Vec<BlkResp> = (0..depth).map(|_| BlkResp::default()).collect();
    let mut chunks: Vec<&mut [u8]> = region.chunks_exact_mut(size).take(depth).collect();
    let mut tokens: Vec<Option<(u16, u64)>> = alloc::vec![None; depth];
    let what = op.name();
    let (mut next, mut finished) = (0u64, 0u64);
    let mut last = arch_ppc64::cpu::timebase();
    let (mut spins, mut moved) = (0u32, false);
    while finished < requests {
        while next < requests {
            let Some(slot) = tokens.iter().position(Option::is_none) else { break };
            let sector = first + next * sectors;
            let (req, buf, resp) = (&mut reqs[slot], &mut *chunks[slot], &mut resps[slot]);
            // SAFETY: this slot's header, data and status are not touched again until the
            // device returns its token and `complete_*` below takes them back; on an error return
            // the caller drops the device, whose transport resets it, before reusing them.
            let token = unsafe {
                match op {
                    BlkOp::Write => blk.write_blocks_nb(sector as usize, req, buf, resp),
                    BlkOp::Read => blk.read_blocks_nb(sector as usize, req, buf, resp),
                }
            };
            match token {
                Ok(token) => tokens[slot] = Some((token, next)),
                Err(virtio_drivers::Error::QueueFull) if tokens.iter().any(Option::is_some) => break,
                Err(e) => return Err(format!("virtio-blk {what} of sector {sector}: {e}")),
            }
            if let Some(error) = guard.error() {
                return Err(format!("DMA mapping failed: {error}"));
            }
            next += 1;
        }
        match blk.peek_used() {
            Some(token) => {
                let slot = tokens
                    .iter()
                    .position(|t| t.is_some_and(|(k, _)| k == token))
                    .ok_or_else(|| format!("virtio-blk returned token {token}, which is not in flight"))?;
                let request = tokens[slot].map_or(0, |t| t.1);
                let (req, buf, resp) = (&reqs[slot], &mut *chunks[slot], &mut resps[slot]);
                // SAFETY: the same buffers as submitted with this token.
                unsafe {
                    match op {
                        BlkOp::Write => blk.complete_write_blocks(token, req, buf, resp),
                        BlkOp::Read => blk.complete_read_blocks(token, req, buf, resp),
                    }
                }
                .map_err(|e| format!("virtio-blk {what} of sector {}: {e}", first + request * sectors))?;
                tokens[slot] = None;
                finished += 1;
                moved = true;
            }
            None => {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(CHECK_EVERY) {
                    let now = arch_ppc64::cpu::timebase();
                    if moved {
                        (last, moved) = (now, false);
                    } else if now.wrapping_sub(last) > timeout {
                        return Err(format!(
                            "virtio-blk {what} stream: no completion in time ({finished} of {requests} done)"
                        ));
                    }
                }
                guard.wait(blk);
            }
        }
    }
    Ok(())
}
