//! Memory hot-plugged at run time, against the model: a direct DDW sized to the hot-plug
//! maximum gets exactly the new range's TCEs (⌈TCEs/512⌉ H_PUT_TCE_INDIRECT calls), and memory
//! about to leave has exactly its TCEs cleared (H_STUFF_TCE ≤ 512), boot RAM untouched; a
//! window that maps per buffer needs no change.

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::HotRam;
use drivers::iommu::MultiTce;
use drivers::iommu::TceHcall;
use papr_model::scenario::{run, Scenario};
use papr_model::{CallKind, ModelCall, ModelConfig, Profile};

const GIB: u64 = 1 << 30;

#[test]
fn hot_added_memory_is_mapped_and_cleared_exactly() {
    // 2 GiB of boot RAM, 8 GiB possible: a direct 8 GiB window of 16 MiB pages.
    let ram = vec![PhysRange { base: PhysAddr(0), size: 2 * GIB }];
    let scenario = Scenario { ram_end: 8 * GIB, ..Scenario::new(Profile::Qemu72.config(), ram) };
    let mut outcome = run(&scenario, |_| {});
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    let (liobn, base) = (ddw.window.liobn(), ddw.window.bus_base().get());
    assert_eq!(ddw.plan.window_shift, 33);
    outcome.model.clear_log();
    let before = outcome.model.window(liobn).unwrap().tces.len();
    // 1 GiB at 2 GiB: 64 TCEs in one call.
    let dimm = PhysRange { base: PhysAddr(2 * GIB), size: GIB };
    let added = outcome.pe.map_hot_added(&mut outcome.model, dimm, MultiTce::Available).unwrap();
    let HotRam::Direct { stats, .. } = added else { panic!("{added:?}") };
    assert_eq!((stats.tces, stats.indirect_calls), (64, 1));
    assert_eq!(outcome.model.window(liobn).unwrap().tces.len(), before + 64);
    let writes: Vec<_> = outcome
        .model
        .calls()
        .iter()
        .filter_map(|c| match c {
            ModelCall::Hcall(TceHcall::PutTceIndirect { ioba, count, .. }) => Some((ioba.get(), *count)),
            _ => None,
        })
        .collect();
    assert_eq!(writes, [(base + 2 * GIB, 64)]);
    // The device reaches the new memory at bus = physical + base.
    assert_eq!(
        outcome.model.translate(BusAddr(base + 2 * GIB + 0x1234)).map(|t| t.0),
        Some(PhysAddr(2 * GIB + 0x1234))
    );
    outcome.model.clear_log();
    let cleared = outcome.pe.clear_hot_removed(&mut outcome.model, dimm, MultiTce::Available).unwrap();
    assert!(matches!(cleared, HotRam::Direct { .. }), "{cleared:?}");
    assert_eq!(outcome.model.window(liobn).unwrap().tces.len(), before, "exactly the DIMM's entries cleared");
    assert_eq!(outcome.model.count(CallKind::StuffTce), 1);
    assert!(outcome.model.translate(BusAddr(base + 2 * GIB)).is_none());
    assert!(outcome.model.translate(BusAddr(base + GIB)).is_some(), "boot RAM still mapped");
}

#[test]
fn a_window_that_maps_per_buffer_needs_no_change() {
    // A 1 GiB largest block for 256 MiB present and 64 GiB possible: hybrid.
    let config = ModelConfig { tce_budget: Some(64), ..Profile::Qemu72.config() };
    let ram = vec![PhysRange { base: PhysAddr(0), size: 256 << 20 }];
    let scenario = Scenario { ram_end: 64 * GIB, ..Scenario::new(config, ram) };
    let mut outcome = run(&scenario, |_| {});
    outcome.model.clear_log();
    let dimm = PhysRange { base: PhysAddr(2 * GIB), size: GIB };
    let added = outcome.pe.map_hot_added(&mut outcome.model, dimm, MultiTce::Available).unwrap();
    assert!(matches!(added, HotRam::PerBuffer { .. }), "{added:?}");
    assert!(outcome.model.calls().is_empty());
}

#[test]
fn a_ddw_whose_phb_goes_is_cleared_then_removed() {
    let ram = vec![PhysRange { base: PhysAddr(0), size: 2 * GIB }];
    let scenario = Scenario::new(Profile::Qemu72.config(), ram);
    let mut outcome = run(&scenario, |_| {});
    let liobn = outcome.pe.ddw.as_ref().expect("a DDW").window.liobn();
    outcome.model.clear_log();
    let mut state = drivers::dma::PeState::new(outcome.pe, outcome.model);
    let removed = state.remove_ddw(MultiTce::Available, &mut papr_model::scenario::CountingDelay::default());
    assert_eq!(removed, Ok(Some(liobn)));
    let model = state.hypervisor();
    assert!(model.window(liobn).is_none(), "the window is gone");
    let kinds: Vec<CallKind> = model.calls().iter().map(|c| c.kind()).collect();
    assert_eq!(kinds.first(), Some(&CallKind::StuffTce), "cleared first: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == CallKind::Remove).count(), 1);
    assert!(state.dma().ddw.is_none() && state.dma().default.is_some());
    assert_eq!(
        state.remove_ddw(MultiTce::Available, &mut papr_model::scenario::CountingDelay::default()),
        Ok(None)
    );
}
