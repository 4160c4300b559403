//! Writing and clearing runs of TCEs; mapping all of RAM into a direct window.
//!
//! Facts relied on:
//! - Linux `tce_setrange_multi_pSeriesLP`: each System-RAM range is rounded
//!   out to the TCE page size (start down, end up) and mapped READ|WRITE at IOVA = window bus
//!   base + physical address, at most 512 TCEs per H_PUT_TCE_INDIRECT; without
//!   `hcall-multi-tce` one H_PUT_TCE per TCE. On the first error the caller clears what was
//!   written and fails. Ranges that touch or share a page are one span (each TCE written
//!   once), whatever the memory nodes look like.
//! - Linux `tce_freemulti_pSeriesLP` and "powerpc/iommu: limit number of TCEs to 512 for
//!   H_STUFF_TCE hcall" (2023): clearing uses H_STUFF_TCE with 0 in
//!   chunks of at most 512 (PAPR/PowerVM answer H_P4 above that), else H_PUT_TCE 0 per entry.
//! - QEMU `h_put_tce_indirect`: it leaves the entries before a failing H_PUT_TCE_INDIRECT entry written, so the
//!   unwind also clears the whole failing batch.
//! - LoPAR "TCE Update Synchronisation": the OS must `sync` before a device uses new TCEs.
//! - As Linux `tce_buildmulti_pSeriesLP` does for buffers, a run of a single page is written
//!   with H_PUT_TCE even when multi-TCE calls exist (no list page to fill).

use alloc::vec::Vec;
use core::fmt;

use super::hcall::{HcallError, TceCalls};
use super::tce::{Tce, TcePermission, MAX_TCES_PER_CALL};
use super::window::DmaWindow;
use crate::addr::{BusAddr, Liobn, PhysAddr, PhysRange};

/// Whether the platform offers H_PUT_TCE_INDIRECT and H_STUFF_TCE (`hcall-multi-tce` in
/// `/rtas/ibm,hypertas-functions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MultiTce {
    /// Both calls may be used.
    Available,
    /// Only H_PUT_TCE may be used.
    Unavailable,
}

/// What a mapping or clearing pass did, in hcalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// TCEs written with a mapping (not counting clears).
    pub tces: u64,
    /// H_PUT_TCE_INDIRECT calls.
    pub indirect_calls: u64,
    /// H_PUT_TCE calls (mapping and clearing).
    pub put_calls: u64,
    /// H_STUFF_TCE calls.
    pub stuff_calls: u64,
}

/// Consecutive entries of a window mapping consecutive physical pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TceRun {
    /// Bus address of the first entry.
    pub iova: BusAddr,
    /// Physical address of the first page.
    pub phys: PhysAddr,
    /// Number of entries.
    pub pages: u64,
}

impl TceRun {
    /// A run if both addresses are page aligned, it is not empty, it lies inside the window
    /// and its physical end fits 64 bits.
    pub fn checked(window: &DmaWindow, iova: BusAddr, phys: PhysAddr, pages: u64) -> Option<TceRun> {
        let page = window.page_size();
        let bytes = pages.checked_mul(page)?;
        let aligned = iova.is_aligned(page) && phys.is_aligned(page);
        let fits = pages > 0 && window.contains(iova, bytes) && phys.checked_add(bytes).is_some();
        (aligned && fits).then_some(TceRun { iova, phys, pages })
    }

    /// The first `pages` entries of this run (at most all of it).
    fn prefix(&self, pages: u64) -> TceRun {
        TceRun { pages: pages.min(self.pages), ..*self }
    }
}

/// A run failed part way: `error` is the failing call, entries in the first `attempted` pages
/// may have been written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RunFailure {
    /// The failing call.
    pub error: HcallError,
    /// Entries from the run's start that may have been written (including the failing batch).
    pub attempted: u64,
}

