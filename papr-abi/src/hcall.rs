//! Hypervisor calls: opcodes and the status word.
//!
//! ABI (LoPAR "Hypervisor Call Interrupt"): `sc 1` with the opcode in r3 and arguments in
//! r4–r12; the status comes back in r3, outputs in r4–r12. Opcodes and status values are those
//! of Linux `arch/powerpc/include/asm/hvcall.h` (H_P1 −54 … H_P9 −62, long busy 9900–9905).

use core::fmt;

/// Hypercall opcodes used by this project.
pub mod opcode {
    /// H_ENTER (PAPR hcall-pft): insert a hashed page table entry.
    pub const H_ENTER: u64 = 0x08;
    /// H_GET_TCE: read one TCE.
    pub const H_GET_TCE: u64 = 0x1C;
    /// H_PUT_TCE: write one TCE.
    pub const H_PUT_TCE: u64 = 0x20;
    /// H_EOI: end of interrupt, with the XIRR `H_XIRR` returned (LoPAR "Interrupt Support").
    pub const H_EOI: u64 = 0x64;
    /// H_CPPR: set the processor's current interrupt priority.
    pub const H_CPPR: u64 = 0x68;
    /// H_XIRR: accept the most favoured pending interrupt; its XIRR in r4.
    pub const H_XIRR: u64 = 0x74;
    /// H_CEDE: give the processor up until an interrupt is pending; the hypervisor sets
    /// MSR[EE] (LoPAR "H_CEDE").
    pub const H_CEDE: u64 = 0xE0;
    /// H_CONFER: give the rest of this processor's time slice away (LoPAR "H_CONFER"; target
    /// −1: to every other processor).
    pub const H_CONFER: u64 = 0xE4;
    /// H_PUT_TERM_CHAR: write up to 16 bytes to a virtual terminal.
    pub const H_PUT_TERM_CHAR: u64 = 0x58;
    /// H_STUFF_TCE: write one TCE value into up to 512 consecutive entries.
    pub const H_STUFF_TCE: u64 = 0x138;
    /// H_PUT_TCE_INDIRECT: write up to 512 TCEs listed in a 4 KiB page.
    pub const H_PUT_TCE_INDIRECT: u64 = 0x13C;
    /// H_SET_MODE: set a processor mode (interrupt endianness, address translation mode).
    pub const H_SET_MODE: u64 = 0x31C;
    /// H_REGISTER_PROC_TBL (PAPR; QEMU `h_register_process_table`).
    pub const H_REGISTER_PROC_TBL: u64 = 0x37C;
    /// QEMU/KVM private: run an RTAS call (r4 = argument buffer; QEMU `h_rtas`).
    pub const KVMPPC_H_RTAS: u64 = 0xF000;
}

/// A hypervisor call status (r3 after `sc 1`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HcallStatus(pub i64);

impl HcallStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0);
    /// Busy: call again.
    pub const BUSY: Self = Self(1);
    /// The hypervisor failed.
    pub const HARDWARE: Self = Self(-1);
    /// The function is not supported.
    pub const FUNCTION: Self = Self(-2);
    /// The caller is not privileged.
    pub const PRIVILEGE: Self = Self(-3);
    /// A bad parameter (LIOBN, IOBA, TCE, count…).
    pub const PARAMETER: Self = Self(-4);
    /// H_PTEG_FULL: H_ENTER found no free slot in the PTE group.
    pub const PTEG_FULL: Self = Self(-6);
    /// Not enough resources (Linux unwinds a TCE mapping on it).
    pub const NOT_ENOUGH_RESOURCES: Self = Self(-44);
    /// The fourth parameter is bad (H_STUFF_TCE count above 512 on PAPR platforms).
    pub const P4: Self = Self(-57);

    /// The PAPR name of the status, or `"unknown status"`.
    pub const fn name(self) -> &'static str {
        const P_NAMES: [&str; 9] = ["H_P1", "H_P2", "H_P3", "H_P4", "H_P5", "H_P6", "H_P7", "H_P8", "H_P9"];
        match self.0 {
            0 => "H_SUCCESS",
            1 => "H_BUSY",
            -1 => "H_HARDWARE",
            -2 => "H_FUNCTION",
            -3 => "H_PRIVILEGE",
            -4 => "H_PARAMETER",
            -6 => "H_PTEG_FULL",
            -44 => "H_NOT_ENOUGH_RESOURCES",
            -46 => "H_RESCINDED",
            -62..=-54 => P_NAMES[(-54 - self.0) as usize],
            9900..=9905 => "H_LONG_BUSY",
            9999 => "H_TOO_HARD",
            _ => "unknown status",
        }
    }

    /// True for the "long busy" hints 9900..=9905 (retry after 10^(x−9900) ms).
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
        write!(f, "{} ({})", self.0, self.name())
    }
}

impl fmt::Display for HcallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HcallStatus(-54).name(), "H_P1");
        assert_eq!(HcallStatus(-57).name(), "H_P4");
        assert_eq!(HcallStatus(-62).name(), "H_P9");
        assert_eq!(HcallStatus(-63).name(), "unknown status");
        assert_eq!(HcallStatus(9902).name(), "H_LONG_BUSY");
        assert_eq!(HcallStatus(i64::MIN).name(), "unknown status");
        assert_eq!(format!("{}", HcallStatus::PARAMETER), "-4 (H_PARAMETER)");
        assert!(HcallStatus(9905).is_long_busy() && !HcallStatus(9906).is_long_busy());
        assert_eq!(HcallStatus::SUCCESS.to_result(), Ok(()));
    }
}
