//! Serving mode under QEMU, driven over QMP: memory DLPAR and EPOW power-off. A 2 GiB guest
//! with room for 8 GiB gets a 1 GiB DIMM (`object-add` + `device_add pc-dimm`), reads its disk
//! into a buffer inside the new memory, loses the DIMM again (`device_del`, QEMU's
//! `DEVICE_DELETED`), and powers off on `system_powerdown`. Judged by QEMU's trace — exactly
//! the DIMM's TCEs written on the DDW in ⌈TCEs/512⌉ H_PUT_TCE_INDIRECT calls; exactly those
//! cleared, and before QEMU releases the DIMM's last LMB — by the CRCs of what the device put in
//! the new memory against the image on the host, and by the disk checked after QEMU exits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tests::disk;
use tests::hotplug::{dimms, hot_add_disk, unplug};
use tests::qemu::{Driven, Firmware, Outcome, Scenario};
use tests::trace::{TceIndirect, TceStuff};

const GIB: u64 = 1 << 30;
/// QEMU's DDW bus base (hw/ppc/spapr_pci.c `dma64_win_addr` default) and the DIMM's place:
/// device memory starts at the 1 GiB-aligned end of boot RAM.
const DDW_BASE: u64 = 0x0800_0000_0000_0000;
const DIMM_BASE: u64 = 2 * GIB;
/// The DIMM's four LMBs (DRC index = 0x80000000 | address / 256 MiB).
const DIMM_DRCS: [u32; 4] = [0x8000_0008, 0x8000_0009, 0x8000_000a, 0x8000_000b];
/// 16 MiB IOMMU pages: 64 TCEs for 1 GiB.
const DIMM_TCES: u64 = GIB >> 24;

fn memory_hotplug(name: &str, firmware: Firmware) -> (Driven, Arc<Vec<u8>>) {
    let image = Arc::new(disk::scratch_image(16 << 20, 0x4d45_4d00 | firmware as u64));
    let driven = Scenario::new(name, firmware)
        .memory("2G,slots=4,maxmem=8G")
        .timeout(Duration::from_secs(300))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_drc_set_*"])
        .serving(&image)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            guest.execute("object-add", json!({"qom-type": "memory-backend-ram", "id": "mem1", "size": GIB}));
            guest.execute("device_add", json!({"driver": "pc-dimm", "id": "dimm1", "memdev": "mem1"}));
            if !guest.wait_console("event.0.status=") {
                return;
            }
            unplug(guest, "dimm1");
            if !guest.wait_console("event.1.status=") {
                return;
            }
            guest.execute("system_powerdown", json!({}));
        });
    (driven, image)
}

