//! A PE's DMA windows and how each device reaches RAM through them.
//!
//! A PE owns its default window (`ibm,dma-window`, 4 KiB pages, used through an IOVA
//! allocator) and at most one DDW. A device then gets (Linux
//! `arch/powerpc/kernel/dma-iommu.c : dma_iommu_dma_supported`, QEMU hw/virtio/virtio.c
//! `virtio_validate_features` for `VIRTIO_F_ACCESS_PLATFORM`):
//! - [`DmaMode::Bypass`] when its DMA is not translated at all (a virtio device that does not
//!   offer `VIRTIO_F_ACCESS_PLATFORM`: QEMU hands it guest-physical memory);
//! - [`DmaMode::Direct`] when a direct DDW exists and its last bus address fits the device's
//!   mask: bus address = physical + offset, no hypercall per mapping;
//! - [`DmaMode::DdwIommu`] when a dynamic DDW exists and fits the mask;
//! - [`DmaMode::DefaultIommu`] otherwise: TCEs written per buffer in the default window, at
//!   IOVAs below the device's mask (e.g. QEMU's `edu`, 28 bits).

use core::fmt;

use super::mapping::{Handle, MapBufferError};
use crate::addr::{Liobn, PhysAddr};
use crate::iommu::ddw::{Ddw, DdwError, DdwMapping};
use crate::iommu::handover::{Handover, TakeOver, TakeOverError};
use crate::iommu::hcall::TceCalls;
use crate::iommu::iova_window::IovaWindow;
use crate::iommu::rtas::PeAddress;
use crate::iommu::tce::DmaDirection;
use crate::iommu::window::DmaMask;

/// How one device's DMA reaches RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaMode {
    /// No translation: bus address = physical address.
    Bypass,
    /// Through a direct DDW: bus address = physical address + `offset`.
    Direct {
        /// The window's bus base.
        offset: u64,
        /// The window's LIOBN (for the report).
        liobn: Liobn,
    },
    /// Through a hybrid DDW: RAM below `direct_end` at physical + `offset`, anything above
    /// it buffer by buffer in the window's upper part.
    Hybrid {
        /// The window's bus base.
        offset: u64,
        /// The window's LIOBN.
        liobn: Liobn,
        /// One past the last directly mapped physical address.
        direct_end: u64,
    },
    /// Buffer by buffer through a dynamic DDW.
    DdwIommu {
        /// The DDW's LIOBN.
        liobn: Liobn,
    },
    /// Buffer by buffer through the default window.
    DefaultIommu {
        /// The default window's LIOBN.
        liobn: Liobn,
    },
}

impl DmaMode {
    /// The report's name for the mode.
    pub const fn name(&self) -> &'static str {
        match self {
            DmaMode::Bypass => "bypass",
            DmaMode::Direct { .. } => "direct",
            DmaMode::Hybrid { .. } => "hybrid",
            DmaMode::DdwIommu { .. } => "ddw-iommu",
            DmaMode::DefaultIommu { .. } => "default-iommu",
        }
    }
}

/// The DMA state of one PE.
#[derive(Debug, Default)]
pub struct PeDma {
    /// The default window through an allocator (`None` if the PE has none).
    pub default: Option<IovaWindow>,
    /// The DDW, if one was created.
    pub ddw: Option<Ddw>,
}

/// Why a device has no way to DMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeError {
    /// No DDW fits the mask and the PE has no default window.
    NoWindow {
        /// The device's mask.
        mask: DmaMask,
    },
}

impl fmt::Display for ModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeError::NoWindow { mask } => write!(
                f,
                "no DMA window serves a device with DMA mask {:#x}: no DDW fits it and the PE has no default \
                 window",
                mask.0
            ),
        }
    }
}

/// Whether a device's DMA goes through the IOMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaTranslation {
    /// Through the PE's TCE tables (every PCI device, and virtio with `ACCESS_PLATFORM`).
    Iommu,
    /// Around them: the device uses guest-physical addresses (virtio without
    /// `ACCESS_PLATFORM` under QEMU).
    Bypass,
}

