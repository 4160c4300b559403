//! The guest side of the pseries IOMMU: TCEs, Dynamic DMA Windows and DMA mappings.
//!
//! Host-testable core of the DDW driver (LoPAR "Dynamic DMA Window (DDW) option"; Linux
//! `arch/powerpc/platforms/pseries/iommu.c`): [`tce`] builds entries, [`hcall`] and [`rtas`]
//! are the hypervisor interfaces the kernel implements, [`plan`] picks the page size and window
//! size from a query, [`window`] describes and creates windows, [`map`] fills a direct window
//! with all of RAM, [`iova`] and [`iova_window`] map buffers on demand through a window (the
//! default window, or a DDW smaller than RAM), [`ddw`] enables a DDW on one PE, [`handover`]
//! takes over a window a previous kernel left, and [`pe`] is one PE's whole set-up — the one
//! function the kernel and the hypervisor model's tests both call — with [`pe_report`]
//! turning its outcome into report lines. The host-only `papr-model` crate is a PAPR
//! hypervisor (QEMU 7.2, KVM-HV and PowerVM VF profiles) implementing both interfaces for tests.

pub mod conformance;
pub mod ddw;
pub mod handover;
pub mod hcall;
pub mod inject;
pub mod iova;
pub mod iova_window;
pub mod map;
pub mod pe;
pub mod pe_report;
pub mod plan;
pub mod rtas;
pub mod tce;
pub mod window;
pub mod witness;

pub use ddw::{enable_ddw, Ddw, DdwError, DdwFacts, DdwMapping, PeRequest, SingleWindowPath};
pub use hcall::{HcallError, HcallName, TceCalls, TceHcall};
pub use iova::{IovaAllocator, IovaError};
pub use iova_window::{BufferError, IovaWindow, Mapping, UnmapError, UnmapReason};
pub use map::{clear_ram, clear_window, map_ram, MapError, MapStats, MultiTce};
pub use pe::{set_up, PeSetUp, SetUpOutcome, SetUpReport, Start};
pub use plan::{largest_page_shift, plan_window, PlanError, WindowLimit, WindowMode, WindowPlan};
pub use rtas::{
    BusyWait, CreateResponse, DdwCall, DdwRtas, Delay, PeAddress, QueryOutputs, QueryResponse, RtasError,
};
pub use tce::{DmaDirection, ReadTce, Tce, TceError, TcePermission, MAX_TCES_PER_CALL};
pub use window::{create_window, CreateError, DmaMask, DmaWindow, WindowError, CREATE_ATTEMPTS};
