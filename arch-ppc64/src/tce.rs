//! The TCE hypercalls: `H_PUT_TCE` (0x20), `H_GET_TCE` (0x1C), `H_STUFF_TCE` (0x138) and
//! `H_PUT_TCE_INDIRECT` (0x13C).
//!
//! Arguments (LoPAR "H_PUT_TCE" … "H_PUT_TCE_INDIRECT"; Linux `plpar_wrappers.h`): the IOBA is
//! the absolute bus address of the entry; H_GET_TCE returns the entry in r4;
//! H_PUT_TCE_INDIRECT reads up to 512 big-endian TCEs from a 4 KiB-aligned guest-physical
//! page. This module owns that page: one static page reused for every call, guarded by a
//! lock, below 4 GiB since the kernel image is, identity-mapped when translation is on.
//!
//! Writing a TCE gives a device access to the page it names, so the three writing calls are
//! `unsafe fn`s: only the IOMMU driver, which owns the buffers it maps, reaches them (through
//! the kernel's hypervisor adapter). Reading an entry is harmless and safe.

use crate::hcall::{hcall_values, opcode, HcallStatus};
use papr_abi::addr::{BusAddr, Liobn};
use papr_abi::tce::{MAX_TCES_PER_CALL, TCE_LIST_BYTES};
use spin::Mutex;

#[repr(C, align(4096))]
struct ListPage([u8; TCE_LIST_BYTES]);

// KVM-HV rejects a TCE list that is not 4 KiB aligned (Linux arch/powerpc/kvm/book3s_64_vio.c
// `kvmppc_h_put_tce_indirect`); QEMU `h_put_tce_indirect` does too.
const _: () = assert!(core::mem::align_of::<ListPage>() == 4096 && core::mem::size_of::<ListPage>() == 4096);

static LIST_PAGE: Mutex<ListPage> = Mutex::new(ListPage([0; TCE_LIST_BYTES]));

/// Writes `tce` into the entry of table `liobn` that translates bus address `ioba`.
///
/// # Safety
/// A non-clear `tce` lets every device of the window's PE read (bit 0) and write (bit 1) the
/// page it names: the caller must own that page for as long as the entry is live, and must
/// `sync` before a device relies on the entry.
pub unsafe fn put_tce(liobn: Liobn, ioba: BusAddr, tce: u64) -> Result<(), HcallStatus> {
    // SAFETY: the hypervisor reads only the registers; the caller vouches for the page.
    unsafe { hcall_values(opcode::H_PUT_TCE, &[u64::from(liobn.0), ioba.get(), tce]) }.status.to_result()
}

/// Writes `tces` into consecutive entries from `ioba` through the list page. More than 512
/// entries are refused with [`HcallStatus::PARAMETER`] before the hypervisor is called.
///
/// # Safety
/// As [`put_tce`], for every entry of `tces`.
pub unsafe fn put_tce_indirect(liobn: Liobn, ioba: BusAddr, tces: &[u64]) -> Result<(), HcallStatus> {
    if tces.len() > MAX_TCES_PER_CALL {
        return Err(HcallStatus::PARAMETER);
    }
    let mut page = LIST_PAGE.lock();
    for (slot, tce) in page.0.chunks_exact_mut(8).zip(tces) {
        slot.copy_from_slice(&tce.to_be_bytes());
    }
    let list = page.0.as_ptr() as u64;
    // The list must be in memory before the hypervisor reads it.
    crate::cpu::sync();
    let args = [u64::from(liobn.0), ioba.get(), list, tces.len() as u64];
    // SAFETY: the hypervisor reads the locked, aligned list page, which stays ours until the
    // call returns; the caller vouches for the pages the entries name.
    unsafe { hcall_values(opcode::H_PUT_TCE_INDIRECT, &args) }.status.to_result()
}

/// Writes `tce` into `count` consecutive entries from `ioba` (callers pass at most 512).
///
/// # Safety
/// As [`put_tce`]: with a non-clear `tce`, every one of the `count` entries maps its page.
pub unsafe fn stuff_tce(liobn: Liobn, ioba: BusAddr, tce: u64, count: u32) -> Result<(), HcallStatus> {
    let args = [u64::from(liobn.0), ioba.get(), tce, u64::from(count)];
    // SAFETY: the hypervisor reads only the registers; the caller vouches for the pages.
    unsafe { hcall_values(opcode::H_STUFF_TCE, &args) }.status.to_result()
}

/// Reads the entry of table `liobn` that translates bus address `ioba`.
pub fn get_tce(liobn: Liobn, ioba: BusAddr) -> Result<u64, HcallStatus> {
    // SAFETY: H_GET_TCE reads the hypervisor's table and returns the entry in r4; no guest
    // memory is named and no access is granted.
    let ret = unsafe { hcall_values(opcode::H_GET_TCE, &[u64::from(liobn.0), ioba.get()]) };
    ret.status.to_result().map(|()| ret.outputs[0])
}
