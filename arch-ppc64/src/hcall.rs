//! Hypervisor calls (`sc 1`).
//!
//! ABI (LoPAR "Hypervisor Call Interrupt"): opcode in r3, arguments in r4–r12; status back in
//! r3 and outputs in r4–r12; r0, r3–r12, CTR, XER and CR0/1/5–7 are volatile. The raw
//! [`hcall`] is `unsafe`: many hypercalls read or write guest memory named by their
//! arguments (a TCE list page, a process table, a page a TCE maps), or change how the CPU
//! takes interrupts and translates addresses. The wrappers below take typed arguments and
//! say, where one remains, which precondition the caller keeps.

use core::arch::asm;

pub use papr_abi::hcall::{opcode, HcallStatus};

/// Outputs of a hypercall: status and r4..r12.
#[derive(Clone, Copy, Debug)]
pub struct HcallReturn {
    /// r3 after the call.
    pub status: HcallStatus,
    /// r4..r12 after the call.
    pub outputs: [u64; 9],
}

/// Makes hypercall `opcode` with arguments r4..r12 = `args`.
///
/// # Safety
/// Whatever the hypercall does with its arguments must be sound for the kernel: every
/// guest-physical address it reads must be valid for the read and every one it writes (or
/// makes writable to a device, as a TCE does) must belong to the caller for as long as the
/// hypervisor or the device may use it; a call that changes interrupt delivery or address
/// translation must leave the running code reachable (LoPAR describes each call's effects).
pub unsafe fn hcall(opcode: u64, args: [u64; 9]) -> HcallReturn {
    let mut regs = args;
    let status: i64;
    // SAFETY: `sc 1` enters the hypervisor, which only reads/writes guest memory named by
    // the arguments (the caller's contract) and returns with the volatile registers (declared
    // here as outputs/clobbers) changed.
    unsafe {
        asm!(
            "sc 1",
            inout("r3") opcode => status,
            inout("r4") regs[0], inout("r5") regs[1], inout("r6") regs[2],
            inout("r7") regs[3], inout("r8") regs[4], inout("r9") regs[5],
            inout("r10") regs[6], inout("r11") regs[7], inout("r12") regs[8],
            out("r0") _, out("ctr") _, out("xer") _,
            out("cr0") _, out("cr1") _, out("cr5") _, out("cr6") _, out("cr7") _,
            options(nostack)
        );
    }
    HcallReturn { status: HcallStatus(status), outputs: regs }
}

/// A hypercall whose arguments are plain values: it reads and writes no guest memory.
///
/// # Safety
/// `opcode` must be such a call and must not change interrupt delivery or translation.
pub(crate) unsafe fn hcall_values(opcode: u64, values: &[u64]) -> HcallReturn {
    let mut args = [0u64; 9];
    args[..values.len()].copy_from_slice(values);
    // SAFETY: the caller's contract: no memory is named, nothing the running code relies on
    // changes.
    unsafe { hcall(opcode, args) }
}

/// `H_CONFER(-1, 0)`: yields the processor to the hypervisor for a moment. A guest that polls
/// with no interrupts would otherwise never leave guest mode; QEMU's TCG then never reaches a
/// quiescent point, and work it defers to one (freeing an unplugged device, which is when it
/// emits `DEVICE_DELETED`) never runs (QEMU hw/ppc/spapr_hcall.c `h_confer`: `cpu_loop_exit`).
pub fn confer() -> HcallStatus {
    // SAFETY: H_CONFER takes two values, names no memory and changes neither interrupt delivery
    // nor translation.
    unsafe { hcall_values(opcode::H_CONFER, &[u64::MAX, 0]) }.status
}

