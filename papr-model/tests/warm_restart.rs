//! Warm restart (kexec): the second set-up finds the first one's window through a
//! [`Handover`] and reuses it or clears and removes it — no leaked window, no stale entry
//! (Linux `pci_dma_find` and Alexey Kardashevskiy's 2022 kdump fix "powerpc/pseries/iommu: DDW for kexec").

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::PeDma;
use drivers::iommu::ddw::SingleWindowPath;
use drivers::iommu::ddw::{enable_ddw, DdwMapping, DefaultWindow, PeRequest};
use drivers::iommu::handover::{ensure_default, take_over, Handover, TakeOver, WarmPolicy};
use drivers::iommu::pe::PeSetUp;
use drivers::iommu::{DdwRtas, DmaDirection, DmaMask, IovaWindow, TceCalls};
use papr_model::scenario::{check, run, CountingDelay, Scenario, Strictness, PE};
use papr_model::{model_liobn, CallKind, HypervisorModel, ModelCall, ModelConfig, Profile};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn ram() -> Vec<PhysRange> {
    vec![PhysRange { base: PhysAddr(0), size: GIB }, PhysRange { base: PhysAddr(2 * GIB), size: 256 * MIB }]
}

fn scenario(profile: Profile, policy: WarmPolicy) -> Scenario {
    Scenario { warm_restart: Some(policy), ..Scenario::new(profile.config(), ram()) }
}

fn count(calls: &[ModelCall], kind: CallKind) -> usize {
    calls.iter().filter(|c| c.kind() == kind).count()
}

#[test]
fn a_reused_direct_window_costs_only_reads() {
    let scenario = scenario(Profile::Qemu72, WarmPolicy::Reuse);
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    // The first run's devices are not exercised with a warm restart; compare with a plain run
    // minus its device calls by looking only at kinds that the device step never makes.
    let calls = outcome.model.calls();
    assert_eq!(count(calls, CallKind::Create), 1, "one window for both set-ups");
    assert_eq!(count(calls, CallKind::Remove), 0);
    // The first set-up's indirect calls only (2 ranges of 16M pages: 64 + 16 TCEs).
    assert_eq!(count(calls, CallKind::PutTceIndirect), 2);
    // The second reads the window's first entry, then the first and last of each range.
    assert_eq!(count(calls, CallKind::GetTce), 5);
    let windows: Vec<_> = outcome.model.windows().map(|w| w.liobn).collect();
    assert_eq!(windows, [model_liobn(0), model_liobn(1)]);
    assert!(outcome.pe.default.is_some() && outcome.pe.ddw.is_some());
}

#[test]
fn a_removed_window_is_cleared_first_and_a_new_one_created() {
    let scenario = scenario(Profile::Qemu72, WarmPolicy::Remove);
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let calls = outcome.model.calls();
    let remove = calls.iter().position(|c| c.kind() == CallKind::Remove).expect("a remove");
    assert_eq!(calls[remove], ModelCall::Rtas(drivers::iommu::DdwCall::Remove { liobn: model_liobn(1) }));
    // Every entry the old window held (RAM: 64 + 16 pages of 16M) cleared before the removal.
    let cleared: u32 = calls[..remove]
        .iter()
        .filter_map(|c| match c {
            ModelCall::Hcall(drivers::iommu::TceHcall::StuffTce { liobn, count, .. })
                if *liobn == model_liobn(1) =>
            {
                Some(*count)
            }
            _ => None,
        })
        .sum();
    assert_eq!(cleared, 80);
    assert_eq!(count(&calls[remove..], CallKind::Create), 1);
    assert_eq!(outcome.model.windows().count(), 2, "default + the new DDW, nothing leaked");
}

