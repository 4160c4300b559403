//! Warm restart: a kernel that finds a Dynamic DMA Window left by the kernel before it (kexec,
//! kdump, or a re-run of the DMA set-up without a machine reset).
//!
//! The hypervisor keeps windows and their TCEs across a kexec; only what the previous kernel
//! wrote down survives on the guest side. Linux passes `linux,direct64-ddr-window-info` in the
//! next kernel's device tree and, without it, a kdump kernel once found `ibm,dma-window`
//! describing a default window that had been removed (Linux 2022 "powerpc/pseries/iommu: DDW for
//! kexec", `pci_dma_find`). A
//! [`Handover`] is that record; [`take_over`] then either
//! - **reuses** the window: it must still answer H_GET_TCE; a direct window is checked by
//!   reading back the first and last entry of every RAM range (and re-mapped in full if any
//!   differs), a dynamic window is cleared, since the buffers its entries point at belonged to
//!   the previous kernel; or
//! - **removes** it: every entry is cleared first (rule: clear before remove), then the
//!   window is removed — or, when it had replaced the default window (slot 0) or will not be
//!   removed, the PE is reset, which brings the default window back, and that window is
//!   cleared too (reset need not clear the table: Linux `spapr_tce_take_ownership`) — and the usual [`enable_ddw`] runs on
//!   the clean PE.

use alloc::boxed::Box;
use core::fmt;

use super::ddw::{
    direct_mapping, enable_ddw, restore_default, twice, Ddw, DdwError, DdwFacts, DdwMapping, PeRequest,
    Restore, RestoreFrom,
};
use super::hcall::TceCalls;
use super::iova_window::IovaWindow;
use super::map::{clear_from, clear_ram, clear_window, map_ram, MapError, MapStats};
use super::plan::{WindowLimit, WindowMode, WindowPlan};
use super::rtas::{retry_busy, DdwRtas, Delay, PeAddress, RtasError};
use super::tce::{Tce, TcePermission};
use super::window::DmaWindow;
use crate::addr::{Liobn, PhysAddr};

/// What one kernel's DMA set-up leaves for the next about one PE's DDW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The PE.
    pub pe: PeAddress,
    /// The window.
    pub window: DmaWindow,
    /// log2 of its size.
    pub window_shift: u32,
    /// How it maps RAM: all of it at bus base + physical address (direct), none of it up
    /// front (dynamic), or the RAM below a boundary (hybrid).
    pub mode: WindowMode,
    /// Its table slot (0: it replaced the default window).
    pub slot: u32,
}

impl Handover {
    /// The record of `ddw` on `pe`.
    pub fn of(pe: PeAddress, ddw: &Ddw) -> Self {
        Self {
            pe,
            window: ddw.window,
            window_shift: ddw.plan.window_shift,
            mode: ddw.mapping.mode(),
            slot: ddw.slot,
        }
    }
}

/// What to do with a window found at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmPolicy {
    /// Keep using it.
    Reuse,
    /// Clear and remove it, then set the PE up afresh.
    Remove,
}

/// What [`take_over`] did; `D` is the window as a [`Ddw`] of this kernel, or its
/// [`DdwFacts`] in a report ([`TakeOver::facts`]).
// One per PE and warm restart: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeOver<D = Ddw> {
    /// The window is in use again.
    Reused {
        /// The window, as a DDW of this kernel.
        ddw: D,
        /// Entries read back to check it (H_GET_TCE calls).
        checked: u64,
        /// Whether the check found a difference and all RAM was mapped again.
        remapped: bool,
        /// Set when removal was asked for but neither the removal nor the reset worked, so
        /// the cleared window is used again.
        instead_of: Option<TakeOverError>,
        /// The query's failure, if it failed (the window is reused all the same).
        query_error: Option<RtasError>,
    },
    /// The old window was cleared and removed (or the PE reset) and the set-up ran afresh.
    Replaced {
        /// Why reusing it failed, when reuse was asked for (H_GET_TCE failing on it first:
        /// the window is gone or not answering).
        reuse_error: Option<MapError>,
        /// Clearing it failed (it was removed all the same: a removed window's entries are
        /// out of every device's reach, a kept one's are not).
        clear_error: Option<MapError>,
        /// Removing it failed; the PE was reset instead.
        removal: Option<RtasError>,
        /// How the default window came back, when the old window had replaced it (or would
        /// not be removed).
        restore: Option<Restore>,
        /// The fresh set-up's result.
        fresh: Result<D, DdwError>,
    },
}

