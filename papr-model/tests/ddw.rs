//! Enabling a DDW against the QEMU-7.2 model: page size, sizing, counts, fallbacks, unwinding.

use drivers::addr::*;
use drivers::addr::{BusAddr, PhysAddr};
use drivers::devtree::dma_window::DdwExtensions;
use drivers::iommu::ddw::SingleWindowPath;
use drivers::iommu::ddw::*;
use drivers::iommu::plan::WindowLimit;
use drivers::iommu::rtas::BusyWait;
use drivers::iommu::tce::TcePermission;
use drivers::iommu::*;
use papr_model::papr::rtas::HARDWARE_ERROR as RTAS_HARDWARE_ERROR;
use papr_model::{
    model_liobn, query_mask_from_pgsz, CallKind, Fault, HypervisorModel, ModelConfig, DMA64_WINDOW_BASE,
    MODEL_BUID,
};

const GIB: u64 = 1 << 30;
const PE: PeAddress = PeAddress { config_addr: 0x800, buid: MODEL_BUID };

struct NoDelay;

impl Delay for NoDelay {
    fn wait(&mut self, _: BusyWait) {}
}

fn range(base: u64, size: u64) -> PhysRange {
    PhysRange { base: PhysAddr(base), size }
}

/// QEMU 7.2's `ibm,ddw-extensions`: <2, reset token, 1>.
fn qemu_extensions() -> DdwExtensions {
    DdwExtensions { cells: vec![2, 0x2b, 1] }
}

fn request<'a>(ram: &'a [PhysRange], ext: Option<&'a DdwExtensions>, ram_end: u64) -> PeRequest<'a> {
    PeRequest {
        pe: PE,
        extensions: ext,
        ram,
        ram_end,
        device_mask_bits: 64,
        addressing: drivers::iommu::ddw::Addressing::Full,
        multi_tce: MultiTce::Available,
        default: Some(DefaultWindow { window: default_window(), live_pages: 0, narrow_devices: 0 }),
        single_window: SingleWindowPath::WhenNoneFree,
        max_window_shift: None,
        iova_holes: &[],
    }
}

/// QEMU's default window: LIOBN …00, bus 0, 1 GiB of 4 KiB pages.
fn default_window() -> DmaWindow {
    DmaWindow::new(model_liobn(0), BusAddr(0), 12, 30).unwrap()
}

fn model(pgsz: u64) -> HypervisorModel {
    HypervisorModel::new(ModelConfig { page_size_mask: query_mask_from_pgsz(pgsz), ..ModelConfig::default() })
}

/// Every page of every range translates to itself through the window, read-write.
fn assert_direct_map(model: &HypervisorModel, ddw: &Ddw, ranges: &[PhysRange]) {
    let base = ddw.window.bus_base().get();
    for r in ranges {
        for phys in [r.base.get(), r.base.get() + r.size / 2, r.end() - 1] {
            assert_eq!(
                model.translate(BusAddr(base + phys)),
                Some((PhysAddr(phys), TcePermission::ReadWrite)),
                "phys {phys:#x}"
            );
        }
    }
}

#[test]
fn qemu_default_is_one_direct_16m_window_per_pe() {
    let ext = qemu_extensions();
    for gib in [2, 4, 8, 16] {
        let ram = [range(0, gib * GIB)];
        let mut hv = model(0x1211000);
        let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), gib * GIB)).unwrap();
        let tces = (gib * GIB) >> 24;
        assert_eq!((ddw.plan.page_shift, ddw.window.size()), (24, gib * GIB));
        assert_eq!(ddw.window.bus_base(), BusAddr(DMA64_WINDOW_BASE));
        assert_eq!(ddw.window.liobn(), model_liobn(1));
        assert_eq!(ddw.outputs, QueryOutputs::Six);
        assert_eq!(
            (ddw.stats.tces, ddw.stats.indirect_calls, ddw.stats.put_calls),
            (tces, tces.div_ceil(512), 0)
        );
        assert_eq!(ddw.direct_offset(), Some(DMA64_WINDOW_BASE));
        assert_eq!((ddw.slot, ddw.ranges), (1, 1));
        assert_eq!((hv.count(CallKind::Query), hv.count(CallKind::Create)), (1, 1));
        assert_eq!(hv.count(CallKind::PutTceIndirect) as u64, tces.div_ceil(512));
        assert_eq!((hv.count(CallKind::Remove), hv.count(CallKind::StuffTce)), (0, 0));
        assert_direct_map(&hv, &ddw, &ram);
        // The default window is untouched and still there.
        assert!(hv.window(model_liobn(0)).is_some());
    }
}