fn check_memory_hotplug(driven: &Driven, image: &[u8]) {
    let outcome: &Outcome = driven.expect_driven();
    outcome
        .expect_ok()
        .expect_kv("serve.ready", "yes")
        .expect_kv("event.0.type", "memory-add")
        .expect_kv("event.0.status", "ok")
        .expect_kv("event.0.lmbs", "4")
        .expect_kv("event.0.memory", "0x80000000+0x40000000")
        .expect_kv("event.0.tces", &DIMM_TCES.to_string())
        .expect_kv("event.0.tce_calls", "1")
        .expect_kv("event.0.dma.buffer", "0x80000000")
        .expect_kv("event.0.blk.dma", "direct")
        .expect_kv("event.0.dma", "ok")
        .expect_kv("event.1.type", "memory-remove")
        .expect_kv("event.1.status", "ok")
        .expect_kv("event.1.memory", "none")
        .expect_kv("event.2.type", "epow")
        .expect_kv("event.2.status", "power-off");
    // What the disk put into the new memory: the image as the boot's self-test left it.
    let after_boot = disk::expected_after_copy(image);
    for (k, crc) in disk::mib_crcs(&after_boot).iter().enumerate() {
        outcome.expect_kv(&format!("event.0.blk.crc.{k}"), &disk::crc_text(*crc));
    }
    let trace = outcome.parsed_trace();
    let liobn = outcome.require_hex("pe.0.ddw.liobn");
    let in_dimm = |ioba: u64| (DDW_BASE + DIMM_BASE..DDW_BASE + DIMM_BASE + GIB).contains(&ioba);
    // (a) Exactly the DIMM's TCEs, in ⌈64/512⌉ = 1 indirect call; nothing else above boot RAM.
    let indirects: Vec<TceIndirect> = trace.pci_indirects().unwrap_or_else(|e| outcome.fail(&e));
    let high: Vec<&TceIndirect> =
        indirects.iter().filter(|c| c.liobn == liobn && c.ioba >= DDW_BASE + DIMM_BASE).collect();
    match high.as_slice() {
        [call] if call.ioba == DDW_BASE + DIMM_BASE && call.entries() == Some(DIMM_TCES) => {}
        other => {
            outcome.fail(&format!("expected one 64-TCE indirect call at the DIMM's bus base, got {other:x?}"))
        }
    }
    // (b) Exactly those cleared (QEMU traces H_STUFF_TCE's ioba after its loop), before QEMU
    // released the DIMM's last LMB (allocation-state 0), which is what emits DEVICE_DELETED.
    let events = trace.events();
    let release = events
        .iter()
        .position(|e| {
            e.name == "spapr_drc_set_allocation_state"
                && e.rest.contains(&format!("{:#x}", DIMM_DRCS[3]))
                && e.rest.contains("state: 0x0")
        })
        .unwrap_or_else(|| outcome.fail("QEMU traced no release of the DIMM's last LMB"));
    let mut cleared = vec![false; DIMM_TCES as usize];
    let mut clears_after_release = 0;
    for (i, event) in events.iter().enumerate().filter(|(_, e)| e.name == "spapr_iommu_pci_stuff") {
        let stuff = TceStuff::parse(&event.rest)
            .unwrap_or_else(|| outcome.fail(&format!("bad stuff {}", event.rest)));
        if stuff.liobn != liobn {
            continue;
        }
        let first = stuff.ioba - (stuff.npages << 24);
        if !in_dimm(first) || stuff.ret != 0 || stuff.tce_value != 0 || stuff.npages > 512 {
            outcome.fail(&format!("a clear outside the DIMM or failed: {stuff:x?}"));
        }
        if i > release {
            clears_after_release += 1;
        }
        for page in 0..stuff.npages {
            cleared[((first - DDW_BASE - DIMM_BASE) >> 24) as usize + page as usize] = true;
        }
    }
    if !cleared.iter().all(|c| *c) || clears_after_release != 0 {
        outcome.fail(&format!(
            "the DIMM's {DIMM_TCES} TCEs were not all cleared before its release ({} cleared, {clears_after_release} \
             clears after)",
            cleared.iter().filter(|c| **c).count()
        ));
    }
    // The disk: copied once by the boot's self-test; the event's re-test copied the same again.
    let path = outcome.disk_path("disk0");
    let after = std::fs::read(&path).unwrap_or_else(|e| outcome.fail(&format!("{}: {e}", path.display())));
    if let Err(why) = disk::check_scratch_copy(image, &after) {
        outcome.fail(&format!("host image after the run: {why}"));
    }
}

#[test]
fn memory_hot_added_and_removed_keeps_the_ddw_exact_vof() {
    let (driven, image) = memory_hotplug("dlpar-memory-vof", Firmware::Vof);
    check_memory_hotplug(&driven, &image);
}

#[test]
fn memory_hot_added_and_removed_keeps_the_ddw_exact_slof() {
    let (driven, image) = memory_hotplug("dlpar-memory-slof", Firmware::Slof);
    check_memory_hotplug(&driven, &image);
}

