//! Warm restart (kexec): the second set-up finds the first one's window through a
//! [`Handover`] and reuses it or clears and removes it — no leaked window, no stale entry
//! (papr-ddw-facts §1.9, §6.3).

use drivers::iommu::pe::PeSetUp;
use drivers::iommu::ddw::SingleWindowPath;
use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::PeDma;
use drivers::iommu::ddw::{enable_ddw, DdwMapping, DefaultWindow, PeRequest};
use drivers::iommu::handover::{ensure_default, take_over, Handover, TakeOver, WarmPolicy};
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
    // The previous kernel replaced the default window and did not say so (§6.3).
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
        multi_tce: drivers::iommu::MultiTce::Available,
        default: Some(DefaultWindow { window: default, live_pages: 0, narrow_devices: 0 }),
        single_window: SingleWindowPath::WhenNoneFree,
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
