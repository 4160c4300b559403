//! Safe driver logic for the pseries unikernel, compiled for the guest and tested on the host.
//!
//! Nothing here touches hardware directly: firmware and hypervisor services reach this crate
//! through traits (`pci::ConfigAccess`, `devtree::of::OfTree`, `iommu::TceCalls`,
//! `iommu::DdwRtas`, …) that the kernel implements over `arch-ppc64` and that host tests
//! implement with models. The crate denies `unsafe_code`; its one `unsafe` item is the
//! [`dma::DmaMemory`] contract, which the kernel's memory types implement.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub use papr_abi::addr;
pub mod cmdline;
pub mod devices;
pub mod devtree;
pub mod dma;
pub mod edu;
pub mod iommu;
pub mod mmu;
pub mod pci;
pub mod selftest;
pub mod virtio;
pub mod virtio_dma;

#[cfg(test)]
mod test_support;
