//! Serving mode through a long run of mixed DLPAR events — memory, PCI functions and a whole
//! PHB coming and going, in an order where each kind meets the others (memory added while a
//! second PE has its own DDW, a PHB's DDW created while hot-added memory is present, the PHB
//! removed and added again) — judged after every event from QEMU's trace alone: the Dynamic
//! DMA Windows in place and every valid TCE in them, replayed from the hypercalls
//! (`tests::ddw_replay`), must be exactly one direct window per PE that has had a DMA device,
//! each mapping exactly the RAM QEMU holds at that moment (boot RAM and the DIMMs
//! `query-memory-devices` lists). The data is verified too: every memory add reads the boot disk
//! into the new memory (CRCs against the host's image), every hot-added disk is copied through
//! its PE's window and checked on the host after QEMU exits, the other disks re-read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tests::ddw_replay::DdwReplay;
use tests::disk;
use tests::hotplug::{dimms, hot_add_disk, unplug};
use tests::qemu::{epoch_seconds, Firmware, Outcome, Scenario};

const GIB: u64 = 1 << 30;
/// Boot RAM (`-m 2G`): mapped by every DDW from its creation.
const BOOT_RAM: u64 = 2 * GIB;
/// QEMU's BUIDs for PHB index 0 and 1 (hw/ppc/spapr_pci.c `SPAPR_PCI_BASE_BUID` + index).
const PHB0_BUID: u64 = 0x0800_0000_2000_0000;
const PHB1_BUID: u64 = 0x0800_0000_2000_0001;

/// One event the test causes.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A 512 MiB DIMM `dimmN` (`object-add` + `device_add pc-dimm`).
    MemoryAdd(usize),
    /// `device_del dimmN`, then its backend.
    MemoryRemove(usize),
    /// A scratch virtio-blk `blkN` at `addr` on PHB 0 (`pci.0`) or PHB 1 (`phb1.0`).
    DiskAdd { disk: usize, phb: usize, addr: &'static str },
    /// `device_del blkN`.
    DiskRemove(usize),
    /// `spapr-pci-host-bridge,index=1` added.
    PhbAdd,
    /// Its `device_del`.
    PhbRemove,
}

use Step::*;

const PLAN: [Step; 22] = [
    MemoryAdd(0),
    DiskAdd { disk: 1, phb: 0, addr: "5" },
    PhbAdd,
    MemoryAdd(1),
    // PHB 1's first DMA device: its DDW is made now, over boot RAM and both DIMMs.
    DiskAdd { disk: 2, phb: 1, addr: "2" },
    MemoryRemove(0),
    DiskRemove(1),
    MemoryAdd(2),
    DiskAdd { disk: 3, phb: 0, addr: "6" },
    // PHB 1 without devices keeps its DDW: the PE is still set up.
    DiskRemove(2),
    MemoryRemove(1),
    PhbRemove,
    MemoryAdd(3),
    DiskRemove(3),
    PhbAdd,
    DiskAdd { disk: 4, phb: 1, addr: "3" },
    MemoryRemove(2),
    MemoryAdd(4),
    MemoryRemove(3),
    DiskRemove(4),
    PhbRemove,
    MemoryRemove(4),
];

/// What the host knows after one event.
struct After {
    /// When the event's status line had been read: every hypercall of the event comes before,
    /// every one of the next event after (the next QMP command is sent later).
    at: f64,
    dimms: Vec<(u64, u64)>,
    /// PHBs whose PE should hold a DDW now.
    ddw_phbs: BTreeSet<u64>,
}

fn disk_image(disk: usize) -> Vec<u8> {
    disk::scratch_image(16 << 20, 0x4d49_5800 | disk as u64)
}