#[test]
fn a_slot_0_window_is_reused_or_replaced_through_a_reset() {
    for policy in [WarmPolicy::Reuse, WarmPolicy::Remove] {
        let scenario = scenario(Profile::PowervmVf, policy);
        let outcome = run(&scenario, |_| {});
        assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new(), "{policy:?}");
        let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
        assert_eq!(ddw.slot, 0, "{policy:?}");
        assert!(outcome.pe.default.is_none());
        let resets = count(outcome.model.calls(), CallKind::Reset);
        assert_eq!(resets, usize::from(policy == WarmPolicy::Remove), "{policy:?}");
        assert_eq!(outcome.model.windows().count(), 1);
    }
}

#[test]
fn a_reused_dynamic_window_drops_the_previous_kernels_buffers() {
    // A 1 GiB budget below 2.25 GiB of RAM, above the 256 MiB default window: dynamic. The
    // first kernel leaves a buffer mapped.
    let config = ModelConfig {
        tce_budget: Some(1 << 14),
        default_window_size: 256 * MIB,
        ..Profile::PowervmVf.config()
    };
    let scenario = Scenario::new(config, ram());
    let mut model = HypervisorModel::new(config);
    let mut delay = CountingDelay::default();
    let platform = scenario.platform();
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &scenario.devices(), scenario.policy);
    let request = setup.request(&setup.initial_dma()).expect("a DDW is asked for");
    let mut ddw = enable_ddw(&mut model, &mut delay, &request).expect("a DDW");
    let DdwMapping::Dynamic(dynamic) = &mut ddw.mapping else { panic!("expected a dynamic window") };
    let mask = DmaMask::from_bits(64);
    let leftover = dynamic
        .map_buffer(&mut model, PhysAddr(0x10_0000), 0x3_0000, DmaDirection::Bidirectional, mask)
        .unwrap();
    assert_ne!(model.translate(leftover.iova()), None);
    let found = Handover::of(PE, &ddw);
    let result = take_over(&mut model, &mut delay, &request, &found, WarmPolicy::Reuse);
    assert!(matches!(result, Ok(TakeOver::Reused { remapped: false, instead_of: None, .. })));
    assert_eq!(model.translate(leftover.iova()), None, "the previous kernel's buffer is out of reach");
    assert_eq!(model.mapped_entries(), 0);
    let mut pe = PeDma::default();
    pe.settle_take_over(&found, None, result).unwrap();
    assert!(matches!(pe.ddw.map(|d| d.mapping), Some(DdwMapping::Dynamic(_))));
}

#[test]
fn a_default_window_removed_without_a_handover_is_reset() {
    // The previous kernel replaced the default window and did not say so (the kdump case Linux fixed in 2022).
    let mut model = HypervisorModel::with_profile(Profile::Qemu72);
    model.remove(model_liobn(0)).unwrap();
    let default = Scenario::new(Profile::Qemu72.config(), ram()).default_window();
    let ext = drivers::devtree::dma_window::DdwExtensions { cells: vec![2, 0x2b, 1] };
    let request = PeRequest {
        pe: PE,
        extensions: Some(&ext),
        ram: &[],
        ram_end: GIB,
        device_mask_bits: 64,
        addressing: drivers::iommu::ddw::Addressing::Full,
        multi_tce: drivers::iommu::MultiTce::Available,
        default: Some(DefaultWindow { window: default, live_pages: 0, narrow_devices: 0 }),
        single_window: SingleWindowPath::WhenNoneFree,
        max_window_shift: None,
        iova_holes: &[],
    };
    let restore = ensure_default(&mut model, &mut CountingDelay::default(), &request).unwrap();
    assert!(restore.is_some_and(|r| r.is_clean()));
    assert_eq!(model.count(CallKind::Reset), 1);
    let mut default_window = IovaWindow::new(default, request.multi_tce);
    let mapping = default_window
        .map_buffer(&mut model, PhysAddr(0x5000), 0x1000, DmaDirection::ToDevice, DmaMask::from_bits(32))
        .unwrap();
    assert!(model.get_tce(model_liobn(0), BusAddr(mapping.iova().get() & !0xfff)).is_ok());
    // Present: nothing to do.
    assert_eq!(ensure_default(&mut model, &mut CountingDelay::default(), &request).unwrap(), None);
}