impl PeDma {
    /// Picks the mode for a device with `mask` whose DMA is translated as `translation` says.
    pub fn choose_mode(&self, mask: DmaMask, translation: DmaTranslation) -> Result<DmaMode, ModeError> {
        if translation == DmaTranslation::Bypass {
            return Ok(DmaMode::Bypass);
        }
        if let Some(ddw) = self.ddw.as_ref().filter(|ddw| ddw.window.fits_dma_mask(mask)) {
            let liobn = ddw.window.liobn();
            let offset = ddw.window.bus_base().get();
            return Ok(match ddw.mapping {
                DdwMapping::Direct => DmaMode::Direct { offset, liobn },
                DdwMapping::Hybrid { direct_end, .. } => DmaMode::Hybrid { offset, liobn, direct_end },
                DdwMapping::Dynamic(_) => DmaMode::DdwIommu { liobn },
            });
        }
        match &self.default {
            Some(default) => Ok(DmaMode::DefaultIommu { liobn: default.window().liobn() }),
            None => Err(ModeError::NoWindow { mask }),
        }
    }

    /// Takes the outcome of [`enable_ddw`](crate::iommu::enable_ddw) for this PE: a DDW that
    /// replaced the default window (slot 0) ends the default window; a failure after the
    /// default window's removal leaves it in use only if it came back clean.
    // The error is handed back unchanged for the report.
    #[allow(clippy::result_large_err)]
    pub fn settle(&mut self, result: Result<Ddw, DdwError>) -> Result<(), DdwError> {
        match result {
            Ok(ddw) => {
                if ddw.slot == 0 {
                    self.default = None;
                }
                self.ddw = Some(ddw);
                Ok(())
            }
            Err(error) => {
                if matches!(&error, DdwError::AfterRemoval { restore, .. } if !restore.is_clean()) {
                    self.default = None;
                }
                Err(error)
            }
        }
    }

    /// Takes the outcome of [`take_over`](crate::iommu::handover::take_over) for a PE whose
    /// previous kernel left `found`. `default` is the default window as the device tree
    /// describes it: in use unless `found` had replaced it, and back after a reset. Returns
    /// the take-over's error, or the fresh set-up's.
    #[allow(clippy::result_large_err)]
    pub fn settle_take_over(
        &mut self,
        found: &Handover,
        default: Option<IovaWindow>,
        result: Result<TakeOver, TakeOverError>,
    ) -> Result<(), WarmError> {
        let replaced_default = found.slot == 0;
        match result {
            Ok(TakeOver::Reused { ddw, .. }) => {
                self.default = if replaced_default { None } else { default };
                self.ddw = Some(ddw);
                Ok(())
            }
            Ok(TakeOver::Replaced { fresh, .. }) => {
                // After the removal or reset the PE is as at boot: on its default window.
                self.default = default;
                self.ddw = None;
                self.settle(fresh).map_err(WarmError::Fresh)
            }
            Err(error) => {
                self.default = match (&error, replaced_default) {
                    // A failed removal leaves a cleared window and the default one untouched.
                    (TakeOverError::Remove(_), false) => default,
                    _ => None,
                };
                self.ddw = None;
                Err(WarmError::TakeOver(error))
            }
        }
    }

    /// Whether the PE has any window left (a PE without one must not do DMA at all).
    pub fn has_window(&self) -> bool {
        self.default.is_some() || self.ddw.is_some()
    }

    /// What a next kernel must be told about this PE's DDW (`pe` is the PE's RTAS address).
    pub fn handover(&self, pe: PeAddress) -> Option<Handover> {
        Some(Handover::of(pe, self.ddw.as_ref()?))
    }

