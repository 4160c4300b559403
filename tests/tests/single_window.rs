//! The single-window path under QEMU (`ddw=single`, `ddw=single-fail`): the default window is
//! cleared and removed, the DDW takes table slot 0 at bus address 0, and a failure after the
//! removal is undone with `ibm,reset-pe-dma-windows`. Evidence: QEMU's `spapr_iommu_*` trace
//! and the disk image checked on the host.

use tests::qemu::{self, Outcome};
use tests::trace::TceStuff;

/// QEMU's default window on PHB 0: LIOBN, 1 GiB of 4 KiB TCEs.
const DEFAULT_LIOBN: u64 = 0x8000_0000;
const DEFAULT_TCES: u64 = 1 << 18;

/// The default window's TCEs cleared 512 at a time (never more) before its removal. QEMU
/// traces H_STUFF_TCE's `ioba` after its loop, i.e. one past the last entry written.
fn check_default_cleared(outcome: &Outcome) {
    let trace = outcome.parsed_trace();
    let events = trace.events();
    let Some(remove) = events.iter().position(|e| e.name == "spapr_iommu_ddw_remove") else {
        outcome.fail("QEMU traced no ddw_remove")
    };
    if !events[remove].rest.contains("liobn=0x80000000") {
        outcome.fail(&format!("the first window removed is not the default one: {}", events[remove].rest));
    }
    let before: Vec<TceStuff> = events[..remove]
        .iter()
        .filter(|e| e.name == "spapr_iommu_pci_stuff")
        .map(|e| {
            TceStuff::parse(&e.rest).unwrap_or_else(|| outcome.fail(&format!("bad stuff line {}", e.rest)))
        })
        .filter(|s| s.liobn == DEFAULT_LIOBN)
        .collect();
    let mut covered = vec![false; DEFAULT_TCES as usize];
    for s in &before {
        let first = (s.ioba >> 12).checked_sub(s.npages);
        if s.npages > 512 || s.tce_value != 0 || s.ret != 0 || first.is_none() {
            outcome.fail(&format!("bad clearing call before the removal: {s:?}"));
        }
        for i in first.unwrap_or(0)..(s.ioba >> 12) {
            if let Some(slot) = covered.get_mut(i as usize) {
                *slot = true;
            }
        }
    }
    let missing = covered.iter().filter(|c| !**c).count();
    if missing != 0 {
        outcome.fail(&format!(
            "{missing} default-window TCEs were not cleared before its removal ({} calls)",
            before.len()
        ));
    }
}