/// Fuzzer case (FUZZ_SEED=424242, shrunk): the first set-up cannot unmap its early buffer
/// (both H_PUT_TCE 0 fail), so its TCE stays in the default window, reported as kept mapped.
/// The warm restart clears the default window it inherits before using it (the entry goes),
/// then the device maps and unmaps its buffer. The checker once counted the inherited entry's
/// disappearance as "a failed map left TCEs behind".
#[test]
fn an_entry_the_previous_kernel_could_not_unmap_is_cleared_by_the_next() {
    use drivers::iommu::MultiTce;
    use papr_model::papr::hcall::H_HARDWARE;
    for policy in [WarmPolicy::Reuse, WarmPolicy::Remove] {
        let config = ModelConfig {
            page_size_mask: 0x107,
            max_windows: 0,
            default_window_size: MIB,
            ..Profile::Qemu72.config()
        };
        let scenario = Scenario {
            extensions: None,
            multi_tce: MultiTce::Unavailable,
            early_mapping: true,
            warm_restart: Some(policy),
            ..Scenario::new(config, vec![PhysRange { base: PhysAddr(0), size: MIB }]).with_qemu_mmio32()
        };
        let outcome = run(&scenario, |model| {
            for position in [4, 6, 10] {
                model.inject_at(position, H_HARDWARE);
            }
        });
        let default = model_liobn(0);
        assert_eq!(outcome.kept_mapped, [(default, BusAddr(0x1000))], "{policy:?}");
        assert!(outcome.found.is_none() && outcome.pe.ddw.is_none(), "{policy:?}");
        let warm = outcome.warm_report.as_ref().expect("a warm restart ran");
        assert_eq!(warm.inherited_default, Some(Ok(())), "{policy:?}: the inherited window is cleared");
        assert_eq!(check(&scenario, &outcome, Strictness::Reported), Vec::<String>::new(), "{policy:?}");
        assert!(outcome.model.window(default).is_some_and(|w| w.tces.is_empty()), "{policy:?}");
    }
}

/// Fuzzer case (FUZZ_SEED=3, 7 and 12345, shrunk): the first set-up cannot unmap its early
/// buffer, so no DDW is made (the default window is in use). The warm restart clears the
/// default window, removes it and creates a direct window in its slot, which gets the same
/// LIOBN; its one 16 MiB entry maps RAM, not the old 4 KiB buffer. The checker once excused
/// that entry as the kept buffer's and then found RAM unmapped.
#[test]
fn a_direct_window_that_took_the_default_windows_liobn_maps_all_of_ram() {
    use papr_model::papr::hcall::H_HARDWARE;
    let config = ModelConfig {
        page_size_mask: 0x107,
        max_windows: 1,
        default_window_size: MIB,
        window_base: papr_model::WindowBase::Fixed(0),
        ..Profile::Qemu72.config()
    };
    let scenario = Scenario {
        early_mapping: true,
        warm_restart: Some(WarmPolicy::Reuse),
        ..Scenario::new(config, vec![PhysRange { base: PhysAddr(0), size: MIB }]).with_qemu_mmio32()
    };
    let outcome = run(&scenario, |model| {
        model.inject_at(6, H_HARDWARE);
        model.inject_at(4, H_HARDWARE);
    });
    assert_eq!(outcome.kept_mapped, [(model_liobn(0), BusAddr(0x1000))]);
    assert!(outcome.found.is_none() && outcome.warm_error.is_none(), "{:?}", outcome.warm_error);
    let ddw = outcome.pe.ddw.as_ref().expect("the warm restart's DDW");
    assert_eq!((ddw.window.liobn(), ddw.slot), (model_liobn(0), 0));
    assert!(matches!(ddw.mapping, DdwMapping::Direct));
    let window = outcome.model.window(model_liobn(0)).expect("the DDW");
    assert_eq!((window.page_shift, window.tces.len()), (24, 1));
    assert_eq!(check(&scenario, &outcome, Strictness::Reported), Vec::<String>::new());
}

