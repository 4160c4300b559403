//! Memory DLPAR: LMBs taken into the partition and given back while the kernel runs, with
//! every direct DMA window kept exact.
//!
//! Add (Linux `hotplug-memory.c:dlpar_memory_add_by_ic`, `dlpar_add_lmb`): per LMB, acquire its
//! DRC ([`acquire_logical`]), then write its TCEs into every direct DDW; if that fails the LMB
//! is released again, so memory is never ours without being mapped. Remove
//! (`dlpar_memory_remove_by_ic`, `dlpar_remove_lmb`): an LMB the kernel still uses is refused
//! (the DRC is unisolated again, which QEMU turns into `DEVICE_UNPLUG_GUEST_ERROR`); otherwise
//! its TCEs are cleared from every direct DDW and the DRC released. If the release fails the
//! TCEs are written back: the memory stays ours and reachable as before.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::drc::{acquire_logical, refuse_remove, release_logical, DrcCalls, DrcIndex};
use super::event::Identifier;
use crate::addr::{PhysAddr, PhysRange};
use crate::devtree::hotplug::LmbTable;
use crate::devtree::platform::merge_ranges;
use crate::dma::HotRam;

/// What the DMA side must do for memory that comes and goes (the kernel implements it over
/// its PEs).
pub trait MemoryDma {
    /// Maps hot-added `range` into every direct DDW. On failure nothing stays mapped.
    fn map_added(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String>;
    /// Clears `range` from every direct DDW.
    fn clear_removed(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String>;
    /// Why `range` cannot leave now (kernel memory, a live buffer), if it cannot.
    fn in_use(&self, range: PhysRange) -> Option<String>;
}

/// The partition's LMBs and which of them it owns now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    table: LmbTable,
    owned: Vec<bool>,
}

impl Memory {
    /// From the boot tree's table: the LMBs flagged assigned are owned.
    pub fn new(table: LmbTable) -> Self {
        let owned = table.lmbs.iter().map(|l| l.is_assigned()).collect();
        Memory { table, owned }
    }

    /// The table.
    pub fn table(&self) -> &LmbTable {
        &self.table
    }

    /// The hot-pluggable ranges owned now (boot RAM outside the table is not listed).
    pub fn owned_ranges(&self) -> Vec<PhysRange> {
        let mut ranges: Vec<PhysRange> = Vec::new();
        for (lmb, _) in self.table.lmbs.iter().zip(&self.owned).filter(|(l, o)| **o && l.is_hotpluggable()) {
            let range = self.table.range(lmb);
            match ranges.last_mut() {
                Some(last) if last.end() == range.base.get() => last.size += range.size,
                _ => ranges.push(range),
            }
        }
        ranges
    }

    /// The RAM present now, given `boot` (the boot tree's RAM, [`Platform::memory`]): every
    /// range of `boot` less the hot-pluggable LMBs given back since, plus those taken since;
    /// sorted and merged. What a DMA window made at run time must map (a PHB hot-added after
    /// memory was).
    ///
    /// [`Platform::memory`]: crate::devtree::platform::Platform::memory
    pub fn present(&self, boot: &[PhysRange]) -> Vec<PhysRange> {
        let mut ranges: Vec<PhysRange> = boot.to_vec();
        for (lmb, &owned) in self.table.lmbs.iter().zip(&self.owned) {
            if !lmb.is_hotpluggable() {
                continue;
            }
            let range = self.table.range(lmb);
            if owned {
                ranges.push(range);
            } else {
                ranges = ranges.into_iter().flat_map(|r| without(r, range)).collect();
            }
        }
        merge_ranges(ranges)
    }

