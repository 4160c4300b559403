//! The DMA side of the `virtio-drivers` HAL: which device the HAL serves, the buffers it has
//! shared, and the first failure.
//!
//! `virtio-drivers`' `Hal` is a type with static methods that cannot return errors from
//! `share`, so the kernel keeps one [`HalBinding`] for the device being driven (its PHB's
//! ranges for MMIO, then its [`DeviceHandle`] once its mode is known) and its HAL forwards to
//! it. Bus address 0 is a valid answer (bypass mode and a direct window in table slot 0 map
//! physical page 0 there), so a failed share answers [`NO_DMA_ADDRESS`], which no window of
//! this driver translates and which lies beyond RAM, records the error, and the driver fails
//! the device before trusting its I/O.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::{BusAddr, PhysAddr};
use crate::devtree::phb::{PciRange, PciSpace};
use crate::dma::{DeviceHandle, DmaMapping, DmaMemory};
use crate::iommu::hcall::TceCalls;
use crate::iommu::tce::DmaDirection;

/// What a failed share hands the device: the last page of the 64-bit bus space, which no DMA
/// window reaches (windows end at or below 2^64 and start page-aligned from a planner capped
/// at 2^63 bytes) and no guest RAM occupies.
pub const NO_DMA_ADDRESS: BusAddr = BusAddr(0xffff_ffff_ffff_f000);

/// The device the HAL serves.
pub struct HalBinding<H, M: DmaMemory> {
    ranges: Vec<PciRange>,
    device: Option<DeviceHandle<H>>,
    live: Vec<DmaMapping<M>>,
    error: Option<String>,
    maps: u64,
}

impl<H: TceCalls, M: DmaMemory> HalBinding<H, M> {
    /// A binding for a device behind a PHB with `ranges`; it may not DMA until
    /// [`HalBinding::attach`] gives it its handle.
    pub fn new(ranges: Vec<PciRange>) -> Self {
        Self { ranges, device: None, live: Vec::new(), error: None, maps: 0 }
    }

    /// The device's DMA handle, once its mode is chosen.
    pub fn attach(&mut self, device: DeviceHandle<H>) {
        self.device = Some(device);
    }

    /// The CPU address of `len` bytes of the device's memory space at bus address `bus`.
    pub fn mmio_cpu_addr(&self, bus: u64, len: u64) -> Option<PhysAddr> {
        self.ranges
            .iter()
            .filter(|r| matches!(r.space, PciSpace::Mem32 | PciSpace::Mem64))
            .find_map(|r| r.bus_to_cpu(bus, len))
    }

    /// Hands `memory` to the device and returns its bus address, or records why not and
    /// returns [`NO_DMA_ADDRESS`] (the memory is then dropped or, if it may still be mapped,
    /// leaked).
    pub fn share(&mut self, memory: M, direction: DmaDirection) -> BusAddr {
        let Some(device) = self.device.as_ref() else {
            self.error.get_or_insert_with(|| String::from("DMA before the device's DMA mode was chosen"));
            return NO_DMA_ADDRESS;
        };
        match device.map(memory, direction) {
            Ok(mapping) => {
                let bus = mapping.bus_addr();
                self.live.push(mapping);
                self.maps += 1;
                bus
            }
            Err(failure) => {
                self.error.get_or_insert_with(|| format!("{}", failure.error));
                NO_DMA_ADDRESS
            }
        }
    }

    /// Takes back the memory the device knows as `bus` (its first shared byte).
    pub fn unshare(&mut self, bus: BusAddr) -> Option<M> {
        if bus == NO_DMA_ADDRESS {
            return None;
        }
        let Some(at) = self.live.iter().position(|m| m.bus_addr() == bus) else {
            self.error.get_or_insert_with(|| format!("unsharing bus address {bus}, which is not shared"));
            return None;
        };
        let mapping = self.live.swap_remove(at);
        let device = self.device.as_ref()?;
        match device.unmap(mapping) {
            Ok(memory) => Some(memory),
            Err(failure) => {
                self.error.get_or_insert_with(|| format!("{failure}"));
                // Still mapped: kept, so its memory is never reused.
                self.live.push(failure.mapping);
                None
            }
        }
    }

    /// The first failure so far.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Buffers shared so far.
    pub fn maps(&self) -> u64 {
        self.maps
    }

    /// Buffers shared and not yet taken back.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
#[path = "virtio_dma_tests.rs"]
mod tests;