/// Fuzzer case (found while adding the warm restart's clearing of the inherited default
/// window, shrunk): the clear fails twice, so the default window stays in the hypervisor but
/// out of use. A DDW created next to it must not overlap it — the hypervisor here places
/// windows at bus 0 — and the devices must reach their buffers.
#[test]
fn a_default_window_that_will_not_clear_is_neither_used_nor_overlapped() {
    use drivers::iommu::MultiTce;
    use papr_model::papr::hcall::H_HARDWARE;
    let config = ModelConfig {
        page_size_mask: 0x3,
        max_windows: 2,
        default_window_size: MIB,
        tce_budget: Some(2),
        window_base: papr_model::WindowBase::Fixed(0),
        ..Profile::Qemu72.config()
    };
    let scenario = Scenario {
        extensions: None,
        multi_tce: MultiTce::Unavailable,
        warm_restart: Some(WarmPolicy::Reuse),
        ..Scenario::new(config, vec![PhysRange { base: PhysAddr(0), size: MIB }]).with_qemu_mmio32()
    };
    // Calls 3 and 4: the first entry of the inherited default window's clear, and its retry.
    let outcome = run(&scenario, |model| {
        model.inject_at(3, H_HARDWARE);
        model.inject_at(4, H_HARDWARE);
    });
    let warm = outcome.warm_report.as_ref().expect("a warm restart ran");
    assert!(matches!(warm.inherited_default, Some(Err(_))), "{:?}", warm.inherited_default);
    assert!(outcome.pe.default.is_none(), "an uncleared default window is not used");
    let default = outcome.model.window(model_liobn(0)).expect("still in the hypervisor");
    for window in outcome.model.windows().filter(|w| w.liobn != default.liobn) {
        let overlaps = window.bus_base.get() < default.end() && default.bus_base.get() < window.end();
        assert!(!overlaps, "window {} overlaps the default window", window.liobn);
    }
    assert_eq!(check(&scenario, &outcome, Strictness::Reported), Vec::<String>::new());
}

/// A reused window's query failing is reported as a failed query, not as a window with no
/// free windows, no TCEs and no page sizes (it was once an all-zero answer printed as data).
#[test]
fn a_failed_query_on_reuse_is_an_error_not_data() {
    use drivers::iommu::pe::SetUpOutcome;
    use drivers::iommu::pe_report::{pe_lines, Line};
    use papr_model::Fault;
    let scenario = scenario(Profile::Qemu72, WarmPolicy::Reuse);
    let outcome = run(&scenario, |model| {
        model.inject(Fault { kind: CallKind::Query, nth: 2, status: -1, entries_written: 0 });
    });
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let warm = outcome.warm_report.as_ref().expect("a warm restart ran");
    let SetUpOutcome::WarmTakeOver { result: Ok(TakeOver::Reused { ddw: facts, query_error, .. }), .. } =
        &warm.outcome
    else {
        panic!("expected the window reused: {:?}", warm.outcome);
    };
    assert_eq!(facts.query, None);
    assert!(query_error.is_some_and(|e| e.status == -1));
    let platform = scenario.platform();
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &scenario.devices(), scenario.policy);
    let lines = pe_lines(0, &setup, warm, 0, 1);
    let keys: Vec<&str> =
        lines.iter().filter_map(|l| if let Line::Kv(k, _) = l { Some(k.as_str()) } else { None }).collect();
    assert!(keys.contains(&"pe.0.warm.query_error"), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("pe.0.query.")), "a failed query printed as data: {keys:?}");
    assert!(keys.contains(&"pe.0.ddw.liobn"), "{keys:?}");
}
