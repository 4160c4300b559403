//! The `powervm` profile (a dedicated adapter on PowerVM, shapes from logs Linux developers
//! posted): 2 GiB default window of 4 KiB pages, 2 MiB IOMMU pages, DDWs at bus 2^59, a largest
//! block that caps the window, MMIO that may sit inside a DDW's bus range.

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::dma::{DeviceDma, DmaTranslation};
use drivers::iommu::ddw::DdwMapping;
use drivers::iommu::plan::{WindowLimit, WindowMode};
use drivers::iommu::{DmaDirection, DmaMask};
use papr_model::scenario::{check, run, ModelMemory, Scenario, Strictness};
use papr_model::{CallKind, ModelConfig, Profile, DMA64_WINDOW_BASE};

const GIB: u64 = 1 << 30;

fn ram(size: u64) -> Vec<PhysRange> {
    vec![PhysRange { base: PhysAddr(0), size }]
}

#[test]
fn powervm_gives_a_direct_window_of_2m_pages_at_2_59() {
    let scenario = Scenario::new(Profile::Powervm.config(), ram(64 * GIB));
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let default = outcome.pe.default.as_ref().expect("the default window stays");
    assert_eq!((default.window().size(), default.window().page_shift()), (2 * GIB, 12));
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!(
        (ddw.slot, ddw.window.bus_base(), ddw.window.page_shift()),
        (1, BusAddr(DMA64_WINDOW_BASE), 21)
    );
    assert_eq!((ddw.plan.window_shift, ddw.mapping.mode()), (36, WindowMode::Direct));
    // 64 GiB of 2 MiB pages: 32768 TCEs in 64 indirect calls of 512.
    assert_eq!((ddw.stats.tces, ddw.stats.indirect_calls), (32768, 64));
    // The device's buffer, direct, costs no more.
    assert_eq!(outcome.model.count(CallKind::PutTceIndirect), 64);
}

#[test]
fn the_largest_block_caps_the_window_below_ram() {
    // 2^14 TCEs of 2 MiB: a 32 GiB window for 64 GiB of RAM, used per buffer.
    let config = ModelConfig { tce_budget: Some(1 << 14), ..Profile::Powervm.config() };
    let scenario = Scenario::new(config, ram(64 * GIB));
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!((ddw.plan.window_shift, ddw.plan.limit), (35, WindowLimit::LargestBlock));
    assert!(matches!(ddw.mapping, DdwMapping::Dynamic(_)));
    assert_eq!(ddw.stats.tces, 0);
}

/// PowerVM may place a PHB's 64-bit MMIO window inside a DDW's bus range (Linux v6.14 "IOMMU
/// incorrectly marks MMIO range in DDW"): here 1 GiB at bus 2^59 + 8 GiB, so RAM 8–9 GiB would
/// share bus addresses with it. The window is used per buffer and no IOVA in the MMIO range is
/// handed out, counted in TCE indexes of the window's 2 MiB pages.
#[test]
fn mmio_inside_the_ddw_keeps_it_dynamic_and_out_of_every_iova() {
    let mmio = (DMA64_WINDOW_BASE + 8 * GIB, GIB);
    let scenario = Scenario { mmio: vec![mmio], ..Scenario::new(Profile::Powervm.config(), ram(16 * GIB)) };
    let mut outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!(ddw.mmio_collision, Some((BusAddr(mmio.0), mmio.1)));
    let DdwMapping::Dynamic(dynamic) = &ddw.mapping else { panic!("{:?}", ddw.mapping) };
    // 16 GiB of 2 MiB pages, less the 512 pages of MMIO.
    assert_eq!(dynamic.clone().allocator_mut().free_pages(), 8192 - 512);
    let mode = outcome.pe.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).unwrap();
    let device = DeviceDma { mode, mask: DmaMask::from_bits(64) };
    let mut mappings = Vec::new();
    for i in 0..8192 - 512 {
        let memory = ModelMemory { phys: PhysAddr(i * (2 << 20)), len: 2 << 20 };
        let mapping =
            device.map(&mut outcome.pe, &mut outcome.model, memory, DmaDirection::FromDevice).unwrap();
        let bus = mapping.bus_addr().get();
        assert!(bus + (2 << 20) <= mmio.0 || bus >= mmio.0 + mmio.1, "IOVA {bus:#x} is MMIO");
        mappings.push(mapping);
    }
    let full = device.map(
        &mut outcome.pe,
        &mut outcome.model,
        ModelMemory { phys: PhysAddr(0), len: 1 },
        DmaDirection::ToDevice,
    );
    assert!(full.is_err(), "every page outside MMIO is in use");
    for mapping in mappings {
        device.unmap(&mut outcome.pe, &mut outcome.model, mapping).unwrap();
    }
}
