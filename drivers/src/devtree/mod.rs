//! The device tree: typed, fallible parsers for the properties this kernel relies on, a
//! flattened-tree writer and the Open Firmware walk that produces one.
//!
//! Every boot path ends with one FDT blob parsed by the `fdt` crate: FDT-direct boots get it from
//! QEMU in r3; SLOF and VOF boots walk the OF client interface and flatten the tree with
//! [`writer::FdtWriter`] (as Linux's prom_init does). Parsers never panic on malformed input:
//! they return [`error::DtError`] naming the node and property.

pub mod cells;
pub mod cpu;
pub mod dma_window;
pub mod error;
pub mod hotplug;
pub mod identity;
pub mod intx;
pub mod memory;
pub mod of;
pub mod pci_node;
pub mod phb;
pub mod platform;
pub mod rtas;
pub mod writer;
