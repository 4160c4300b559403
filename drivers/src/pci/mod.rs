//! PCI enumeration over an abstract configuration-space accessor (RTAS `ibm,read-pci-config`
//! in the kernel, a fake config space in host tests).
//!
//! [`enumerate()`] walks the root bus (and bridges below it) into [`Function`]s with decoded BARs
//! and capabilities; [`assign_bars()`] gives unassigned root-bus BARs addresses inside the PHB
//! windows and enables decode and bus mastering. Facts: LoPAR "ibm,read-pci-config", QEMU hw/ppc/spapr_pci.c.

pub mod assign;
pub mod bar;
pub mod bdf;
pub mod cap_info;
pub mod caps;
pub mod config;
pub mod enumerate;
pub mod error;
pub mod function;
pub mod header;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests_assign;
#[cfg(test)]
mod tests_enumerate;

pub use assign::{assign_bars, stop_dma, Assignment, BarOrigin, Window, Windows};
pub use bar::{Bar, BarKind};
pub use bdf::Bdf;
pub use cap_info::{MsixInfo, SriovInfo};
pub use caps::{Capability, CapabilityKind, ExtCapability, ExtCapabilityKind};
pub use config::{ConfigAccess, ConfigError, Width};
pub use enumerate::enumerate;
pub use error::PciError;
pub use function::Function;
pub use header::{Command, Status};
