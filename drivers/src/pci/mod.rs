//! PCI enumeration over an abstract configuration-space accessor (RTAS `ibm,read-pci-config`
//! in the kernel, a fake config space in host tests).
//!
//! [`enumerate_for()`] walks the root bus and the buses behind PCI-to-PCI bridges into
//! [`Function`]s with decoded BARs, bridge registers and capabilities — following firmware's
//! bus numbers, or numbering the buses itself ([`BridgeLayout`]); [`assign_bars()`] gives
//! unassigned BARs addresses inside the PHB windows, and in the kernel's layout sizes, places
//! and opens every bridge window and places the BARs behind them (in firmware's layout it
//! checks what firmware did), then enables decode and bus mastering. Facts: LoPAR
//! "ibm,read-pci-config", QEMU hw/ppc/spapr_pci.c, the PCI-to-PCI Bridge Architecture 1.2.

pub mod assign;
pub mod bar;
pub mod bdf;
pub mod bridge;
pub mod bridge_check;
pub mod cap_info;
pub mod caps;
pub mod config;
pub mod decode;
pub mod enumerate;
pub mod error;
pub mod function;
pub mod header;
pub mod hotplug;
pub mod numbering;
pub mod space;
pub mod window_place;
pub mod window_plan;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests_assign;
#[cfg(test)]
mod tests_bridge_check;
#[cfg(test)]
mod tests_bridges;
#[cfg(test)]
mod tests_enumerate;

pub use assign::{assign_bars, Assignment, BarOrigin, BridgeLayout, Window, Windows};
pub use bar::{Bar, BarKind};
pub use bdf::Bdf;
pub use bridge::{Bridge, BusNumbers, Decode, WindowKind};
pub use cap_info::{MsixInfo, SriovInfo};
pub use caps::{Capability, CapabilityKind, ExtCapability, ExtCapabilityKind};
pub use config::{ConfigAccess, ConfigError, Width};
pub use decode::stop_dma;
pub use enumerate::{enumerate, enumerate_for};
pub use error::PciError;
pub use function::Function;
pub use header::{Command, Status};
pub use numbering::enumerate_numbering;
