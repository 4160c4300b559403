//! Turning translation on once the kernel has built its tables (Power ISA 3.0 Book III).
//!
//! The tables themselves are built by `drivers::mmu`; this module only touches the CPU:
//! PIDR (SPR 48) = 0 so quadrant-0 addresses use process-table entry 0, `ptesync` so the
//! table stores are visible to the walker, then MSR[IR|DR] on. Firmware calls drop to real
//! mode on their own (`ppc_firmware_call` clears IR/DR), and interrupts taken with
//! translation on stay translated once AIL = 3 is set (`hcall::set_interrupts_relocated`).

use core::arch::asm;

use crate::cpu::{MSR_DR, MSR_IR};

/// Loads the SLB with `entries` (RS, RB pairs for `slbmte`) after invalidating it.
///
/// # Safety
/// Translation must be off, or the new entries must keep mapping the running code.
pub unsafe fn load_slb(entries: &[(u64, u64)]) {
    // SAFETY: slbia/slbmte only change the segment lookaside buffer (the caller's contract
    // covers what it translates); isync makes the entries visible to later accesses.
    unsafe { asm!("slbia", "isync", options(nostack)) };
    for &(rs, rb) in entries {
        // SAFETY: as above.
        unsafe { asm!("slbmte {rs}, {rb}", rs = in(reg) rs, rb = in(reg) rb, options(nostack)) };
    }
    // SAFETY: context synchronisation only.
    unsafe { asm!("isync", options(nostack)) };
}

/// Switches instruction and data translation on for the running hash-MMU code (no PIDR on
/// POWER8).
///
/// # Safety
/// The SLB and bolted hashed page-table entries must identity-map everything the kernel
/// touches.
pub unsafe fn enable_hash_translation() {
    // SAFETY: the caller's contract is `set_ir_dr`'s.
    unsafe { set_ir_dr() };
}

/// Switches instruction and data translation on for the running code.
///
/// # Safety
/// A radix tree mapping the kernel image, its stacks, heap and every address the kernel will
/// touch must be registered (`hcall::register_radix_process_table`) and identity-mapped, so
/// execution continues at the same addresses.
pub unsafe fn enable_translation() {
    // SAFETY: PIDR = 0 selects process-table entry 0 for quadrant-0 addresses; writing it has
    // no effect while translation is off.
    unsafe { asm!("li {tmp}, 0", "mtspr 48, {tmp}", "isync", tmp = out(reg) _, options(nostack)) };
    // SAFETY: the caller's contract is `set_ir_dr`'s.
    unsafe { set_ir_dr() };
}

/// `ptesync` (table stores visible to the walker), then MSR[IR|DR] on.
///
/// # Safety
/// Everything the kernel touches must be identity-mapped by the registered translation, so
/// execution continues at the same addresses.
unsafe fn set_ir_dr() {
    let bits = MSR_IR | MSR_DR;
    // SAFETY: the caller's identity map keeps the next instruction where it is; isync makes
    // the new MSR take effect before the next instruction.
    unsafe {
        asm!(
            "ptesync",
            "mfmsr {tmp}",
            "or {tmp}, {tmp}, {bits}",
            "mtmsrd {tmp}",
            "isync",
            tmp = out(reg) _,
            bits = in(reg) bits,
            options(nostack)
        );
    }
}

/// Whether data translation is on.
pub fn translation_on() -> bool {
    crate::cpu::msr() & MSR_DR != 0
}
