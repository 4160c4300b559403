//! A `no_std` library for IBM POWER **pseries** (PAPR) guests: the device tree, PCI over RTAS,
//! and a guest-side **Dynamic DMA Window** (DDW) IOMMU driver — safe Rust, tested on the host.
//!
//! A pseries guest's PCI devices start with a small 32-bit DMA window of 4 KiB IOMMU pages in
//! which every mapping costs a hypercall. PAPR (LoPAR 7.3.17 "Dynamic DMA Windows") lets the
//! guest ask for a large 64-bit window instead: query the PE (`ibm,query-pe-dma-window`),
//! create a window of the largest page size covering all RAM (`ibm,create-pe-dma-window`), map
//! RAM once with `H_PUT_TCE_INDIRECT` (≤ 512 TCEs per call), and from then on a 64-bit device
//! reaches RAM at `physical + window base` with no hypercall at all.
//!
//! # Layout
//!
//! - [`devtree`]: the flattened device tree as a [`devtree::platform::Platform`] (memory,
//!   hot-plug maximum, RTAS tokens, PHBs with `ibm,dma-window`, `ibm,ddw-applicable`,
//!   `ibm,ddw-extensions`), every malformed property reported, never fatal.
//! - [`pci`]: enumeration and BAR assignment over a [`pci::ConfigAccess`], through PCI-to-PCI
//!   bridges (buses numbered and windows opened, or firmware's layout checked).
//! - [`iommu`]: the DDW driver. [`iommu::enable_ddw`] for one PE; [`iommu::set_up`] for the
//!   whole per-PE policy (fresh boot, warm restart, single-window PEs that must replace their
//!   default window, hybrid and limited-addressing windows); [`iommu::conformance`] for a
//!   report of what the hypervisor did.
//! - [`dma`]: per-device DMA handles that own the memory they map ([`dma::DmaMemory`]).
//!
//! Firmware and hypervisor services reach the crate through traits —
//! [`iommu::DdwRtas`] (the four DDW RTAS calls), [`iommu::TceCalls`] (the TCE hypercalls),
//! [`pci::ConfigAccess`], [`devtree::of::OfTree`] — which a kernel implements over its
//! firmware interface and a test implements with a model. The crate denies `unsafe_code`; its
//! one `unsafe` item is the [`dma::DmaMemory`] contract.
//!
//! # Example: a DDW against a hypervisor
//!
//! A toy hypervisor that offers one window of 16 MiB pages at bus 2^59 and keeps its TCEs in
//! a map; [`iommu::enable_ddw`] queries, creates the window for 1 GiB of RAM and maps it with one
//! `H_PUT_TCE_INDIRECT` of 64 entries, so a 64-bit device uses it directly.
//!
//! ```
//! use std::collections::BTreeMap;
//! use drivers::addr::{BusAddr, Liobn, PhysAddr, PhysRange};
//! use drivers::iommu::ddw::{Addressing, DefaultWindow};
//! use drivers::iommu::rtas::{BusyWait, Delay};
//! use drivers::iommu::{
//!     enable_ddw, CreateResponse, DdwCall, DdwMapping, DdwRtas, DmaWindow, HcallError, MultiTce,
//!     PeAddress, PeRequest, QueryOutputs, QueryResponse, ReadTce, RtasError, SingleWindowPath,
//!     Tce, TceCalls, WindowMode,
//! };
//!
//! #[derive(Default)]
//! struct Toy {
//!     tces: BTreeMap<(Liobn, u64), u64>,
//! }
//!
//! impl DdwRtas for Toy {
//!     fn query(&mut self, _: PeAddress, _: QueryOutputs) -> Result<QueryResponse, RtasError> {
//!         // One free window; 4K, 64K and 16M pages; up to 2^20 TCEs in it.
//!         Ok(QueryResponse { windows_available: 1, largest_block: 1 << 20, page_size_mask: 0x7, migration_capable: 0 })
//!     }
//!     fn create(&mut self, _: PeAddress, _: u32, _: u32) -> Result<CreateResponse, RtasError> {
//!         Ok(CreateResponse { liobn: Liobn(0x8000_0001), bus_base: BusAddr(1 << 59) })
//!     }
//!     fn remove(&mut self, _: Liobn) -> Result<(), RtasError> {
//!         Ok(())
//!     }
//!     fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
//!         Err(RtasError { call: DdwCall::Reset { pe }, status: -3 })
//!     }
//!     fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
//!         Err(RtasError { call: DdwCall::LimitedAddressing { pe }, status: -3 })
//!     }
//! }
//!
//! impl TceCalls for Toy {
//!     fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
//!         self.tces.insert((liobn, ioba.get()), tce.raw());
//!         Ok(())
//!     }
//!     fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
//!         for (i, tce) in tces.iter().enumerate() {
//!             self.tces.insert((liobn, ioba.get() + ((i as u64) << 24)), tce.raw());
//!         }
//!         Ok(())
//!     }
//!     fn stuff_tce(&mut self, _: Liobn, _: BusAddr, _: Tce, _: u32) -> Result<(), HcallError> {
//!         Ok(())
//!     }
//!     fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
//!         Ok(ReadTce(self.tces.get(&(liobn, ioba.get())).copied().unwrap_or(0)))
//!     }
//!     fn sync(&mut self) {}
//! }
//!
//! /// Busy answers are retried at once here (a kernel waits on its timebase).
//! struct NoWait;
//! impl Delay for NoWait {
//!     fn wait(&mut self, _: BusyWait) {}
//! }
//!
//! let ram = [PhysRange { base: PhysAddr(0), size: 1 << 30 }];
//! let default = DmaWindow::new(Liobn(0x8000_0000), BusAddr(0), 12, 30).unwrap();
//! let request = PeRequest {
//!     pe: PeAddress { config_addr: 0x800, buid: 0x800_0000_2000_0000 },
//!     extensions: None,
//!     ram: &ram,
//!     ram_end: 1 << 30,
//!     device_mask_bits: 64,
//!     addressing: Addressing::Full,
//!     multi_tce: MultiTce::Available,
//!     default: Some(DefaultWindow { window: default, live_pages: 0, narrow_devices: 0 }),
//!     single_window: SingleWindowPath::WhenNoneFree,
//!     max_window_shift: None,
//!     iova_holes: &[],
//! };
//! let mut hv = Toy::default();
//! let ddw = enable_ddw(&mut hv, &mut NoWait, &request).expect("a DDW");
//! assert_eq!((ddw.window.page_shift(), ddw.window.bus_base()), (24, BusAddr(1 << 59)));
//! assert_eq!(ddw.mapping.mode(), WindowMode::Direct);
//! assert!(matches!(ddw.mapping, DdwMapping::Direct));
//! // 1 GiB of 16 MiB pages: 64 TCEs, one hypercall.
//! assert_eq!((ddw.stats.tces, ddw.stats.indirect_calls), (64, 1));
//! assert_eq!(hv.tces.len(), 64);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub use papr_abi::addr;
pub mod cmdline;
pub mod devices;
pub mod devtree;
pub mod dlpar;
pub mod dma;
pub mod edu;
pub mod iommu;
pub mod mmu;
pub mod nvme;
pub mod pci;
pub mod selftest;
pub mod virtio;
pub mod virtio_dma;

#[cfg(test)]
mod test_support;