#[test]
fn twenty_two_mixed_events_keep_every_window_exact() {
    let boot_image = Arc::new(disk::scratch_image(16 << 20, 0x4d49_5800));
    let mut afters: Vec<After> = Vec::new();
    let driven = Scenario::new("dlpar-mixed", Firmware::Vof)
        .memory("2G,slots=4,maxmem=8G")
        .timeout(Duration::from_secs(900))
        .args(["-msg", "timestamp=on"])
        .trace([
            "spapr_iommu_pci_put",
            "spapr_iommu_pci_indirect",
            "spapr_iommu_pci_stuff",
            "spapr_iommu_ddw_*",
        ])
        .serving(&boot_image)
        .run_driven(|guest| {
            if !guest.wait_console("serve.ready=yes") {
                return;
            }
            // PHB 1 is present, and has had a DMA device since it came.
            let (mut phb1, mut phb1_ddw) = (false, false);
            for (n, step) in PLAN.iter().enumerate() {
                match *step {
                    MemoryAdd(d) => {
                        let mem = format!("mem{d}");
                        guest.execute(
                            "object-add",
                            json!({"qom-type": "memory-backend-ram", "id": mem, "size": GIB / 2}),
                        );
                        guest.execute(
                            "device_add",
                            json!({"driver": "pc-dimm", "id": format!("dimm{d}"), "memdev": mem}),
                        );
                    }
                    MemoryRemove(d) => {
                        let dev = format!("dimm{d}");
                        unplug(guest, &dev);
                        guest.execute("object-del", json!({"id": format!("mem{d}")}));
                    }
                    DiskAdd { disk, phb, addr } => {
                        let bus = if phb == 0 { "pci.0" } else { "phb1.0" };
                        if !hot_add_disk(guest, &format!("blk{disk}"), bus, addr, &disk_image(disk)) {
                            return;
                        }
                        phb1_ddw |= phb == 1;
                    }
                    DiskRemove(disk) => {
                        let dev = format!("blk{disk}");
                        unplug(guest, &dev);
                    }
                    PhbAdd => {
                        guest.execute(
                            "device_add",
                            json!({"driver": "spapr-pci-host-bridge", "index": 1, "id": "phb1"}),
                        );
                        phb1 = true;
                    }
                    PhbRemove => {
                        unplug(guest, "phb1");
                        (phb1, phb1_ddw) = (false, false);
                    }
                }
                if !guest.wait_console(&format!("event.{n}.status=")) {
                    return;
                }
                let at = epoch_seconds();
                let mut ddw_phbs = BTreeSet::from([PHB0_BUID]);
                if phb1 && phb1_ddw {
                    ddw_phbs.insert(PHB1_BUID);
                }
                afters.push(After { at, dimms: dimms(guest), ddw_phbs });
            }
            guest.execute("system_powerdown", json!({}));
        });
    let outcome = driven.expect_driven();
    outcome.expect_ok().expect_kv(&format!("event.{}.status", PLAN.len()), "power-off");
    check_events(outcome, &boot_image);
    check_windows(outcome, &afters);
    for step in PLAN {
        if let DiskAdd { disk, .. } = step {
            let path = outcome.dir.join(format!("blk{disk}.img"));
            let after =
                std::fs::read(&path).unwrap_or_else(|e| outcome.fail(&format!("{}: {e}", path.display())));
            if let Err(why) = disk::check_scratch_copy(&disk_image(disk), &after) {
                outcome.fail(&format!("hot-added disk blk{disk} after the run: {why}"));
            }
        }
    }
}