#[test]
fn five_outputs_without_the_extension() {
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap();
    assert_eq!((ddw.outputs, ddw.query.unwrap().largest_block), (QueryOutputs::Five, 1 << 31));
    let short = DdwExtensions { cells: vec![1, 0x2b] };
    let mut hv = model(0x1211000);
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&short), 2 * GIB)).unwrap();
    assert_eq!(ddw.outputs, QueryOutputs::Five);
}

#[test]
fn page_size_follows_pgsz_and_counts_follow_the_formula() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    for (pgsz, shift) in [(0x11000, 16), (0x1000, 12), (0x201000, 21)] {
        let mut hv = model(pgsz);
        let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 2 * GIB)).unwrap();
        let tces = (2 * GIB) >> shift;
        assert_eq!(ddw.plan.page_shift, shift);
        assert_eq!(ddw.stats.indirect_calls, tces.div_ceil(512), "pgsz {pgsz:#x}");
        assert_eq!(hv.mapped_entries() as u64, tces);
    }
}

#[test]
fn hotplug_sizes_the_window_but_maps_only_present_ram() {
    let ext = qemu_extensions();
    // 2 GiB present, maxmem 8 GiB: the window covers 8 GiB, 128 TCEs are written.
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 8 * GIB)).unwrap();
    assert_eq!((ddw.plan.window_shift, ddw.stats.tces), (33, 128));
    assert_eq!(hv.translate(BusAddr(DMA64_WINDOW_BASE + 3 * GIB)), None);
}

#[test]
fn each_ram_range_is_mapped_on_its_own() {
    let ext = qemu_extensions();
    // Two NUMA-like ranges with a hole, the second not 16M-aligned at its end.
    let ram = [range(0, GIB), range(4 * GIB, GIB + 0x10_0000)];
    let mut hv = model(0x1211000);
    let end = ram[1].end();
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), end)).unwrap();
    assert_eq!(ddw.ranges, 2);
    assert_eq!(ddw.stats.tces, 64 + 65);
    assert_eq!(ddw.stats.indirect_calls, 2);
    assert_direct_map(&hv, &ddw, &ram);
    assert_eq!(hv.translate(BusAddr(DMA64_WINDOW_BASE + 2 * GIB)), None);
}

#[test]
fn without_multi_tce_every_tce_is_one_put() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x11000);
    let req = PeRequest { multi_tce: MultiTce::Unavailable, ..request(&ram, Some(&ext), 2 * GIB) };
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap();
    assert_eq!((ddw.stats.put_calls, ddw.stats.indirect_calls), (32768, 0));
    assert_eq!((hv.count(CallKind::PutTce), hv.count(CallKind::PutTceIndirect)), (32768, 0));
    assert_direct_map(&hv, &ddw, &ram);
}

#[test]
fn a_capped_window_becomes_dynamic() {
    let ext = qemu_extensions();
    let ram = [range(0, 4 * GIB)];
    let mut hv = model(0x1211000);
    let req = PeRequest { device_mask_bits: 31, ..request(&ram, Some(&ext), 4 * GIB) };
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap();
    assert_eq!((ddw.plan.window_shift, ddw.plan.limit), (31, WindowLimit::DeviceMask));
    assert!(matches!(ddw.mapping, DdwMapping::Dynamic(_)));
    assert_eq!((ddw.direct_offset(), ddw.stats.tces, hv.mapped_entries()), (None, 0, 0));
    assert_eq!(hv.count(CallKind::PutTceIndirect), 0);
}

