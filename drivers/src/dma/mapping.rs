//! Handing memory to a device and taking it back.
//!
//! [`DeviceDma::map`] takes a [`DmaMemory`] by value and returns a [`DmaMapping`] that holds
//! it; [`DeviceDma::unmap`] clears the mapping's TCEs (if it has any) and gives the memory
//! back. Safe code therefore cannot keep a live TCE over memory it no longer owns:
//! - a failed map hands the memory back only when no entry of it can be live (if clearing
//!   the partly written entries failed too, the memory is kept out of use — leaked);
//! - a failed unmap hands the mapping back, still holding its memory;
//! - a mapping dropped without being unmapped leaks its memory;
//! - after a device failed part way (a transfer that did not complete), [`DeviceDma::reclaim`]
//!   gives the memory back only if the device's access could be revoked: TCE mappings are
//!   cleared, while bypass and direct mappings cannot be revoked, so their memory is retired.
//!
//! Every mapping ends with a `sync` before its address is handed out (LoPAR "TCE Update
//! Synchronisation": TCE updates and the buffer's contents must be visible before the DMA that
//! relies on them); a direct or bypass mapping needs no hypercall, only that barrier.

use core::fmt;

use super::memory::DmaMemory;
use super::pe::{DeviceDma, DmaMode, PeDma};
use crate::addr::{BusAddr, PhysAddr};
use crate::iommu::hcall::TceCalls;
use crate::iommu::iova_window::{BufferError, Mapping, UnmapReason};
use crate::iommu::tce::DmaDirection;

/// What a mapping consists of.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Handle {
    /// No TCEs involved (bypass or direct): the device reaches the memory until it stops.
    Fixed {
        /// The address the device uses.
        bus: BusAddr,
    },
    /// TCEs written for this buffer: clearing them revokes the device's access.
    Mapped(Mapping),
}

impl Handle {
    fn bus_addr(&self) -> BusAddr {
        match self {
            Handle::Fixed { bus } => *bus,
            Handle::Mapped(mapping) => mapping.iova(),
        }
    }
}

struct Live<M> {
    handle: Handle,
    memory: M,
}

/// Memory handed to a device. Give it back with [`DeviceDma::unmap`] (or
/// [`DeviceDma::reclaim`] after a device failure); dropped otherwise, the memory is leaked
/// so that it is never reused while the device may still reach it.
#[must_use = "a DMA mapping must be unmapped, or its memory is leaked"]
pub struct DmaMapping<M: DmaMemory> {
    live: Option<Live<M>>,
    mode: DmaMode,
    bus: BusAddr,
}

impl<M: DmaMemory> DmaMapping<M> {
    fn new(handle: Handle, memory: M, mode: DmaMode) -> Self {
        let bus = handle.bus_addr();
        Self { live: Some(Live { handle, memory }), mode, bus }
    }

    /// The address the device uses for the memory's first byte.
    pub fn bus_addr(&self) -> BusAddr {
        self.bus
    }

    /// The mapped memory's length in bytes.
    pub fn len(&self) -> u64 {
        self.live.as_ref().map_or(0, |live| live.memory.len())
    }

    /// Always false: empty memory is never mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mode the mapping was made in.
    pub fn mode(&self) -> DmaMode {
        self.mode
    }

    /// TCEs this mapping holds (0 for a bypass or direct mapping).
    pub fn tces(&self) -> u64 {
        match self.live.as_ref().map(|live| &live.handle) {
            Some(Handle::Mapped(mapping)) => mapping.pages(),
            _ => 0,
        }
    }

    /// Whether unmapping revokes the device's access (a TCE mapping), as opposed to merely
    /// forgetting it (bypass, direct).
    pub fn revocable(&self) -> bool {
        matches!(self.live.as_ref().map(|live| &live.handle), Some(Handle::Mapped(_)))
    }

    /// The memory, for the CPU's side of the transfer.
    pub fn memory(&self) -> Option<&M> {
        self.live.as_ref().map(|live| &live.memory)
    }

    /// The memory, for the CPU's side of the transfer.
    pub fn memory_mut(&mut self) -> Option<&mut M> {
        self.live.as_mut().map(|live| &mut live.memory)
    }
}

impl<M: DmaMemory> fmt::Debug for DmaMapping<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaMapping({} mode, bus {}, {:#x} bytes)", self.mode.name(), self.bus, self.len())
    }
}

impl<M: DmaMemory> Drop for DmaMapping<M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            log::warn!(
                "a DMA mapping at bus {} was dropped without being unmapped: its {:#x} bytes at {} stay out \
                 of use",
                self.bus,
                live.memory.len(),
                live.memory.phys()
            );
            core::mem::forget(live.memory);
        }
    }
}

/// Why memory could not be handed to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapBufferError {
    /// The memory is empty.
    Empty,
    /// The memory lies outside what the direct window maps, or past the device's mask.
    OutOfReach {
        /// Memory start.
        phys: PhysAddr,
        /// Memory length.
        len: u64,
        /// The mode tried.
        mode: DmaMode,
    },
    /// The mode's window is not (or no longer) on the PE.
    NoWindow {
        /// The mode tried.
        mode: DmaMode,
    },
    /// Mapping through a window failed.
    Iommu(BufferError),
}

