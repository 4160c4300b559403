//! Warm restart under QEMU (`warm-restart=reuse|remove`): the kernel runs its whole DMA set-up
//! twice in one boot, the second run knowing only the handover (as a kexec'd kernel would),
//! and must reuse the first run's window or clear and remove it — no leaked window, no stale
//! TCE. Evidence: QEMU's `spapr_iommu_*` trace and the disk image checked on the host.

use tests::qemu::{self, Outcome};
use tests::trace::{TceStuff, Trace, TraceEvent};

const DDW_LIOBN: u64 = 0x8000_0001;
const SLOT0_LIOBN: u64 = 0x8000_0000;
/// 2 GiB of RAM in 16 MiB TCEs.
const DDW_TCES: u64 = 128;

fn trace_of(outcome: &Outcome) -> Trace {
    outcome.parsed_trace()
}

/// Windows created minus windows removed, with every reset counting as "back to the default
/// window only".
fn windows_left(outcome: &Outcome, trace: &Trace) -> (usize, usize, usize) {
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e)).len();
    let removes = trace.ddw_removes().unwrap_or_else(|e| outcome.fail(&e)).len();
    let resets = trace.ddw_resets().unwrap_or_else(|e| outcome.fail(&e)).len();
    (creates, removes, resets)
}

/// The entries `liobn` had cleared by H_STUFF_TCE before the `nth` (0-based) removal event.
fn cleared_before_removal(outcome: &Outcome, trace: &Trace, nth: usize, liobn: u64, page_shift: u32) -> u64 {
    let events = trace.events();
    let Some(remove) = events.iter().enumerate().filter(|(_, e)| e.name == "spapr_iommu_ddw_remove").nth(nth)
    else {
        outcome.fail(&format!("QEMU traced fewer than {} ddw_remove events", nth + 1))
    };
    cleared_in(outcome, &events[..remove.0], liobn, page_shift)
}

/// The entries of `liobn` that H_STUFF_TCE calls among `events` cleared (each call checked:
/// at most 512 entries, value 0, success).
fn cleared_in(outcome: &Outcome, events: &[TraceEvent], liobn: u64, page_shift: u32) -> u64 {
    let mut covered = std::collections::BTreeSet::new();
    for e in events.iter().filter(|e| e.name == "spapr_iommu_pci_stuff") {
        let s =
            TceStuff::parse(&e.rest).unwrap_or_else(|| outcome.fail(&format!("bad stuff line {}", e.rest)));
        if s.liobn != liobn {
            continue;
        }
        if s.npages > 512 || s.tce_value != 0 || s.ret != 0 {
            outcome.fail(&format!("bad clearing call: {s:?}"));
        }
        // QEMU traces the ioba after its loop: one past the last entry.
        let end = (s.ioba & ((1 << 40) - 1)) >> page_shift;
        covered.extend(end.saturating_sub(s.npages)..end);
    }
    covered.len() as u64
}

