//! The TCE hypercalls: `H_PUT_TCE` (0x20), `H_GET_TCE` (0x1C), `H_STUFF_TCE` (0x138) and
//! `H_PUT_TCE_INDIRECT` (0x13C), implementing [`drivers::iommu::TceCalls`].
//!
//! Arguments (Linux `plpar_wrappers.h`, ../shared/docs/papr-ddw-facts.md §1.6–1.7): the IOBA is
//! the absolute bus address; H_GET_TCE returns the entry in r4; H_PUT_TCE_INDIRECT reads up to
//! 512 big-endian TCEs from a 4 KiB-aligned guest-physical page. This module owns that page:
//! one static page reused for every call, guarded by a lock, below 4 GiB since the kernel
//! image is. The kernel runs with translation off, so its address is its physical address.

use crate::hcall::{hcall, opcode};
use drivers::addr::{BusAddr, Liobn};
use drivers::iommu::tce::{encode_tce_list, TCE_LIST_BYTES};
use drivers::iommu::{HcallError, Tce, TceCalls, TceHcall, MAX_TCES_PER_CALL};
use spin::Mutex;

#[repr(C, align(4096))]
struct ListPage([u8; TCE_LIST_BYTES]);

// KVM-HV rejects a TCE list that is not 4 KiB aligned (papr-ddw-facts §2.4); QEMU does too.
const _: () = assert!(core::mem::align_of::<ListPage>() == 4096 && core::mem::size_of::<ListPage>() == 4096);

static LIST_PAGE: Mutex<ListPage> = Mutex::new(ListPage([0; TCE_LIST_BYTES]));

/// The partition's TCE hypercalls.
#[derive(Clone, Copy, Debug, Default)]
pub struct HvTce;

fn call(op: u64, args: &[u64], call: TceHcall) -> Result<[u64; 9], HcallError> {
    let mut regs = [0u64; 9];
    regs[..args.len()].copy_from_slice(args);
    let ret = hcall(op, regs);
    match ret.status.0 {
        0 => Ok(ret.outputs),
        status => Err(HcallError { call, status }),
    }
}

impl TceCalls for HvTce {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        let args = [u64::from(liobn.0), ioba.get(), tce.raw()];
        call(opcode::H_PUT_TCE, &args, TceHcall::PutTce { liobn, ioba, tce }).map(drop)
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        let what = TceHcall::PutTceIndirect { liobn, ioba, count: tces.len() };
        let mut page = LIST_PAGE.lock();
        // More than 512 entries is refused before the hypervisor sees it, with its status.
        let count = encode_tce_list(tces, &mut page.0)
            .map_err(|_| HcallError { call: what, status: drivers::iommu::hcall::H_PARAMETER })?;
        let list = page.0.as_ptr() as u64;
        debug_assert!(tces.len() <= MAX_TCES_PER_CALL && list.is_multiple_of(4096));
        // The list must be in memory before the hypervisor reads it.
        crate::cpu::sync();
        call(opcode::H_PUT_TCE_INDIRECT, &[u64::from(liobn.0), ioba.get(), list, count], what).map(drop)
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        let args = [u64::from(liobn.0), ioba.get(), tce.raw(), u64::from(count)];
        call(opcode::H_STUFF_TCE, &args, TceHcall::StuffTce { liobn, ioba, tce, count }).map(drop)
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<Tce, HcallError> {
        let out =
            call(opcode::H_GET_TCE, &[u64::from(liobn.0), ioba.get()], TceHcall::GetTce { liobn, ioba })?;
        Ok(Tce::from_raw(out[0]))
    }

    fn sync(&mut self) {
        crate::cpu::sync();
    }
}
