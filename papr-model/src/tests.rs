//! The model behaves like QEMU 7.2 where the driver depends on it.

use super::*;
use crate::papr::hcall::{H_P4, H_PARAMETER};
use crate::papr::rtas::{HARDWARE_ERROR as RTAS_HARDWARE_ERROR, PARAMETER_ERROR as RTAS_PARAMETER_ERROR};
use drivers::iommu::hcall::TceCalls;
use drivers::iommu::rtas::{DdwRtas, PeAddress, QueryOutputs};
use drivers::iommu::tce::{ReadTce, Tce, TcePermission};

const PE: PeAddress = PeAddress { config_addr: 0, buid: MODEL_BUID };
const DEFAULT: Liobn = model_liobn(0);

fn rw(phys: u64) -> Tce {
    Tce::new(PhysAddr(phys), TcePermission::ReadWrite, 12).unwrap()
}

#[test]
fn pgsz_translates_to_query_mask() {
    assert_eq!(query_mask_from_pgsz(0x1211000), 0x107);
    assert_eq!(query_mask_from_pgsz(0x11000), 0x3);
    assert_eq!(query_mask_from_pgsz(0x1000), 0x1);
}

#[test]
fn query_and_create_follow_qemu() {
    let mut model = HypervisorModel::default();
    let five = model.query(PE, QueryOutputs::Five).unwrap();
    assert_eq!((five.windows_available, five.largest_block, five.page_size_mask), (1, 1 << 31, 0x107));
    assert_eq!(model.query(PE, QueryOutputs::Six).unwrap().largest_block, 1 << 37);
    let wrong_phb = PeAddress { buid: 1, ..PE };
    assert_eq!(model.query(wrong_phb, QueryOutputs::Five).unwrap_err().status, RTAS_PARAMETER_ERROR);
    // 8K pages are not offered; a window below one page; 2^32 TCEs.
    assert_eq!(model.create(PE, 13, 33).unwrap_err().status, RTAS_PARAMETER_ERROR);
    assert_eq!(model.create(PE, 24, 20).unwrap_err().status, RTAS_PARAMETER_ERROR);
    assert_eq!(model.create(PE, 12, 44).unwrap_err().status, RTAS_HARDWARE_ERROR);
    let created = model.create(PE, 24, 33).unwrap();
    assert_eq!((created.liobn, created.bus_base), (model_liobn(1), BusAddr(DMA64_WINDOW_BASE)));
    assert_eq!(model.query(PE, QueryOutputs::Five).unwrap().windows_available, 0);
    assert_eq!(model.create(PE, 24, 33).unwrap_err().status, RTAS_HARDWARE_ERROR);
    assert_eq!(model.count(CallKind::Create), 5);
}

#[test]
fn remove_does_not_restore_default_and_reset_does() {
    let mut model = HypervisorModel::default();
    model.remove(DEFAULT).unwrap();
    assert_eq!(model.windows().count(), 0);
    assert_eq!(model.remove(DEFAULT).unwrap_err().status, RTAS_PARAMETER_ERROR);
    // With no window active, the new one goes at bus 0 and takes the first free LIOBN.
    let created = model.create(PE, 16, 34).unwrap();
    assert_eq!((created.liobn, created.bus_base), (DEFAULT, BusAddr(0)));
    model.put_tce(DEFAULT, BusAddr(0x1_0000), rw(0x2_0000)).unwrap();
    model.reset(PE).unwrap();
    let default = model.window(DEFAULT).unwrap();
    assert_eq!((default.page_shift, default.tce_count, default.end()), (12, 1 << 18, 1 << 30));
    assert_eq!(model.mapped_entries(), 0);
}

#[test]
fn put_and_get_check_ioba_and_alignment() {
    let mut model = HypervisorModel::default();
    model.put_tce(DEFAULT, BusAddr(0x5000), rw(0x9000)).unwrap();
    assert_eq!(model.get_tce(DEFAULT, BusAddr(0x5000)), Ok(ReadTce(0x9003)));
    assert_eq!(model.translate(BusAddr(0x5123)), Some((PhysAddr(0x9123), TcePermission::ReadWrite)));
    assert_eq!(model.translate(BusAddr(0x6000)), None);
    let misaligned_ioba = model.put_tce(DEFAULT, BusAddr(0x5008), rw(0x9000)).unwrap_err();
    assert_eq!(misaligned_ioba.status, H_PARAMETER);
    // A 4 KiB-aligned page in a window of 64 KiB pages.
    let big = model.create(PE, 16, 30).unwrap();
    let misaligned_tce = model.put_tce(big.liobn, big.bus_base, rw(0x9000)).unwrap_err();
    assert_eq!(misaligned_tce.status, H_PARAMETER);
    assert_eq!(model.put_tce(DEFAULT, BusAddr(1 << 30), rw(0)).unwrap_err().status, H_PARAMETER);
    assert_eq!(model.put_tce(model_liobn(1), BusAddr(0), rw(0)).unwrap_err().status, H_PARAMETER);
    model.put_tce(DEFAULT, BusAddr(0x5000), Tce::CLEAR).unwrap();
    assert_eq!(model.mapped_entries(), 0);
    assert_eq!(model.count(CallKind::PutTce), 6);
    assert_eq!(model.window(big.liobn).map(|w| w.tces.len()), Some(0));
}

