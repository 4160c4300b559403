//! The rules KVM-HV's in-kernel TCE handling enforces and QEMU's own code does not
//! (Linux arch/powerpc/kvm/book3s_64_vio.c, `iommu_tce_check_ioba`/`iommu_tce_check_gpa`), each
//! checked against the driver with the `kvm-hv` profile, whose model refuses what KVM refuses:
//! - every IOBA aligned to the window's I/O page size and inside the window;
//! - every TCE address aligned to that page size and inside guest memory;
//! - without `hcall-multi-tce` (KVM advertises it only with in-kernel support) only H_PUT_TCE;
//! - (the 4 KiB alignment of the H_PUT_TCE_INDIRECT list is a compile-time assertion in
//!   `arch-ppc64::tce`.)

use drivers::addr::{PhysAddr, PhysRange};
use drivers::dma::{DeviceDma, DmaMode, MapBufferError};
use drivers::iommu::{BufferError, DmaDirection, DmaMask, MultiTce, TceHcall};
use papr_model::scenario::{check, run, ModelMemory, Scenario, Strictness};
use papr_model::{query_mask_from_pgsz, CallKind, ModelCall, ModelConfig, Profile};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// RAM ending at an odd address (a partial last I/O page), guest memory ending exactly there.
fn kvm(pgsz: u64) -> Scenario {
    let ram = vec![PhysRange { base: PhysAddr(0), size: GIB + 3 * MIB + 0x1234 }];
    let end = ram[0].size;
    let config = ModelConfig {
        page_size_mask: query_mask_from_pgsz(pgsz),
        guest_ram_end: Some(end),
        ..Profile::KvmHv.config()
    };
    Scenario { narrow_device: true, ..Scenario::new(config, ram) }
}

/// Every IOBA in the log is aligned to its window's page size (the DDW's or the default's 4K).
fn assert_iobas_aligned(calls: &[ModelCall], ddw_shift: u32) {
    for call in calls {
        let (liobn, ioba) = match call {
            ModelCall::Hcall(TceHcall::PutTce { liobn, ioba, .. })
            | ModelCall::Hcall(TceHcall::PutTceIndirect { liobn, ioba, .. })
            | ModelCall::Hcall(TceHcall::StuffTce { liobn, ioba, .. })
            | ModelCall::Hcall(TceHcall::GetTce { liobn, ioba }) => (liobn, ioba),
            _ => continue,
        };
        let shift = if liobn.0 & 1 == 1 { ddw_shift } else { 12 };
        assert_eq!(ioba.get() & ((1 << shift) - 1), 0, "{call:x?} is not aligned to 2^{shift}");
    }
}

#[test]
fn every_page_size_passes_kvms_ioba_and_address_checks() {
    for (pgsz, shift) in [(0x1211000, 24), (0x11000, 16), (0x1000, 12)] {
        let scenario = kvm(pgsz);
        let outcome = run(&scenario, |_| {});
        assert_eq!(
            check(&scenario, &outcome, Strictness::SingleFault),
            Vec::<String>::new(),
            "pgsz {pgsz:#x}"
        );
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        let ddw = outcome.pe.ddw.as_ref().expect("a DDW");
        assert_eq!(ddw.window.page_shift(), shift);
        assert_iobas_aligned(outcome.model.calls(), shift);
    }
}

#[test]
fn a_buffer_outside_guest_memory_is_refused_and_leaves_nothing() {
    let scenario = kvm(0x1211000);
    let mut outcome = run(&scenario, |_| {});
    let default = outcome.pe.default.as_ref().expect("the default window").window().liobn();
    let device = DeviceDma { mode: DmaMode::DefaultIommu { liobn: default }, mask: DmaMask::from_bits(32) };
    let before = outcome.model.mapped_entries();
    let beyond = ModelMemory { phys: PhysAddr(scenario.ram[0].end().next_multiple_of(0x1000)), len: 0x1000 };
    let failure = device
        .map(&mut outcome.pe, &mut outcome.model, beyond, DmaDirection::ToDevice)
        .expect_err("KVM refuses a TCE outside guest memory");
    let error = failure.error;
    assert!(matches!(error, MapBufferError::Iommu(BufferError::Hcall { cleanup: None, .. })), "{error:?}");
    assert!(failure.memory.is_some(), "nothing is live, so the memory comes back");
    assert_eq!(outcome.model.mapped_entries(), before, "nothing left mapped");
    // The last page of RAM itself is fine.
    let last = ModelMemory { phys: PhysAddr(scenario.ram[0].end() - 1), len: 1 };
    let mapping = device.map(&mut outcome.pe, &mut outcome.model, last, DmaDirection::ToDevice).unwrap();
    device.unmap(&mut outcome.pe, &mut outcome.model, mapping).unwrap();
}

#[test]
fn without_multi_tce_only_h_put_tce_is_called() {
    let scenario = Scenario { multi_tce: MultiTce::Unavailable, ..kvm(0x1211000) };
    let outcome = run(&scenario, |_| {});
    assert_eq!(check(&scenario, &outcome, Strictness::SingleFault), Vec::<String>::new());
    assert!(outcome.pe.ddw.is_some());
    let model = &outcome.model;
    assert_eq!(model.count(CallKind::PutTceIndirect) + model.count(CallKind::StuffTce), 0);
    // 1 GiB + 3 MiB + a bit in 16M pages: 65 entries.
    assert!(model.count(CallKind::PutTce) >= 65);
}