/// Writes one TCE per page of `run` with `permission`.
pub(super) fn write_run(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    run: &TceRun,
    permission: TcePermission,
    multi_tce: MultiTce,
    stats: &mut MapStats,
) -> Result<(), RunFailure> {
    let (liobn, page) = (window.liobn(), window.page_size());
    let mut batch = [Tce::CLEAR; MAX_TCES_PER_CALL];
    let style = CallStyle::for_run(run.pages, multi_tce);
    let mut done = 0u64;
    while done < run.pages {
        let count = style.batch_len(run.pages - done);
        let ioba = BusAddr(run.iova.get() + done * page);
        // Aligned and overflow-free: `TceRun::checked` validated the whole run.
        let tce_at = |i: u64| Tce::from_raw((run.phys.get() + (done + i) * page) | permission.bits());
        let result = if style == CallStyle::OnePerEntry {
            stats.put_calls += 1;
            calls.put_tce(liobn, ioba, tce_at(0))
        } else {
            for (i, slot) in (0..count).zip(batch.iter_mut()) {
                *slot = tce_at(i);
            }
            stats.indirect_calls += 1;
            calls.put_tce_indirect(liobn, ioba, &batch[..count as usize])
        };
        if let Err(error) = result {
            return Err(RunFailure { error, attempted: done + count });
        }
        done += count;
        stats.tces += count;
    }
    Ok(())
}

/// Clears every entry of `run`: H_STUFF_TCE 0 in chunks of at most 512, or H_PUT_TCE 0 each.
pub(super) fn clear_run(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    run: &TceRun,
    multi_tce: MultiTce,
    stats: &mut MapStats,
) -> Result<(), HcallError> {
    let (liobn, page) = (window.liobn(), window.page_size());
    let style = CallStyle::for_run(run.pages, multi_tce);
    let mut done = 0u64;
    while done < run.pages {
        let count = style.batch_len(run.pages - done);
        let ioba = BusAddr(run.iova.get() + done * page);
        if style == CallStyle::OnePerEntry {
            stats.put_calls += 1;
            calls.put_tce(liobn, ioba, Tce::CLEAR)?;
        } else {
            stats.stuff_calls += 1;
            calls.stuff_tce(liobn, ioba, Tce::CLEAR, count as u32)?;
        }
        done += count;
    }
    Ok(())
}

/// How a run's entries are written or cleared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallStyle {
    /// H_PUT_TCE per entry: no multi-TCE calls, or a lone page.
    OnePerEntry,
    /// H_PUT_TCE_INDIRECT / H_STUFF_TCE with up to 512 entries: ⌈pages / 512⌉ calls.
    Batched,
}

impl CallStyle {
    fn for_run(pages: u64, multi_tce: MultiTce) -> CallStyle {
        match multi_tce {
            MultiTce::Available if pages > 1 => CallStyle::Batched,
            _ => CallStyle::OnePerEntry,
        }
    }

    /// Entries handled by the next call when `remaining` are left.
    fn batch_len(self, remaining: u64) -> u64 {
        match self {
            CallStyle::OnePerEntry => 1,
            CallStyle::Batched => remaining.min(MAX_TCES_PER_CALL as u64),
        }
    }
}

/// Why RAM could not be mapped into a direct window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// A RAM range (rounded to TCE pages) does not fit the window; nothing was written.
    OutsideWindow {
        /// The range as given.
        range: PhysRange,
        /// The window's table.
        liobn: Liobn,
        /// The window's size in bytes.
        window_size: u64,
    },
    /// A TCE hcall failed; everything written before was cleared unless `cleanup` says otherwise.
    Hcall {
        /// The failing call.
        error: HcallError,
        /// The first failure while clearing, if any.
        cleanup: Option<HcallError>,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::OutsideWindow { range, liobn, window_size } => write!(
                f,
                "RAM range [{:#x}, {:#x}) does not fit direct DMA window {liobn} of {window_size:#x} bytes",
                range.base.get(),
                range.end()
            ),
            MapError::Hcall { error, cleanup: None } => {
                write!(f, "{error}; the TCEs written before it were cleared")
            }
            MapError::Hcall { error, cleanup: Some(cleanup) } => {
                write!(f, "{error}; clearing the TCEs written before it failed too: {cleanup}")
            }
        }
    }
}