/// `serve=hold` keeps the disk read's buffer alive in the new memory: the remove is refused,
/// the way PAPR allows (the DRC unisolated again, QEMU's `DEVICE_UNPLUG_GUEST_ERROR`), no TCE of
/// the DIMM is cleared, and the DIMM stays (QEMU's `query-memory-devices`).
#[test]
fn memory_holding_a_live_buffer_is_not_given_up() {
    let image = Arc::new(disk::scratch_image(16 << 20, 0x4d45_4d10));
    let mut still_there = None;
    let driven = Scenario::new("dlpar-memory-held", Firmware::Vof)
        .memory("2G,slots=4,maxmem=8G")
        .timeout(Duration::from_secs(300))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_drc_set_*"])
        .append("serve=hold")
        .qmp()
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            guest.execute("object-add", json!({"qom-type": "memory-backend-ram", "id": "mem1", "size": GIB}));
            guest.execute("device_add", json!({"driver": "pc-dimm", "id": "dimm1", "memdev": "mem1"}));
            if !guest.wait_console("event.0.status=") {
                return;
            }
            guest.execute("device_del", json!({"id": "dimm1"}));
            guest.wait_event("DEVICE_UNPLUG_GUEST_ERROR", Some("dimm1"));
            if !guest.wait_console("event.1.status=") {
                return;
            }
            still_there = guest.execute("query-memory-devices", json!({}));
            guest.execute("system_powerdown", json!({}));
        });
    let outcome = driven.expect_driven();
    outcome
        .expect_ok()
        .expect_kv("event.0.status", "ok")
        .expect_kv("event.0.dma.held", "0x80000000")
        .expect_kv("event.1.type", "memory-remove")
        .expect_kv("event.1.status", "4 LMB(s) not handled")
        .expect_kv("event.1.memory", "0x80000000+0x40000000");
    let refused = outcome.require("event.1.lmb.0");
    if !refused.contains("kept: refused: a DMA buffer at 0x80000000 lives in it") {
        outcome.fail(&format!("the refusal does not say why: {refused}"));
    }
    let dimms = still_there.unwrap_or_default();
    if !dimms.to_string().contains("\"dimm1\"") {
        outcome.fail(&format!("QEMU no longer lists the DIMM after the refused remove: {dimms}"));
    }
    let liobn = outcome.require_hex("pe.0.ddw.liobn");
    let trace = outcome.parsed_trace();
    let stuffs = trace.named("spapr_iommu_pci_stuff").filter_map(|e| TceStuff::parse(&e.rest));
    let dimm_clears: Vec<TceStuff> =
        stuffs.filter(|s| s.liobn == liobn && s.ioba > DDW_BASE + DIMM_BASE).collect();
    if !dimm_clears.is_empty() {
        outcome.fail(&format!("TCEs of the refused DIMM were cleared: {dimm_clears:x?}"));
    }
}