    fn index_of(&self, drc: DrcIndex) -> Option<usize> {
        self.table.lmbs.iter().position(|l| l.drc == drc.0)
    }
}

/// `range` less `cut`: none, one or two pieces.
fn without(range: PhysRange, cut: PhysRange) -> impl Iterator<Item = PhysRange> {
    let (start, end) = (range.base.get(), range.end());
    let (cut_start, cut_end) = (cut.base.get(), cut.end());
    let piece = |from: u64, to: u64| (from < to).then(|| PhysRange { base: PhysAddr(from), size: to - from });
    let (before, after) = if cut_end <= start || cut_start >= end {
        (Some(range), None)
    } else {
        (piece(start, cut_start), piece(cut_end, end))
    };
    before.into_iter().chain(after)
}

/// What became of one LMB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LmbOutcome {
    /// Taken and mapped.
    Added {
        /// The DRC.
        drc: DrcIndex,
        /// Its memory.
        range: PhysRange,
    },
    /// Not taken; the DRC is as it was.
    AddFailed {
        /// The DRC.
        drc: DrcIndex,
        /// Why, in words.
        why: String,
    },
    /// Unmapped and given back.
    Removed {
        /// The DRC.
        drc: DrcIndex,
        /// Its memory.
        range: PhysRange,
    },
    /// Kept: the remove was refused (or could not complete); the memory stays ours and mapped.
    Kept {
        /// The DRC.
        drc: DrcIndex,
        /// Why, in words.
        why: String,
    },
}

impl fmt::Display for LmbOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmbOutcome::Added { drc, range } => {
                write!(f, "LMB {drc} ({:#x}+{:#x}) added", range.base.get(), range.size)
            }
            LmbOutcome::AddFailed { drc, why } => write!(f, "LMB {drc} not added: {why}"),
            LmbOutcome::Removed { drc, range } => {
                write!(f, "LMB {drc} ({:#x}+{:#x}) removed", range.base.get(), range.size)
            }
            LmbOutcome::Kept { drc, why } => write!(f, "LMB {drc} kept: {why}"),
        }
    }
}

/// What one memory event did: each LMB's outcome, and each contiguous span's window changes
/// (a DIMM's LMBs are mapped or cleared as one span: ⌈TCEs/512⌉ calls, not one batch per LMB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Per LMB.
    pub lmbs: Vec<LmbOutcome>,
    /// Per span mapped (add) or cleared (remove): the span and each PE's change.
    pub spans: Vec<(PhysRange, Vec<(usize, HotRam)>)>,
}

/// Consecutive `(drc, range)`s whose ranges touch, as spans.
fn spans(lmbs: &[(DrcIndex, PhysRange)]) -> Vec<(PhysRange, Vec<(DrcIndex, PhysRange)>)> {
    let mut out: Vec<(PhysRange, Vec<(DrcIndex, PhysRange)>)> = Vec::new();
    for &(drc, range) in lmbs {
        match out.last_mut() {
            Some((span, members)) if span.end() == range.base.get() => {
                span.size += range.size;
                members.push((drc, range));
            }
            _ => out.push((range, alloc::vec![(drc, range)])),
        }
    }
    out
}

/// Handles a memory-add event for `id`.
pub fn add(
    memory: &mut Memory,
    id: Identifier,
    drcs: &mut impl DrcCalls,
    dma: &mut impl MemoryDma,
) -> MemoryReport {
    let mut report = MemoryReport::default();
    let mut acquired = Vec::new();
    match id {
        Identifier::Index(first) => acquire_indexed(memory, first, 1, drcs, &mut acquired, &mut report),
        Identifier::CountIndexed { count, first } => {
            acquire_indexed(memory, first, count, drcs, &mut acquired, &mut report)
        }
        Identifier::Count(count) => {
            // Only a count (no hot-plug CAS bit): take the first LMBs that can be taken. QEMU's
            // sensor reads "unusable" for an LMB without memory too; allocating one fails and is
            // undone, so the next is tried.
            let candidates: Vec<DrcIndex> = memory
                .table
                .lmbs
                .iter()
                .zip(&memory.owned)
                .filter(|(l, owned)| !**owned && l.is_hotpluggable())
                .map(|(l, _)| DrcIndex(l.drc))
                .collect();
            for drc in candidates {
                if acquired.len() as u32 == count {
                    break;
                }
                if let Ok(taken) = acquire_one(memory, drc, drcs) {
                    acquired.push(taken);
                }
            }
            if (acquired.len() as u32) < count {
                let why = format!("only {} of the {count} LMBs asked for could be taken", acquired.len());
                report.lmbs.push(LmbOutcome::AddFailed { drc: DrcIndex(0), why });
            }
        }
    }
    acquired.sort_unstable_by_key(|(_, r)| r.base);
    for (span, members) in spans(&acquired) {
        match dma.map_added(span) {
            Ok(windows) => {
                for &(drc, range) in &members {
                    if let Some(i) = memory.index_of(drc) {
                        memory.owned[i] = true;
                    }
                    report.lmbs.push(LmbOutcome::Added { drc, range });
                }
                report.spans.push((span, windows));
            }
            Err(why) => {
                for &(drc, _) in &members {
                    let release = match release_logical(drcs, drc) {
                        Ok(()) => String::from("it was given back"),
                        Err(error) => format!("giving it back failed too: {error}"),
                    };
                    let why = format!("mapping it for DMA failed: {why}; {release}");
                    report.lmbs.push(LmbOutcome::AddFailed { drc, why });
                }
            }
        }
    }
    report
}