#[test]
fn a_dynamic_window_no_larger_than_the_default_is_not_created() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    let req = PeRequest { device_mask_bits: 30, ..request(&ram, Some(&ext), 2 * GIB) };
    let error = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap_err();
    assert_eq!(error, DdwError::NoGain { window_size: GIB, default_size: GIB, created: None, removal: None });
    assert!(error.to_string().contains("keeping the default window"), "{error}");
    assert_eq!(hv.count(CallKind::Create), 0);
    // On the single-window path the default window is not even cleared.
    let mut hv = model(0x1211000);
    let req = PeRequest { single_window: SingleWindowPath::Always, ..req };
    assert!(matches!(enable_ddw(&mut hv, &mut NoDelay, &req), Err(DdwError::NoGain { .. })));
    assert_eq!(hv.count(CallKind::StuffTce) + hv.count(CallKind::Remove), 0);
}

#[test]
fn query_failure_and_no_window_leave_the_pe_alone() {
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    hv.inject(Fault { kind: CallKind::Query, nth: 1, status: -3, entries_written: 0 });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap_err();
    assert!(matches!(error, DdwError::Query(e) if e.status == -3), "{error:?}");
    assert!(error.to_string().contains("ibm,query-pe-dma-window"), "{error}");
    assert_eq!(hv.count(CallKind::Create), 0);
    // Both windows in use and no reset extension: no removal, no create is attempted.
    let mut hv = model(0x1211000);
    enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap();
    hv.clear_log();
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap_err();
    let refusal = SingleWindowRefusal::NoResetExtension;
    assert!(matches!(error, DdwError::SingleWindowRefused { why, .. } if why == refusal), "{error:?}");
    assert!(error.to_string().contains("0 windows available"), "{error}");
    assert_eq!((hv.count(CallKind::Create), hv.count(CallKind::Remove)), (0, 0));
    // No page size the kernel knows.
    let mut hv = HypervisorModel::new(ModelConfig { page_size_mask: 0, ..ModelConfig::default() });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap_err();
    assert!(matches!(error, DdwError::Plan { .. }), "{error:?}");
    assert_eq!(hv.count(CallKind::Create), 0);
}

#[test]
fn create_failure_is_reported_with_the_call() {
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    hv.inject(Fault { kind: CallKind::Create, nth: 1, status: -1, entries_written: 0 });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("ibm,create-pe-dma-window") && text.contains("-1"), "{text}");
    assert_eq!(hv.windows().count(), 1);
    assert_eq!(hv.count(CallKind::PutTceIndirect), 0);
}

#[test]
fn a_failing_map_is_cleared_and_the_window_removed() {
    let ext = qemu_extensions();
    // 4 GiB of 64K pages = 128 indirect calls; the 5th fails after 7 entries.
    let ram = [range(0, 4 * GIB)];
    let mut hv = model(0x11000);
    hv.inject(Fault { kind: CallKind::PutTceIndirect, nth: 5, status: -44, entries_written: 7 });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 4 * GIB)).unwrap_err();
    let DdwError::Map { window, error: map_error, removal } = &error else { panic!("{error:?}") };
    assert_eq!(*removal, None);
    assert_eq!(window.liobn(), model_liobn(1));
    assert!(matches!(map_error, MapError::Hcall { cleanup: None, .. }), "{map_error:?}");
    let text = error.to_string();
    assert!(
        text.contains("H_PUT_TCE_INDIRECT") && text.contains("-44") && text.contains("removed"),
        "{text}"
    );
    // Back to the default window only, nothing mapped, the clears chunked by 512.
    assert_eq!(hv.windows().map(|w| w.liobn).collect::<Vec<_>>(), [model_liobn(0)]);
    assert_eq!(hv.mapped_entries(), 0);
    assert_eq!(hv.count(CallKind::Remove), 1);
    assert_eq!(hv.count(CallKind::StuffTce), 5);
}

