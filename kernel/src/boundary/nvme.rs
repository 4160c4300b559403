//! What the NVMe driver (`drivers::nvme`) needs from the kernel: BAR 0's registers as volatile
//! little-endian MMIO, and queue memory — zeroed heap pages handed to the controller through
//! its own `DeviceHandle` (so queues and PRP lists reach it at bus addresses of its PE's
//! window, like its data) and read and written with volatile accesses while it owns them.

use core::sync::atomic::{fence, Ordering};
use drivers::addr::BusAddr;
use drivers::dma::{DeviceHandle, DmaMapping, DmaMemory};
use drivers::iommu::DmaDirection;
use drivers::nvme::{DeviceMemory, NvmeEnv, NvmeRegs};

use super::hypervisor::PeHypervisor;
use super::memory::{HeapPages, Mmio};

/// The controller's BAR 0.
pub struct NvmeRegisters(pub Mmio);

impl NvmeRegs for NvmeRegisters {
    fn read32(&mut self, offset: usize) -> u32 {
        self.0.read32(offset)
    }

    fn write32(&mut self, offset: usize, value: u32) {
        self.0.write32(offset, value);
    }
}

/// Heap pages the controller reaches (a queue, PRP lists, the Identify buffer).
pub struct QueueMemory {
    mapping: DmaMapping<HeapPages>,
}

impl QueueMemory {
    /// The dword at `offset`, if it is inside the pages and aligned.
    fn at(&self, offset: usize) -> Option<*mut u32> {
        let pages = self.mapping.memory()?;
        let inside = offset.checked_add(4).is_some_and(|end| end as u64 <= pages.len());
        (inside && offset.is_multiple_of(4)).then(|| pages.ptr().as_ptr().wrapping_add(offset).cast::<u32>())
    }
}

impl DeviceMemory for QueueMemory {
    fn bus(&self) -> BusAddr {
        self.mapping.bus_addr()
    }

    fn len(&self) -> usize {
        self.mapping.len() as usize
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let Some(at) = self.at(offset) else { return u32::MAX };
        // SAFETY: `at` is an aligned dword inside heap pages this mapping owns (checked by
        // `at`); the controller may write them at any time, hence the volatile load.
        let value = unsafe { at.read_volatile() };
        // Later loads (the rest of a completion, the data it announces) come after this one.
        fence(Ordering::Acquire);
        u32::from_le(value)
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        let Some(at) = self.at(offset) else { return };
        // SAFETY: as in `read_u32`; the doorbell write that hands the entry over is ordered
        // after this store by the MMIO write's `sync`.
        unsafe { at.write_volatile(value.to_le()) }
    }
}

/// The NVMe driver's environment: queue memory through the controller's DMA handle, and the
/// timebase.
pub struct KernelNvmeEnv {
    device: DeviceHandle<PeHypervisor>,
    hz: u64,
    /// Queue-memory mappings made.
    pub maps: u64,
}

impl KernelNvmeEnv {
    /// The environment of a controller with DMA handle `device`.
    pub fn new(device: DeviceHandle<PeHypervisor>, hz: u64) -> Self {
        Self { device, hz, maps: 0 }
    }

    /// The controller's DMA handle (for its data buffers).
    pub fn device(&self) -> &DeviceHandle<PeHypervisor> {
        &self.device
    }
}

impl NvmeEnv for KernelNvmeEnv {
    type Memory = QueueMemory;

    fn alloc(&mut self, bytes: usize) -> Result<QueueMemory, alloc::string::String> {
        let pages = HeapPages::zeroed(bytes, 4096)
            .ok_or_else(|| alloc::format!("no {bytes} bytes of heap for NVMe queues"))?;
        let mapping = self
            .device
            .map(pages, DmaDirection::Bidirectional)
            .map_err(|failure| alloc::format!("mapping {bytes} bytes of NVMe queue memory: {failure}"))?;
        self.maps += 1;
        Ok(QueueMemory { mapping })
    }

    fn free(&mut self, memory: QueueMemory) -> Result<(), alloc::string::String> {
        match self.device.unmap(memory.mapping) {
            // Dropping the pages frees them.
            Ok(pages) => {
                drop(pages);
                Ok(())
            }
            Err(failure) => Err(alloc::format!("{failure}")),
        }
    }

    fn now_us(&mut self) -> u64 {
        arch_ppc64::cpu::timebase() / (self.hz / 1_000_000).max(1)
    }
}
