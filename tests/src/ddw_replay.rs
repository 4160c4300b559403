//! What QEMU's TCE tables of the Dynamic DMA Windows hold, replayed from its trace: every
//! `spapr_iommu_ddw_create`, `_remove` and `_reset`, and every TCE hypercall on a live DDW's
//! LIOBN (`spapr_iommu_pci_put`, `_indirect`, `_stuff`), in order. The kernel's own report plays
//! no part in it, so a test can hold the windows against the memory and devices present.
//!
//! QEMU 7.2 `hw/ppc/spapr_iommu.c`: `h_put_tce` traces the I/O bus address it was given;
//! `h_put_tce_indirect` the first one and the index of the last entry it wrote; `h_stuff_tce`
//! traces its bus address after the loop has moved it past the last entry, so the first entry
//! is `ioba - npages * page_size`. A TCE with neither permission bit (`tce & 3 == 0`) clears
//! the entry. Removing a window (`spapr_tce_table_disable`) or resetting its PE frees its
//! table whatever it holds.

use std::collections::BTreeSet;

use crate::trace::{DdwCreate, DdwRemove, DdwReset, TceIndirect, TcePut, TceStuff, Trace};

/// One live DDW: how it was created and the bus addresses of its valid entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedWindow {
    /// The `spapr_iommu_ddw_create` that made it.
    pub window: DdwCreate,
    /// Bus addresses (`start` + index × page size) whose TCE is valid.
    pub mapped: BTreeSet<u64>,
}

/// The DDWs after a replay, and what the replay saw go wrong on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DdwReplay {
    /// Windows still in place, in creation order.
    pub windows: Vec<ReplayedWindow>,
    /// Windows removed (or reset away) while entries were still valid, as `(liobn, entries)`:
    /// the guest must clear a window before it gives it back.
    pub removed_while_mapped: Vec<(u64, usize)>,
    /// TCE hypercalls on a DDW that failed (`ret != 0`), as `(event, liobn)`.
    pub failed_calls: Vec<(String, u64)>,
}

impl DdwReplay {
    /// Replays `trace`; `Err` names a DDW or TCE line that could not be parsed.
    pub fn of(trace: &Trace) -> Result<Self, String> {
        let mut replay = Self::default();
        for event in trace.events() {
            let unparsable = || format!("unparsable {} line: {:?}", event.name, event.rest);
            match event.name.as_str() {
                "spapr_iommu_ddw_create" => {
                    let window = DdwCreate::parse(&event.rest).ok_or_else(unparsable)?;
                    replay.drop_windows(|w| w.liobn == window.liobn);
                    replay.windows.push(ReplayedWindow { window, mapped: BTreeSet::new() });
                }
                "spapr_iommu_ddw_remove" => {
                    let removed = DdwRemove::parse(&event.rest).ok_or_else(unparsable)?;
                    replay.drop_windows(|w| w.liobn == removed.liobn);
                }
                "spapr_iommu_ddw_reset" => {
                    let reset = DdwReset::parse(&event.rest).ok_or_else(unparsable)?;
                    replay.drop_windows(|w| w.buid == reset.buid);
                }
                "spapr_iommu_pci_put" => {
                    let put = TcePut::parse(&event.rest).ok_or_else(unparsable)?;
                    replay.write(&event.name, put.liobn, put.ret, put.ioba, 1, put.tce & 3 != 0);
                }
                "spapr_iommu_pci_indirect" => {
                    let call = TceIndirect::parse(&event.rest).ok_or_else(unparsable)?;
                    // A failed call wrote an unknown number of entries before the failing one;
                    // it is recorded as failed and its entries are not guessed at.
                    let entries = call.entries().unwrap_or(0);
                    replay.write(
                        &event.name,
                        call.liobn,
                        call.ret,
                        call.ioba,
                        entries,
                        call.last_tce & 3 != 0,
                    );
                }
                "spapr_iommu_pci_stuff" => {
                    let stuff = TceStuff::parse(&event.rest).ok_or_else(unparsable)?;
                    let page = replay.page_size(stuff.liobn);
                    let first =
                        page.map_or(stuff.ioba, |p| stuff.ioba.wrapping_sub(stuff.npages.wrapping_mul(p)));
                    let pages = if stuff.ret == 0 { stuff.npages } else { 0 };
                    replay.write(&event.name, stuff.liobn, stuff.ret, first, pages, stuff.tce_value & 3 != 0);
                }
                _ => {}
            }
        }
        Ok(replay)
    }