/// The page-rounded runs of RAM, all checked before any hcall: each non-empty range is rounded
/// out to the window's pages, and ranges that touch or share a page are merged, so physically
/// contiguous RAM is one run whatever the memory nodes look like (⌈TCEs/512⌉ calls per span,
/// as Linux's `walk_system_ram_range` gets from merged System RAM resources).
fn direct_runs(window: &DmaWindow, ranges: &[PhysRange]) -> Result<Vec<TceRun>, MapError> {
    let page = window.page_size();
    let mut spans: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for range in ranges.iter().filter(|range| range.size > 0) {
        let outside =
            MapError::OutsideWindow { range: *range, liobn: window.liobn(), window_size: window.size() };
        let start = range.base.align_down(page).get();
        let end = range.base.get().checked_add(range.size).and_then(|end| end.checked_next_multiple_of(page));
        let end = end.filter(|&end| window.iova_for_phys(PhysAddr(end - 1)).is_some()).ok_or(outside)?;
        spans.push((start, end));
    }
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .into_iter()
        .map(|(start, end)| {
            let iova = window.iova_for_phys(PhysAddr(start));
            let run = iova.and_then(|iova| {
                TceRun::checked(window, iova, PhysAddr(start), (end - start) >> window.page_shift())
            });
            run.ok_or(MapError::OutsideWindow {
                range: PhysRange { base: PhysAddr(start), size: end - start },
                liobn: window.liobn(),
                window_size: window.size(),
            })
        })
        .collect()
}

/// Maps every RAM range READ|WRITE at IOVA = bus base + physical address, then `sync`s. On
/// the first failing hcall everything written so far is cleared and the failure returned.
pub fn map_ram(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    ranges: &[PhysRange],
    multi_tce: MultiTce,
) -> Result<MapStats, MapError> {
    let runs = direct_runs(window, ranges)?;
    let mut stats = MapStats::default();
    for (i, run) in runs.iter().enumerate() {
        let Err(failure) = write_run(calls, window, run, TcePermission::ReadWrite, multi_tce, &mut stats)
        else {
            continue;
        };
        let written = runs[..i].iter().copied().chain([run.prefix(failure.attempted)]);
        let mut cleanup = None;
        for done in written {
            if let Err(error) = clear_run(calls, window, &done, multi_tce, &mut stats) {
                cleanup = cleanup.or(Some(error));
            }
        }
        calls.sync();
        return Err(MapError::Hcall { error: failure.error, cleanup });
    }
    calls.sync();
    Ok(stats)
}

/// Clears the entries [`map_ram`] writes for `ranges` (all of a direct window's entries), then
/// `sync`s; stops at the first failing call. Cheaper than [`clear_window`] when the window is
/// larger than RAM (sized for hot-plug memory).
pub fn clear_ram(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    ranges: &[PhysRange],
    multi_tce: MultiTce,
) -> Result<MapStats, MapError> {
    let runs = direct_runs(window, ranges)?;
    let mut stats = MapStats::default();
    for run in &runs {
        clear_run(calls, window, run, multi_tce, &mut stats)
            .map_err(|error| MapError::Hcall { error, cleanup: None })?;
    }
    calls.sync();
    Ok(stats)
}

/// Clears the entries of `window` from byte offset `from` (rounded down to a page) to its end,
/// then `sync`s: a hybrid window's dynamic part.
pub fn clear_from(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    from: u64,
    multi_tce: MultiTce,
) -> Result<MapStats, HcallError> {
    let mut stats = MapStats::default();
    let first = (from >> window.page_shift()).min(window.tce_count());
    if first < window.tce_count() {
        let iova = BusAddr(window.bus_base().get() + (first << window.page_shift()));
        let run = TceRun { iova, phys: PhysAddr(0), pages: window.tce_count() - first };
        clear_run(calls, window, &run, multi_tce, &mut stats)?;
    }
    calls.sync();
    Ok(stats)
}

/// Clears every entry of `window` (H_STUFF_TCE 0 in chunks of at most 512, or H_PUT_TCE 0
/// each), e.g. before removing it; stops at the first failing call.
pub fn clear_window(
    calls: &mut impl TceCalls,
    window: &DmaWindow,
    multi_tce: MultiTce,
) -> Result<MapStats, HcallError> {
    let mut stats = MapStats::default();
    let whole = TceRun { iova: window.bus_base(), phys: PhysAddr(0), pages: window.tce_count() };
    clear_run(calls, window, &whole, multi_tce, &mut stats)?;
    calls.sync();
    Ok(stats)
}
