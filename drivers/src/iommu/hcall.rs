//! The TCE hypervisor calls as a trait, and their errors.
//!
//! [`TceCalls`] is implemented over `sc 1` by the kernel's hypervisor adapter (which only the
//! IOMMU driver's state holds) and by the hypervisor model in tests. Facts relied on:
//! - opcodes H_GET_TCE 0x1C, H_PUT_TCE 0x20, H_STUFF_TCE 0x138, H_PUT_TCE_INDIRECT 0x13C
//!   (Linux `arch/powerpc/include/asm/hvcall.h`, [`papr_abi::hcall::opcode`]);
//! - IOBA is the absolute bus address of the entry (not window-relative), aligned to the
//!   window's page size (Linux `arch/powerpc/kernel/iommu.c : iommu_tce_check_ioba`);
//! - H_PUT_TCE_INDIRECT takes the guest-physical address of one 4 KiB page of at most 512
//!   big-endian TCEs; H_STUFF_TCE writes one value into at most 512 entries (LoPAR
//!   "H_STUFF_TCE"; PowerVM answers H_P4 beyond 512, QEMU `h_stuff_tce` does not check);
//! - none of the calls orders the table update before DMA: the OS issues `sync` (LoPAR
//!   "TCE Update Synchronisation");
//! - status codes from Linux `asm/hvcall.h` ([`HcallStatus`]).

use core::fmt;

use super::tce::{ReadTce, Tce};
use crate::addr::{BusAddr, Liobn};
use papr_abi::hcall::{opcode, HcallStatus};

/// The four TCE hypervisor calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HcallName {
    /// H_PUT_TCE: write one entry.
    PutTce,
    /// H_PUT_TCE_INDIRECT: write up to 512 entries from a list page.
    PutTceIndirect,
    /// H_STUFF_TCE: write one value into up to 512 consecutive entries.
    StuffTce,
    /// H_GET_TCE: read one entry.
    GetTce,
}

impl HcallName {
    /// The hcall opcode (r3).
    pub const fn opcode(self) -> u64 {
        match self {
            HcallName::PutTce => opcode::H_PUT_TCE,
            HcallName::PutTceIndirect => opcode::H_PUT_TCE_INDIRECT,
            HcallName::StuffTce => opcode::H_STUFF_TCE,
            HcallName::GetTce => opcode::H_GET_TCE,
        }
    }

    /// The PAPR name, e.g. `H_PUT_TCE_INDIRECT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HcallName::PutTce => "H_PUT_TCE",
            HcallName::PutTceIndirect => "H_PUT_TCE_INDIRECT",
            HcallName::StuffTce => "H_STUFF_TCE",
            HcallName::GetTce => "H_GET_TCE",
        }
    }
}

impl fmt::Display for HcallName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One TCE hcall with the arguments an error message needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TceHcall {
    /// H_PUT_TCE(liobn, ioba, tce).
    PutTce {
        /// Table.
        liobn: Liobn,
        /// Bus address of the entry.
        ioba: BusAddr,
        /// Value written.
        tce: Tce,
    },
    /// H_PUT_TCE_INDIRECT(liobn, ioba, list page, count).
    PutTceIndirect {
        /// Table.
        liobn: Liobn,
        /// Bus address of the first entry.
        ioba: BusAddr,
        /// Number of TCEs in the list.
        count: usize,
    },
    /// H_STUFF_TCE(liobn, ioba, tce, count).
    StuffTce {
        /// Table.
        liobn: Liobn,
        /// Bus address of the first entry.
        ioba: BusAddr,
        /// Value written into every entry.
        tce: Tce,
        /// Number of entries.
        count: u32,
    },
    /// H_GET_TCE(liobn, ioba).
    GetTce {
        /// Table.
        liobn: Liobn,
        /// Bus address of the entry.
        ioba: BusAddr,
    },
}

impl TceHcall {
    /// Which call this is.
    pub const fn name(&self) -> HcallName {
        match self {
            TceHcall::PutTce { .. } => HcallName::PutTce,
            TceHcall::PutTceIndirect { .. } => HcallName::PutTceIndirect,
            TceHcall::StuffTce { .. } => HcallName::StuffTce,
            TceHcall::GetTce { .. } => HcallName::GetTce,
        }
    }