#[test]
fn a_single_window_pe_gets_its_ddw_in_slot_0_at_bus_0() {
    let (outcome, image) = qemu::scratch_disk_boot("single-window", "ddw=single", 0x5151_0001);
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    outcome
        .expect_kv("pe.0.ddw", "direct")
        .expect_kv("pe.0.ddw.slot", "0")
        .expect_kv("pe.0.ddw.bus_base", "0x0")
        .expect_kv("pe.0.default_removed", "yes")
        .expect_kv("blk.0.dma", "direct")
        .expect_kv("blk.0.dma_offset", "0x0");
    check_default_cleared(&outcome);
    let trace = outcome.parsed_trace();
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    match creates.as_slice() {
        [c] if c.start == 0 && c.page_size == 1 << 24 && c.window_size == 1 << 31 => {}
        other => outcome.fail(&format!("expected one 16M-page create of 2 GiB at bus 0, got {other:x?}")),
    }
    // All of RAM mapped at IOVA = physical through the new table: 128 TCEs, one call.
    let liobn = creates[0].liobn;
    let indirect = trace.pci_indirects().unwrap_or_else(|e| outcome.fail(&e));
    let mapped: Vec<_> = indirect.iter().filter(|c| c.liobn == liobn).collect();
    if mapped.len() != 1 || mapped[0].ioba != 0 || mapped[0].entries() != Some(128) {
        outcome.fail(&format!("expected one 128-TCE indirect call at bus 0 on {liobn:#x}, got {mapped:x?}"));
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}

#[test]
fn a_failure_after_the_removal_resets_to_the_default_window() {
    let (outcome, image) = qemu::scratch_disk_boot("single-window-fail", "ddw=single-fail", 0x5151_0002);
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    outcome
        .expect_kv("pe.0.ddw", "none")
        .expect_kv("pe.0.default_restore", "restored")
        .expect_kv("blk.0.dma", "default-iommu")
        .expect_kv("blk.0.dma_liobn", "0x80000000");
    let error = outcome.require("pe.0.ddw.error");
    if !error.contains("ibm,create-pe-dma-window") || !error.contains("restored it") {
        outcome.fail(&format!("the error does not name the failing create and the restore: {error}"));
    }
    check_default_cleared(&outcome);
    // The injected failure sits above the witness: the report does not blame QEMU for it.
    outcome.expect_kv("hv.deviations", "0");
    let trace = outcome.parsed_trace();
    let resets = trace.ddw_resets().unwrap_or_else(|e| outcome.fail(&e));
    if resets.len() != 1 || resets[0].buid != 0x0800_0000_2000_0000 {
        outcome.fail(&format!("expected one reset of PHB 0, got {resets:x?}"));
    }
    // After the reset the disk's buffers are mapped in the restored default window.
    let puts = trace.pci_indirects().unwrap_or_else(|e| outcome.fail(&e));
    if !puts.iter().any(|c| c.liobn == DEFAULT_LIOBN && c.ret == 0) {
        outcome.fail("no TCE was written into the restored default window");
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}

/// `ddw=single-fail-map`: the DDW is created, its first TCE write fails (injected, never reaching
/// QEMU), and the window is removed, leaving the PE without any. LoPAR says the platform then
/// restores the default window; QEMU 7.2 does so inside the remove call (a
/// `spapr_iommu_ddw_reset` right after the `spapr_iommu_ddw_remove`) unless the DDW reused
/// table 0, whose `def_win` flag it never clears. QEMU's trace is the judge of the kernel's
/// `hv.*` claim: restored inside the remove means no guest reset and no deviation; not restored
/// means the kernel's probe (`spapr_iommu_pci_get` failing) comes next, then one guest reset, and
/// the deviation is reported with its evidence.
#[test]
fn the_default_window_after_the_last_ddw_goes_is_reported_as_qemu_traced_it() {
    let (outcome, image) =
        qemu::scratch_disk_boot("single-window-fail-map", "ddw=single-fail-map", 0x5151_0004);
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("pe.0.ddw", "none")
        .expect_kv("blk.0.dma", "default-iommu")
        .expect_kv("blk.0.dma_liobn", "0x80000000");
    let trace = outcome.parsed_trace();
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    let [create] = creates.as_slice() else {
        outcome.fail(&format!("expected one create, got {creates:x?}"))
    };
    let events = trace.events();
    let removes: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == "spapr_iommu_ddw_remove")
        .map(|(i, _)| i)
        .collect();
    // The default window, then the DDW.
    let [_, ddw_removed] = removes.as_slice() else {
        outcome.fail(&format!("expected two removes, got {removes:?}"))
    };
    let after = &events[ddw_removed + 1..];
    let resets_after = after.iter().filter(|e| e.name == "spapr_iommu_ddw_reset").count();
    let claim = outcome.require("hv.pe.0.remove_restores_default");
    let restored_by_qemu = match after.first() {
        Some(e) if e.name == "spapr_iommu_ddw_reset" => true,
        Some(e)
            if e.name == "spapr_iommu_pci_get"
                && e.rest.contains("liobn=0x80000000")
                && !e.rest.contains("ret=0") =>
        {
            false
        }
        other => outcome.fail(&format!("unexpected event after the DDW's removal: {other:?}")),
    };
    match restored_by_qemu {
        true => {
            if resets_after != 1 || !claim.starts_with("yes") {
                outcome.fail(&format!(
                    "QEMU restored the default window itself; resets {resets_after}, claim {claim}"
                ));
            }
            outcome
                .expect_kv("hv.deviations", "0")
                .expect_kv("pe.0.default_restore", "restored-by-hypervisor");
        }
        false => {
            if resets_after != 1 || !claim.starts_with("no") {
                outcome.fail(&format!(
                    "QEMU did not restore it; guest resets {resets_after} (expected 1), claim {claim}"
                ));
            }
            outcome
                .expect_kv("hv.deviations", "1")
                .expect_kv("hv.deviation.0", "default-not-restored-on-remove")
                .expect_kv("pe.0.default_restore", "restored");
            let evidence = outcome.require("hv.deviation.0.evidence");
            if !evidence.contains(&format!("liobn {:#x}", create.liobn)) || !evidence.contains("H_GET_TCE") {
                outcome.fail(&format!(
                    "the evidence does not name the removed window and the probe: {evidence}"
                ));
            }
        }
    }
    eprintln!(
        "single-fail-map: DDW {:#x}, QEMU restored the default window itself: {restored_by_qemu}",
        create.liobn
    );
    outcome.expect_scratch_disk(0, "disk0", &image);
}

/// With 4 GiB of RAM a slot-0 window at bus 0 would put RAM 2–4 GiB on the bus addresses of
/// the PHB's 32-bit MMIO window: the kernel keeps the window per buffer, and no TCE QEMU sees
/// written into it lies in [2 GiB, 4 GiB).
#[test]
fn a_slot_0_window_whose_ram_would_meet_mmio32_is_used_per_buffer() {
    use std::sync::Arc;
    use std::time::Duration;
    let image = Arc::new(tests::disk::scratch_image(16 << 20, 0x5151_0003));
    let outcome = qemu::Scenario::new("single-window-4g", qemu::Firmware::Vof)
        .memory("4G")
        .timeout(Duration::from_secs(240))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*"])
        .append("ddw=single")
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("pe.0.ddw", "dynamic")
        .expect_kv("pe.0.ddw.slot", "0")
        .expect_kv("pe.0.ddw.bus_base", "0x0")
        .expect_kv("pe.0.ddw.mmio_collision", "0x80000000+0x80000000")
        .expect_kv("pe.0.ddw.tces", "0")
        .expect_kv("blk.0.dma", "ddw-iommu");
    let trace = outcome.parsed_trace();
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    let [create] = creates.as_slice() else {
        outcome.fail(&format!("expected one create, got {creates:x?}"))
    };
    let mmio = 0x8000_0000..0x1_0000_0000;
    let puts = trace.pci_puts().unwrap_or_else(|e| outcome.fail(&e));
    let indirects = trace.pci_indirects().unwrap_or_else(|e| outcome.fail(&e));
    let written: Vec<u64> = puts
        .iter()
        .filter(|p| p.liobn == create.liobn && p.tce != 0)
        .map(|p| p.ioba)
        .chain(indirects.iter().filter(|c| c.liobn == create.liobn).map(|c| c.ioba))
        .collect();
    if written.is_empty() || written.iter().any(|ioba| mmio.contains(ioba)) {
        outcome
            .fail(&format!("TCEs written in the slot-0 window: {written:x?}; expected some, none in MMIO32"));
    }
    outcome.expect_scratch_disk(0, "disk0", &image);
}
