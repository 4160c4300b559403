//! A PE's DMA state shared by its devices, and each device's handle on it.
//!
//! [`PeState`] pairs the PE's windows ([`PeDma`]) with the hypervisor interface that writes
//! its TCEs. The interface is private: once the state exists, TCEs are written only by
//! mapping [`DmaMemory`] through a [`DeviceHandle`] (or by the IOMMU driver's own window
//! management), so safe code cannot point a TCE at memory it does not own. Each device keeps a
//! [`DeviceHandle`]: its mode, its mask, and a reference to its PE's state behind one lock.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use spin::Mutex;

use super::hot_ram::HotRam;
use super::mapping::{DmaMapping, MapFailure, Retired, UnmapFailure};
use super::memory::DmaMemory;
use super::pe::{DeviceDma, DmaMode, DmaTranslation, ModeError, PeDma};
use crate::addr::{Liobn, PhysRange};
use crate::iommu::hcall::TceCalls;
use crate::iommu::map::clear_window;
use crate::iommu::map::{MapError, MultiTce};
use crate::iommu::rtas::{retry_busy, DdwRtas, Delay};
use crate::iommu::tce::DmaDirection;
use crate::iommu::window::DmaMask;

/// One PE's DMA windows and the hypervisor interface that writes their TCEs.
pub struct PeState<H> {
    dma: PeDma,
    hv: H,
}

impl<H: TceCalls> PeState<H> {
    /// The PE's windows, written through `hv` from now on.
    pub fn new(dma: PeDma, hv: H) -> Self {
        Self { dma, hv }
    }

    /// The PE's windows.
    pub fn dma(&self) -> &PeDma {
        &self.dma
    }

    /// The mode for a device with `mask` (see [`PeDma::choose_mode`]).
    pub fn choose_mode(&self, mask: DmaMask, translation: DmaTranslation) -> Result<DmaMode, ModeError> {
        self.dma.choose_mode(mask, translation)
    }

    /// Hands `memory` to `device` (see [`DeviceDma::map`]).
    pub fn map<M: DmaMemory>(
        &mut self,
        device: &DeviceDma,
        memory: M,
        direction: DmaDirection,
    ) -> Result<DmaMapping<M>, MapFailure<M>> {
        device.map(&mut self.dma, &mut self.hv, memory, direction)
    }

    /// Takes memory back from `device` (see [`DeviceDma::unmap`]).
    pub fn unmap<M: DmaMemory>(
        &mut self,
        device: &DeviceDma,
        mapping: DmaMapping<M>,
    ) -> Result<M, UnmapFailure<M>> {
        device.unmap(&mut self.dma, &mut self.hv, mapping)
    }

    /// Takes memory back after `device` failed (see [`DeviceDma::reclaim`]).
    pub fn reclaim<M: DmaMemory>(
        &mut self,
        device: &DeviceDma,
        mapping: DmaMapping<M>,
    ) -> Result<M, Retired> {
        device.reclaim(&mut self.dma, &mut self.hv, mapping)
    }

    /// Writes hot-added `range` into a direct DDW (see [`PeDma::map_hot_added`]).
    pub fn map_hot_added(&mut self, range: PhysRange, multi_tce: MultiTce) -> Result<HotRam, MapError> {
        self.dma.map_hot_added(&mut self.hv, range, multi_tce)
    }

    /// Clears `range`, about to be removed, from a direct DDW (see [`PeDma::clear_hot_removed`]).
    pub fn clear_hot_removed(&mut self, range: PhysRange, multi_tce: MultiTce) -> Result<HotRam, MapError> {
        self.dma.clear_hot_removed(&mut self.hv, range, multi_tce)
    }

    /// The hypervisor interface, for the model's inspection in host tests.
    pub fn hypervisor(&self) -> &H {
        &self.hv
    }
}

impl<H: TceCalls + DdwRtas> PeState<H> {
    /// Clears and removes the PE's DDW because its PHB is going away (Linux `remove_ddw`:
    /// `clean_dma_window`, then `ibm,remove-pe-dma-window`). Returns the window removed, if
    /// there was one; on failure the DDW stays recorded.
    pub fn remove_ddw(
        &mut self,
        multi_tce: MultiTce,
        delay: &mut impl Delay,
    ) -> Result<Option<Liobn>, String> {
        let Some(ddw) = &self.dma.ddw else { return Ok(None) };
        let window = ddw.window;
        clear_window(&mut self.hv, &window, multi_tce)
            .map_err(|e| format!("clearing the DDW failed: {e}"))?;
        retry_busy(delay, || self.hv.remove(window.liobn())).map_err(|e| format!("{e}"))?;
        self.dma.ddw = None;
        Ok(Some(window.liobn()))
    }
}

/// A PE's state, shared by its devices.
pub type SharedPe<H> = Arc<Mutex<PeState<H>>>;

/// Shares `state` among the PE's devices.
pub fn share<H>(state: PeState<H>) -> SharedPe<H> {
    Arc::new(Mutex::new(state))
}

/// One device's DMA: its mode and mask, decided once, and its PE.
pub struct DeviceHandle<H> {
    pe: SharedPe<H>,
    dma: DeviceDma,
}

impl<H> Clone for DeviceHandle<H> {
    fn clone(&self) -> Self {
        Self { pe: Arc::clone(&self.pe), dma: self.dma }
    }
}

impl<H: TceCalls> DeviceHandle<H> {
    /// The handle of a device of `pe` with `mask` whose DMA is translated as `translation`
    /// says, in the mode the PE's windows give it.
    pub fn new(pe: &SharedPe<H>, mask: DmaMask, translation: DmaTranslation) -> Result<Self, ModeError> {
        let mode = pe.lock().choose_mode(mask, translation)?;
        Ok(Self { pe: Arc::clone(pe), dma: DeviceDma { mode, mask } })
    }

    /// The device's mode and mask.
    pub fn dma(&self) -> DeviceDma {
        self.dma
    }

    /// Hands `memory` to the device.
    pub fn map<M: DmaMemory>(
        &self,
        memory: M,
        direction: DmaDirection,
    ) -> Result<DmaMapping<M>, MapFailure<M>> {
        self.pe.lock().map(&self.dma, memory, direction)
    }

    /// Takes memory back once the device is done with it.
    pub fn unmap<M: DmaMemory>(&self, mapping: DmaMapping<M>) -> Result<M, UnmapFailure<M>> {
        self.pe.lock().unmap(&self.dma, mapping)
    }

    /// Takes memory back after the device failed part way (see [`DeviceDma::reclaim`]).
    pub fn reclaim<M: DmaMemory>(&self, mapping: DmaMapping<M>) -> Result<M, Retired> {
        self.pe.lock().reclaim(&self.dma, mapping)
    }
}
