//! The device whose DMA is being set up or driven, for code that cannot carry it: the
//! `virtio-drivers` HAL is a type with static methods, so the kernel drives one DMA device at
//! a time and names it here.
//!
//! Lock order: [`ACTIVE`] before [`crate::pe_setup::PES`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use arch_ppc64::tce::HvTce;
use drivers::addr::PhysAddr;
use drivers::devtree::phb::PciRange;
use drivers::dma::{DeviceDma, DmaHandle};
use drivers::iommu::DmaDirection;
use spin::Mutex;

use crate::pe_setup::PES;

/// The device being driven.
pub struct ActiveDevice {
    /// Its PE (index into `PES`).
    pub pe: usize,
    /// How it reaches RAM.
    pub dma: DeviceDma,
    /// Its PHB's `ranges`, to turn BAR bus addresses into CPU addresses.
    pub ranges: Vec<PciRange>,
    /// Buffers handed to it and not yet taken back.
    pub live: Vec<DmaHandle>,
    /// The first mapping failure (the HAL cannot return errors).
    pub error: Option<String>,
    /// Buffers mapped so far.
    pub maps: u64,
}

/// The device being driven, if any.
pub static ACTIVE: Mutex<Option<ActiveDevice>> = Mutex::new(None);

/// Makes `device` the active one for the life of the guard.
pub fn activate(device: ActiveDevice) -> ActiveGuard {
    *ACTIVE.lock() = Some(device);
    ActiveGuard
}

/// Clears the active device when dropped.
pub struct ActiveGuard;

impl ActiveGuard {
    /// The first mapping error so far.
    pub fn error(&self) -> Option<String> {
        ACTIVE.lock().as_ref().and_then(|a| a.error.clone())
    }

    /// Buffers mapped so far.
    pub fn maps(&self) -> u64 {
        ACTIVE.lock().as_ref().map_or(0, |a| a.maps)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        *ACTIVE.lock() = None;
    }
}

/// Hands `[phys, phys + len)` to the active device; returns its bus address or records
/// the failure and returns `None`.
pub fn map(phys: PhysAddr, len: u64, direction: DmaDirection) -> Option<u64> {
    let mut active = ACTIVE.lock();
    let device = active.as_mut()?;
    let mut pes = PES.lock();
    let Some(pe) = pes.get_mut(device.pe) else {
        device.error.get_or_insert_with(|| "the device's PE is not set up".to_string());
        return None;
    };
    match device.dma.map(&mut pe.dma, &mut HvTce, phys, len, direction) {
        Ok(handle) => {
            let bus = handle.bus_addr().get();
            device.live.push(handle);
            device.maps += 1;
            Some(bus)
        }
        Err(error) => {
            device.error.get_or_insert_with(|| error.to_string());
            None
        }
    }
}

/// Takes back the buffer the device knows as `bus`.
pub fn unmap(bus: u64) {
    let mut active = ACTIVE.lock();
    let Some(device) = active.as_mut() else { return };
    let Some(at) = device.live.iter().position(|h| h.bus_addr().get() == bus) else {
        device.error.get_or_insert_with(|| alloc::format!("unmapping unknown bus address {bus:#x}"));
        return;
    };
    let handle = device.live.swap_remove(at);
    let mut pes = PES.lock();
    let Some(pe) = pes.get_mut(device.pe) else { return };
    if let Err(error) = device.dma.unmap(&mut pe.dma, &mut HvTce, handle) {
        device.error.get_or_insert_with(|| error.to_string());
    }
}

/// The CPU address of `len` bytes of PCI memory space at `bus`, through the active device's
/// PHB ranges.
pub fn mmio_cpu_addr(ranges: &[PciRange], bus: u64, len: u64) -> Option<u64> {
    ranges.iter().filter(|r| r.space.is_memory()).find_map(|r| r.bus_to_cpu(bus, len)).map(PhysAddr::get)
}