/// Every event handled, and its data right.
fn check_events(outcome: &Outcome, boot_image: &[u8]) {
    let boot_crcs = disk::mib_crcs(&disk::expected_after_copy(boot_image));
    for (n, step) in PLAN.iter().enumerate() {
        let key = |name: &str| format!("event.{n}.{name}");
        outcome.expect_kv(&key("status"), "ok");
        let kind = match step {
            MemoryAdd(_) => "memory-add",
            MemoryRemove(_) => "memory-remove",
            DiskAdd { .. } => "pci-add",
            DiskRemove(_) => "pci-remove",
            PhbAdd => "phb-add",
            PhbRemove => "phb-remove",
        };
        outcome.expect_kv(&key("type"), kind);
        match *step {
            MemoryAdd(_) => {
                outcome.expect_kv(&key("dma"), "ok");
                for (k, crc) in boot_crcs.iter().enumerate() {
                    outcome.expect_kv(&key(&format!("blk.crc.{k}")), &disk::crc_text(*crc));
                }
            }
            DiskAdd { disk, phb, .. } => {
                outcome
                    .expect_kv(&key("pci.phb"), &phb.to_string())
                    .expect_kv(&key("blk.dma"), "direct")
                    .expect_kv(&key("blk.status"), "ok")
                    .expect_kv(&key("blk.copy"), "done")
                    .expect_kv(&key("reread.0.status"), "ok");
                for (k, crc) in disk::mib_crcs(&disk_image(disk)).iter().enumerate() {
                    outcome.expect_kv(&key(&format!("blk.crc.{k}")), &disk::crc_text(*crc));
                }
            }
            _ => {}
        }
    }
}

/// After every event, the DDWs QEMU holds are exactly one per PE that should have one, each
/// mapping exactly the RAM present; no window was given back with valid entries; no TCE call
/// on a DDW failed; PHB 0's PE made its window once, at boot.
fn check_windows(outcome: &Outcome, afters: &[After]) {
    if afters.len() != PLAN.len() {
        outcome.fail(&format!("the driver saw {} of {} events through", afters.len(), PLAN.len()));
    }
    let trace = outcome.parsed_trace();
    for (n, after) in afters.iter().enumerate() {
        let replay = DdwReplay::of(&trace.between(0.0, after.at)).unwrap_or_else(|e| outcome.fail(&e));
        let context = || format!("after event {n} ({:?}; DIMMs {:x?})", PLAN[n], after.dimms);
        let phbs: BTreeSet<u64> = replay.windows.iter().map(|w| w.window.buid).collect();
        if phbs != after.ddw_phbs || replay.windows.len() != phbs.len() {
            let live: Vec<_> = replay.windows.iter().map(|w| (w.window.buid, w.window.liobn)).collect();
            outcome.fail(&format!(
                "{}: QEMU holds DDWs (buid, liobn) {live:x?}, expected one on each of {:x?}",
                context(),
                after.ddw_phbs
            ));
        }
        let ram = std::iter::once((0, BOOT_RAM)).chain(after.dimms.iter().copied());
        for w in &replay.windows {
            let page = w.window.page_size;
            let expected: BTreeSet<u64> = ram
                .clone()
                .flat_map(|(addr, size)| (0..size / page).map(move |k| w.window.start + addr + k * page))
                .collect();
            if w.mapped != expected {
                let extra = w.mapped.difference(&expected).count();
                let missing: Vec<_> = expected.difference(&w.mapped).take(4).collect();
                outcome.fail(&format!(
                    "{}: the DDW {:#x} on PHB {:#x} maps {} pages, the RAM present {} ({extra} extra, \
                     missing e.g. {missing:x?})",
                    context(),
                    w.window.liobn,
                    w.window.buid,
                    w.mapped.len(),
                    expected.len()
                ));
            }
        }
        if !replay.removed_while_mapped.is_empty() || !replay.failed_calls.is_empty() {
            outcome.fail(&format!(
                "{}: windows removed with valid entries {:x?}, failed TCE calls {:x?}",
                context(),
                replay.removed_while_mapped,
                replay.failed_calls
            ));
        }
    }
    let creates = trace.ddw_creates().unwrap_or_else(|e| outcome.fail(&e));
    let on_phb0 = creates.iter().filter(|c| c.buid == PHB0_BUID).count();
    let on_phb1 = creates.iter().filter(|c| c.buid == PHB1_BUID).count();
    if (on_phb0, on_phb1) != (1, 2) {
        outcome.fail(&format!(
            "expected one DDW made on PHB 0 (at boot) and one on each of PHB 1's two lives: \
             {on_phb0} and {on_phb1} traced"
        ));
    }
}
