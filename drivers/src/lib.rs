//! Safe driver logic for the pseries unikernel, compiled for the guest and tested on the host.
//!
//! Nothing here touches hardware directly: firmware and hypervisor services reach this crate
//! through traits (`pci::ConfigAccess`, `devtree::of::OfTree`, …) that `arch-ppc64` implements in
//! the kernel and that host tests implement with models.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod cmdline;
pub mod devtree;
pub mod dma;
pub mod edu;
pub mod iommu;
pub mod mmu;
pub mod pci;
pub mod placement;
pub mod selftest;
pub mod virtio;
