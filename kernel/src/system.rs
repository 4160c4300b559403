//! The kernel's one picture of the machine's PCI side: one [`Phb`] per host bridge, holding
//! what the device tree says of it, its config-space access, the functions found on it and
//! its PE's DMA state. Nothing is matched by position: each device finds its PE through the
//! PHB it sits on, and holds its own DMA handle.

use alloc::vec::Vec;
use drivers::devtree::phb::PhbInfo;
use drivers::dma::SharedPe;
use drivers::iommu::PeAddress;
use drivers::pci::Function;

use crate::boundary::hypervisor::PeHypervisor;
use crate::pci_config::RtasConfigSpace;

/// One PHB.
pub struct Phb<'p> {
    /// Its number in the report (`phb.<n>`, `pe.<n>`, `pci.<n>`).
    pub index: usize,
    /// What the device tree says of it.
    pub info: &'p PhbInfo,
    /// Its config space, when RTAS offers the config calls.
    pub cfg: Option<RtasConfigSpace>,
    /// The functions found on it.
    pub functions: Vec<Function>,
    /// Its PE's DMA state, once set up.
    pub pe: Option<Pe>,
}

/// A PE and its DMA state (QEMU: one PE per PHB).
pub struct Pe {
    /// Its RTAS address, when a DDW was asked for.
    pub address: Option<PeAddress>,
    /// Its windows, shared by its devices.
    pub state: SharedPe<PeHypervisor>,
}