/// Twenty memory events in one run (ten DIMMs added, each removed again, at most three present
/// at a time, each add checked by a disk read into it), then a power-off. QEMU's trace is
/// replayed on the host: after every event the DDW's mapped pages above boot RAM must be exactly
/// the DIMMs QEMU has at that moment, and at the end exactly none.
#[test]
fn twenty_memory_events_leave_the_ddw_matching_the_memory_present() {
    let image = Arc::new(disk::scratch_image(16 << 20, 0x4d45_4d20));
    // (add?, DIMM number)
    let mut plan: Vec<(bool, usize)> = Vec::new();
    for i in 0..10 {
        plan.push((true, i));
        if i >= 1 {
            plan.push((false, i - 1));
        }
    }
    plan.push((false, 9));
    assert_eq!(plan.len(), 20);
    let mut layouts: Vec<Vec<(u64, u64)>> = Vec::new();
    let driven = Scenario::new("dlpar-memory-twenty", Firmware::Vof)
        .memory("2G,slots=4,maxmem=8G")
        .timeout(Duration::from_secs(600))
        .trace(["spapr_iommu_pci_indirect", "spapr_iommu_pci_stuff", "spapr_iommu_ddw_*"])
        .serving(&image)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            for (n, &(add, dimm)) in plan.iter().enumerate() {
                let (mem, dev) = (format!("mem{dimm}"), format!("dimm{dimm}"));
                if add {
                    guest.execute(
                        "object-add",
                        json!({"qom-type": "memory-backend-ram", "id": mem, "size": GIB / 2}),
                    );
                    guest.execute("device_add", json!({"driver": "pc-dimm", "id": dev, "memdev": mem}));
                } else {
                    unplug(guest, &dev);
                    guest.execute("object-del", json!({"id": mem}));
                }
                if !guest.wait_console(&format!("event.{n}.status=")) {
                    return;
                }
                let present = dimms(guest);
                layouts.push(present);
            }
            guest.execute("system_powerdown", json!({}));
        });
    let outcome = driven.expect_driven();
    outcome.expect_ok().expect_kv("event.20.status", "power-off");
    let after_boot = disk::expected_after_copy(&image);
    let crcs = disk::mib_crcs(&after_boot);
    for (n, &(add, _)) in plan.iter().enumerate() {
        outcome.expect_kv(&format!("event.{n}.status"), "ok");
        if add {
            outcome.expect_kv(&format!("event.{n}.dma"), "ok");
            for (k, crc) in crcs.iter().enumerate() {
                outcome.expect_kv(&format!("event.{n}.blk.crc.{k}"), &disk::crc_text(*crc));
            }
        }
    }
    // Replay the DDW's TCE writes and clears above boot RAM, event by event: the kernel's
    // `event.N.status` line follows each event's hypercalls, so QEMU's log is cut at the
    // `ddw`-window calls between consecutive status lines by counting them per event.
    let liobn = outcome.require_hex("pe.0.ddw.liobn");
    let trace = outcome.parsed_trace();
    let mut mapped = std::collections::BTreeSet::new();
    let mut calls_seen = 0usize;
    let calls: Vec<(bool, u64, u64)> = trace
        .events()
        .iter()
        .filter_map(|e| match e.name.as_str() {
            "spapr_iommu_pci_indirect" => {
                let c = TceIndirect::parse(&e.rest)?;
                (c.liobn == liobn && c.ioba >= DDW_BASE + DIMM_BASE)
                    .then(|| (true, c.ioba, c.entries().unwrap_or(0)))
            }
            "spapr_iommu_pci_stuff" => {
                let s = TceStuff::parse(&e.rest)?;
                let first = s.ioba - (s.npages << 24);
                (s.liobn == liobn && first >= DDW_BASE + DIMM_BASE && s.ret == 0)
                    .then_some((false, first, s.npages))
            }
            _ => None,
        })
        .collect();
    for (n, present) in layouts.iter().enumerate() {
        let per_event = outcome.require_u64(&format!("event.{n}.tce_calls")) as usize;
        for &(write, ioba, pages) in &calls[calls_seen..(calls_seen + per_event).min(calls.len())] {
            for page in 0..pages {
                let bus = ioba + (page << 24);
                if write {
                    mapped.insert(bus);
                } else {
                    mapped.remove(&bus);
                }
            }
        }
        calls_seen += per_event;
        let expected: std::collections::BTreeSet<u64> = present
            .iter()
            .flat_map(|&(addr, size)| (0..size >> 24).map(move |p| DDW_BASE + addr + (p << 24)))
            .collect();
        if mapped != expected {
            outcome.fail(&format!(
                "after event {n} the DDW maps {} pages above boot RAM, QEMU has {} (DIMMs {present:x?})",
                mapped.len(),
                expected.len()
            ));
        }
    }
    if calls_seen != calls.len() || !mapped.is_empty() {
        outcome.fail(&format!(
            "{} TCE calls traced, {calls_seen} reported; {} pages left mapped",
            calls.len(),
            mapped.len()
        ));
    }
}