impl fmt::Display for MapBufferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapBufferError::Empty => write!(f, "cannot map an empty DMA buffer"),
            MapBufferError::OutOfReach { phys, len, mode } => write!(
                f,
                "the buffer {phys}+{len:#x} is out of reach of the device's DMA ({} mode)",
                mode.name()
            ),
            MapBufferError::NoWindow { mode } => {
                write!(f, "the PE has no window for {} DMA", mode.name())
            }
            MapBufferError::Iommu(error) => write!(f, "{error}"),
        }
    }
}

/// A failed map: the error, and the memory if no entry of it can be live.
pub struct MapFailure<M> {
    /// What went wrong.
    pub error: MapBufferError,
    /// The memory, handed back; `None` when clearing partly written entries failed too, so
    /// the memory stays out of use (leaked).
    pub memory: Option<M>,
}

impl<M> fmt::Debug for MapFailure<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let memory = if self.memory.is_some() { "handed back" } else { "kept out of use" };
        write!(f, "MapFailure({:?}, memory {memory})", self.error)
    }
}

impl<M> fmt::Display for MapFailure<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

/// A failed unmap: why, and the mapping, still live and holding its memory (try again, or
/// drop it to retire the memory).
pub struct UnmapFailure<M: DmaMemory> {
    /// Why.
    pub reason: UnmapReason,
    /// The mapping.
    pub mapping: DmaMapping<M>,
}

impl<M: DmaMemory> fmt::Debug for UnmapFailure<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnmapFailure({:?}, {:?})", self.reason, self.mapping)
    }
}

impl<M: DmaMemory> fmt::Display for UnmapFailure<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unmapping bus address {} ({} mode): {}",
            self.mapping.bus,
            self.mapping.mode.name(),
            self.reason
        )
    }
}

/// Why [`DeviceDma::reclaim`] kept the memory out of use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retired {
    /// A bypass or direct mapping: the device may still reach the memory.
    Unrevocable {
        /// Its start.
        phys: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// Clearing the TCEs failed: some may still be live.
    ClearFailed {
        /// Its start.
        phys: PhysAddr,
        /// Its length.
        len: u64,
        /// Why.
        reason: UnmapReason,
    },
}

impl fmt::Display for Retired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retired::Unrevocable { phys, len } => write!(
                f,
                "the buffer {phys}+{len:#x} stays out of use: the device may still reach it (its DMA is not \
                 translated by TCEs that could be cleared)"
            ),
            Retired::ClearFailed { phys, len, reason } => {
                write!(f, "the buffer {phys}+{len:#x} stays out of use: clearing its TCEs failed ({reason})")
            }
        }
    }
}

impl DeviceDma {
    /// Hands `memory` to the device; direct and bypass mappings need no hypercall.
    pub fn map<M: DmaMemory>(
        &self,
        pe: &mut PeDma,
        calls: &mut impl TceCalls,
        memory: M,
        direction: DmaDirection,
    ) -> Result<DmaMapping<M>, MapFailure<M>> {
        match pe.map_range(self, calls, memory.phys(), memory.len(), direction) {
            Ok(handle) => Ok(DmaMapping::new(handle, memory, self.mode)),
            Err(error @ MapBufferError::Iommu(BufferError::Hcall { cleanup: Some(_), .. })) => {
                // Entries of the memory may be live: keep it out of use.
                core::mem::forget(memory);
                Err(MapFailure { error, memory: None })
            }
            Err(error) => Err(MapFailure { error, memory: Some(memory) }),
        }
    }

    /// Takes the memory back once the device is done with it (clears its TCEs, if any).
    pub fn unmap<M: DmaMemory>(
        &self,
        pe: &mut PeDma,
        calls: &mut impl TceCalls,
        mut mapping: DmaMapping<M>,
    ) -> Result<M, UnmapFailure<M>> {
        let Some(Live { handle, memory }) = mapping.live.take() else {
            return Err(UnmapFailure { reason: UnmapReason::NoWindow, mapping });
        };
        let mode = mapping.mode;
        let inner = match handle {
            Handle::Fixed { .. } => return Ok(memory),
            Handle::Mapped(inner) => inner,
        };
        let Some(window) = pe.iova_window_for(mode) else {
            let mapping = DmaMapping::new(Handle::Mapped(inner), memory, mode);
            return Err(UnmapFailure { reason: UnmapReason::NoWindow, mapping });
        };
        match window.unmap(calls, inner) {
            Ok(()) => Ok(memory),
            Err(error) => {
                let mapping = DmaMapping::new(Handle::Mapped(error.mapping), memory, mode);
                Err(UnmapFailure { reason: error.reason, mapping })
            }
        }
    }

    /// Takes the memory back after the device failed part way through using it, when it may
    /// still be accessing it: only a TCE mapping's access can be revoked (its entries are
    /// cleared); a bypass or direct mapping's memory is retired (leaked), as is one whose
    /// entries could not be cleared.
    pub fn reclaim<M: DmaMemory>(
        &self,
        pe: &mut PeDma,
        calls: &mut impl TceCalls,
        mapping: DmaMapping<M>,
    ) -> Result<M, Retired> {
        let (phys, len) = mapping.memory().map_or((PhysAddr(0), 0), |m| (m.phys(), m.len()));
        if !mapping.revocable() {
            drop(mapping);
            return Err(Retired::Unrevocable { phys, len });
        }
        match self.unmap(pe, calls, mapping) {
            Ok(memory) => Ok(memory),
            Err(failure) => {
                let reason = failure.reason;
                drop(failure.mapping);
                Err(Retired::ClearFailed { phys, len, reason })
            }
        }
    }
}
