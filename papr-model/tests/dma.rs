//! Mode choice and buffer mapping per device, against the QEMU-7.2 model.

use drivers::addr::PhysRange;
use drivers::addr::*;
use drivers::devtree::dma_window::{DdwExtensions, DmaWindowProp};
use drivers::dma::*;
use drivers::iommu::ddw::SingleWindowPath;
use drivers::iommu::ddw::{enable_ddw, PeRequest};
use drivers::iommu::map::MultiTce;
use drivers::iommu::rtas::{BusyWait, Delay, PeAddress};
use drivers::iommu::tce::TcePermission;
use drivers::iommu::window::DmaWindow;
use drivers::iommu::*;
use papr_model::scenario::ModelMemory;
use papr_model::{model_liobn, CallKind, HypervisorModel, DMA64_WINDOW_BASE, MODEL_BUID};

fn memory(phys: u64, len: u64) -> ModelMemory {
    ModelMemory { phys: PhysAddr(phys), len }
}

const GIB: u64 = 1 << 30;

struct NoDelay;

impl Delay for NoDelay {
    fn wait(&mut self, _: BusyWait) {}
}

fn default_window() -> IovaWindow {
    let prop = DmaWindowProp { liobn: model_liobn(0), bus_addr: BusAddr(0), size: GIB };
    IovaWindow::new(DmaWindow::from_default(&prop).unwrap(), MultiTce::Available)
}

/// A PE of the model with its default window and, if `mask_bits` is given, a DDW planned for
/// devices of that many bits over 2 GiB of RAM.
fn pe(hv: &mut HypervisorModel, mask_bits: Option<u32>) -> PeDma {
    let ram = [PhysRange { base: PhysAddr(0), size: 2 * GIB }];
    let ext = DdwExtensions { cells: vec![2, 0x2b, 1] };
    let ddw = mask_bits.map(|bits| {
        let request = PeRequest {
            pe: PeAddress { config_addr: 0, buid: MODEL_BUID },
            extensions: Some(&ext),
            ram: &ram,
            ram_end: 2 * GIB,
            device_mask_bits: bits,
            addressing: drivers::iommu::ddw::Addressing::Full,
            multi_tce: MultiTce::Available,
            default: None,
            single_window: SingleWindowPath::WhenNoneFree,
            max_window_shift: None,
            iova_holes: &[],
        };
        enable_ddw(hv, &mut NoDelay, &request).unwrap()
    });
    hv.clear_log();
    PeDma { default: Some(default_window()), ddw }
}

#[test]
fn modes_follow_the_mask_and_the_window() {
    let mut hv = HypervisorModel::default();
    let direct = pe(&mut hv, Some(64));
    let ddw_liobn = model_liobn(1);
    assert_eq!(
        direct.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu),
        Ok(DmaMode::Direct { offset: DMA64_WINDOW_BASE, liobn: ddw_liobn })
    );
    // The window ends at 2^59 + 2^31: a 59-bit device cannot reach it, a 60-bit one can.
    assert_eq!(
        direct.choose_mode(DmaMask::from_bits(59), DmaTranslation::Iommu),
        Ok(DmaMode::DefaultIommu { liobn: model_liobn(0) })
    );
    assert!(matches!(
        direct.choose_mode(DmaMask::from_bits(60), DmaTranslation::Iommu),
        Ok(DmaMode::Direct { .. })
    ));
    assert_eq!(
        direct.choose_mode(DmaMask::from_bits(28), DmaTranslation::Iommu),
        Ok(DmaMode::DefaultIommu { liobn: model_liobn(0) })
    );
    assert_eq!(direct.choose_mode(DmaMask::from_bits(28), DmaTranslation::Bypass), Ok(DmaMode::Bypass));
    let mut hv = HypervisorModel::default();
    let dynamic = pe(&mut hv, Some(30));
    assert_eq!(
        dynamic.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu),
        Ok(DmaMode::DdwIommu { liobn: ddw_liobn })
    );
    let none = PeDma::default();
    let error = none.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).unwrap_err();
    assert!(error.to_string().contains("no default window"), "{error}");
    assert_eq!(DmaMode::DdwIommu { liobn: ddw_liobn }.name(), "ddw-iommu");
}

