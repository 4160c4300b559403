//! Exception vectors: every interrupt the kernel does not expect is fatal and reported; the
//! decrementer (the alarm of [`crate::hcall::cede_for`]) and an external interrupt (which
//! ends a cede, see [`crate::xics`]) return to the code they interrupted.
//!
//! The vector stubs (`entry.S`, section `.vectors`) are copied to physical address 0, where a
//! real-mode guest takes its interrupts, then `H_SET_MODE` switches interrupt delivery to
//! little-endian (without it QEMU delivers big-endian and loops on program checks; QEMU
//! hw/ppc/spapr_hcall.c `h_set_mode_resource_le`). Each stub jumps to `ppc_exception_entry`, which calls
//! [`arch_exception_entry`] with SRR0/SRR1/DAR/DSISR on a dedicated stack.

use crate::hcall::HcallStatus;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The registers saved when an exception was taken.
#[derive(Clone, Copy, Debug)]
pub struct ExceptionFrame {
    /// Vector offset (0x300 = data storage, 0x700 = program, …).
    pub vector: u64,
    /// Interrupted instruction address.
    pub srr0: u64,
    /// MSR at the interrupt, plus cause bits.
    pub srr1: u64,
    /// Data address of a storage interrupt.
    pub dar: u64,
    /// Cause of a data storage interrupt.
    pub dsisr: u64,
    /// Stack pointer at the interrupt.
    pub r1: u64,
}

impl ExceptionFrame {
    /// A human name for the vector.
    pub fn name(&self) -> &'static str {
        match self.vector {
            0x100 => "system reset",
            0x200 => "machine check",
            0x300 => "data storage",
            0x380 => "data segment",
            0x400 => "instruction storage",
            0x480 => "instruction segment",
            0x500 => "external",
            0x600 => "alignment",
            0x700 => "program",
            0x800 => "floating-point unavailable",
            0x900 => "decrementer",
            0xc00 => "system call",
            0xf20 => "vector unavailable",
            0xf40 => "VSX unavailable",
            0xf60 => "facility unavailable",
            _ => "unexpected",
        }
    }
}

/// The kernel's handler for fatal exceptions (prints, then terminates the partition).
pub type FatalHandler = fn(&ExceptionFrame) -> !;

static FATAL_HANDLER: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    static ppc_vectors_template: u8;
    static ppc_vectors_template_end: u8;
}

/// Where interrupts land (physically) once AIL = 3 relocates them to 0xc000_0000_0000_4000.
pub const RELOCATED_VECTORS: u64 = 0x4000;

/// Switches interrupts to little-endian and installs the vectors at physical 0 and at
/// [`RELOCATED_VECTORS`].
///
/// # Safety
/// Physical memory `[0, 0x5000)` must not hold anything still needed (firmware that is no
/// longer called), and the caller must not rely on firmware's own interrupt handlers anymore.
pub unsafe fn install(handler: FatalHandler) -> Result<(), HcallStatus> {
    FATAL_HANDLER.store(handler as usize, Ordering::SeqCst);
    // Taking the address of an extern static is safe; entry.S places these two symbols
    // around the .vectors template.
    let start = core::ptr::addr_of!(ppc_vectors_template) as usize;
    let end = core::ptr::addr_of!(ppc_vectors_template_end) as usize;
    let len = end - start;
    // SAFETY: the caller guarantees [0, 0x1000) is ours; the template is `len` (0x1000)
    // readable bytes; the ranges do not overlap (the template lives at 0x400000+). Vector
    // 0x0 is never used, so the copy starts at 0x100 from physical address 0x100.
    unsafe {
        core::ptr::copy_nonoverlapping((start + 0x100) as *const u8, 0x100 as *mut u8, len - 0x100);
    }
    crate::cpu::sync_icache(0x100, len - 0x100);
    // With translation on and AIL = 3 the same vectors are taken at 0xc000_0000_0000_4000 +
    // offset, which the identity tree maps to physical 0x4000 + offset.
    // SAFETY: as above for [0x4100, 0x5000), which the caller's guarantee also covers
    // (`RELOCATED_VECTORS` is below the kernel image and reserved with it).
    unsafe {
        core::ptr::copy_nonoverlapping(
            (start + 0x100) as *const u8,
            (RELOCATED_VECTORS + 0x100) as *mut u8,
            len - 0x100,
        );
    }
    crate::cpu::sync_icache(RELOCATED_VECTORS as usize + 0x100, len - 0x100);
    // SAFETY: the little-endian vectors are in place at 0 and at 0x4000.
    let result = unsafe { crate::hcall::set_little_endian_interrupts() };
    INSTALLED.store(result.is_ok(), Ordering::SeqCst);
    result
}

/// Set once [`install`] has put the vectors in place and made interrupts little-endian.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether a decrementer interrupt now returns to the interrupted code (the 0x900 stub in
/// `entry.S`) rather than reaching firmware's handlers: what [`crate::hcall::cede_for`] needs.
pub fn decrementer_resumes() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// Called by `ppc_exception_entry` on the exception stack.
#[no_mangle]
extern "C" fn arch_exception_entry(vector: u64, srr0: u64, srr1: u64, dar: u64, dsisr: u64, r1: u64) -> ! {
    let frame = ExceptionFrame { vector, srr0, srr1, dar, dsisr, r1 };
    let handler = FATAL_HANDLER.load(Ordering::SeqCst);
    if handler != 0 {
        // SAFETY: only `install` stores into FATAL_HANDLER, always a valid `FatalHandler`.
        let handler: FatalHandler = unsafe { core::mem::transmute::<usize, FatalHandler>(handler) };
        handler(&frame);
    }
    crate::println!("exception {:#x} with no handler: SRR0={:#x} SRR1={:#x}", vector, srr0, srr1);
    loop {
        core::hint::spin_loop();
    }
}
