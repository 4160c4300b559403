//! Window shapes beyond "covers all RAM": hybrid windows (RAM present direct, the rest of the
//! window per buffer) and windows whose RAM bus addresses would meet MMIO.

use drivers::addr::{BusAddr, PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::dma::{DeviceDma, DmaMode, DmaTranslation};
use drivers::iommu::ddw::DdwMapping;
use drivers::iommu::plan::WindowMode;
use drivers::iommu::{DmaDirection, DmaMask, TcePermission};
use papr_model::scenario::{check, run, ModelMemory, Scenario, Strictness};
use papr_model::{CallKind, ModelConfig, Profile};

const GIB: u64 = 1 << 30;

fn ram(size: u64) -> Vec<PhysRange> {
    vec![PhysRange { base: PhysAddr(0), size }]
}

/// 2 GiB present, 64 GiB possible, and a TCE budget of 512 × 16 MiB = 8 GiB: the window covers
/// the RAM present with 6 GiB to spare, so RAM is direct and memory above it (hot-plugged later)
/// is mapped per buffer in the same window.
#[test]
fn a_window_covering_present_ram_but_not_hotplug_is_hybrid() {
    let config = ModelConfig { tce_budget: Some(512), ..Profile::Qemu72.config() };
    let scenario = Scenario { ram_end: 64 * GIB, ..Scenario::new(config, ram(2 * GIB)) };
    let mut outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
    assert_eq!(ddw.mapping.mode(), WindowMode::Hybrid { direct_end: 2 * GIB });
    assert_eq!((ddw.window.size(), ddw.stats.tces), (8 * GIB, 128), "2 GiB of RAM in 16 MiB pages, mapped");
    let base = ddw.window.bus_base().get();
    let mode = outcome.pe.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).unwrap();
    assert!(matches!(mode, DmaMode::Hybrid { direct_end, .. } if direct_end == 2 * GIB), "{mode:?}");
    let device = DeviceDma { mode, mask: DmaMask::from_bits(64) };
    outcome.model.clear_log();
    // Below the boundary: direct, no hypercall.
    let low = ModelMemory { phys: PhysAddr(GIB + 0x123), len: 0x1000 };
    let low = device.map(&mut outcome.pe, &mut outcome.model, low, DmaDirection::ToDevice).unwrap();
    assert_eq!(low.bus_addr(), BusAddr(base + GIB + 0x123));
    assert!(!low.revocable());
    assert_eq!(outcome.model.calls().iter().filter(|c| c.kind() != CallKind::Sync).count(), 0);
    // Above it (memory added at run time): a TCE in the window's upper part.
    let high = ModelMemory { phys: PhysAddr(5 * GIB + 0x456), len: 0x2000 };
    let high = device.map(&mut outcome.pe, &mut outcome.model, high, DmaDirection::Bidirectional).unwrap();
    let iova = high.bus_addr().get();
    assert!(iova >= base + 2 * GIB && iova < base + 8 * GIB, "{iova:#x} is not in the upper part");
    assert_eq!(
        outcome.model.translate(high.bus_addr()),
        Some((PhysAddr(5 * GIB + 0x456), TcePermission::ReadWrite))
    );
    assert!(high.revocable());
    device.unmap(&mut outcome.pe, &mut outcome.model, high).unwrap();
    assert_eq!(outcome.model.translate(BusAddr(iova)), None);
    device.unmap(&mut outcome.pe, &mut outcome.model, low).unwrap();
}

/// A slot-0 window at bus 0 (QEMU, `ddw=single`) for 4 GiB of RAM would put RAM's bus addresses
/// 2–4 GiB on the PHB's 32-bit MMIO window: the window is used per buffer instead, and no IOVA
/// in the MMIO range is ever handed out.
#[test]
fn ram_whose_bus_addresses_meet_mmio_is_not_mapped_directly() {
    let scenario =
        Scenario { policy: DdwPolicy::SingleWindow, ..Scenario::new(Profile::Qemu72.config(), ram(4 * GIB)) }
            .with_qemu_mmio32();
    let mut outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    let ddw = outcome.pe.ddw.as_ref().expect("a DDW in slot 0");
    assert_eq!((ddw.slot, ddw.window.bus_base()), (0, BusAddr(0)));
    assert!(matches!(ddw.mapping, DdwMapping::Dynamic(_)));
    assert_eq!(ddw.mmio_collision, Some((BusAddr(2 * GIB), 2 * GIB)));
    assert_eq!(ddw.stats.tces, 0, "nothing mapped up front");
    let mode = outcome.pe.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).unwrap();
    let device = DeviceDma { mode, mask: DmaMask::from_bits(64) };
    // Fill the window: every IOVA handed out stays clear of [2 GiB, 4 GiB); of its 256 pages
    // of 16 MiB, 128 are MMIO and page 0 is never handed out, which leaves 127.
    let mut mappings = Vec::new();
    for i in 0..256u64 {
        let memory = ModelMemory { phys: PhysAddr(i * (16 << 20)), len: 16 << 20 };
        let Ok(mapping) = device.map(&mut outcome.pe, &mut outcome.model, memory, DmaDirection::ToDevice)
        else {
            break;
        };
        let (start, end) = (mapping.bus_addr().get(), mapping.bus_addr().get() + (16 << 20));
        assert!(end <= 2 * GIB || start >= 4 * GIB, "IOVA {start:#x} lies in the MMIO window");
        mappings.push(mapping);
    }
    assert_eq!(mappings.len(), 127);
    for mapping in mappings {
        device.unmap(&mut outcome.pe, &mut outcome.model, mapping).unwrap();
    }
}