impl TakeOver {
    /// The same account with the windows' facts (for the report).
    pub fn facts(&self) -> TakeOver<DdwFacts> {
        match self {
            TakeOver::Reused { ddw, checked, remapped, instead_of, query_error } => TakeOver::Reused {
                ddw: ddw.facts(),
                checked: *checked,
                remapped: *remapped,
                instead_of: instead_of.clone(),
                query_error: *query_error,
            },
            TakeOver::Replaced { reuse_error, clear_error, removal, restore, fresh } => TakeOver::Replaced {
                reuse_error: *reuse_error,
                clear_error: *clear_error,
                removal: *removal,
                restore: *restore,
                fresh: fresh.as_ref().map(Ddw::facts).map_err(Clone::clone),
            },
        }
    }
}

/// Why the PE could not be brought to a known state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeOverError {
    /// The handover is for another PE.
    WrongPe {
        /// The PE asked about.
        expected: PeAddress,
        /// The handover's.
        found: PeAddress,
    },
    /// The old window replaced the default window, and the device tree describes none to
    /// reset to.
    NoDefault,
    /// Removing the old window failed and so did the reset tried instead; it is still there,
    /// cleared as far as possible.
    Remove(RtasError),
    /// Resetting the PE left no clean default window.
    Reset(Restore),
    /// The old window had replaced the default one; the reset failed, so it is still there
    /// (cleared), and taking it back into use failed too. The PE has no DMA.
    Stuck {
        /// The failed reset.
        restore: Restore,
        /// The old window, still in the hypervisor, cleared.
        window: Liobn,
        /// Why it could not be used again.
        reuse: Box<MapError>,
    },
}

impl fmt::Display for TakeOverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeOverError::WrongPe { expected, found } => {
                write!(f, "the handed-over window belongs to PE {found}, not {expected}")
            }
            TakeOverError::NoDefault => {
                write!(
                    f,
                    "the handed-over window replaced a default window the device tree does not describe"
                )
            }
            TakeOverError::Remove(error) => write!(f, "removing the handed-over window failed: {error}"),
            TakeOverError::Reset(restore) => match (restore.reset, restore.cleared) {
                (Some(error), _) => write!(f, "resetting the PE failed: {error}"),
                (None, Some(error)) => {
                    write!(f, "clearing the default window after the reset failed: {error}")
                }
                (None, None) => {
                    write!(f, "after ibm,reset-pe-dma-windows the default window does not answer")
                }
            },
            TakeOverError::Stuck { restore, window, reuse } => {
                match restore.reset {
                    Some(error) => write!(f, "resetting the PE failed: {error}")?,
                    None => write!(f, "the reset did not bring the default window back")?,
                }
                write!(
                    f,
                    "; the handed-over window {window} stays in place (its entries cleared as far as the hypervisor allowed) and using it again failed: {reuse}; \
                     the PE has no DMA"
                )
            }
        }
    }
}

/// Takes over the window `found` left by the previous kernel, as `policy` says; a reuse that
/// fails falls back to removal. `request` is this kernel's request for the PE; its `default`
/// describes the default window to reset to when the old window had replaced it.
#[allow(clippy::result_large_err)]
pub fn take_over(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
    found: &Handover,
    policy: WarmPolicy,
) -> Result<TakeOver, TakeOverError> {
    if found.pe != request.pe {
        return Err(TakeOverError::WrongPe { expected: request.pe, found: found.pe });
    }
    let window = found.window;
    let mut reuse_error = None;
    if policy == WarmPolicy::Reuse {
        match reuse(hv, request, found) {
            Ok(reused) => return Ok(reused),
            Err(error) => reuse_error = Some(error),
        }
    }
    // Whether or not the window still answers, it is cleared and removed (a window that is
    // gone fails both, and the reset below settles the PE). A direct window holds RAM's
    // entries only; a dynamic one may hold anything, so all of it is cleared.
    let clear_error = match found.mode {
        WindowMode::Direct => {
            twice(|| clear_ram(hv, &window, request.ram, request.multi_tce).map(|_| ())).err()
        }
        WindowMode::Dynamic | WindowMode::Hybrid { .. } => {
            twice(|| clear_window(hv, &window, request.multi_tce).map(|_| ()))
                .map_err(|error| MapError::Hcall { error, cleanup: None })
                .err()
        }
    };
    let removal = match found.slot {
        0 => None,
        _ => retry_busy(delay, || hv.remove(window.liobn())).err(),
    };
    // A window that replaced the default one goes with a reset; so does one that would not go.
    let restore = match (found.slot, removal) {
        (0, _) | (_, Some(_)) => {
            let default = request.default.map(|d| d.window).ok_or(TakeOverError::NoDefault)?;
            let restore = restore_default(hv, delay, request, &default, RestoreFrom::WindowsLeft);
            if !restore.is_clean() {
                let error = match removal {
                    Some(error) => TakeOverError::Remove(error),
                    None => TakeOverError::Reset(restore),
                };
                // The reset did not happen, so the old window is still there (cleared): use
                // it again rather than leave the PE without DMA.
                if restore.reset.is_some() {
                    match reuse(hv, request, found) {
                        Ok(TakeOver::Reused { ddw, checked, remapped, query_error, .. }) => {
                            let instead_of = Some(error);
                            return Ok(TakeOver::Reused { ddw, checked, remapped, instead_of, query_error });
                        }
                        Ok(TakeOver::Replaced { .. }) => {}
                        Err(reuse) if found.slot == 0 => {
                            return Err(TakeOverError::Stuck {
                                restore,
                                window: window.liobn(),
                                reuse: Box::new(reuse),
                            });
                        }
                        Err(_) => {}
                    }
                }
                return Err(error);
            }
            Some(restore)
        }
        _ => None,
    };
    let fresh = enable_ddw(hv, delay, request);
    Ok(TakeOver::Replaced { reuse_error, clear_error, removal, restore, fresh })
}

