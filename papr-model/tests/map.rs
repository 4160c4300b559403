//! Direct mapping and clearing against the QEMU model: call counts, batching, unwinding.

use drivers::addr::*;
use drivers::iommu::*;
use std::vec::Vec;

use drivers::iommu::plan::plan_window;
use drivers::iommu::rtas::{BusyWait, DdwRtas, Delay, PeAddress, QueryOutputs};
use drivers::iommu::window::create_window;
use drivers::iommu::TceHcall;
use papr_model::papr::hcall::H_NOT_ENOUGH_RESOURCES;
use papr_model::{
    model_liobn, query_mask_from_pgsz, CallKind, Fault, HypervisorModel, ModelCall, ModelConfig, StuffLimit,
    MODEL_BUID,
};

const PE: PeAddress = PeAddress { config_addr: 0, buid: MODEL_BUID };
const GIB: u64 = 1 << 30;

struct NoDelay;

impl Delay for NoDelay {
    fn wait(&mut self, _: BusyWait) {}
}

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base: PhysAddr(base), size }
}

/// A model with `pgsz` and a direct window created for RAM ending at `ram_end`.
fn model_with_window(pgsz: u64, ram_end: u64) -> (HypervisorModel, DmaWindow) {
    let config = ModelConfig { page_size_mask: query_mask_from_pgsz(pgsz), ..ModelConfig::default() };
    let mut model = HypervisorModel::new(config);
    let query = model.query(PE, QueryOutputs::Six).unwrap();
    let plan = plan_window(&query, ram_end, 64).unwrap();
    let window = create_window(&mut model, &mut NoDelay, PE, &plan).unwrap();
    model.clear_log();
    (model, window)
}

/// (ioba, count) of every H_PUT_TCE_INDIRECT in the log.
fn indirect_calls(model: &HypervisorModel) -> Vec<(u64, usize)> {
    let calls = model.calls().iter();
    calls
        .filter_map(|call| match call {
            ModelCall::Hcall(TceHcall::PutTceIndirect { ioba, count, .. }) => Some((ioba.get(), *count)),
            _ => None,
        })
        .collect()
}

/// The three ranges of a 64K-page test: 2 GiB, a small unaligned one, a single page.
fn ranges_64k() -> [PhysRange; 3] {
    [range(0, 2 * GIB), range(0x1_0000_8000, 0x20_0100), range(0x2_0000_0000, 0x1_0000)]
}

#[test]
fn qemu_72_eight_gib_is_one_indirect_call() {
    let (mut model, window) = model_with_window(0x1211000, 8 * GIB);
    let stats = map_ram(&mut model, &window, &[range(0, 8 * GIB)], MultiTce::Available).unwrap();
    assert_eq!(stats, MapStats { tces: 512, indirect_calls: 1, put_calls: 0, stuff_calls: 0 });
    assert_eq!(indirect_calls(&model), [(1 << 59, 512)]);
    assert_eq!(model.calls().last(), Some(&ModelCall::Sync));
    let seen = model.translate(BusAddr((1 << 59) + 0x1_2345_6789));
    assert_eq!(seen, Some((PhysAddr(0x1_2345_6789), TcePermission::ReadWrite)));
}

#[test]
fn each_range_is_rounded_and_batched_by_512() {
    let (mut model, window) = model_with_window(0x11000, 0x2_0001_0000);
    assert_eq!((window.page_shift(), window.size()), (16, 1 << 34));
    let stats = map_ram(&mut model, &window, &ranges_64k(), MultiTce::Available).unwrap();
    // 2 GiB = 32768 pages = 64 calls; [0x1_0000_0000, 0x1_0021_0000) = 33 pages; one lone page.
    assert_eq!(stats, MapStats { tces: 32768 + 33 + 1, indirect_calls: 65, put_calls: 1, stuff_calls: 0 });
    let indirect = indirect_calls(&model);
    assert!(indirect[..64].iter().all(|&(_, count)| count == 512));
    assert_eq!(indirect[63].0, (1 << 59) + 63 * 512 * 0x1_0000);
    assert_eq!(indirect[64], ((1 << 59) + 0x1_0000_0000, 33));
    assert_eq!(model.count(CallKind::PutTce), 1);
    assert_eq!(model.mapped_entries(), 32768 + 33 + 1);
    // Bytes of the unaligned range are reachable at bus base + physical address.
    let first = model.translate(BusAddr((1 << 59) + 0x1_0000_8000));
    assert_eq!(first, Some((PhysAddr(0x1_0000_8000), TcePermission::ReadWrite)));
    assert!(model.translate(BusAddr((1 << 59) + 0x1_0021_0000)).is_none());
    assert!(model.translate(BusAddr((1 << 59) + 0x1_8000_0000)).is_none());
}

