//! The kernel's boundary modules: the only places in this crate with `unsafe`.
//!
//! Each module turns one kind of raw access into safe, typed functions and says, at every
//! `unsafe` block, why the access is sound:
//! - [`rtas`]: RTAS calls over typed arguments (value-only calls, `ibm,os-term`'s message);
//! - [`hypervisor`]: the TCE hypercalls and DDW RTAS calls behind the IOMMU driver's traits,
//!   held only by a PE's DMA state;
//! - [`memory`]: the heap, RAM the self-test borrows, device MMIO, page-table memory, and the
//!   [`drivers::dma::DmaMemory`] implementations;
//! - [`virtio_hal`]: the `virtio-drivers` HAL;
//! - [`nvme`]: the NVMe driver's registers and queue memory;
//! - [`firmware`]: the Open Firmware client interface and what is asked of it that writes
//!   memory (the heap claim, `instantiate-rtas`), the FDT handed over in r3;
//! - [`mmu`]: the identity map and translation on;
//! - [`cpu`]: the exception vectors and the deliberate faults of `test=`;
//! - [`xics`]: interrupt sources routed to the processor for device waits (no `unsafe`:
//!   value-only RTAS calls and hypercalls).
#![allow(unsafe_code)]

pub mod cpu;
pub mod firmware;
pub mod hypervisor;
pub mod memory;
pub mod mmu;
pub mod nvme;
pub mod rtas;
pub mod virtio_hal;
pub mod xics;
