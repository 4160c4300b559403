//! Mapping buffers through a dynamic window against the QEMU model.

use drivers::addr::*;
use drivers::iommu::hcall::TceHcall;
use drivers::iommu::rtas::{DdwRtas, PeAddress};
use drivers::iommu::tce::TcePermission;
use drivers::iommu::*;
use papr_model::{model_liobn, CallKind, Fault, HypervisorModel, ModelCall, DMA64_WINDOW_BASE};

const ALL: DmaMask = DmaMask(u64::MAX);

/// The model with the default window replaced by a `2^window_shift` window of `2^page_shift`
/// pages next to it (at 2^59), managed dynamically.
fn dynamic(page_shift: u32, window_shift: u32, multi_tce: MultiTce) -> (HypervisorModel, IovaWindow) {
    let mut model = HypervisorModel::default();
    let pe = PeAddress { config_addr: 0, buid: model.config().buid };
    let created = model.create(pe, page_shift, window_shift).unwrap();
    let window = DmaWindow::new(created.liobn, created.bus_base, page_shift, window_shift).unwrap();
    model.clear_log();
    (model, IovaWindow::new(window, multi_tce))
}

fn default_window(multi_tce: MultiTce) -> (HypervisorModel, IovaWindow) {
    let window = DmaWindow::new(model_liobn(0), BusAddr(0), 12, 30).unwrap();
    (HypervisorModel::default(), IovaWindow::new(window, multi_tce))
}

#[test]
fn the_sub_page_offset_is_kept() {
    for page_shift in [21, 24] {
        let (mut model, mut dynamic) = dynamic(page_shift, 34, MultiTce::Available);
        let page = 1u64 << page_shift;
        let phys = PhysAddr(0x1234_5678);
        let mapping = dynamic.map_buffer(&mut model, phys, 0x100, DmaDirection::Bidirectional, ALL).unwrap();
        assert_eq!(mapping.iova().get() % page, phys.get() % page);
        assert_eq!(model.translate(mapping.iova()), Some((phys, TcePermission::ReadWrite)));
        assert_eq!(model.translate(BusAddr(mapping.iova().get() + 0xff)).unwrap().0, PhysAddr(0x1234_5777));
        assert_eq!((mapping.pages(), mapping.len()), (1, 0x100));
        assert_eq!((model.count(CallKind::PutTce), model.count(CallKind::PutTceIndirect)), (1, 0));
        assert_eq!(model.calls().last(), Some(&ModelCall::Sync));
        dynamic.unmap(&mut model, mapping).unwrap();
        assert_eq!((model.mapped_entries(), dynamic.in_use()), (0, 0));
    }
}

#[test]
fn a_buffer_across_a_page_boundary_takes_two_entries() {
    let (mut model, mut dynamic) = dynamic(24, 34, MultiTce::Available);
    let phys = PhysAddr(0xfff_ff00);
    let mapping = dynamic.map_buffer(&mut model, phys, 0x200, DmaDirection::ToDevice, ALL).unwrap();
    assert_eq!(mapping.pages(), 2);
    assert_eq!(model.count(CallKind::PutTceIndirect), 1);
    let second = BusAddr(mapping.iova().get() + 0x100);
    assert_eq!(model.translate(second), Some((PhysAddr(0x1000_0000), TcePermission::Read)));
    assert!(mapping.iova().get() >= DMA64_WINDOW_BASE);
    dynamic.unmap(&mut model, mapping).unwrap();
    assert_eq!(model.count(CallKind::StuffTce), 1);
    assert_eq!(model.mapped_entries(), 0);
}

#[test]
fn large_buffers_are_batched_and_fall_back_without_multi_tce() {
    let (mut model, mut dynamic) = default_window(MultiTce::Available);
    let mapping =
        dynamic.map_buffer(&mut model, PhysAddr(0x80_0000), 600 << 12, DmaDirection::FromDevice, ALL);
    let mapping = mapping.unwrap();
    assert_eq!(mapping.iova(), BusAddr(0x1000)); // never 0 in a window based at bus 0
    let counts: Vec<usize> = model
        .calls()
        .iter()
        .filter_map(|call| match call {
            ModelCall::Hcall(TceHcall::PutTceIndirect { count, .. }) => Some(*count),
            _ => None,
        })
        .collect();
    assert_eq!(counts, [512, 88]);
    assert_eq!(model.mapped_entries(), 600);
    dynamic.unmap(&mut model, mapping).unwrap();
    assert_eq!((model.count(CallKind::StuffTce), model.mapped_entries()), (2, 0));

    let (mut model, mut dynamic) = default_window(MultiTce::Unavailable);
    let mapping =
        dynamic.map_buffer(&mut model, PhysAddr(0x80_0000), 600 << 12, DmaDirection::FromDevice, ALL);
    dynamic.unmap(&mut model, mapping.unwrap()).unwrap();
    assert_eq!(model.count(CallKind::PutTce), 1200);
    assert_eq!(model.count(CallKind::PutTceIndirect) + model.count(CallKind::StuffTce), 0);
    assert_eq!(model.mapped_entries(), 0);
}