#[test]
fn ranges_not_aligned_to_16m() {
    let (mut model, window) = model_with_window(0x1211000, 8 * GIB);
    let ranges = [range(0x80_0000, 0x100_0000), range(0x1_0000_0010, 0x20)];
    let stats = map_ram(&mut model, &window, &ranges, MultiTce::Available).unwrap();
    assert_eq!((stats.tces, stats.indirect_calls, stats.put_calls), (3, 1, 1));
    assert_eq!(indirect_calls(&model), [(1 << 59, 2)]);
    assert!(model.translate(BusAddr((1 << 59) + 0x1ff_ffff)).is_some());
    assert!(model.translate(BusAddr((1 << 59) + 0x200_0000)).is_none());
    assert!(model.translate(BusAddr((1 << 59) + 0x1_00ff_ffff)).is_some());
}

#[test]
fn indirect_batching_is_exactly_ceil_n_over_512() {
    for pages in [2u64, 511, 512, 513, 1024, 1025, 5000] {
        let (mut model, window) = model_with_window(0x1000, 16 * GIB);
        let stats = map_ram(&mut model, &window, &[range(0, pages << 12)], MultiTce::Available).unwrap();
        let indirect = indirect_calls(&model);
        assert_eq!(indirect.len() as u64, pages.div_ceil(512), "{pages} pages");
        assert_eq!(indirect.iter().map(|&(_, count)| count as u64).sum::<u64>(), pages);
        assert!(indirect.iter().all(|&(_, count)| count <= 512));
        assert_eq!((stats.indirect_calls, stats.tces), (pages.div_ceil(512), pages));
    }
}

#[test]
fn without_multi_tce_only_put_tce_is_used() {
    let (mut model, window) = model_with_window(0x11000, 0x2_0001_0000);
    let stats = map_ram(&mut model, &window, &ranges_64k(), MultiTce::Unavailable).unwrap();
    assert_eq!(stats, MapStats { tces: 32802, indirect_calls: 0, put_calls: 32802, stuff_calls: 0 });
    assert_eq!(model.count(CallKind::PutTce), 32802);
    assert_eq!(model.count(CallKind::PutTceIndirect) + model.count(CallKind::StuffTce), 0);
    assert_eq!(model.mapped_entries(), 32802);
}

#[test]
fn a_failure_anywhere_unwinds_everything() {
    for (kind, nth, entries_written) in [
        (CallKind::PutTceIndirect, 1, 0),
        (CallKind::PutTceIndirect, 2, 300),
        (CallKind::PutTceIndirect, 64, 511),
        (CallKind::PutTceIndirect, 65, 20),
        (CallKind::PutTce, 1, 0),
    ] {
        let (mut model, window) = model_with_window(0x11000, 0x2_0001_0000);
        model.inject(Fault { kind, nth, status: H_NOT_ENOUGH_RESOURCES, entries_written });
        let error = map_ram(&mut model, &window, &ranges_64k(), MultiTce::Available).unwrap_err();
        assert_eq!(model.mapped_entries(), 0, "{kind:?} #{nth}");
        let MapError::Hcall { error: failed, cleanup: None } = error else { panic!("{error:?}") };
        assert_eq!((failed.call.name(), failed.status), (kind_name(kind), H_NOT_ENOUGH_RESOURCES));
        assert!(error.to_string().contains("failed with status -44 (H_NOT_ENOUGH_RESOURCES)"));
        assert_eq!(model.calls().last(), Some(&ModelCall::Sync));
    }
}

fn kind_name(kind: CallKind) -> drivers::iommu::HcallName {
    match kind {
        CallKind::PutTce => drivers::iommu::HcallName::PutTce,
        _ => drivers::iommu::HcallName::PutTceIndirect,
    }
}

#[test]
fn a_failure_without_multi_tce_is_unwound_with_put_tce() {
    for nth in [1, 3, 20000, 32802] {
        let (mut model, window) = model_with_window(0x11000, 0x2_0001_0000);
        model.inject(Fault { kind: CallKind::PutTce, nth, status: -1, entries_written: 0 });
        let error = map_ram(&mut model, &window, &ranges_64k(), MultiTce::Unavailable).unwrap_err();
        assert_eq!(model.mapped_entries(), 0);
        assert_eq!(model.count(CallKind::StuffTce), 0);
        assert!(error.to_string().starts_with("H_PUT_TCE(liobn 0x80000001, ioba "), "{error}");
    }
}

#[test]
fn a_failing_cleanup_is_reported() {
    let (mut model, window) = model_with_window(0x11000, 0x2_0001_0000);
    model.inject(Fault { kind: CallKind::PutTceIndirect, nth: 3, status: -4, entries_written: 0 });
    model.inject(Fault { kind: CallKind::StuffTce, nth: 1, status: -57, entries_written: 0 });
    let error = map_ram(&mut model, &window, &ranges_64k(), MultiTce::Available).unwrap_err();
    assert!(matches!(error, MapError::Hcall { cleanup: Some(HcallError { status: -57, .. }), .. }));
    assert_eq!(
        error.to_string(),
        "H_PUT_TCE_INDIRECT(liobn 0x80000001, ioba 0x800000004000000, 512 TCEs) failed with status -4 \
         (H_PARAMETER); clearing the TCEs written before it failed too: H_STUFF_TCE(liobn 0x80000001, ioba \
         0x800000000000000, tce 0x0, 512 TCEs) failed with status -57 (H_P4)"
    );
}

