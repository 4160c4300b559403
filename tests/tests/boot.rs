//! Successful boots under SLOF, VOF and FDT-direct (`-bios`): the kernel's report against the
//! machine QEMU was asked to build, and against QEMU's own trace of what the guest did.
//!
//! Each test boots QEMU in its own `target/qemu-tests/<name>/` directory. The three default
//! boots are shared (one boot per firmware per process) by the tests that inspect them.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use tests::kv::{BarReport, PciFunctionReport};
use tests::qemu::{Firmware, Outcome, Scenario};
use tests::trace::Mapping;

const VIRTIO_BLK_ID: &str = "1af4:1042";
const EDU_ID: &str = "1234:11e8";
const PHB0_BUID: u64 = 0x0800_0000_2000_0000;
const PHB1_BUID: u64 = 0x0800_0000_2000_0001;
const GIB: u64 = 1 << 30;

/// The boot with the default device set (virtio-blk + edu, 512M), once per firmware.
fn default_boot(firmware: Firmware) -> &'static Outcome {
    static BOOTS: [OnceLock<Outcome>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match firmware {
        Firmware::Slof => &BOOTS[0],
        Firmware::Vof => &BOOTS[1],
        Firmware::Bios => &BOOTS[2],
    };
    slot.get_or_init(|| {
        Scenario::new(&format!("boot-default-{}", firmware.name()), firmware).default_devices().run()
    })
}

/// Who must have assigned the BARs on this path.
fn expected_bar_origin(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Slof => "firmware",
        Firmware::Vof | Firmware::Bios => "kernel",
    }
}

/// Every function's BARs parse, are assigned by the expected party at a non-zero, naturally
/// aligned bus address with a CPU address, and no two BARs of one PHB overlap.
fn check_bars(outcome: &Outcome, functions: &[PciFunctionReport]) {
    let by = expected_bar_origin(outcome.firmware);
    let mut placed: Vec<(usize, String, u32, BarReport)> = Vec::new();
    for function in functions {
        if function.bars.is_empty() {
            outcome.fail(&format!("{} on PHB {} reports no BAR", function.bdf, function.phb));
        }
        for (index, bar, raw) in &function.bars {
            let where_ = format!("PHB {} {} BAR {index:?} ({raw})", function.phb, function.bdf);
            let (Some(index), Some(bar)) = (index, bar) else {
                outcome.fail(&format!("{where_}: malformed BAR line"));
            };
            if bar.bus == 0 {
                outcome.fail(&format!("{where_}: bus address 0"));
            }
            if bar.size == 0 || !bar.size.is_power_of_two() || bar.bus % bar.size != 0 {
                outcome.fail(&format!("{where_}: size not a power of two or misaligned"));
            }
            if bar.by != by {
                outcome.fail(&format!("{where_}: expected by={by}"));
            }
            if bar.cpu.is_none() {
                outcome.fail(&format!("{where_}: outside every PHB window (cpu=none)"));
            }
            for (phb, bdf, other_index, other) in &placed {
                let overlap = bar.bus < other.bus + other.size && other.bus < bar.bus + bar.size;
                if *phb == function.phb && other.kind == bar.kind && overlap {
                    outcome.fail(&format!("{where_}: overlaps {bdf} BAR {other_index}"));
                }
            }
            placed.push((function.phb, function.bdf.clone(), *index, bar.clone()));
        }
    }
}

/// The assertions every default boot must pass.
fn check_default_boot(firmware: Firmware) {
    let outcome = default_boot(firmware);
    outcome
        .expect_ok()
        .expect_kv("boot.firmware", firmware.reported_name())
        .expect_kv("boot.rtas", firmware.reported_rtas())
        .expect_kv("phb.count", "1")
        .expect_kv("pci.count", "2")
        .expect_kv("phb.0.functions", "2")
        .expect_kv("cpu.count", "1")
        .expect_kv("mem.hotplug_max", "none")
        // The conformance report: QEMU under TCG offered one window with multi-TCE, and the
        // set-up saw nothing unexpected.
        .expect_kv("hv.platform", "qemu-tcg")
        .expect_kv("hv.platform.evidence", "root compatible \"qemu,pseries\", no /hypervisor node")
        .expect_kv("hv.multi_tce", "yes")
        .expect_kv("hv.ddw_phbs", "1/1")
        .expect_kv("hv.extensions", "reset,64-bit-query")
        .expect_kv("hv.pe.0.windows", "1")
        .expect_kv("hv.busy", "0")
        .expect_kv("hv.deviations", "0");
    // QEMU 7.2's default pgsz: 4K, 64K, 2M and 16M; the largest block for a 6-output query.
    outcome.expect_kv("hv.pe.0.page_sizes", "4K,64K,2M,16M");
    assert_eq!(outcome.require_hex("hv.pe.0.largest_block"), 1 << 37, "{}", outcome.context());
    assert_eq!(outcome.require_hex("phb.0.buid"), PHB0_BUID, "{}", outcome.context());
    assert_eq!(outcome.require_hex("mem.total"), 512 << 20, "{}", outcome.context());
    let functions = outcome.kv.pci_functions();
    let ids: BTreeSet<&str> = functions.iter().filter_map(|f| f.id.as_deref()).collect();
    let expected: BTreeSet<&str> = [VIRTIO_BLK_ID, EDU_ID].into();
    if functions.len() != 2 || ids != expected {
        outcome.fail(&format!("expected exactly virtio-blk and edu, got {functions:?}"));
    }
    for function in &functions {
        if function.phb != 0 || function.dt.as_deref() != Some("match") {
            outcome.fail(&format!("{} not on PHB 0 or dt != match: {function:?}", function.bdf));
        }
        if !function.problems.is_empty() {
            outcome.fail(&format!("{} has problems: {:?}", function.bdf, function.problems));
        }
    }
    check_bars(outcome, &functions);
}

