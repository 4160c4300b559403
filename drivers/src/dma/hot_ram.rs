//! Memory that arrives or leaves while the kernel runs (memory DLPAR), as a PE's DDW sees it.
//!
//! A direct DDW is sized at boot to the hot-plug maximum (Linux `ddw_memory_hotplug_max`), so
//! memory added later only needs its TCEs written, and memory about to leave needs them
//! cleared first (Linux `iommu_mem_notifier`: `tce_setrange_multi_pSeriesLP` on
//! `MEM_GOING_ONLINE`, `tce_clearrange_multi_pSeriesLP` on `MEM_OFFLINE`: H_PUT_TCE_INDIRECT
//! and H_STUFF_TCE, at most 512 entries per call). A dynamic window, or the per-buffer part of
//! a hybrid one, maps buffers as they come and needs nothing.

use core::fmt;

use super::pe::PeDma;
use crate::addr::{Liobn, PhysRange};
use crate::iommu::ddw::DdwMapping;
use crate::iommu::hcall::TceCalls;
use crate::iommu::map::{clear_ram, map_ram, MapError, MapStats, MultiTce};
use crate::iommu::window::DmaWindow;

/// What a range of hot-plugged memory needed in a PE's windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotRam {
    /// The direct DDW `liobn` had its entries for the range written (add) or cleared (remove).
    Direct {
        /// The window.
        liobn: Liobn,
        /// TCEs and hypercalls.
        stats: MapStats,
    },
    /// The DDW `liobn` maps this memory per buffer (dynamic, or above a hybrid window's direct
    /// part): nothing to change.
    PerBuffer {
        /// The window.
        liobn: Liobn,
    },
    /// The PE has no DDW; its default window maps per buffer.
    NoDdw,
}

impl fmt::Display for HotRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HotRam::Direct { liobn, stats } => write!(
                f,
                "direct window {liobn}: {} TCEs in {} indirect + {} put + {} stuff calls",
                stats.tces, stats.indirect_calls, stats.put_calls, stats.stuff_calls
            ),
            HotRam::PerBuffer { liobn } => write!(f, "window {liobn} maps it per buffer: no change"),
            HotRam::NoDdw => write!(f, "no DDW: the default window maps it per buffer"),
        }
    }
}

impl PeDma {
    /// Which direct window, if any, must follow `range`.
    fn direct_window_for(&self, range: &PhysRange) -> Result<Option<DmaWindow>, HotRam> {
        let Some(ddw) = &self.ddw else { return Err(HotRam::NoDdw) };
        let liobn = ddw.window.liobn();
        match ddw.mapping {
            DdwMapping::Direct => Ok(Some(ddw.window)),
            DdwMapping::Hybrid { direct_end, .. } if range.end() <= direct_end => Ok(Some(ddw.window)),
            DdwMapping::Hybrid { .. } | DdwMapping::Dynamic(_) => Err(HotRam::PerBuffer { liobn }),
        }
    }

    /// Writes the entries for hot-added `range` into a direct DDW. On failure the entries
    /// written are cleared again (the memory must then not be used for DMA).
    pub fn map_hot_added(
        &self,
        calls: &mut impl TceCalls,
        range: PhysRange,
        multi_tce: MultiTce,
    ) -> Result<HotRam, MapError> {
        self.change_direct(range, |window| map_ram(calls, window, &[range], multi_tce))
    }

    /// Clears the entries for `range`, about to be removed, from a direct DDW.
    pub fn clear_hot_removed(
        &self,
        calls: &mut impl TceCalls,
        range: PhysRange,
        multi_tce: MultiTce,
    ) -> Result<HotRam, MapError> {
        self.change_direct(range, |window| clear_ram(calls, window, &[range], multi_tce))
    }

    /// Applies `change` to the direct window `range` needs, if any.
    fn change_direct(
        &self,
        range: PhysRange,
        change: impl FnOnce(&DmaWindow) -> Result<MapStats, MapError>,
    ) -> Result<HotRam, MapError> {
        let window = match self.direct_window_for(&range) {
            Ok(Some(window)) => window,
            Ok(None) => return Ok(HotRam::NoDdw),
            Err(unchanged) => return Ok(unchanged),
        };
        let stats = change(&window)?;
        Ok(HotRam::Direct { liobn: window.liobn(), stats })
    }
}
