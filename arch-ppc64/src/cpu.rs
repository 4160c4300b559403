//! Special-purpose registers and barriers of the running CPU (Power ISA 3.0 Book III).

use core::arch::asm;

/// MSR bit: little-endian mode.
pub const MSR_LE: u64 = 1 << 0;
/// MSR bit: 64-bit mode.
pub const MSR_SF: u64 = 1 << 63;
/// MSR bit: data relocation (translation) on.
pub const MSR_DR: u64 = 1 << 4;
/// MSR bit: instruction relocation on.
pub const MSR_IR: u64 = 1 << 5;

/// Reads the machine state register.
pub fn msr() -> u64 {
    let value: u64;
    // SAFETY: mfmsr only reads a register; no memory or state is changed.
    unsafe { asm!("mfmsr {0}", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads the processor version register (PVR, SPR 287).
pub fn pvr() -> u32 {
    let value: u64;
    // SAFETY: reading the PVR has no side effects.
    unsafe { asm!("mfspr {0}, 287", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value as u32
}

/// Reads the timebase.
pub fn timebase() -> u64 {
    let value: u64;
    // SAFETY: mftb only reads the timebase.
    unsafe { asm!("mftb {0}", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Full memory barrier (`sync`): orders all earlier stores, including TCE updates made
/// through hypercalls, before any later access — LoPAR requires it before starting DMA.
pub fn sync() {
    // SAFETY: a barrier has no effect other than ordering.
    unsafe { asm!("sync", options(nostack, preserves_flags)) };
}

/// Instruction-stream synchronisation after code was written to memory: flushes the data
/// cache lines of `[start, start + len)` to memory and invalidates the instruction cache.
pub fn sync_icache(start: usize, len: usize) {
    const LINE: usize = 128;
    let mut line = start & !(LINE - 1);
    while line < start + len {
        // SAFETY: dcbst/icbi only move cache lines of memory the caller just wrote.
        unsafe { asm!("dcbst 0, {0}", "sync", "icbi 0, {0}", in(reg) line, options(nostack)) };
        line += LINE;
    }
    // SAFETY: context synchronisation has no memory effect.
    unsafe { asm!("sync", "isync", options(nostack)) };
}

/// A volatile doubleword load from `addr` (as translated by the MMU when it is on).
///
/// # Safety
/// `addr` must be readable, or an interrupt handler that does not return must be installed
/// (the `test=unmapped` self-test of the translated exception path).
pub unsafe fn load(addr: u64) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { (addr as *const u64).read_volatile() }
}

/// Loads from `addr` with data translation switched on while no translation exists (no SLB
/// entries, no page tables): the load raises a data storage or data segment interrupt with
/// DAR = `addr`. Exists only for the `test=dsi` self-test of the exception path.
///
/// # Safety
/// The exception vectors must be installed; the interrupt handler must not return here.
pub unsafe fn load_without_translation_tables(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: the caller guarantees a handler that terminates; the load faults before any
    // memory is touched, and the interrupt turns MSR[DR] off again.
    unsafe {
        asm!(
            "mfmsr {tmp}",
            "ori {tmp}, {tmp}, 0x10",
            "mtmsrd {tmp}",
            "isync",
            "ld {value}, 0({addr})",
            tmp = out(reg) _,
            value = out(reg) value,
            addr = in(reg) addr,
            options(nostack)
        );
    }
    value
}