#[test]
fn default_devices_slof() {
    check_default_boot(Firmware::Slof);
}

#[test]
fn default_devices_vof() {
    check_default_boot(Firmware::Vof);
}

#[test]
fn default_devices_bios() {
    check_default_boot(Firmware::Bios);
}

/// `(PHB, bdf, id, class)` per function, and `(PHB, bdf, BAR, kind, size)` per BAR.
type Inventory = (BTreeSet<(usize, String, String, String)>, BTreeSet<(usize, String, u32, String, u64)>);

fn inventory(outcome: &Outcome) -> Inventory {
    let mut functions = BTreeSet::new();
    let mut bars = BTreeSet::new();
    for f in outcome.kv.pci_functions() {
        let id = f.id.clone().unwrap_or_default();
        functions.insert((f.phb, f.bdf.clone(), id, f.class.clone().unwrap_or_default()));
        for (index, bar, _) in &f.bars {
            if let (Some(index), Some(bar)) = (index, bar) {
                bars.insert((f.phb, f.bdf.clone(), *index, bar.kind.clone(), bar.size));
            }
        }
    }
    (functions, bars)
}

#[test]
fn firmwares_agree_on_phbs_and_functions() {
    let outcomes: Vec<&Outcome> = Firmware::ALL.iter().map(|&f| default_boot(f)).collect();
    for outcome in &outcomes {
        outcome.expect_ok();
    }
    let reference = outcomes[0];
    let phbs = reference.kv.phbs();
    let (functions, bars) = inventory(reference);
    if phbs.is_empty() || functions.len() != 2 || bars.is_empty() {
        reference.fail("the SLOF boot reported no PHB, not two functions or no BAR");
    }
    for other in &outcomes[1..] {
        if other.kv.phbs() != phbs {
            other.fail(&format!("PHBs differ from SLOF's {phbs:?}: {:?}", other.kv.phbs()));
        }
        let (other_functions, other_bars) = inventory(other);
        if other_functions != functions {
            other.fail(&format!("functions differ from SLOF's {functions:?}: {other_functions:?}"));
        }
        if other_bars != bars {
            other.fail(&format!("BAR layout differs from SLOF's {bars:?}: {other_bars:?}"));
        }
    }
}

/// The kernel-reported BARs as trace mappings, `(bdf, bar, addr, size)`.
fn reported_bars(outcome: &Outcome, by: &str) -> BTreeSet<(String, u32, u64, u64)> {
    let mut set = BTreeSet::new();
    for function in outcome.kv.pci_functions() {
        for (index, bar, _) in &function.bars {
            if let (Some(index), Some(bar)) = (index, bar) {
                if bar.by == by {
                    set.insert((function.bdf.clone(), *index, bar.bus, bar.size));
                }
            }
        }
    }
    set
}

fn mapping_set(mappings: &[Mapping]) -> BTreeSet<(String, u32, u64, u64)> {
    mappings.iter().map(|m| (m.bdf.clone(), m.bar, m.addr, m.size)).collect()
}