    /// The window a TCE-mapped buffer of `mode` lives in.
    pub(super) fn iova_window_for(&mut self, mode: DmaMode) -> Option<&mut IovaWindow> {
        match mode {
            DmaMode::DdwIommu { liobn } | DmaMode::Hybrid { liobn, .. } => {
                let ddw = self.ddw.as_mut().filter(|ddw| ddw.window.liobn() == liobn)?;
                match (&mut ddw.mapping, mode) {
                    (DdwMapping::Dynamic(window), DmaMode::DdwIommu { .. })
                    | (DdwMapping::Hybrid { upper: window, .. }, DmaMode::Hybrid { .. }) => Some(window),
                    _ => None,
                }
            }
            DmaMode::DefaultIommu { liobn } => {
                self.default.as_mut().filter(|window| window.window().liobn() == liobn)
            }
            DmaMode::Bypass | DmaMode::Direct { .. } => None,
        }
    }
}

/// Why a warm start did not end with a DDW.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarmError {
    /// The found window could not be reused or removed.
    TakeOver(TakeOverError),
    /// It was removed, but the fresh set-up failed.
    Fresh(DdwError),
}

impl fmt::Display for WarmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WarmError::TakeOver(error) => write!(f, "{error}"),
            WarmError::Fresh(error) => {
                write!(f, "the old window was removed; the new set-up failed: {error}")
            }
        }
    }
}

/// A device's DMA: its mode and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceDma {
    /// The chosen mode.
    pub mode: DmaMode,
    /// The device's DMA mask.
    pub mask: DmaMask,
}

impl PeDma {
    /// Where `[phys, phys + len)` is for `device`: a fixed address (bypass, direct; only a
    /// `sync`) or TCEs written now.
    pub(super) fn map_range(
        &mut self,
        device: &DeviceDma,
        calls: &mut impl TceCalls,
        phys: PhysAddr,
        len: u64,
        direction: DmaDirection,
    ) -> Result<Handle, MapBufferError> {
        if len == 0 {
            return Err(MapBufferError::Empty);
        }
        let mode = device.mode;
        let out_of_reach = MapBufferError::OutOfReach { phys, len, mode };
        let last = phys.get().checked_add(len - 1).ok_or(out_of_reach)?;
        let fixed = match mode {
            DmaMode::Bypass => Some(phys.get()),
            DmaMode::Direct { liobn, .. } => {
                let window = self
                    .ddw
                    .as_ref()
                    .filter(|ddw| ddw.window.liobn() == liobn && matches!(ddw.mapping, DdwMapping::Direct))
                    .map(|ddw| ddw.window)
                    .ok_or(MapBufferError::NoWindow { mode })?;
                let first = window.iova_for_phys(phys).ok_or(out_of_reach)?;
                window.iova_for_phys(PhysAddr(last)).ok_or(out_of_reach)?;
                Some(first.get())
            }
            DmaMode::Hybrid { offset, liobn, direct_end } if last < direct_end => {
                let window = self
                    .ddw
                    .as_ref()
                    .filter(|ddw| {
                        ddw.window.liobn() == liobn && matches!(ddw.mapping, DdwMapping::Hybrid { .. })
                    })
                    .map(|ddw| ddw.window)
                    .ok_or(MapBufferError::NoWindow { mode })?;
                let first = window.iova_for_phys(phys).ok_or(out_of_reach)?;
                debug_assert_eq!(first.get(), offset + phys.get());
                Some(first.get())
            }
            DmaMode::Hybrid { .. } | DmaMode::DdwIommu { .. } | DmaMode::DefaultIommu { .. } => None,
        };
        if let Some(bus) = fixed {
            if bus.checked_add(len - 1).is_none_or(|end| end > device.mask.highest()) {
                return Err(out_of_reach);
            }
            // No TCE changes, but the buffer's contents must still reach memory first.
            calls.sync();
            return Ok(Handle::Fixed { bus: crate::addr::BusAddr(bus) });
        }
        let window = self.iova_window_for(mode).ok_or(MapBufferError::NoWindow { mode })?;
        let mapping =
            window.map_buffer(calls, phys, len, direction, device.mask).map_err(MapBufferError::Iommu)?;
        Ok(Handle::Mapped(mapping))
    }
}
