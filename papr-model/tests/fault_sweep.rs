//! Exhaustive fault injection: every RTAS call and hypercall of a PE's DMA set-up (query,
//! create, remove, reset, the TCE hcalls of mapping RAM, clearing and device buffers), failed
//! at every position with each relevant status, and then every call of the unwinding that
//! fault caused failed once more. After each run the invariants of
//! [`papr_model::scenario::check`] must hold: no leaked window, the PE on its default window or
//! its DDW, every device able to map DMA, no entry left that no mapping accounts for.

use drivers::addr::{PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::iommu::conformance::Deviation;
use drivers::iommu::handover::WarmPolicy;
use drivers::iommu::MultiTce;
use papr_model::papr::hcall::{H_HARDWARE, H_NOT_ENOUGH_RESOURCES, H_P4, H_PARAMETER};
use papr_model::papr::rtas::{
    BUSY as RTAS_BUSY, HARDWARE_ERROR as RTAS_HARDWARE_ERROR, PARAMETER_ERROR as RTAS_PARAMETER_ERROR,
};
use papr_model::scenario::{check, run, Scenario, Strictness};
use papr_model::{CallKind, ModelConfig, Profile};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base: PhysAddr(base), size }
}

/// A small default window (8 MiB = 2048 entries, four H_STUFF_TCE calls to clear) keeps each
/// run short; the full-size windows are exercised in `powervm_vf.rs`.
fn small_default(profile: Profile) -> ModelConfig {
    ModelConfig { default_window_size: 8 * MIB, ..profile.config() }
}

fn scenarios() -> Vec<(&'static str, Scenario)> {
    let two_ranges = vec![range(0, 256 * MIB), range(GIB, 256 * MIB)];
    let qemu = small_default(Profile::Qemu72);
    let vf = small_default(Profile::PowervmVf);
    let mut list = Vec::new();

    let mut direct = Scenario::new(qemu, two_ranges.clone());
    direct.ram_end = 2 * GIB;
    direct.narrow_device = true;
    list.push(("qemu-7.2 direct + 28-bit device", direct));

    let mut single = Scenario::new(qemu, two_ranges.clone());
    single.policy = DdwPolicy::SingleWindow;
    list.push(("qemu-7.2 forced single window", single));

    let mut no_multi = Scenario::new(qemu, vec![range(0, 128 * MIB)]);
    no_multi.multi_tce = MultiTce::Unavailable;
    no_multi.narrow_device = true;
    list.push(("qemu-7.2 without multi-TCE", no_multi));

    // A budget below RAM at bus 0: dynamic, with the 32-bit MMIO window and MSI kept out.
    let mut single_dynamic =
        Scenario::new(ModelConfig { tce_budget: Some(16), ..qemu }, vec![range(0, 512 * MIB)]);
    single_dynamic.policy = DdwPolicy::SingleWindow;
    let single_dynamic = single_dynamic.with_qemu_mmio32();
    list.push(("qemu-7.2 single window, dynamic at bus 0", single_dynamic));

    list.push(("powervm-vf direct in slot 0", Scenario::new(vf, vec![range(0, 512 * MIB)])));

    let vf_small = ModelConfig { tce_budget: Some(1024), ..vf };
    list.push(("powervm-vf dynamic in slot 0", Scenario::new(vf_small, vec![range(0, 512 * MIB)])));

    let powervm = small_default(Profile::Powervm);
    list.push(("powervm direct, 2 MiB pages at 2^59", Scenario::new(powervm, vec![range(0, 512 * MIB)])));

    // 256 MiB present, 64 GiB possible, a 1 GiB window: RAM direct, the rest per buffer.
    let budget = ModelConfig { tce_budget: Some(64), ..qemu };
    let hybrid = Scenario { ram_end: 64 * GIB, ..Scenario::new(budget, vec![range(0, 256 * MIB)]) };
    list.push(("qemu-7.2 hybrid window", hybrid));

    // RAM at 2 GiB in a slot-0 window at bus 0 meets MMIO32: used per buffer.
    let mut over_mmio = Scenario::new(qemu, vec![range(0, 256 * MIB), range(2 * GIB, 256 * MIB)]);
    over_mmio.policy = DdwPolicy::SingleWindow;
    list.push(("qemu-7.2 single window over MMIO32", over_mmio.with_qemu_mmio32()));

    // The DDW takes slot 1 and QEMU restores the default window when it goes.
    let last_slot = ModelConfig { create_slot: papr_model::SlotChoice::LastFree, ..qemu };
    let mut restoring = Scenario::new(last_slot, two_ranges.clone());
    restoring.policy = DdwPolicy::SingleWindow;
    list.push(("qemu-7.2 single window, slot 1, default restored by QEMU", restoring));

    // A 40-bit device: limited-addressing mode, then a window at 4 GiB.
    let limited = ModelConfig { limited_addressing: true, ..qemu };
    let forty = Scenario { first_device_bits: 40, ..Scenario::new(limited, two_ranges.clone()) };
    list.push(("qemu-7.2 limited addressing, 40-bit device", forty));

    let mut in_use = Scenario::new(vf, vec![range(0, 512 * MIB)]);
    in_use.early_mapping = true;
    list.push(("powervm-vf with a live default mapping", in_use));

    // Warm restarts: the set-up runs twice, the second time finding the first one's window.
    let warm = [
        ("qemu-7.2 direct", Scenario { narrow_device: false, ..list[0].1.clone() }),
        ("qemu-7.2 single window", list[1].1.clone()),
        ("powervm-vf direct", list[4].1.clone()),
        ("powervm-vf dynamic", list[5].1.clone()),
    ];
    for (name, scenario) in warm {
        for (policy, how) in [(WarmPolicy::Reuse, "reused"), (WarmPolicy::Remove, "removed")] {
            let label: &'static str =
                Box::leak(format!("{name}, warm restart, window {how}").into_boxed_str());
            list.push((label, Scenario { warm_restart: Some(policy), ..scenario.clone() }));
        }
    }
    list
}