fn reuse(
    hv: &mut (impl DdwRtas + TceCalls),
    request: &PeRequest<'_>,
    found: &Handover,
) -> Result<TakeOver, MapError> {
    let window = found.window;
    hv.get_tce(window.liobn(), window.bus_base())
        .map_err(|error| MapError::Hcall { error, cleanup: None })?;
    let outputs = request.query_outputs();
    // Only informative for a window that already exists; a failed query is reported as such.
    let (query, query_error) = match hv.query(request.pe, outputs) {
        Ok(query) => (Some(query), None),
        Err(error) => (None, Some(error)),
    };
    let mode = found.mode;
    let (page_shift, window_shift) = (window.page_shift(), found.window_shift);
    let plan = WindowPlan { page_shift, window_shift, mode, limit: WindowLimit::Ram };
    let hcall = |error| MapError::Hcall { error, cleanup: None };
    let (checked, remapped, stats, mapping) = match mode {
        WindowMode::Direct | WindowMode::Hybrid { .. } => {
            // A hybrid window's dynamic part held the previous kernel's buffers: cleared.
            if let WindowMode::Hybrid { direct_end } = mode {
                clear_from(hv, &window, direct_end, request.multi_tce).map_err(hcall)?;
            }
            let (checked, intact) = check_direct(hv, &window, request);
            let stats = match intact {
                true => MapStats::default(),
                false => map_ram(hv, &window, request.ram, request.multi_tce)?,
            };
            (checked, !intact, stats, direct_mapping(&window, mode, request))
        }
        WindowMode::Dynamic => {
            clear_window(hv, &window, request.multi_tce).map_err(hcall)?;
            let dynamic = IovaWindow::with_holes(window, request.multi_tce, request.iova_holes);
            (0, false, MapStats::default(), DdwMapping::Dynamic(dynamic))
        }
    };
    let ranges = match mapping {
        DdwMapping::Direct | DdwMapping::Hybrid { .. } => request.ram.iter().filter(|r| r.size > 0).count(),
        DdwMapping::Dynamic(_) => 0,
    };
    let ddw =
        Ddw { query, outputs, plan, window, slot: found.slot, stats, ranges, mapping, mmio_collision: None };
    Ok(TakeOver::Reused { ddw, checked, remapped, instead_of: None, query_error })
}
/// Checks that the default window the device tree describes answers H_GET_TCE; if it does not
/// (a previous kernel removed it and did not say so), resets the PE to bring it back.
/// `Ok(None)`: it was there; `Ok(Some(_))`: the reset brought it back clean.
pub fn ensure_default(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
) -> Result<Option<Restore>, TakeOverError> {
    let default = request.default.map(|d| d.window).ok_or(TakeOverError::NoDefault)?;
    if twice(|| hv.get_tce(default.liobn(), default.bus_base())).is_ok() {
        return Ok(None);
    }
    let restore = restore_default(hv, delay, request, &default, RestoreFrom::WindowsLeft);
    match restore.is_clean() {
        true => Ok(Some(restore)),
        false => Err(TakeOverError::Reset(restore)),
    }
}

/// Reads back the first and last entry of every RAM range; returns how many were read and
/// whether all held read-write TCEs of their own page.
fn check_direct(hv: &mut impl TceCalls, window: &DmaWindow, request: &PeRequest<'_>) -> (u64, bool) {
    let page_mask = window.page_size() - 1;
    let mut checked = 0;
    for range in request.ram.iter().filter(|r| r.size > 0) {
        for phys in [range.base.get(), range.end() - 1] {
            let page = phys & !page_mask;
            let Some(iova) = window.iova_for_phys(PhysAddr(page)) else { return (checked, false) };
            checked += 1;
            let want = Tce::new(PhysAddr(page), TcePermission::ReadWrite, window.page_shift());
            match (hv.get_tce(window.liobn(), iova), want) {
                (Ok(got), Ok(want)) if got.holds(want) => {}
                _ => return (checked, false),
            }
        }
    }
    (checked, true)
}
