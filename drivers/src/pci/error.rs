//! Errors of PCI enumeration and BAR assignment.
//!
//! Per-function trouble (a failed register read, a looping capability list, a BAR that does not
//! fit) never aborts the whole scan: it is recorded in `Function::problems`. [`PciError`] is for
//! the cases where the result would be meaningless.

use core::fmt;

use super::bar::BarKind;
use super::bdf::Bdf;
use super::config::ConfigError;

/// Why enumeration or assignment as a whole failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PciError {
    /// Configuration space is unusable: the root bus produced no function and this access
    /// failed with an error other than "no device" (e.g. RTAS −3 for a wrong BUID or token).
    Config {
        /// Function being accessed.
        bdf: Bdf,
        /// Register offset.
        offset: u16,
        /// What the accessor reported.
        error: ConfigError,
    },
    /// A bus window is empty, wraps around, or (for the 32-bit memory window) ends above 4 GiB.
    BadWindow {
        /// The window's address space.
        kind: BarKind,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::Config { bdf, offset, error } => {
                write!(f, "pci {bdf}: config access at {offset:#x} failed: {error}")
            }
            PciError::BadWindow { kind } => write!(f, "invalid {kind:?} bus window"),
        }
    }
}