#[test]
fn indirect_limits_and_partial_writes() {
    let mut model = HypervisorModel::default();
    let too_many = [rw(0); 513];
    assert_eq!(model.put_tce_indirect(DEFAULT, BusAddr(0), &too_many).unwrap_err().status, H_PARAMETER);
    assert_eq!(model.mapped_entries(), 0);
    // Three entries, the last one past the window's end: the first two stay written.
    let tces = [rw(0x1000), rw(0x2000), rw(0x3000)];
    let error = model.put_tce_indirect(DEFAULT, BusAddr((1 << 30) - 0x2000), &tces).unwrap_err();
    assert_eq!(error.status, H_PARAMETER);
    assert_eq!(model.mapped_entries(), 2);
    // An injected fault after one entry.
    model.inject(Fault { kind: CallKind::PutTceIndirect, nth: 3, status: -44, entries_written: 1 });
    let error = model.put_tce_indirect(DEFAULT, BusAddr(0x10_0000), &tces).unwrap_err();
    assert_eq!(error.status, -44);
    assert_eq!(model.mapped_entries(), 3);
    assert_eq!(model.translate(BusAddr(0x10_0000)).map(|t| t.0), Some(PhysAddr(0x1000)));
}

#[test]
fn stuff_limits() {
    let mut qemu = HypervisorModel::default();
    let big = qemu.create(PE, 16, 30).unwrap();
    assert_eq!(qemu.stuff_tce(big.liobn, big.bus_base, rw(0x1000), 2).unwrap_err().status, H_PARAMETER);
    qemu.stuff_tce(DEFAULT, BusAddr(0), Tce::new(PhysAddr(0), TcePermission::Read, 12).unwrap(), 600)
        .unwrap();
    assert_eq!(qemu.mapped_entries(), 600);
    assert_eq!(
        qemu.stuff_tce(DEFAULT, BusAddr(0x1000), Tce::CLEAR, 1 << 18).unwrap_err().status,
        H_PARAMETER
    );
    qemu.stuff_tce(DEFAULT, BusAddr(0), Tce::CLEAR, 1 << 18).unwrap();
    assert_eq!(qemu.mapped_entries(), 0);
    let mut papr =
        HypervisorModel::new(ModelConfig { stuff_limit: StuffLimit::Papr512, ..ModelConfig::default() });
    let error = papr.stuff_tce(DEFAULT, BusAddr(0), Tce::CLEAR, 513).unwrap_err();
    assert_eq!(error.status, H_P4);
    assert_eq!(papr.count(CallKind::StuffTce), 1);
    papr.stuff_tce(DEFAULT, BusAddr(0), Tce::CLEAR, 512).unwrap();
}

#[test]
fn faults_hit_the_nth_call_of_a_kind() {
    let mut model = HypervisorModel::default();
    model.inject(Fault { kind: CallKind::PutTce, nth: 2, status: -1, entries_written: 0 });
    model.inject(Fault { kind: CallKind::Create, nth: 1, status: -2, entries_written: 0 });
    model.put_tce(DEFAULT, BusAddr(0x1000), rw(0x1000)).unwrap();
    let error = model.put_tce(DEFAULT, BusAddr(0x2000), rw(0x2000)).unwrap_err();
    assert_eq!(error.status, -1);
    assert_eq!(model.translate(BusAddr(0x2000)), None);
    model.put_tce(DEFAULT, BusAddr(0x3000), rw(0x3000)).unwrap();
    assert_eq!(model.create(PE, 24, 33).unwrap_err().status, -2);
    assert!(model.create(PE, 24, 33).is_ok());
    model.sync();
    assert_eq!(model.calls().last(), Some(&ModelCall::Sync));
    model.clear_log();
    assert!(model.calls().is_empty());
}