/// Without firmware touching PCI (VOF, `-bios`), QEMU's trace must show exactly the BARs the
/// kernel says it assigned, and exactly the config accesses it made to present functions.
fn check_trace_matches_kernel(firmware: Firmware) {
    let outcome = default_boot(firmware);
    outcome.expect_ok();
    let trace = outcome.parsed_trace();

    let assigned = reported_bars(outcome, "kernel");
    if assigned.is_empty() {
        outcome.fail("the kernel reported no BAR assigned by=kernel");
    }
    let added = mapping_set(&trace.mappings_added());
    let missing: Vec<_> = assigned.difference(&added).collect();
    if !missing.is_empty() {
        outcome.fail(&format!(
            "kernel-assigned BARs never mapped by QEMU (pci_update_mappings_add): {missing:?}; \
             QEMU added {added:?}"
        ));
    }
    let live = mapping_set(&trace.live_mappings());
    if live != assigned {
        outcome.fail(&format!(
            "QEMU's final BAR mappings {live:?} differ from the kernel's assignments {assigned:?}"
        ));
    }

    // Config space. QEMU traces an access only when a device answers at that address
    // (spapr_pci.c finds no device → RTAS status -1, no trace), so the kernel's RTAS call count
    // exceeds the trace by its probes of empty slots: one vendor-ID read per empty device
    // number on bus 0 when there is no bridge and no multi-function device.
    let accesses = trace.config_accesses();
    let traced = accesses.len() as u64;
    let reads = trace.count("pci_cfg_read") as u64;
    let writes = trace.count("pci_cfg_write") as u64;
    if traced == 0 || traced != reads + writes {
        outcome.fail(&format!("QEMU logged {reads} config reads and {writes} writes ({traced} parsed)"));
    }
    let functions = outcome.kv.pci_functions();
    for function in &functions {
        if function.phb != 0 || !function.bdf.starts_with("00:") || !function.bdf.ends_with(".0") {
            outcome.fail(&format!(
                "the accounting below assumes functions 0 on bus 0 of PHB 0: {}",
                function.bdf
            ));
        }
    }
    // The scan's calls plus the device drivers' (virtio capabilities, BAR sizing) after it.
    let calls = outcome.require_u64("pci.config_calls_total");
    let scan_calls = outcome.require_u64("phb.0.config_calls");
    let empty_slot_probes = 32 - functions.len() as u64;
    if calls != traced + empty_slot_probes || scan_calls > calls {
        outcome.fail(&format!(
            "pci.config_calls_total={calls} (scan {scan_calls}), QEMU traced {traced} accesses to \
             present functions, and {empty_slot_probes} probes of empty slots are expected: \
             {calls} != {traced} + {empty_slot_probes}"
        ));
    }
    let traced_bdfs: BTreeSet<&str> = accesses.iter().map(|a| a.bdf.as_str()).collect();
    let reported_bdfs: BTreeSet<&str> = functions.iter().map(|f| f.bdf.as_str()).collect();
    if traced_bdfs != reported_bdfs {
        outcome
            .fail(&format!("config accesses went to {traced_bdfs:?}, the kernel reports {reported_bdfs:?}"));
    }
    // The ID the kernel prints is the one QEMU returned for the first read of register 0.
    for function in &functions {
        let first = accesses.iter().find(|a| a.bdf == function.bdf && a.offset == 0 && !a.write);
        let Some(first) = first else {
            outcome.fail(&format!("no traced read of {} register 0", function.bdf));
        };
        let from_trace = format!("{:04x}:{:04x}", first.value & 0xffff, first.value >> 16);
        if function.id.as_deref() != Some(from_trace.as_str()) {
            outcome.fail(&format!(
                "{}: kernel says id {:?}, QEMU returned {from_trace}",
                function.bdf, function.id
            ));
        }
    }
}

#[test]
fn vof_trace_matches_kernel_bars_and_config_calls() {
    check_trace_matches_kernel(Firmware::Vof);
}

#[test]
fn bios_trace_matches_kernel_bars_and_config_calls() {
    check_trace_matches_kernel(Firmware::Bios);
}

/// Under SLOF the BARs are firmware's; each one the kernel found must be mapped in QEMU at
/// the end of the run at the address and size the kernel read.
#[test]
fn slof_trace_maps_the_bars_the_kernel_found() {
    let outcome = default_boot(Firmware::Slof);
    outcome.expect_ok();
    let found = reported_bars(outcome, "firmware");
    if found.is_empty() {
        outcome.fail("the kernel reported no BAR by=firmware");
    }
    let live = mapping_set(&outcome.parsed_trace().live_mappings());
    if !found.is_subset(&live) {
        outcome.fail(&format!("BARs {found:?} are not all among QEMU's live mappings {live:?}"));
    }
    // SLOF's own config accesses are traced too, so only a lower bound holds here.
    let calls = outcome.require_u64("phb.0.config_calls");
    let traced = outcome.parsed_trace().config_accesses().len() as u64;
    let functions = outcome.kv.pci_functions().len() as u64;
    if traced + (32 - functions) < calls {
        outcome.fail(&format!(
            "QEMU traced {traced} config accesses, fewer than the kernel's {calls} calls \
             minus {} empty-slot probes",
            32 - functions
        ));
    }
}

