//! What firmware handed over at entry, and the jump into the kernel.

/// The boot path, decided from the entry registers: SLOF and VOF enter with r5 = the client
/// interface's entry, QEMU's `-bios` path with r3 = the FDT (QEMU hw/ppc/spapr.c
/// `spapr_machine_reset`, hw/ppc/vof.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// r5 holds an Open Firmware client-interface entry (SLOF or VOF).
    OpenFirmware {
        /// Client-interface entry address.
        entry: u64,
    },
    /// r3 holds the address of a flattened device tree (`-bios` boot, no firmware).
    FlattenedTree {
        /// Physical address of the FDT header.
        fdt: u64,
    },
    /// Neither: nothing usable was handed over.
    Unknown,
}

/// The registers firmware left for us. Only [`arch_boot_entry`] builds one, so its entry
/// addresses are the ones firmware passed.
#[derive(Debug)]
pub struct BootHandoff {
    r3: u64,
    r5: u64,
    msr: u64,
    timebase: u64,
}

impl BootHandoff {
    /// MSR after the entry code's switch to 64-bit little-endian.
    pub fn msr(&self) -> u64 {
        self.msr
    }

    /// Timebase at the first Rust instruction.
    pub fn timebase(&self) -> u64 {
        self.timebase
    }

    /// Classifies the handoff.
    pub fn kind(&self) -> EntryKind {
        if self.r5 != 0 {
            EntryKind::OpenFirmware { entry: self.r5 }
        } else if self.r3 != 0 {
            EntryKind::FlattenedTree { fdt: self.r3 }
        } else {
            EntryKind::Unknown
        }
    }
}

extern "Rust" {
    fn kernel_main(handoff: BootHandoff) -> !;
}

/// Called by `_start` once the CPU is in 64-bit little-endian mode with a stack.
#[no_mangle]
extern "C" fn arch_boot_entry(r3: u64, _r4: u64, r5: u64) -> ! {
    let handoff = BootHandoff { r3, r5, msr: crate::cpu::msr(), timebase: crate::cpu::timebase() };
    // SAFETY: `kernel_main` is defined by the kernel binary with exactly this signature.
    unsafe { kernel_main(handoff) }
}