/// PCI DLPAR on the default PHB: a scratch virtio-blk hot-added at 00:05.0 (QMP `blockdev-add`,
/// then `device_add`) is configured, given BARs clear of the others and tested through the PE's
/// existing DDW — directly, with no new window (QEMU traces one `ddw_create` in the whole run);
/// the disk present from boot reads back right afterwards; the new disk is copied correctly
/// (checked on the host after QEMU exits); `device_del` completes with `DEVICE_DELETED`.
#[test]
fn a_hot_added_disk_uses_the_existing_window_and_goes_again_vof() {
    pci_hotplug("dlpar-pci-vof", Firmware::Vof);
}

#[test]
fn a_hot_added_disk_uses_the_existing_window_and_goes_again_slof() {
    pci_hotplug("dlpar-pci-slof", Firmware::Slof);
}

fn pci_hotplug(name: &str, firmware: Firmware) {
    let boot_image = Arc::new(disk::scratch_image(16 << 20, 0x5043_4900));
    let added_image = disk::scratch_image(16 << 20, 0x5043_4901);
    let image_for_guest = added_image.clone();
    let driven = Scenario::new(name, firmware)
        .memory("2G")
        .timeout(Duration::from_secs(300))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*"])
        .serving(&boot_image)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            if !hot_add_disk(guest, "blk1", "pci.0", "5", &image_for_guest) {
                return;
            }
            if !guest.wait_console("event.0.status=") {
                return;
            }
            unplug(guest, "blk1");
            if !guest.wait_console("event.1.status=") {
                return;
            }
            guest.execute("system_powerdown", json!({}));
        });
    let outcome = driven.expect_driven();
    outcome
        .expect_ok()
        .expect_kv("event.0.type", "pci-add")
        .expect_kv("event.0.pci.bdf", "00:05.0")
        .expect_kv("event.0.pci.id", "1af4:1042")
        .expect_kv("event.0.status", "ok")
        .expect_kv("event.0.blk.dma", "direct")
        .expect_kv("event.0.blk.status", "ok")
        .expect_kv("event.0.blk.copy", "done")
        .expect_kv("event.0.reread.0.status", "ok")
        .expect_kv("event.1.type", "pci-remove")
        .expect_kv("event.1.status", "ok")
        .expect_kv("event.2.status", "power-off");
    for (k, crc) in disk::mib_crcs(&added_image).iter().enumerate() {
        outcome.expect_kv(&format!("event.0.blk.crc.{k}"), &disk::crc_text(*crc));
    }
    for (k, crc) in disk::mib_crcs(&disk::expected_after_copy(&boot_image)).iter().enumerate() {
        outcome.expect_kv(&format!("event.0.reread.0.crc.{k}"), &disk::crc_text(*crc));
    }
    let creates = outcome.parsed_trace().ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    if creates.len() != 1 {
        outcome
            .fail(&format!("the hot-added disk must use the PE's window: {} creates traced", creates.len()));
    }
    let path = outcome.dir.join("blk1.img");
    let after = std::fs::read(&path).unwrap_or_else(|e| outcome.fail(&format!("{}: {e}", path.display())));
    if let Err(why) = disk::check_scratch_copy(&added_image, &after) {
        outcome.fail(&format!("the hot-added disk after the run: {why}"));
    }
}

/// PHB DLPAR: `spapr-pci-host-bridge,index=1` hot-added becomes a new PE; a scratch disk added
/// on it gets a DDW created at run time (QEMU traces its `ddw_create` on the new BUID) and is
/// tested through it, directly; the disk goes again, then the PHB: its DDW's TCEs are cleared,
/// then `ddw_remove`, then QEMU releases the PHB (`DEVICE_DELETED`).
#[test]
fn a_hot_added_phb_gets_its_own_ddw_and_gives_it_back_vof() {
    phb_hotplug("dlpar-phb-vof", Firmware::Vof);
}

#[test]
fn a_hot_added_phb_gets_its_own_ddw_and_gives_it_back_slof() {
    phb_hotplug("dlpar-phb-slof", Firmware::Slof);
}