#[test]
fn many_mappings_leave_no_stale_tce() {
    let (mut model, mut dynamic) = dynamic(16, 34, MultiTce::Available);
    let mut mappings = Vec::new();
    for i in 0..50u64 {
        let phys = PhysAddr(i * 0x12_3456 + 0x10);
        let direction = [DmaDirection::ToDevice, DmaDirection::FromDevice][(i % 2) as usize];
        mappings.push(dynamic.map_buffer(&mut model, phys, 0x1_0000 * (i % 5) + 8, direction, ALL).unwrap());
    }
    for mapping in &mappings {
        assert_eq!(
            model.translate(mapping.iova()).map(|t| t.0.get() % 0x1_0000),
            Some(mapping.iova().get() % 0x1_0000)
        );
    }
    let pages: u64 = mappings.iter().map(Mapping::pages).sum();
    assert_eq!((dynamic.in_use(), model.mapped_entries() as u64), (pages, pages));
    for mapping in mappings {
        dynamic.unmap(&mut model, mapping).unwrap();
    }
    assert_eq!((dynamic.in_use(), model.mapped_entries()), (0, 0));
}

#[test]
fn a_failed_map_is_undone() {
    let (mut model, mut dynamic) = default_window(MultiTce::Available);
    model.inject(Fault { kind: CallKind::PutTceIndirect, nth: 2, status: -44, entries_written: 100 });
    let error =
        dynamic.map_buffer(&mut model, PhysAddr(0), 1000 << 12, DmaDirection::ToDevice, ALL).unwrap_err();
    assert!(matches!(error, BufferError::Hcall { error: HcallError { status: -44, .. }, cleanup: None }));
    assert_eq!((model.mapped_entries(), dynamic.in_use()), (0, 0));
    assert_eq!(
        error.to_string(),
        "mapping DMA buffer: H_PUT_TCE_INDIRECT(liobn 0x80000000, ioba 0x201000, 488 TCEs) failed with status -44 \
         (H_NOT_ENOUGH_RESOURCES); its TCEs were cleared"
    );
    // A failing clear keeps the IOVAs reserved.
    model.inject(Fault { kind: CallKind::PutTce, nth: 1, status: -1, entries_written: 0 });
    model.inject(Fault { kind: CallKind::PutTce, nth: 2, status: -1, entries_written: 0 });
    let error = dynamic.map_buffer(&mut model, PhysAddr(0), 8, DmaDirection::ToDevice, ALL).unwrap_err();
    assert!(matches!(error, BufferError::Hcall { cleanup: Some(_), .. }));
    assert_eq!(dynamic.in_use(), 1);
}

#[test]
fn a_failed_unmap_hands_the_mapping_back() {
    let (mut model, mut dynamic) = default_window(MultiTce::Available);
    let mapping =
        dynamic.map_buffer(&mut model, PhysAddr(0x5000), 0x3000, DmaDirection::ToDevice, ALL).unwrap();
    model.inject(Fault { kind: CallKind::StuffTce, nth: 1, status: -1, entries_written: 0 });
    let error = dynamic.unmap(&mut model, mapping).unwrap_err();
    assert!(matches!(error.reason, UnmapReason::Hcall(HcallError { status: -1, .. })));
    assert_eq!(dynamic.in_use(), 3);
    assert!(error.to_string().starts_with("unmapping IOVA 0x1000 of window 0x80000000: H_STUFF_TCE("));
    dynamic.unmap(&mut model, error.mapping).unwrap();
    assert_eq!((dynamic.in_use(), model.mapped_entries()), (0, 0));
}

#[test]
fn mappings_belong_to_their_window() {
    let (mut model, mut first) = default_window(MultiTce::Available);
    let (_, mut second) = dynamic(24, 34, MultiTce::Available);
    let mapping = first.map_buffer(&mut model, PhysAddr(0x5000), 0x10, DmaDirection::ToDevice, ALL).unwrap();
    let error = second.unmap(&mut model, mapping).unwrap_err();
    assert_eq!(error.reason, UnmapReason::WrongWindow { window: model_liobn(1) });
    first.unmap(&mut model, error.mapping).unwrap();
}

#[test]
fn bad_requests_touch_nothing() {
    let (mut model, mut dynamic) = dynamic(24, 34, MultiTce::Available);
    let masked =
        dynamic.map_buffer(&mut model, PhysAddr(0), 8, DmaDirection::ToDevice, DmaMask::from_bits(48));
    assert!(matches!(masked, Err(BufferError::Iova(IovaError::NoSpace { .. }))));
    let empty = dynamic.map_buffer(&mut model, PhysAddr(0), 0, DmaDirection::ToDevice, ALL);
    assert_eq!(empty, Err(BufferError::Empty));
    let wrapping = dynamic.map_buffer(&mut model, PhysAddr(u64::MAX - 4), 8, DmaDirection::ToDevice, ALL);
    assert!(matches!(wrapping, Err(BufferError::PastEndOfMemory { .. })));
    let everything = dynamic.map_buffer(&mut model, PhysAddr(0), u64::MAX, DmaDirection::ToDevice, ALL);
    assert!(matches!(everything, Err(BufferError::PastEndOfMemory { .. })));
    let last_page = dynamic.map_buffer(&mut model, PhysAddr(u64::MAX - 4), 4, DmaDirection::ToDevice, ALL);
    assert!(matches!(last_page, Err(BufferError::PastEndOfMemory { .. })));
    let too_big = dynamic.map_buffer(&mut model, PhysAddr(0), 1 << 35, DmaDirection::ToDevice, ALL);
    assert!(matches!(too_big, Err(BufferError::Iova(IovaError::NoSpace { pages: 2048, .. }))));
    assert!(model.calls().is_empty());
    assert_eq!(dynamic.in_use(), 0);
}
