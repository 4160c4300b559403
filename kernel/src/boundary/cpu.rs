//! The CPU's side of the boundary: the kernel's entry symbol, the exception vectors, and the
//! deliberate faults of `test=segment`, `test=unmapped` and `test=program`.

use arch_ppc64::boot::BootHandoff;
use arch_ppc64::exceptions::{self, FatalHandler};
use arch_ppc64::hcall::HcallStatus;
use arch_ppc64::{cpu, println};

/// The symbol `arch_ppc64::boot` jumps to once the CPU runs 64-bit little-endian with a
/// stack (unmangled: it is declared there as `extern "Rust" { fn kernel_main(..) -> ! }`).
#[no_mangle]
fn kernel_main(handoff: BootHandoff) -> ! {
    crate::boot(handoff)
}

/// Installs the fatal-exception vectors at 0 and 0x4000 and switches interrupts to
/// little-endian. Called once, after the kernel stopped calling Open Firmware.
pub fn install_vectors(handler: FatalHandler) -> Result<(), HcallStatus> {
    // SAFETY: kernel_main calls this after leaving Open Firmware (the OF boot flattened the
    // tree and the kernel never calls OF again), and the kernel lives at 0x400000, so
    // physical [0, 0x5000) holds nothing still needed.
    unsafe { exceptions::install(handler) }
}

/// `test=segment`: loads `addr` with data translation on and no segment, which raises a
/// data segment interrupt; the fatal handler installed by [`install_vectors`] ends the run.
pub fn fault_data_segment(addr: u64) -> u64 {
    println!("test=segment: loading from {addr:#x} with data translation on and no segment");
    // SAFETY: the vectors are installed and the fatal handler never returns.
    unsafe { cpu::load_without_translation_tables(addr) }
}

/// `test=unmapped`: loads `addr`, which no translation maps; the fatal handler ends the run.
pub fn fault_unmapped(addr: u64) -> u64 {
    println!("test=unmapped: loading from {addr:#x}, which no translation maps (MSR {:#x})", cpu::msr());
    // SAFETY: the vectors are installed and the fatal handler never returns.
    unsafe { cpu::load(addr) }
}

/// `test=program`: executes an illegal instruction; the fatal handler ends the run.
pub fn fault_program() {
    println!("test=program: executing an illegal instruction");
    // SAFETY: deliberately traps; the program-interrupt handler never returns.
    unsafe { core::arch::asm!(".long 0") };
}