fn indexes(first: u32, count: u32) -> impl Iterator<Item = DrcIndex> {
    (0..count).map_while(move |i| first.checked_add(i)).map(DrcIndex)
}

fn acquire_indexed(
    memory: &Memory,
    first: u32,
    count: u32,
    drcs: &mut impl DrcCalls,
    acquired: &mut Vec<(DrcIndex, PhysRange)>,
    report: &mut MemoryReport,
) {
    for drc in indexes(first, count) {
        match acquire_one(memory, drc, drcs) {
            Ok(taken) => acquired.push(taken),
            Err(why) => report.lmbs.push(LmbOutcome::AddFailed { drc, why }),
        }
    }
}

/// Takes one LMB through its DRC; its memory is not mapped yet.
fn acquire_one(
    memory: &Memory,
    drc: DrcIndex,
    drcs: &mut impl DrcCalls,
) -> Result<(DrcIndex, PhysRange), String> {
    let i = memory.index_of(drc).ok_or("no such LMB in the boot tree's table")?;
    let lmb = memory.table.lmbs[i];
    if memory.owned[i] {
        return Err(String::from("the LMB is already this partition's"));
    }
    if !lmb.is_hotpluggable() {
        return Err(format!("the LMB's flags {:#x} mark it reserved", lmb.flags));
    }
    acquire_logical(drcs, drc).map_err(|error| format!("{error}"))?;
    Ok((drc, memory.table.range(&lmb)))
}

/// Handles a memory-remove event for `id` (a count without indexes names no LMB: refused).
pub fn remove(
    memory: &mut Memory,
    id: Identifier,
    drcs: &mut impl DrcCalls,
    dma: &mut impl MemoryDma,
) -> MemoryReport {
    let mut report = MemoryReport::default();
    let (first, count) = match id {
        Identifier::Index(first) => (first, 1),
        Identifier::CountIndexed { count, first } => (first, count),
        Identifier::Count(count) => {
            let why = format!("a remove of {count} LMBs that names none is not handled");
            report.lmbs.push(LmbOutcome::Kept { drc: DrcIndex(0), why });
            return report;
        }
    };
    let mut leaving = Vec::new();
    for drc in indexes(first, count) {
        let Some(i) = memory.index_of(drc).filter(|&i| memory.owned[i]) else {
            let why = String::from("the LMB is not this partition's: nothing to remove");
            report.lmbs.push(LmbOutcome::Kept { drc, why });
            continue;
        };
        leaving.push((drc, memory.table.range(&memory.table.lmbs[i])));
    }
    // One LMB in use refuses the whole request (QEMU rolls back the DIMM's unplug as a whole,
    // `spapr_memory_unplug_rollback`): nothing is cleared or released.
    if let Some((busy, why)) =
        leaving.iter().find_map(|&(drc, range)| dma.in_use(range).map(|why| (drc, why)))
    {
        for &(drc, _) in &leaving {
            let why = match drc == busy {
                true => format!("refused: {why}"),
                false => format!("refused with LMB {busy}, which is in use: {why}"),
            };
            report.lmbs.push(refuse(drcs, drc, why));
        }
        return report;
    }
    leaving.sort_unstable_by_key(|(_, r)| r.base);
    for (span, members) in spans(&leaving) {
        match dma.clear_removed(span) {
            Ok(windows) => report.spans.push((span, windows)),
            Err(why) => {
                let restored = restore(dma, span);
                for &(drc, _) in &members {
                    report.lmbs.push(refuse(
                        drcs,
                        drc,
                        format!("clearing its TCEs failed: {why}; {restored}"),
                    ));
                }
                continue;
            }
        }
        for (drc, range) in members {
            match release_logical(drcs, drc) {
                Ok(()) => {
                    if let Some(i) = memory.index_of(drc) {
                        memory.owned[i] = false;
                    }
                    report.lmbs.push(LmbOutcome::Removed { drc, range });
                }
                Err(error) => {
                    let restored = restore(dma, range);
                    let why = format!("releasing it failed: {error}; {restored}");
                    report.lmbs.push(LmbOutcome::Kept { drc, why });
                }
            }
        }
    }
    report
}