/// `H_CEDE` with the decrementer as alarm: gives the processor to the hypervisor until about
/// `ticks` timebase ticks have passed (or another interrupt is pending), then returns with
/// MSR[EE] off again, as the kernel always runs. Unlike [`confer`], the virtual processor
/// really stops: under TCG its thread sleeps and leaves the host's cores to QEMU's I/O threads
/// (QEMU hw/ppc/spapr_hcall.c `h_cede`: MSR[EE] set, `halted`), as Linux's idle loop does
/// (arch/powerpc/platforms/pseries/setup.c `pseries_lpar_idle` → `cede_processor`). Before
/// the exception vectors are installed it confers instead.
pub fn cede_for(ticks: u32) -> Wake {
    if !crate::exceptions::decrementer_resumes() {
        let _ = confer();
        return Wake::Other;
    }
    let ticks = u64::from(ticks.min(0x7fff_ffff));
    // SAFETY: writing the decrementer touches no memory; when it goes negative the
    // exception is taken by the resumable 0x900 stub, and only while MSR[EE] is on.
    unsafe { asm!("mtspr 22, {0}", in(reg) ticks, options(nomem, nostack, preserves_flags)) };
    // SAFETY: SPRG3 is the 0x500 stub's flag (an external interrupt ended the cede); writing
    // it touches no memory.
    unsafe { asm!("li {t}, 0", "mtsprg3 {t}", t = out(reg) _, options(nomem, nostack)) };
    // SAFETY: H_CEDE names no memory. It turns MSR[EE] on, so the decrementer or an external
    // interrupt is taken when it returns: the vectors are installed (checked above), and both
    // stubs return with every register intact (the external one with MSR[EE] off); any other
    // interrupt is reported as fatal as it would be at any time.
    let _ = unsafe { hcall(opcode::H_CEDE, [0; 9]) };
    // SAFETY: `mtmsrd` with L = 1 writes only MSR[EE] and MSR[RI] (here 0 and 1): interrupts
    // off again; nothing else about the running code changes.
    unsafe { asm!("li {t}, 2", "mtmsrd {t}, 1", t = out(reg) _, options(nomem, nostack)) };
    let flag: u64;
    // SAFETY: reading SPRG3 touches no memory.
    unsafe { asm!("mfsprg3 {0}", out(reg) flag, options(nomem, nostack, preserves_flags)) };
    if flag != 0 {
        Wake::External
    } else {
        Wake::Other
    }
}

/// What ended a [`cede_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// An external interrupt, left pending: accept it (`xics::accept`) and end it.
    External,
    /// The alarm, or anything else.
    Other,
}

/// `H_SET_MODE` resource 3 (address translation mode) with mode 3: interrupts taken with
/// translation on are delivered with it on, at 0xc000_0000_0000_4000 + vector (AIL = 3).
///
/// # Safety
/// The exception vectors must be installed at 0x4000 (`exceptions::install`) and translation,
/// once on, must map 0xc000_0000_0000_0000 onto physical 0.
pub unsafe fn set_interrupts_relocated() -> Result<(), HcallStatus> {
    // SAFETY: no memory is named; the caller's contract keeps the vectors reachable.
    unsafe { hcall_values(opcode::H_SET_MODE, &[3, 3]) }.status.to_result()
}

/// `H_SET_MODE` resource 4 (mflags 1): deliver interrupts in little-endian (LPCR[ILE]).
///
/// # Safety
/// The code at the interrupt vectors must be little-endian (or nothing may interrupt until it
/// is).
pub unsafe fn set_little_endian_interrupts() -> Result<(), HcallStatus> {
    // SAFETY: no memory is named; the caller's contract keeps interrupts handled.
    unsafe { hcall_values(opcode::H_SET_MODE, &[1, 4]) }.status.to_result()
}

/// `H_REGISTER_PROC_TBL` registering a radix process table at `table` of
/// 2^(12 + `size_shift`) bytes, with guest TLB shootdown: flags MODIFY (0x10) | REGISTER
/// (0x08) | RADIX (0x04) | GTSE (0x01); QEMU checks a 4 KiB-aligned table below 2^60, page
/// size 0, `size_shift` ≤ 24, and sets LPCR[UPRT|HR|GTSE].
///
/// # Safety
/// `table` must be a valid, big-endian radix process table of that size whose trees map
/// what the kernel will touch once translation is on, and it must stay in place (never
/// freed or reused) while it is registered.
pub unsafe fn register_radix_process_table(table: u64, size_shift: u64) -> Result<(), HcallStatus> {
    let flags = 0x10 | 0x08 | 0x04 | 0x01;
    // SAFETY: the hypervisor reads the table the caller vouches for.
    unsafe { hcall_values(opcode::H_REGISTER_PROC_TBL, &[flags, table, 0, size_shift]) }.status.to_result()
}

/// `H_ENTER` without H_EXACT: puts the entry (`v`, `r`) in a free slot of PTE group `group`
/// of the hashed page table; returns the slot's index, or [`HcallStatus::PTEG_FULL`] when the
/// group has none.
///
/// # Safety
/// The entry maps the physical page in `r` at the virtual address in `v`: once translation is
/// on, that page must be one the kernel may access with the entry's permissions, and a mapping
/// of running code or data must be the identity the kernel expects.
pub unsafe fn enter_hpte(group: u64, v: u64, r: u64) -> Result<u64, HcallStatus> {
    // SAFETY: H_ENTER writes only the hypervisor's own table; the caller vouches for what the
    // entry maps.
    let ret = unsafe { hcall_values(opcode::H_ENTER, &[0, group * 8, v, r]) };
    ret.status.to_result().map(|()| ret.outputs[0])
}