    /// The live window of `liobn`.
    pub fn window(&self, liobn: u64) -> Option<&ReplayedWindow> {
        self.windows.iter().find(|w| w.window.liobn == liobn)
    }

    fn page_size(&self, liobn: u64) -> Option<u64> {
        self.window(liobn).map(|w| w.window.page_size)
    }

    fn drop_windows(&mut self, gone: impl Fn(&DdwCreate) -> bool) {
        for w in self.windows.iter().filter(|w| gone(&w.window) && !w.mapped.is_empty()) {
            self.removed_while_mapped.push((w.window.liobn, w.mapped.len()));
        }
        self.windows.retain(|w| !gone(&w.window));
    }

    /// `pages` entries from bus address `first` made valid (`valid`) or cleared, on `liobn` if
    /// it is a live DDW (the default windows are not followed).
    fn write(&mut self, event: &str, liobn: u64, ret: i64, first: u64, pages: u64, valid: bool) {
        let Some(w) = self.windows.iter_mut().find(|w| w.window.liobn == liobn) else { return };
        if ret != 0 {
            self.failed_calls.push((event.to_string(), liobn));
        }
        let page = w.window.page_size;
        for k in 0..pages {
            let bus = first.wrapping_add(k.wrapping_mul(page));
            if valid {
                w.mapped.insert(bus);
            } else {
                w.mapped.remove(&bus);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
spapr_iommu_pci_put liobn=0x80000000 ioba=0x1000 tce=0x3 ret=0
spapr_iommu_ddw_create buid=0x800000020000000 addr=0x0, page size=0x1000000, requested=0x100000000, start addr=0x800000000000000, liobn=0x80000001
spapr_iommu_pci_indirect liobn=0x80000001 ioba=0x800000000000000 tcelist=0x1000 iobaN=0x3 tceN=0x3000003 ret=0
spapr_iommu_pci_put liobn=0x80000001 ioba=0x800000004000000 tce=0x4000001 ret=0
spapr_iommu_pci_stuff liobn=0x80000001 ioba=0x800000003000000 tcevalue=0x0 npages=2 ret=0
spapr_iommu_pci_indirect liobn=0x80000001 ioba=0x800000010000000 tcelist=0x1000 iobaN=0x1 tceN=0x3 ret=-4
";

    #[test]
    fn writes_and_clears_are_followed_per_window() {
        let replay = DdwReplay::of(&Trace::parse(LOG)).unwrap();
        let w = replay.window(0x8000_0001).expect("the DDW is live");
        let base = 0x0800_0000_0000_0000u64;
        // Four written, entries 1 and 2 cleared by the stuff (its ioba is past the last one),
        // entry 4 put; the default window's put and the failed call are not followed.
        let expected: BTreeSet<u64> = [0, 3, 4].iter().map(|k| base + (k << 24)).collect();
        assert_eq!(w.mapped, expected);
        assert!(replay.window(0x8000_0000).is_none());
        assert_eq!(replay.failed_calls, vec![("spapr_iommu_pci_indirect".to_string(), 0x8000_0001)]);
        assert!(replay.removed_while_mapped.is_empty());
    }

    #[test]
    fn a_window_removed_with_valid_entries_is_reported() {
        let log = format!("{LOG}spapr_iommu_ddw_remove liobn=0x80000001\n");
        let replay = DdwReplay::of(&Trace::parse(&log)).unwrap();
        assert!(replay.windows.is_empty());
        assert_eq!(replay.removed_while_mapped, vec![(0x8000_0001, 3)]);
        let reset = format!("{LOG}spapr_iommu_ddw_reset buid=0x800000020000000 addr=0x0\n");
        let replay = DdwReplay::of(&Trace::parse(&reset)).unwrap();
        assert!(replay.windows.is_empty());
        assert_eq!(replay.removed_while_mapped, vec![(0x8000_0001, 3)]);
    }

    #[test]
    fn a_window_cleared_before_removal_is_clean_and_a_bad_line_is_an_error() {
        let log = format!(
            "{LOG}spapr_iommu_pci_stuff liobn=0x80000001 ioba=0x800000005000000 tcevalue=0x0 npages=5 ret=0\n\
             spapr_iommu_ddw_remove liobn=0x80000001\n"
        );
        let replay = DdwReplay::of(&Trace::parse(&log)).unwrap();
        assert!(replay.windows.is_empty() && replay.removed_while_mapped.is_empty());
        let bad = "spapr_iommu_ddw_remove liobn=zz\n";
        assert!(DdwReplay::of(&Trace::parse(bad)).unwrap_err().contains("spapr_iommu_ddw_remove"));
    }
}