#[test]
fn a_failing_remove_is_reported_too() {
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    hv.inject(Fault { kind: CallKind::PutTceIndirect, nth: 1, status: -4, entries_written: 0 });
    hv.inject(Fault {
        kind: CallKind::Remove,
        nth: 1,
        status: RTAS_HARDWARE_ERROR.into(),
        entries_written: 0,
    });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, None, 2 * GIB)).unwrap_err();
    assert!(matches!(error, DdwError::Map { removal: Some(_), .. }), "{error:?}");
    assert!(error.to_string().contains("removing the window failed too"), "{error}");
}

/// A PowerVM-VF-like PE: one window at a time, 64K pages offered.
fn single_window_model() -> HypervisorModel {
    HypervisorModel::new(ModelConfig { max_windows: 1, page_size_mask: 0x3, ..ModelConfig::default() })
}

#[test]
fn single_window_pe_replaces_its_default_window_in_slot_0() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    let mut hv = single_window_model();
    // Something stale in the default window: it must be cleared before the removal.
    hv.put_tce(
        model_liobn(0),
        BusAddr(0x5000),
        drivers::iommu::Tce::new(PhysAddr(0x9000), drivers::iommu::TcePermission::ReadWrite, 12).unwrap(),
    )
    .unwrap();
    hv.clear_log();
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 2 * GIB)).unwrap();
    assert_eq!(ddw.slot, 0);
    // Nothing else is active, so the window lands at bus address 0 with the freed LIOBN.
    assert_eq!((ddw.window.bus_base(), ddw.window.liobn()), (BusAddr(0), model_liobn(0)));
    assert_eq!(ddw.direct_offset(), Some(0));
    assert_eq!(hv.windows().count(), 1);
    let kinds: Vec<CallKind> = hv.calls().iter().map(|c| c.kind()).collect();
    let first_stuff = kinds.iter().position(|k| *k == CallKind::StuffTce).unwrap();
    let remove = kinds.iter().position(|k| *k == CallKind::Remove).unwrap();
    assert!(first_stuff < remove, "{kinds:?}");
    // 2^18 default TCEs cleared 512 at a time.
    assert_eq!(hv.count(CallKind::StuffTce), 512);
    assert_eq!(hv.count(CallKind::Query), 2);
    assert_direct_map(&hv, &ddw, &ram);
    assert_eq!(hv.translate(BusAddr(0x5000)), Some((PhysAddr(0x5000), TcePermission::ReadWrite)));
}

#[test]
fn single_window_refusals_keep_the_default_window() {
    let ram = [range(0, 2 * GIB)];
    let ext = qemu_extensions();
    let no_reset = DdwExtensions { cells: vec![0] };
    let in_use = PeRequest {
        default: Some(DefaultWindow { window: default_window(), live_pages: 3, narrow_devices: 0 }),
        ..request(&ram, Some(&ext), 2 * GIB)
    };
    let needed = PeRequest {
        default: Some(DefaultWindow { window: default_window(), live_pages: 0, narrow_devices: 1 }),
        ..request(&ram, Some(&ext), 2 * GIB)
    };
    let no_default = PeRequest { default: None, ..request(&ram, Some(&ext), 2 * GIB) };
    for (req, why) in [
        (request(&ram, Some(&no_reset), 2 * GIB), SingleWindowRefusal::NoResetExtension),
        (request(&ram, None, 2 * GIB), SingleWindowRefusal::NoResetExtension),
        (in_use, SingleWindowRefusal::DefaultInUse { pages: 3 }),
        (needed, SingleWindowRefusal::DefaultNeeded { devices: 1 }),
        (no_default, SingleWindowRefusal::NoDefaultWindow),
    ] {
        let mut hv = single_window_model();
        let error = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap_err();
        assert!(matches!(error, DdwError::SingleWindowRefused { why: w, .. } if w == why), "{error:?}");
        assert!(error.to_string().contains("0 windows available"), "{error}");
        assert_eq!(hv.count(CallKind::Remove) + hv.count(CallKind::StuffTce) + hv.count(CallKind::Create), 0);
        assert!(hv.window(model_liobn(0)).is_some());
    }
}