fn check_memory(name: &str, memory: &str, bytes: u64) {
    let outcome = Scenario::new(name, Firmware::Vof).memory(memory).run();
    outcome.expect_ok().expect_kv("boot.firmware", "vof");
    let total = outcome.require_hex("mem.total");
    if total != bytes {
        outcome.fail(&format!("mem.total={total:#x}, QEMU was given {memory} = {bytes:#x}"));
    }
    let max = outcome.require_hex("mem.max_addr");
    if max < bytes {
        outcome.fail(&format!("mem.max_addr={max:#x} is below the RAM size {bytes:#x}"));
    }
}

#[test]
fn memory_2g_vof() {
    check_memory("mem-2g-vof", "2G", 2 * GIB);
}

#[test]
fn memory_4g_vof() {
    check_memory("mem-4g-vof", "4G", 4 * GIB);
}

#[test]
fn smp2_vof() {
    let outcome = Scenario::new("smp2-vof", Firmware::Vof).smp(2).run();
    outcome.expect_ok().expect_kv("cpu.count", "2");
}

/// A second PHB (`spapr-pci-host-bridge,index=1`) with a virtio-blk on each. Without `bus=`
/// QEMU would put both devices on the last bus created (phb1's), so the first names `pci.0`.
fn check_two_phbs(firmware: Firmware) {
    let outcome = Scenario::new(&format!("two-phbs-{}", firmware.name()), firmware)
        .device("spapr-pci-host-bridge,index=1,id=phb1")
        .virtio_blk("disk0", Some("pci.0"))
        .virtio_blk("disk1", Some("phb1.0"))
        .run();
    outcome
        .expect_ok()
        .expect_kv("boot.firmware", firmware.reported_name())
        .expect_kv("phb.count", "2")
        .expect_kv("pci.count", "2")
        .expect_kv("phb.0.functions", "1")
        .expect_kv("phb.1.functions", "1");
    let buids: Vec<Option<u64>> = outcome.kv.phbs().iter().map(|p| p.buid).collect();
    if buids != [Some(PHB0_BUID), Some(PHB1_BUID)] {
        outcome.fail(&format!("expected BUIDs {PHB0_BUID:#x} and {PHB1_BUID:#x}, got {buids:?}"));
    }
    let functions = outcome.kv.pci_functions();
    for phb in 0..2 {
        let on_phb: Vec<&PciFunctionReport> = functions.iter().filter(|f| f.phb == phb).collect();
        let ok = on_phb.len() == 1
            && on_phb[0].id.as_deref() == Some(VIRTIO_BLK_ID)
            && on_phb[0].dt.as_deref() == Some("match");
        if !ok {
            outcome.fail(&format!("PHB {phb}: expected one matching virtio-blk, got {on_phb:?}"));
        }
    }
    check_bars(&outcome, &functions);
    // Each PHB translates its own windows: the CPU addresses of the two devices' BARs differ.
    let cpu: Vec<BTreeSet<u64>> = (0..2)
        .map(|phb| {
            functions
                .iter()
                .filter(|f| f.phb == phb)
                .flat_map(|f| f.bars.iter().filter_map(|(_, bar, _)| bar.as_ref()?.cpu))
                .collect()
        })
        .collect();
    if cpu[0].is_empty() || !cpu[0].is_disjoint(&cpu[1]) {
        outcome.fail(&format!("BAR CPU addresses per PHB not disjoint: {cpu:?}"));
    }
}

#[test]
fn two_phbs_slof() {
    check_two_phbs(Firmware::Slof);
}

#[test]
fn two_phbs_vof() {
    check_two_phbs(Firmware::Vof);
}

#[test]
fn two_phbs_bios() {
    check_two_phbs(Firmware::Bios);
}

/// `-m 2G,maxmem=8G,slots=2`: QEMU describes the hot-pluggable range (`/rtas`
/// `ibm,lrdr-capacity`, `ibm,dynamic-reconfiguration-memory`); the kernel must see it reach
/// at least maxmem. Without maxmem (the default boot) it must say `none`.
#[test]
fn hotplug_maxmem_vof() {
    let outcome = Scenario::new("hotplug-maxmem-vof", Firmware::Vof).memory("2G,maxmem=8G,slots=2").run();
    outcome.expect_ok();
    let total = outcome.require_hex("mem.total");
    if total != 2 * GIB {
        outcome.fail(&format!("mem.total={total:#x}, expected 2G (maxmem is not RAM)"));
    }
    let Some(max) = outcome.kv.get_hex("mem.hotplug_max") else {
        outcome.fail(&format!(
            "mem.hotplug_max={:?}: the kernel found no hot-plug range although QEMU was given \
             maxmem=8G",
            outcome.kv.get("mem.hotplug_max")
        ));
    };
    if max < 8 * GIB {
        outcome.fail(&format!("mem.hotplug_max={max:#x} is below maxmem (8G)"));
    }
    let plain = default_boot(Firmware::Vof);
    plain.expect_ok().expect_kv("mem.hotplug_max", "none");
}
