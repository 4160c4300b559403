//! The KVM-HV lane: the kernel as L2 under genuine KVM-HV nested under TCG
//! (`tests::kvm`). Evidence from outside L2: L1 QEMU's
//! trace of the DDW RTAS calls (KVM handles the TCE hcalls itself, so they are not traced) and
//! the SHA-256 of L2's scratch disk computed in L1 after L2 exited, compared with the image the
//! host expects. `PSERIES_KVM_LANE=off` skips the lane (it needs apt and the network once):
//! its tests are then reported as ignored, with the reason (`common::main`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use tests::disk;
use tests::kvm::{sha256_hex, KvmOutcome, KvmScenario, Nesting};

const MIB: usize = 1 << 20;

fn main() {
    common::main(
        Nesting::Kvm,
        &[
            ("the_dma_self_test_passes_under_kvm_hv", the_dma_self_test_passes_under_kvm_hv),
            (
                "a_single_window_pe_gets_its_ddw_in_slot_0_under_kvm_hv",
                a_single_window_pe_gets_its_ddw_in_slot_0_under_kvm_hv,
            ),
            (
                "without_nested_hv_the_lane_reports_kvm_unavailable",
                without_nested_hv_the_lane_reports_kvm_unavailable,
            ),
        ],
        &[],
    )
}

/// The disk L2 left, as L1 hashed it, equals the host's expectation of the scratch copy.
fn check_disk(outcome: &KvmOutcome, image: &[u8]) {
    let expected = sha256_hex(&disk::expected_after_copy(image));
    match &outcome.disk_sha256 {
        Some(seen) if *seen == expected => {}
        other => outcome.l2.fail(&format!("L2's disk hashed in L1 is {other:?}, expected {expected}")),
    }
}

/// A lane boot of L2 with a 16 MiB scratch disk, requiring KVM-HV in L1.
fn boot(name: &str, append: &str, edu: bool, seed: u64) -> (KvmOutcome, Arc<Vec<u8>>) {
    let image = Arc::new(disk::scratch_image(16 * MIB, seed));
    let mut scenario = KvmScenario::new(name)
        .append(append)
        .scratch_disk(Arc::clone(&image))
        .trace(["spapr_iommu_ddw_*"])
        .timeout(Duration::from_secs(300));
    if edu {
        scenario = scenario.edu();
    }
    let outcome = scenario.run();
    eprintln!("KVM lane ({name}): L0 wall time {:.1} s", outcome.wall.as_secs_f64());
    outcome.expect_kvm();
    (outcome, image)
}

fn the_dma_self_test_passes_under_kvm_hv() {
    let (outcome, image) = boot("kvm-ddw", "", true, 0x4b56_0001);
    let l2 = &outcome.l2;
    l2.expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("blk.0.dma", "direct")
        .expect_kv("edu.0.status", "ok")
        // Translation on under KVM-HV (nested KVM runs radix guests only).
        .expect_kv("mmu.mode", "radix")
        .expect_kv("boot.cas", "radix")
        // L1's QEMU runs L2 with KVM, so it writes /hypervisor "linux,kvm".
        .expect_kv("hv.platform", "qemu-kvm")
        .expect_kv("hv.deviations", "0");
    let trace = l2.parsed_trace();
    let creates = trace.ddw_creates().unwrap_or_else(|e| l2.fail(&e));
    if creates.len() != 1 || creates[0].page_size != 1 << 24 {
        l2.fail(&format!("expected one 16M-page DDW create in L1 QEMU's trace, got {creates:x?}"));
    }
    l2.expect_kv("pe.0.ddw.liobn", &format!("{:#x}", creates[0].liobn));
    check_disk(&outcome, &image);
}

fn a_single_window_pe_gets_its_ddw_in_slot_0_under_kvm_hv() {
    let (outcome, image) = boot("kvm-single", "ddw=single", false, 0x4b56_0002);
    let l2 = &outcome.l2;
    l2.expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("pe.0.ddw.slot", "0")
        .expect_kv("pe.0.default_removed", "yes")
        .expect_kv("blk.0.dma", "direct")
        .expect_kv("blk.0.dma_offset", "0x0");
    let trace = l2.parsed_trace();
    let removes = trace.ddw_removes().unwrap_or_else(|e| l2.fail(&e));
    let creates = trace.ddw_creates().unwrap_or_else(|e| l2.fail(&e));
    if removes.len() != 1 || removes[0].liobn != 0x8000_0000 {
        l2.fail(&format!("expected the default window removed in L1 QEMU's trace, got {removes:x?}"));
    }
    if creates.len() != 1 || creates[0].start != 0 {
        l2.fail(&format!("expected one create at bus 0, got {creates:x?}"));
    }
    check_disk(&outcome, &image);
}

/// Negative control: with nested HV off on L0, `kvm_hv` cannot load in L1, and the lane says
/// so instead of running L2 some other way.
fn without_nested_hv_the_lane_reports_kvm_unavailable() {
    let outcome = KvmScenario::new("kvm-negative").nested_hv(false).timeout(Duration::from_secs(120)).run();
    assert_eq!(outcome.kvm_available, Some(false), "L0 console:\n{}", outcome.l0_console);
    assert!(
        !outcome.l0_console.contains("KVMLANE: l2=starting") && !outcome.l0_console.contains("L2| "),
        "L2 must not run without KVM-HV:\n{}",
        outcome.l0_console
    );
    assert!(outcome.l0_console.contains("does not support nesting"), "L1's reason:\n{}", outcome.l0_console);
}