    /// The table the call acts on.
    pub const fn liobn(&self) -> Liobn {
        match *self {
            TceHcall::PutTce { liobn, .. }
            | TceHcall::PutTceIndirect { liobn, .. }
            | TceHcall::StuffTce { liobn, .. }
            | TceHcall::GetTce { liobn, .. } => liobn,
        }
    }
}

impl fmt::Display for TceHcall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match *self {
            TceHcall::PutTce { liobn, ioba, tce } => {
                write!(f, "{name}(liobn {liobn}, ioba {ioba}, tce {tce})")
            }
            TceHcall::PutTceIndirect { liobn, ioba, count } => {
                write!(f, "{name}(liobn {liobn}, ioba {ioba}, {count} TCEs)")
            }
            TceHcall::StuffTce { liobn, ioba, tce, count } => {
                write!(f, "{name}(liobn {liobn}, ioba {ioba}, tce {tce}, {count} TCEs)")
            }
            TceHcall::GetTce { liobn, ioba } => write!(f, "{name}(liobn {liobn}, ioba {ioba})"),
        }
    }
}

/// A TCE hcall returned a non-zero status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HcallError {
    /// The call and its arguments.
    pub call: TceHcall,
    /// The status from r3.
    pub status: i64,
}

impl fmt::Display for HcallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with status {}", self.call, HcallStatus(self.status))
    }
}

/// The TCE hypervisor calls of one partition.
///
/// Implementations return `Err` for every non-zero status, carrying the call's arguments.
pub trait TceCalls {
    /// H_PUT_TCE: writes `tce` into the entry for bus address `ioba` of table `liobn`.
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError>;

    /// H_PUT_TCE_INDIRECT: writes `tces` into consecutive entries starting at `ioba`. The
    /// implementation copies them, big-endian, into one reused 4 KiB list page; callers never
    /// pass more than [`MAX_TCES_PER_CALL`](super::tce::MAX_TCES_PER_CALL).
    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError>;

    /// H_STUFF_TCE: writes `tce` into `count` consecutive entries starting at `ioba`; callers
    /// never pass a count above 512.
    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError>;

    /// H_GET_TCE: reads the entry for `ioba`.
    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError>;

    /// The `sync` LoPAR requires between TCE updates and the DMA that relies on them.
    fn sync(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indirect_error_sentence() {
        let error = HcallError {
            call: TceHcall::PutTceIndirect {
                liobn: Liobn(0x8000_0001),
                ioba: BusAddr(0x800_0000_0000_0000),
                count: 512,
            },
            status: HcallStatus::PARAMETER.0,
        };
        assert_eq!(
            error.to_string(),
            "H_PUT_TCE_INDIRECT(liobn 0x80000001, ioba 0x800000000000000, 512 TCEs) failed with \
             status -4 (H_PARAMETER)"
        );
        assert_eq!(error.call.name().opcode(), 0x13C);
    }

    #[test]
    fn other_sentences_and_status_names() {
        let stuff = HcallError {
            call: TceHcall::StuffTce {
                liobn: Liobn(0x8000_0000),
                ioba: BusAddr(0),
                tce: Tce::CLEAR,
                count: 600,
            },
            status: HcallStatus::P4.0,
        };
        assert_eq!(
            stuff.to_string(),
            "H_STUFF_TCE(liobn 0x80000000, ioba 0x0, tce 0x0, 600 TCEs) failed with status -57 (H_P4)"
        );
        let put = TceHcall::PutTce { liobn: Liobn(1), ioba: BusAddr(0x1000), tce: Tce::from_raw(0x2003) };
        assert_eq!(put.liobn(), Liobn(1));
        assert_eq!(put.to_string(), "H_PUT_TCE(liobn 0x1, ioba 0x1000, tce 0x2003)");
        let get = TceHcall::GetTce { liobn: Liobn(1), ioba: BusAddr(0x1000) };
        assert_eq!(get.to_string(), "H_GET_TCE(liobn 0x1, ioba 0x1000)");
        assert_eq!(HcallName::GetTce.opcode(), 0x1C);
        assert_eq!(HcallName::StuffTce.opcode(), 0x138);
        assert_eq!(HcallName::PutTce.opcode(), 0x20);
    }
}