#[test]
fn direct_and_bypass_buffers_cost_no_hypercall() {
    let mut hv = HypervisorModel::default();
    let mut state = pe(&mut hv, Some(64));
    let device = DeviceDma {
        mode: state.choose_mode(DmaMask::from_bits(64), DmaTranslation::Iommu).unwrap(),
        mask: DmaMask::from_bits(64),
    };
    let mapping =
        device.map(&mut state, &mut hv, memory(0x7fff_f000, 0x1000), DmaDirection::FromDevice).unwrap();
    assert_eq!(mapping.bus_addr(), BusAddr(DMA64_WINDOW_BASE + 0x7fff_f000));
    assert!(!mapping.revocable() && mapping.tces() == 0);
    assert_eq!(hv.translate(mapping.bus_addr()), Some((PhysAddr(0x7fff_f000), TcePermission::ReadWrite)));
    assert_eq!(device.unmap(&mut state, &mut hv, mapping).unwrap(), memory(0x7fff_f000, 0x1000));
    // Past the end of mapped RAM: refused (the memory handed back), not silently wrapped.
    let failure =
        device.map(&mut state, &mut hv, memory(2 * GIB - 0x800, 0x1000), DmaDirection::ToDevice).unwrap_err();
    assert!(matches!(failure.error, MapBufferError::OutOfReach { .. }), "{failure:?}");
    assert_eq!(failure.memory, Some(memory(2 * GIB - 0x800, 0x1000)));
    let bypass = DeviceDma { mode: DmaMode::Bypass, mask: DmaMask::from_bits(64) };
    let mapping = bypass.map(&mut state, &mut hv, memory(0x1234, 10), DmaDirection::Bidirectional).unwrap();
    assert_eq!((mapping.bus_addr(), mapping.len()), (BusAddr(0x1234), 10));
    bypass.unmap(&mut state, &mut hv, mapping).unwrap();
    // A narrow device in bypass mode cannot reach high memory.
    let narrow = DeviceDma { mode: DmaMode::Bypass, mask: DmaMask::from_bits(28) };
    assert!(narrow.map(&mut state, &mut hv, memory(1 << 28, 16), DmaDirection::ToDevice).is_err());
    assert_eq!(hv.calls().iter().filter(|c| c.kind() != CallKind::Sync).count(), 0);
    let empty = device.map(&mut state, &mut hv, memory(0, 0), DmaDirection::ToDevice).unwrap_err();
    assert_eq!(empty.error, MapBufferError::Empty);
}

#[test]
fn narrow_devices_get_low_nonzero_iovas_in_the_default_window() {
    let mut hv = HypervisorModel::default();
    let mut state = pe(&mut hv, Some(64));
    let mask = DmaMask::from_bits(28);
    let edu = DeviceDma { mode: state.choose_mode(mask, DmaTranslation::Iommu).unwrap(), mask };
    let high = PhysAddr(GIB + 0x123);
    let to_device = edu.map(&mut state, &mut hv, memory(high.get(), 4096), DmaDirection::ToDevice).unwrap();
    let from_device =
        edu.map(&mut state, &mut hv, memory(0x50_0000, 4096), DmaDirection::FromDevice).unwrap();
    for (handle, phys, perm) in [
        (&to_device, high, TcePermission::Read),
        (&from_device, PhysAddr(0x50_0000), TcePermission::ReadWrite),
    ] {
        let iova = handle.bus_addr().get();
        assert!(iova != 0 && iova + 4096 <= 1 << 28, "iova {iova:#x}");
        assert_eq!(iova & 0xfff, phys.get() & 0xfff);
        assert_eq!(hv.translate(handle.bus_addr()), Some((phys, perm)));
    }
    assert_eq!(state.default.as_ref().unwrap().in_use(), 3);
    // Unmapping clears the TCEs and frees the IOVAs.
    edu.unmap(&mut state, &mut hv, to_device).unwrap();
    edu.unmap(&mut state, &mut hv, from_device).unwrap();
    assert_eq!(hv.mapped_entries(), 2048 >> 4); // the DDW's 128 TCEs only
    assert_eq!(state.default.as_ref().unwrap().in_use(), 0);
}

#[test]
fn a_mode_without_its_window_is_an_error() {
    let mut hv = HypervisorModel::default();
    let mut state = PeDma::default();
    let device =
        DeviceDma { mode: DmaMode::DefaultIommu { liobn: model_liobn(0) }, mask: DmaMask::from_bits(32) };
    let error = device.map(&mut state, &mut hv, memory(0x1000, 8), DmaDirection::ToDevice).unwrap_err().error;
    assert_eq!(error, MapBufferError::NoWindow { mode: device.mode });
    assert!(error.to_string().contains("default-iommu"), "{error}");
    let direct = DeviceDma {
        mode: DmaMode::Direct { offset: 1 << 59, liobn: model_liobn(1) },
        mask: DmaMask::from_bits(64),
    };
    assert!(matches!(
        direct.map(&mut state, &mut hv, memory(0x1000, 8), DmaDirection::ToDevice).map_err(|f| f.error),
        Err(MapBufferError::NoWindow { .. })
    ));
}
