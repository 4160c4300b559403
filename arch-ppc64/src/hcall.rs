//! Hypervisor calls (`sc 1`) and their status codes.
//!
//! ABI (LoPAR "Hypervisor Call Interrupt"): opcode in r3, arguments in r4–r12; status back in
//! r3 and outputs in r4–r12; r0, r3–r12, CTR, XER and CR0/1/5–7 are volatile. Status values
//! come from `asm/hvcall.h` as summarised in ../shared/docs/papr-ddw-facts.md §1.7. Statuses
//! are an open set, so they are a newtype with named constants, never a Rust enum.

use core::arch::asm;
use core::fmt;

/// A hypervisor call status (r3 after `sc 1`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HcallStatus(pub i64);

impl HcallStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0);
    /// Busy: retry.
    pub const BUSY: Self = Self(1);
    /// Hardware error.
    pub const HARDWARE: Self = Self(-1);
    /// Function not supported.
    pub const FUNCTION: Self = Self(-2);
    /// Caller not privileged.
    pub const PRIVILEGE: Self = Self(-3);
    /// Bad parameter.
    pub const PARAMETER: Self = Self(-4);

    /// True for the "long busy" hints 9900..=9905 (retry after 10^(x-9900) ms).
    pub const fn is_long_busy(self) -> bool {
        self.0 >= 9900 && self.0 <= 9905
    }

    /// `Ok(())` for success, the status otherwise.
    pub const fn to_result(self) -> Result<(), HcallStatus> {
        if self.0 == 0 {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Debug for HcallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, drivers::iommu::hcall::hcall_status_name(self.0))
    }
}

impl fmt::Display for HcallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Hypercall opcodes used by this kernel.
pub mod opcode {
    /// Read a TCE.
    pub const H_GET_TCE: u64 = 0x1C;
    /// Write one TCE.
    pub const H_PUT_TCE: u64 = 0x20;
    /// Write a character string to a virtual terminal.
    pub const H_PUT_TERM_CHAR: u64 = 0x58;
    /// Write one TCE value into up to 512 consecutive entries.
    pub const H_STUFF_TCE: u64 = 0x138;
    /// Write up to 512 TCEs listed in a 4 KiB page.
    pub const H_PUT_TCE_INDIRECT: u64 = 0x13C;
    /// Set a processor mode (interrupt endianness, …).
    pub const H_SET_MODE: u64 = 0x31C;
    /// H_ENTER (PAPR hcall-pft).
    pub const H_ENTER: u64 = 0x08;
    /// H_REGISTER_PROC_TBL (PAPR; QEMU `h_register_process_table`).
    pub const H_REGISTER_PROC_TBL: u64 = 0x37C;
    /// QEMU/KVM private: run an RTAS call (r4 = argument buffer).
    pub const KVMPPC_H_RTAS: u64 = 0xF000;
}

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
/// Hypercalls that take guest-physical addresses read or write guest memory; callers that
/// pass such an address must make sure it is valid (see the wrappers' docs).
pub fn hcall(opcode: u64, args: [u64; 9]) -> HcallReturn {
    let mut regs = args;
    let status: i64;
    // SAFETY: `sc 1` enters the hypervisor, which only reads/writes guest memory named by
    // the arguments (the caller's responsibility per the wrapper contracts) and returns with
    // the volatile registers (declared here as outputs/clobbers) changed.
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

/// `H_SET_MODE` resource 3 (address translation mode) with mode 3: interrupts taken with
/// translation on are delivered with it on, at 0xc000_0000_0000_4000 + vector (AIL = 3).
pub fn set_interrupts_relocated() -> Result<(), HcallStatus> {
    let mut args = [0u64; 9];
    args[0] = 3; // mflags: AIL 3
    args[1] = 3; // resource: H_SET_MODE_RESOURCE_ADDR_TRANS_MODE
    hcall(opcode::H_SET_MODE, args).status.to_result()
}

/// `H_REGISTER_PROC_TBL` registering a radix process table at `table` of
/// 2^(12 + `size_shift`) bytes, with guest TLB shootdown: flags MODIFY (0x10) | REGISTER
/// (0x08) | RADIX (0x04) | GTSE (0x01); QEMU checks a 4 KiB-aligned table below 2^60, page
/// size 0, `size_shift` ≤ 24, and sets LPCR[UPRT|HR|GTSE].
pub fn register_radix_process_table(table: u64, size_shift: u64) -> Result<(), HcallStatus> {
    let mut args = [0u64; 9];
    args[0] = 0x10 | 0x08 | 0x04 | 0x01;
    args[1] = table;
    args[2] = 0;
    args[3] = size_shift;
    hcall(opcode::H_REGISTER_PROC_TBL, args).status.to_result()
}

/// `H_ENTER` without H_EXACT: puts the entry (`v`, `r`) in a free slot of PTE group
/// `group` of the hashed page table; returns the slot's index. `H_PTEG_FULL` (−6) when the
/// group has none.
pub fn enter_hpte(group: u64, v: u64, r: u64) -> Result<u64, HcallStatus> {
    let mut args = [0u64; 9];
    args[0] = 0; // flags
    args[1] = group * 8;
    args[2] = v;
    args[3] = r;
    let ret = hcall(opcode::H_ENTER, args);
    ret.status.to_result().map(|()| ret.outputs[0])
}

/// `H_SET_MODE` resource 4 (mflags 1): deliver interrupts in little-endian (LPCR[ILE]).
pub fn set_little_endian_interrupts() -> Result<(), HcallStatus> {
    let mut args = [0u64; 9];
    args[0] = 1; // mflags: 1 = little-endian
    args[1] = 4; // resource: H_SET_MODE_RESOURCE_LE
    hcall(opcode::H_SET_MODE, args).status.to_result()
}
