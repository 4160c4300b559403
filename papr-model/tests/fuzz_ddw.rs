//! Fuzzing of the DDW decision logic driven by the model: random hypervisors (page-size
//! masks, window counts, TCE budgets, window placement, stuff limits, default windows), random
//! RAM layouts and hot-plug ends, random `ibm,ddw-extensions`, the single-window and
//! warm-restart paths, KVM-HV's guest-memory rule for TCEs, and up to three faults at random calls with random statuses. Nothing may
//! panic, and every outcome must satisfy [`check`] (strict when no fault was injected).
//! `FUZZ_CASES` sets the executions (default 2000; `./run.sh fuzz` runs a million).

use drivers::addr::{PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::devtree::dma_window::DdwExtensions;
use drivers::iommu::handover::WarmPolicy;
use drivers::iommu::MultiTce;
use papr_model::scenario::{check, run, Scenario, Strictness};
use papr_model::{ModelConfig, SlotChoice, StuffLimit, WindowBase, MODEL_BUID};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

const MIB: u64 = 1 << 20;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn runner() -> TestRunner {
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xdd_5eed);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    // Every failing case's seed is appended to the regression file, which every later run
    // (`./run.sh test` included) replays first.
    let persistence = FileFailurePersistence::Direct("tests/regressions/fuzz_ddw.txt");
    let config =
        Config { cases: cases(), failure_persistence: Some(Box::new(persistence)), ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

fn config() -> impl Strategy<Value = ModelConfig> {
    (
        prop_oneof![Just(0x107u32), Just(0x3), Just(0x1), Just(0x2), Just(0x4), Just(0), any::<u32>()],
        prop_oneof![Just(StuffLimit::Qemu), Just(StuffLimit::Papr512)],
        0usize..=2,
        // Default window: 1–32 MiB (small keeps each execution short).
        20u32..=25,
        proptest::option::of(prop_oneof![1u64..64, 64u64..1 << 20, any::<u64>()]),
        prop_oneof![Just(WindowBase::Qemu), Just(WindowBase::Fixed(1 << 59)), Just(WindowBase::Fixed(0))],
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(mask, stuff_limit, max_windows, default_shift, tce_budget, window_base, flags)| {
            let (keep, restores, last_slot, limited_addressing) = flags;
            ModelConfig {
                buid: MODEL_BUID,
                page_size_mask: mask,
                stuff_limit,
                max_windows,
                default_window_size: 1 << default_shift,
                tce_budget,
                window_base,
                reset_keeps_entries: keep,
                guest_ram_end: None,
                restores_default_on_last_remove: restores,
                create_slot: if last_slot { SlotChoice::LastFree } else { SlotChoice::FirstFree },
                limited_addressing,
            }
        })
}

/// One to four RAM ranges of 1–4 MiB (16 MiB in all at most, so a direct map is at most 4096 TCEs), at
/// page-aligned or odd places below 2^30; the device buffers lie in the first.
fn ram() -> impl Strategy<Value = Vec<PhysRange>> {
    vec((0u64..1 << 28, MIB..4 * MIB, any::<bool>()), 1..=4).prop_map(|parts| {
        let mut next = 0u64;
        parts
            .into_iter()
            .map(|(gap, size, aligned)| {
                let base = next + if aligned { gap & !0xfff } else { gap };
                next = base + size;
                PhysRange { base: PhysAddr(base), size }
            })
            .collect()
    })
}

fn extensions() -> impl Strategy<Value = Option<DdwExtensions>> {
    proptest::option::of(prop_oneof![
        Just(vec![2, 0x2b, 1]),
        Just(vec![3, 0x2b, 1, 1]),
        Just(vec![1, 0x2b]),
        Just(vec![2, 0, 1]),
        Just(vec![0]),
        vec(any::<u32>(), 0..5),
    ])
    .prop_map(|cells| cells.map(|cells| DdwExtensions { cells }))
}

#[derive(Debug, Clone)]
struct Case {
    scenario: Scenario,
    faults: Vec<(usize, i64)>,
}

fn case() -> impl Strategy<Value = Case> {
    let statuses =
        prop_oneof![Just(-1i64), Just(-2), Just(-3), Just(-4), Just(-44), Just(-57), Just(9900), Just(9905)];
    (
        config(),
        ram(),
        prop_oneof![Just(0u64), 0u64..1 << 36],
        extensions(),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        prop_oneof![Just(None), Just(Some(WarmPolicy::Reuse)), Just(Some(WarmPolicy::Remove))],
        vec((1usize..80, statuses), 0..=3),
        any::<bool>(),
        prop_oneof![4 => Just(64u32), 1 => Just(48), 1 => Just(40), 1 => Just(34), 1 => Just(32)],
    )
        .prop_map(
            |(mut config, ram, hotplug, extensions, flags, warm_restart, faults, kvm, first_device_bits)| {
                let ram_top = ram.iter().map(PhysRange::end).max().unwrap_or(0);
                // KVM-HV's rule: TCEs must point into guest memory.
                config.guest_ram_end = kvm.then_some(ram_top);
                let ram_end = ram_top.max(hotplug);
                let (single, narrow, early, no_multi) = flags;
                let scenario = Scenario {
                    config,
                    ram,
                    ram_end,
                    extensions,
                    multi_tce: if no_multi { MultiTce::Unavailable } else { MultiTce::Available },
                    policy: if single { DdwPolicy::SingleWindow } else { DdwPolicy::Auto },
                    first_device_bits,
                    narrow_device: narrow,
                    early_mapping: early,
                    mmio: vec![(0x8000_0000, 0x8000_0000)],
                    warm_restart,
                };
                Case { scenario, faults }
            },
        )
}

#[test]
fn the_ddw_logic_keeps_every_pe_consistent_whatever_the_hypervisor_does() {
    let with_ddw = AtomicU64::new(0);
    let runs = AtomicU64::new(0);
    runner()
        .run(&case(), |Case { scenario, faults }| {
            let outcome = run(&scenario, |model| {
                for &(position, status) in &faults {
                    model.inject_at(position, status);
                }
            });
            runs.fetch_add(1, Ordering::Relaxed);
            with_ddw.fetch_add(u64::from(outcome.pe.ddw.is_some()), Ordering::Relaxed);
            let strictness = if faults.is_empty() { Strictness::SingleFault } else { Strictness::Reported };
            let broken = check(&scenario, &outcome, strictness);
            prop_assert!(
                broken.is_empty(),
                "{broken:?}\nerror: {:?}\nwarm: {:?}",
                outcome.error,
                outcome.warm_error
            );
            Ok(())
        })
        .unwrap();
    let (runs, with_ddw) = (runs.into_inner(), with_ddw.into_inner());
    println!("DDW logic: {runs} executions, {with_ddw} ended with a DDW, no panic, every invariant held");
}