#[test]
fn ranges_outside_the_window_are_refused_before_any_hcall() {
    let (mut model, window) = model_with_window(0x1211000, 2 * GIB);
    let too_high = [range(0, GIB), range(2 * GIB - 0x1000, 0x2000)];
    let error = map_ram(&mut model, &window, &too_high, MultiTce::Available).unwrap_err();
    assert!(matches!(error, MapError::OutsideWindow { range, .. } if range == too_high[1]));
    assert_eq!(
        error.to_string(),
        "RAM range [0x7ffff000, 0x80001000) does not fit direct DMA window 0x80000001 of 0x80000000 bytes"
    );
    let wrapping = [range(u64::MAX - 0x10, 0x100)];
    assert!(map_ram(&mut model, &window, &wrapping, MultiTce::Available).is_err());
    assert!(model.calls().is_empty());
    // Empty ranges are skipped.
    let stats = map_ram(&mut model, &window, &[range(5 * GIB, 0)], MultiTce::Available).unwrap();
    assert_eq!(stats, MapStats::default());
}

#[test]
fn clearing_the_default_window_stuffs_512_at_a_time() {
    let config = ModelConfig { stuff_limit: StuffLimit::Papr512, ..ModelConfig::default() };
    let mut model = HypervisorModel::new(config);
    let default = DmaWindow::new(model_liobn(0), BusAddr(0), 12, 30).unwrap();
    map_ram(&mut model, &default, &[range(0, GIB)], MultiTce::Available).unwrap();
    assert_eq!(model.mapped_entries(), 262_144);
    model.clear_log();
    let stats = clear_window(&mut model, &default, MultiTce::Available).unwrap();
    assert_eq!((stats.stuff_calls, stats.put_calls), (512, 0));
    assert_eq!(model.count(CallKind::StuffTce), 512);
    let counts = model.calls().iter().filter_map(|call| match call {
        ModelCall::Hcall(TceHcall::StuffTce { count, .. }) => Some(*count),
        _ => None,
    });
    assert!(counts.into_iter().all(|count| count == 512));
    assert_eq!(model.mapped_entries(), 0);
    model.remove(model_liobn(0)).unwrap();
}

#[test]
fn clearing_without_multi_tce_and_failing() {
    let mut model = HypervisorModel::default();
    let default = DmaWindow::new(model_liobn(0), BusAddr(0), 12, 30).unwrap();
    let stats = clear_window(&mut model, &default, MultiTce::Unavailable).unwrap();
    assert_eq!((stats.put_calls, stats.stuff_calls), (262_144, 0));
    model.inject(Fault { kind: CallKind::StuffTce, nth: 2, status: -1, entries_written: 0 });
    let error = clear_window(&mut model, &default, MultiTce::Available).unwrap_err();
    assert_eq!(
        error.call,
        TceHcall::StuffTce { liobn: model_liobn(0), ioba: BusAddr(0x20_0000), tce: Tce::CLEAR, count: 512 }
    );
}

/// RAM in adjacent memory nodes is one span: 4 GiB + 2 GiB of 16 MiB pages is 384 TCEs, one
/// H_PUT_TCE_INDIRECT (Linux maps it in 1 call; mapping node by node took 2). Ranges that share
/// a page, or come unsorted, write each TCE once.
#[test]
fn contiguous_ram_in_several_nodes_is_one_span() {
    let (mut model, window) = model_with_window(0x1211000, 8 * GIB);
    let nodes = [range(0, 4 * GIB), range(4 * GIB, 2 * GIB)];
    let stats = map_ram(&mut model, &window, &nodes, MultiTce::Available).unwrap();
    assert_eq!((stats.tces, stats.indirect_calls), (384, 1));
    assert_eq!(indirect_calls(&model), [(window.bus_base().get(), 384)]);
    let (mut model, window) = model_with_window(0x1211000, 8 * GIB);
    // Out of order, and the second shares its first 16 MiB page with the first's last.
    let nodes = [range(GIB + 0x80_0000, GIB), range(0, GIB + 0x80_0000), range(5 * GIB, 16 << 20)];
    let stats = map_ram(&mut model, &window, &nodes, MultiTce::Available).unwrap();
    // [0, 2 GiB + 8 MiB) rounds to 129 pages (one indirect call), then one page at 5 GiB (a
    // lone page: one H_PUT_TCE): two spans, 130 TCEs.
    assert_eq!((stats.tces, stats.indirect_calls, stats.put_calls), (130, 1, 1));
    assert_eq!(model.mapped_entries(), 130);
    let cleared = clear_ram(&mut model, &window, &nodes, MultiTce::Available).unwrap();
    assert_eq!((cleared.stuff_calls, cleared.put_calls, model.mapped_entries()), (1, 1, 0));
}