fn statuses(kind: CallKind) -> &'static [i64] {
    const HCALL: &[i64] = &[H_HARDWARE, H_PARAMETER, H_NOT_ENOUGH_RESOURCES, H_P4];
    const RTAS: &[i64] =
        &[RTAS_HARDWARE_ERROR as i64, RTAS_PARAMETER_ERROR as i64, RTAS_BUSY as i64, 9900, 9902, 9905];
    match kind {
        CallKind::Sync => &[],
        CallKind::PutTce | CallKind::PutTceIndirect | CallKind::StuffTce | CallKind::GetTce => HCALL,
        CallKind::Query | CallKind::Create | CallKind::Remove | CallKind::Reset => RTAS,
    }
}

/// Whether a deviation in the run's conformance report carries `status`.
fn reports_status(outcome: &papr_model::scenario::Outcome, status: i64) -> bool {
    outcome.conformance.iter().flat_map(|c| &c.deviations).any(|d| match d {
        Deviation::Busy(seen) => i64::from(seen.status) == status,
        Deviation::RtasFailed(e) | Deviation::CreateRefused { error: e, .. } => i64::from(e.status) == status,
        Deviation::HcallFailed(e) => e.status == status,
        _ => false,
    })
}

/// The second fault: a plain failure of the call's kind.
fn second_status(kind: CallKind) -> Option<i64> {
    statuses(kind).first().copied()
}

#[test]
fn every_call_failed_at_every_position_leaves_a_consistent_pe() {
    let mut single_points = 0usize;
    let mut double_points = 0usize;
    let mut broken = Vec::new();
    for (name, scenario) in scenarios() {
        let clean = run(&scenario, |_| {});
        let problems = check(&scenario, &clean, Strictness::SingleFault);
        assert!(problems.is_empty(), "{name}, no fault: {problems:?}");
        if name.contains("live default") {
            assert!(clean.error.is_some(), "{name}: the in-use default window must not be replaced");
        } else {
            assert!(clean.pe.ddw.is_some(), "{name}: no DDW without faults: {:?}", clean.error);
        }
        let clean_deviations: Vec<&Deviation> =
            clean.conformance.iter().flat_map(|c| &c.deviations).collect();
        assert!(clean_deviations.is_empty(), "{name}, no fault, yet the report says: {clean_deviations:?}");
        let calls: Vec<CallKind> = clean.model.calls().iter().map(|c| c.kind()).collect();
        for (p, &kind) in calls.iter().enumerate().map(|(i, k)| (i + 1, k)) {
            for &status in statuses(kind) {
                single_points += 1;
                let outcome = run(&scenario, |m| m.inject_at(p, status));
                for problem in check(&scenario, &outcome, Strictness::SingleFault) {
                    broken.push(format!("{name}: {kind:?} #{p} -> {status}: {problem}"));
                }
                // The conformance report names the failure (a failed H_GET_TCE may be a probe
                // whose failure is the expected answer).
                let in_set_up = clean.set_up_calls.iter().any(|r| r.contains(&p));
                if in_set_up && kind != CallKind::GetTce && !reports_status(&outcome, status) {
                    broken.push(format!(
                        "{name}: {kind:?} #{p} -> {status}: not in the conformance report: {:?}",
                        outcome.conformance
                    ));
                }
                // Every call the fault led to (unwinding, reset, retries) fails once more.
                let after: Vec<CallKind> = outcome.model.calls().iter().map(|c| c.kind()).collect();
                for (q, &kind2) in after.iter().enumerate().map(|(i, k)| (i + 1, k)).skip(p) {
                    let Some(status2) = second_status(kind2) else { continue };
                    double_points += 1;
                    let twice = run(&scenario, |m| {
                        m.inject_at(p, status);
                        m.inject_at(q, status2);
                    });
                    for problem in check(&scenario, &twice, Strictness::Reported) {
                        broken.push(format!(
                            "{name}: {kind:?} #{p} -> {status}, then {kind2:?} #{q} -> {status2}: {problem}"
                        ));
                    }
                }
            }
        }
    }
    println!(
        "fault sweep: {} scenarios, {single_points} single-fault and {double_points} double-fault injection \
         points, {} invariant violations",
        scenarios().len(),
        broken.len()
    );
    if std::env::var_os("SWEEP_VERBOSE").is_some() {
        eprintln!("{}", broken.join("\n"));
    }
    assert!(
        broken.is_empty(),
        "{} violations, first 20:\n{}",
        broken.len(),
        broken[..broken.len().min(20)].join("\n")
    );
}