fn phb_hotplug(name: &str, firmware: Firmware) {
    let boot_image = Arc::new(disk::scratch_image(16 << 20, 0x5048_4200));
    let added_image = disk::scratch_image(16 << 20, 0x5048_4201);
    let image_for_guest = added_image.clone();
    const PHB1_BUID: u64 = 0x0800_0000_2000_0001;
    let driven = Scenario::new(name, firmware)
        .memory("2G")
        .timeout(Duration::from_secs(300))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_drc_set_*"])
        .serving(&boot_image)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            guest.execute("device_add", json!({"driver": "spapr-pci-host-bridge", "index": 1, "id": "phb1"}));
            if !guest.wait_console("event.0.status=") {
                return;
            }
            if !hot_add_disk(guest, "blk2", "phb1.0", "2", &image_for_guest) {
                return;
            }
            if !guest.wait_console("event.1.status=") {
                return;
            }
            unplug(guest, "blk2");
            if !guest.wait_console("event.2.status=") {
                return;
            }
            unplug(guest, "phb1");
            if !guest.wait_console("event.3.status=") {
                return;
            }
            guest.execute("system_powerdown", json!({}));
        });
    let outcome = driven.expect_driven();
    outcome
        .expect_ok()
        .expect_kv("event.0.type", "phb-add")
        .expect_kv("event.0.status", "ok")
        .expect_kv("event.0.phb.buid", &format!("{PHB1_BUID:#x}"))
        .expect_kv("event.1.type", "pci-add")
        .expect_kv("event.1.pci.phb", "1")
        .expect_kv("event.1.status", "ok")
        .expect_kv("pe.1.ddw", "direct")
        .expect_kv("event.1.blk.dma", "direct")
        .expect_kv("event.1.blk.status", "ok")
        .expect_kv("event.2.type", "pci-remove")
        .expect_kv("event.2.status", "ok")
        .expect_kv("event.3.type", "phb-remove")
        .expect_kv("event.3.status", "ok")
        .expect_kv("event.4.status", "power-off");
    for (k, crc) in disk::mib_crcs(&added_image).iter().enumerate() {
        outcome.expect_kv(&format!("event.1.blk.crc.{k}"), &disk::crc_text(*crc));
    }
    let liobn = outcome.require_hex("pe.1.ddw.liobn");
    outcome.expect_kv("event.3.ddw_removed", &format!("{liobn:#x}"));
    let trace = outcome.parsed_trace();
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    if !creates.iter().any(|c| c.buid == PHB1_BUID && c.liobn == liobn) {
        outcome.fail(&format!("no ddw_create on the hot-added PHB (liobn {liobn:#x}): {creates:x?}"));
    }
    // Its TCEs cleared, then the window removed, then the PHB released (allocation-state 0).
    let events = trace.events();
    let position = |what: &dyn Fn(&tests::trace::TraceEvent) -> bool| events.iter().rposition(what);
    let clear =
        position(&|e| e.name == "spapr_iommu_pci_stuff" && e.rest.contains(&format!("liobn={liobn:#x}")));
    let remove =
        position(&|e| e.name == "spapr_iommu_ddw_remove" && e.rest.contains(&format!("liobn={liobn:#x}")));
    let release = position(&|e| {
        e.name == "spapr_drc_set_allocation_state"
            && e.rest.contains("0x20000001")
            && e.rest.contains("state: 0x0")
    });
    match (clear, remove, release) {
        (Some(c), Some(r), Some(l)) if c < r && r < l => {}
        other => outcome.fail(&format!("expected clear < ddw_remove < release of the PHB, got {other:?}")),
    }
    let path = outcome.dir.join("blk2.img");
    let after = std::fs::read(&path).unwrap_or_else(|e| outcome.fail(&format!("{}: {e}", path.display())));
    if let Err(why) = disk::check_scratch_copy(&added_image, &after) {
        outcome.fail(&format!("the disk on the hot-added PHB after the run: {why}"));
    }
}