#[test]
fn a_warm_restart_reuses_the_window_without_remapping() {
    let (outcome, image) = qemu::scratch_disk_boot("warm-reuse", "warm-restart=reuse", 0x3a3a_0001);
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    outcome
        .expect_kv("pe.0.warm", "reused")
        .expect_kv("pe.0.warm.remapped", "no")
        .expect_kv("pe.0.ddw", "direct")
        .expect_kv("pe.0.ddw.liobn", &format!("{DDW_LIOBN:#x}"))
        .expect_kv("blk.0.dma", "direct");
    let trace = trace_of(&outcome);
    let (creates, removes, resets) = windows_left(&outcome, &trace);
    if (creates, removes, resets) != (1, 0, 0) {
        outcome.fail(&format!("expected one create and no remove/reset, got {creates}/{removes}/{resets}"));
    }
    // RAM was mapped once (the first run): one 128-TCE indirect call on the DDW.
    let indirect = trace.pci_indirects().unwrap_or_else(|e| outcome.fail(&e));
    let on_ddw: Vec<_> = indirect.iter().filter(|c| c.liobn == DDW_LIOBN).collect();
    if on_ddw.len() != 1 || on_ddw[0].entries() != Some(DDW_TCES) {
        outcome.fail(&format!("expected RAM mapped once on the DDW, got {on_ddw:x?}"));
    }
    // The second run read the window back: its first entry, then each range's first and last.
    let checked = outcome.require_u64("pe.0.warm.checked");
    let gets = trace.pci_gets().unwrap_or_else(|e| outcome.fail(&e));
    let on_ddw: Vec<_> = gets.iter().filter(|g| g.liobn == DDW_LIOBN).collect();
    if on_ddw.len() as u64 != checked + 1 || on_ddw.iter().any(|g| g.ret != 0 || g.tce & 3 != 3) {
        outcome.fail(&format!(
            "expected {} read-write H_GET_TCE answers on the DDW, got {on_ddw:x?}",
            checked + 1
        ));
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}

#[test]
fn a_warm_restart_clears_and_removes_the_window_then_creates_a_new_one() {
    let (outcome, image) = qemu::scratch_disk_boot("warm-remove", "warm-restart=remove", 0x3a3a_0002);
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    outcome
        .expect_kv("pe.0.warm", "replaced")
        .expect_kv("pe.0.ddw", "direct")
        .expect_kv("blk.0.dma", "direct");
    let trace = trace_of(&outcome);
    let (creates, removes, resets) = windows_left(&outcome, &trace);
    if (creates, removes, resets) != (2, 1, 0) {
        outcome.fail(&format!("expected two creates and one remove, got {creates}/{removes}/{resets}"));
    }
    let removed = trace.ddw_removes().unwrap_or_else(|e| outcome.fail(&e));
    if removed[0].liobn != DDW_LIOBN {
        outcome.fail(&format!("expected the first run's DDW removed, got {removed:x?}"));
    }
    let cleared = cleared_before_removal(&outcome, &trace, 0, DDW_LIOBN, 24);
    if cleared != DDW_TCES {
        outcome.fail(&format!("{cleared} of the DDW's {DDW_TCES} entries were cleared before its removal"));
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}

#[test]
fn a_warm_restart_of_a_single_window_pe_resets_and_replaces_slot_0() {
    let (outcome, image) =
        qemu::scratch_disk_boot("warm-single-remove", "ddw=single warm-restart=remove", 0x3a3a_0003);
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    outcome
        .expect_kv("pe.0.warm", "replaced")
        .expect_kv("pe.0.warm.reset", "restored")
        .expect_kv("pe.0.ddw.slot", "0")
        .expect_kv("pe.0.ddw.bus_base", "0x0")
        .expect_kv("blk.0.dma_offset", "0x0");
    let trace = trace_of(&outcome);
    let (creates, removes, resets) = windows_left(&outcome, &trace);
    // Run 1: remove the default, create. Run 2: clear the DDW, reset (back to the default
    // only), remove the default again, create.
    if (creates, removes, resets) != (2, 2, 1) {
        outcome.fail(&format!("expected 2 creates, 2 removes, 1 reset, got {creates}/{removes}/{resets}"));
    }
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    if creates.iter().any(|c| c.start != 0 || c.liobn != SLOT0_LIOBN) {
        outcome.fail(&format!("expected both creates in slot 0 at bus 0, got {creates:x?}"));
    }
    // Before the reset the first run's DDW (16M pages, LIOBN of slot 0) was cleared.
    let events = trace.events();
    let reset = events.iter().position(|e| e.name == "spapr_iommu_ddw_reset").unwrap_or(0);
    let first_create = events.iter().position(|e| e.name == "spapr_iommu_ddw_create").unwrap_or(0);
    let cleared = cleared_in(&outcome, &events[first_create..reset], SLOT0_LIOBN, 24);
    if cleared != DDW_TCES {
        outcome
            .fail(&format!("{cleared} of the slot-0 DDW's {DDW_TCES} entries were cleared before the reset"));
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}