#[test]
fn a_failure_after_the_removal_resets_and_checks_the_default_window() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    for (kind, nth) in [(CallKind::Query, 2), (CallKind::Create, 1), (CallKind::PutTceIndirect, 3)] {
        let mut hv = single_window_model();
        hv.inject(Fault { kind, nth, status: -1, entries_written: 0 });
        let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 2 * GIB)).unwrap_err();
        let DdwError::AfterRemoval { restore, .. } = &error else { panic!("{kind:?}: {error:?}") };
        assert_eq!(restore.reset, None);
        assert!(restore.default_back, "{kind:?}");
        assert_eq!(restore.windows_available, Some(0));
        assert!(error.to_string().contains("restored it"), "{error}");
        assert_eq!(hv.count(CallKind::Reset), 1);
        let windows: Vec<_> = hv.windows().map(|w| (w.liobn, w.tce_count)).collect();
        assert_eq!(windows, [(model_liobn(0), 1 << 18)], "{kind:?}");
        assert_eq!(hv.mapped_entries(), 0);
    }
    // The reset failing too is said plainly.
    let mut hv = single_window_model();
    hv.inject(Fault { kind: CallKind::Create, nth: 1, status: -1, entries_written: 0 });
    hv.inject(Fault { kind: CallKind::Reset, nth: 1, status: -1, entries_written: 0 });
    let error = enable_ddw(&mut hv, &mut NoDelay, &request(&ram, Some(&ext), 2 * GIB)).unwrap_err();
    assert!(error.to_string().contains("the PE has no DMA window"), "{error}");
}

#[test]
fn a_forced_single_window_on_qemu_lands_at_bus_0() {
    let ext = qemu_extensions();
    let ram = [range(0, 2 * GIB)];
    let mut hv = model(0x1211000);
    let req = PeRequest { single_window: SingleWindowPath::Always, ..request(&ram, Some(&ext), 2 * GIB) };
    let ddw = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap();
    assert_eq!((ddw.slot, ddw.window.bus_base(), ddw.query.unwrap().windows_available), (0, BusAddr(0), 2));
    assert_eq!(hv.windows().count(), 1);
}

#[test]
fn a_dynamic_window_at_bus_0_avoids_mmio_and_msi() {
    let ext = qemu_extensions();
    // 8 GiB of RAM for a 32-bit PE: a dynamic 4 GiB window of 16M pages at bus 0, which
    // contains QEMU's 32-bit MMIO window [2 GiB, 4 GiB).
    let ram = [range(0, 8 * GIB)];
    let mut hv = model(0x1211000);
    let holes = [(BusAddr(0x8000_0000), 0x8000_0000), (BusAddr(0x400_0000_0000), 0x1_0000)];
    let req = PeRequest {
        single_window: SingleWindowPath::Always,
        max_window_shift: None,
        device_mask_bits: 32,
        iova_holes: &holes,
        ..request(&ram, Some(&ext), 8 * GIB)
    };
    let mut ddw = enable_ddw(&mut hv, &mut NoDelay, &req).unwrap();
    assert_eq!((ddw.window.bus_base(), ddw.plan.window_shift), (BusAddr(0), 32));
    let DdwMapping::Dynamic(dynamic) = &mut ddw.mapping else { panic!("{:?}", ddw.mapping) };
    let before = dynamic.allocator_mut().free_pages();
    // Every page the allocator can hand out lies below the MMIO window.
    let mut handed = Vec::new();
    while let Ok(iova) = dynamic.allocator_mut().alloc(1, 1, drivers::iommu::DmaMask::from_bits(32)) {
        assert!(iova.get() != 0 && iova.get() < 0x8000_0000, "{iova}");
        handed.push(iova);
    }
    assert_eq!(handed.len() as u64, before);
    assert!((127..=128).contains(&before), "{before}");
}
