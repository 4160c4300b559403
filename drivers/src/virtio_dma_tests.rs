//! The HAL binding: bus address 0 is a real address, a failure is never one.

use super::*;
use crate::addr::Liobn;
use crate::dma::{share, DmaTranslation, PeDma, PeState};
use crate::iommu::ddw::{Ddw, DdwMapping};
use crate::iommu::map::{MapStats, MultiTce};
use crate::iommu::plan::{WindowLimit, WindowMode, WindowPlan};
use crate::iommu::rtas::QueryOutputs;
use crate::iommu::window::{DmaMask, DmaWindow};
use crate::iommu::IovaWindow;
use crate::test_support::{FakeTce, TestMemory};

type Binding = HalBinding<FakeTce, TestMemory>;

fn binding(dma: PeDma, translation: DmaTranslation, mask_bits: u32) -> Binding {
    let pe = share(PeState::new(dma, FakeTce::new(1 << 12)));
    let mut binding = Binding::new(Vec::new());
    binding.attach(DeviceHandle::new(&pe, DmaMask::from_bits(mask_bits), translation).unwrap());
    binding
}

/// A direct DDW in table slot 0 at bus 0 (what replaces a single-window PE's default window
/// under QEMU), mapping 2^31 bytes.
fn slot0_direct() -> PeDma {
    let window = DmaWindow::new(Liobn(0x8000_0000), BusAddr(0), 24, 31).unwrap();
    let plan =
        WindowPlan { page_shift: 24, window_shift: 31, mode: WindowMode::Direct, limit: WindowLimit::Ram };
    let ddw = Ddw {
        query: None,
        outputs: QueryOutputs::Six,
        plan,
        window,
        slot: 0,
        stats: MapStats::default(),
        ranges: 1,
        mapping: DdwMapping::Direct,
        mmio_collision: None,
    };
    PeDma { default: None, ddw: Some(ddw) }
}

#[test]
fn physical_page_zero_is_shared_at_bus_zero_and_taken_back() {
    for (name, mut binding) in [
        ("bypass", binding(PeDma::default(), DmaTranslation::Bypass, 64)),
        ("slot-0 direct", binding(slot0_direct(), DmaTranslation::Iommu, 64)),
    ] {
        let bus = binding.share(TestMemory::new(0, 0x1000), DmaDirection::Bidirectional);
        assert_eq!(bus, BusAddr(0), "{name}");
        assert_eq!((binding.error(), binding.maps(), binding.live()), (None, 1, 1), "{name}");
        let back = binding.unshare(BusAddr(0)).expect("the buffer at bus 0 comes back");
        assert_eq!(back.phys, PhysAddr(0), "{name}");
        assert_eq!((binding.error(), binding.live()), (None, 0), "{name}");
    }
}

#[test]
fn a_failed_share_is_never_a_usable_address() {
    // A 28-bit device in bypass mode cannot reach memory at 1 GiB.
    let mut binding = binding(PeDma::default(), DmaTranslation::Bypass, 28);
    let bus = binding.share(TestMemory::new(1 << 30, 0x1000), DmaDirection::ToDevice);
    assert_eq!(bus, NO_DMA_ADDRESS);
    assert_ne!(bus, BusAddr(0));
    assert!(binding.error().is_some_and(|e| e.contains("out of reach")), "{:?}", binding.error());
    assert_eq!((binding.maps(), binding.live()), (0, 0));
    // Taking back the failure address is not a second error.
    assert!(binding.unshare(NO_DMA_ADDRESS).is_none());
    assert_eq!(binding.live(), 0);
    // No DMA window of a PE this driver plans reaches the failure address.
    let window = slot0_direct().ddw.unwrap().window;
    assert!(!window.contains(NO_DMA_ADDRESS, 1));
    let highest = DmaWindow::new(Liobn(1), BusAddr(1 << 59), 24, 62).unwrap();
    assert!(!highest.contains(NO_DMA_ADDRESS, 1));
}

#[test]
fn dma_before_the_mode_is_known_is_refused() {
    let mut binding = Binding::new(Vec::new());
    assert_eq!(binding.share(TestMemory::new(0x1000, 16), DmaDirection::ToDevice), NO_DMA_ADDRESS);
    assert!(binding.error().is_some_and(|e| e.contains("mode")));
}

#[test]
fn tce_mappings_are_cleared_on_unshare() {
    let window = DmaWindow::with_size(Liobn(0x8000_0000), BusAddr(0), 12, 1 << 30).unwrap();
    let dma = PeDma { default: Some(IovaWindow::new(window, MultiTce::Available)), ddw: None };
    let pe = share(PeState::new(dma, FakeTce::new(1 << 12)));
    let mut binding = Binding::new(Vec::new());
    binding.attach(DeviceHandle::new(&pe, DmaMask::from_bits(32), DmaTranslation::Iommu).unwrap());
    let bus = binding.share(TestMemory::new(0x10_0000, 0x2000), DmaDirection::FromDevice);
    assert!(bus != NO_DMA_ADDRESS && bus != BusAddr(0));
    assert_eq!(pe.lock().hypervisor().live(), 2);
    assert!(binding.unshare(bus).is_some());
    assert_eq!(pe.lock().hypervisor().live(), 0);
}