/// Refuses the remove of `drc` (the platform is told by unisolating it again).
fn refuse(drcs: &mut impl DrcCalls, drc: DrcIndex, why: String) -> LmbOutcome {
    let why = match refuse_remove(drcs, drc) {
        Ok(()) => why,
        Err(error) => format!("{why}; telling the platform failed: {error}"),
    };
    LmbOutcome::Kept { drc, why }
}

/// Maps `range` again after a remove that did not complete.
fn restore(dma: &mut impl MemoryDma, range: PhysRange) -> String {
    match dma.map_added(range) {
        Ok(_) => String::from("its TCEs were written back"),
        Err(why) => format!("writing its TCEs back failed: {why} (it is not used for DMA)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devtree::hotplug::{Lmb, LMB_ASSIGNED, LMB_DRC_INVALID, LMB_RESERVED};
    use crate::dlpar::drc::tests::FakeDrcs;
    use crate::dlpar::drc::{DrcCall, Indicator, IndicatorState};
    use crate::iommu::map::MapStats;
    use alloc::vec;

    const LMB: u64 = 0x1000_0000;

    /// 2 GiB boot RAM (reserved in the table), then 6 free LMBs from 2 GiB.
    fn memory() -> Memory {
        let mut lmbs: Vec<Lmb> = (0..8)
            .map(|i| Lmb { drc: i, base: i as u64 * LMB, flags: LMB_RESERVED | LMB_DRC_INVALID })
            .collect();
        lmbs.extend((8..14).map(|i| Lmb { drc: 0x8000_0000 | i, base: i as u64 * LMB, flags: 0 }));
        Memory::new(LmbTable { lmb_size: LMB, lmbs })
    }

    #[derive(Default)]
    struct Dma {
        mapped: Vec<PhysRange>,
        fail_map: bool,
        fail_clear: bool,
        busy: Option<PhysRange>,
    }

    impl MemoryDma for Dma {
        fn map_added(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String> {
            if self.fail_map {
                return Err("H_PUT_TCE_INDIRECT failed with status -1".into());
            }
            self.mapped.push(range);
            let stats = MapStats { tces: range.size >> 24, indirect_calls: 1, ..MapStats::default() };
            Ok(vec![(0, HotRam::Direct { liobn: crate::addr::Liobn(0x8000_0001), stats })])
        }
        fn clear_removed(&mut self, range: PhysRange) -> Result<Vec<(usize, HotRam)>, String> {
            if self.fail_clear {
                return Err("H_STUFF_TCE failed with status -1".into());
            }
            self.mapped.retain(|r| *r != range);
            Ok(vec![(0, HotRam::NoDdw)])
        }
        fn in_use(&self, range: PhysRange) -> Option<String> {
            self.busy.filter(|b| b.base == range.base).map(|_| "a DMA buffer lives in it".into())
        }
    }

    fn range(i: u64) -> PhysRange {
        PhysRange { base: PhysAddr(i * LMB), size: LMB }
    }

    #[test]
    fn a_dimm_is_taken_mapped_and_given_back() {
        let (mut memory, mut drcs, mut dma) = (memory(), FakeDrcs::default(), Dma::default());
        let added =
            add(&mut memory, Identifier::CountIndexed { count: 4, first: 0x8000_0008 }, &mut drcs, &mut dma);
        assert!(added.lmbs.iter().all(|o| matches!(o, LmbOutcome::Added { .. })), "{added:?}");
        // One span for the DIMM's four LMBs: mapped in one go.
        let dimm = PhysRange { base: PhysAddr(8 * LMB), size: 4 * LMB };
        assert_eq!(dma.mapped, [dimm]);
        assert_eq!((added.lmbs.len(), added.spans.len()), (4, 1));
        assert_eq!(memory.owned_ranges(), [PhysRange { base: PhysAddr(8 * LMB), size: 4 * LMB }]);
        let removed = remove(
            &mut memory,
            Identifier::CountIndexed { count: 4, first: 0x8000_0008 },
            &mut drcs,
            &mut dma,
        );
        assert!(removed.lmbs.iter().all(|o| matches!(o, LmbOutcome::Removed { .. })), "{removed:?}");
        assert_eq!(removed.spans.len(), 1);
        assert!(dma.mapped.is_empty());
        assert!(memory.owned_ranges().is_empty());
        assert!(drcs.state.values().all(|&s| s == 1), "every DRC back to unusable: {:?}", drcs.state);
    }

    /// `ranges` with touching ones joined (the boot tree's touching ranges stay apart).
    fn joined(ranges: Vec<PhysRange>) -> Vec<PhysRange> {
        let mut out: Vec<PhysRange> = Vec::new();
        for r in ranges {
            match out.last_mut() {
                Some(last) if last.end() == r.base.get() => last.size += r.size,
                _ => out.push(r),
            }
        }
        out
    }

    #[test]
    fn the_ram_present_follows_the_lmbs_taken_and_given_back() {
        let (mut memory, mut drcs, mut dma) = (memory(), FakeDrcs::default(), Dma::default());
        let boot = [PhysRange { base: PhysAddr(0), size: 8 * LMB }];
        assert_eq!(memory.present(&boot), boot, "reserved boot LMBs stay RAM");
        add(&mut memory, Identifier::CountIndexed { count: 3, first: 0x8000_0008 }, &mut drcs, &mut dma);
        assert_eq!(joined(memory.present(&boot)), [PhysRange { base: PhysAddr(0), size: 11 * LMB }]);
        remove(&mut memory, Identifier::Index(0x8000_0009), &mut drcs, &mut dma);
        let expected = [PhysRange { base: PhysAddr(0), size: 9 * LMB }, range(10)];
        assert_eq!(joined(memory.present(&boot)), expected);
        // An LMB assigned at boot (in `boot`, as the platform reads it) and given back since
        // leaves a hole.
        let mut lmbs = memory.table().lmbs.clone();
        lmbs[12].flags = LMB_ASSIGNED;
        let mut at_boot = Memory::new(LmbTable { lmb_size: LMB, lmbs });
        let boot = [PhysRange { base: PhysAddr(0), size: 8 * LMB }, range(12)];
        assert_eq!(at_boot.present(&boot), boot);
        remove(&mut at_boot, Identifier::Index(0x8000_000c), &mut drcs, &mut dma);
        assert_eq!(at_boot.present(&boot), [PhysRange { base: PhysAddr(0), size: 8 * LMB }]);
        let cut = without(PhysRange { base: PhysAddr(0), size: 3 * LMB }, range(1));
        assert_eq!(cut.collect::<Vec<_>>(), [range(0), range(2)]);
    }

    #[test]
    fn a_count_only_add_takes_free_lmbs_in_order() {
        let (mut memory, mut drcs, mut dma) = (memory(), FakeDrcs::default(), Dma::default());
        let added = add(&mut memory, Identifier::Count(2), &mut drcs, &mut dma);
        assert_eq!(added.lmbs.len(), 2, "{added:?}");
        assert_eq!(dma.mapped, [PhysRange { base: PhysAddr(8 * LMB), size: 2 * LMB }]);
    }

    #[test]
    fn memory_that_cannot_be_mapped_is_given_back() {
        let (mut memory, mut drcs) = (memory(), FakeDrcs::default());
        let mut dma = Dma { fail_map: true, ..Dma::default() };
        let added = add(&mut memory, Identifier::Index(0x8000_0008), &mut drcs, &mut dma);
        let [LmbOutcome::AddFailed { why, .. }] = added.lmbs.as_slice() else { panic!("{added:?}") };
        assert!(why.contains("mapping it for DMA failed") && why.contains("given back"), "{why}");
        assert_eq!(drcs.state[&0x8000_0008], 1);
        assert!(memory.owned_ranges().is_empty());
    }

    #[test]
    fn memory_in_use_is_refused_and_a_failed_release_is_mapped_again() {
        let (mut memory, mut drcs, mut dma) = (memory(), FakeDrcs::default(), Dma::default());
        add(&mut memory, Identifier::CountIndexed { count: 2, first: 0x8000_0008 }, &mut drcs, &mut dma);
        dma.busy = Some(range(8));
        let out = remove(&mut memory, Identifier::Index(0x8000_0008), &mut drcs, &mut dma);
        let [LmbOutcome::Kept { why, .. }] = out.lmbs.as_slice() else { panic!("{out:?}") };
        assert!(why.contains("a DMA buffer lives in it"), "{why}");
        assert_eq!(
            drcs.calls.last(),
            Some(&DrcCall::SetIndicator(Indicator::Isolation, DrcIndex(0x8000_0008), IndicatorState::On)),
            "the platform is told by unisolating"
        );
        // Asked for both, one in use: both refused, nothing cleared.
        let both = remove(
            &mut memory,
            Identifier::CountIndexed { count: 2, first: 0x8000_0008 },
            &mut drcs,
            &mut dma,
        );
        assert!(both.spans.is_empty(), "{both:?}");
        assert!(
            matches!(&both.lmbs[1], LmbOutcome::Kept { why, .. } if why.contains("refused with LMB 0x80000008")),
            "{both:?}"
        );
        assert!(dma.mapped.iter().any(|r| r.base == range(8).base), "{:?}", dma.mapped);
        // The isolate of the second LMB fails: its TCEs are written back.
        drcs.fail_at = Some(drcs.calls.len() + 1);
        let out = remove(&mut memory, Identifier::Index(0x8000_0009), &mut drcs, &mut dma);
        let [LmbOutcome::Kept { why, .. }] = out.lmbs.as_slice() else { panic!("{out:?}") };
        assert!(why.contains("releasing it failed") && why.contains("written back"), "{why}");
        assert!(dma.mapped.contains(&range(9)), "written back: {:?}", dma.mapped);
        assert_eq!(memory.owned_ranges().len(), 1);
    }

    #[test]
    fn unknown_reserved_and_foreign_lmbs_are_reported() {
        let (mut memory, mut drcs, mut dma) = (memory(), FakeDrcs::default(), Dma::default());
        let out = add(&mut memory, Identifier::Index(0x8000_0100), &mut drcs, &mut dma);
        assert!(
            matches!(&out.lmbs[0], LmbOutcome::AddFailed { why, .. } if why.contains("no such LMB")),
            "{out:?}"
        );
        let out = add(&mut memory, Identifier::Index(3), &mut drcs, &mut dma);
        assert!(
            matches!(&out.lmbs[0], LmbOutcome::AddFailed { why, .. } if why.contains("reserved")),
            "{out:?}"
        );
        let out = remove(&mut memory, Identifier::Index(0x8000_000a), &mut drcs, &mut dma);
        assert!(
            matches!(&out.lmbs[0], LmbOutcome::Kept { why, .. } if why.contains("not this partition's")),
            "{out:?}"
        );
        assert!(drcs.calls.is_empty(), "no DRC call for any of them: {:?}", drcs.calls);
        // A huge count near the end of the index space stops at u32::MAX.
        let out = add(
            &mut memory,
            Identifier::CountIndexed { count: u32::MAX, first: u32::MAX - 1 },
            &mut drcs,
            &mut dma,
        );
        assert_eq!(out.lmbs.len(), 2);
        let _ = LMB_ASSIGNED;
    }
}
