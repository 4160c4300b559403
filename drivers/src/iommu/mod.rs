//! The guest side of the pseries IOMMU: TCEs, Dynamic DMA Windows and DMA mappings.
//!
//! Host-testable core of the DDW driver (../shared/docs/papr-ddw-facts.md §0): [`tce`] builds
//! entries, [`hcall`] and [`rtas`] are the hypervisor interfaces the kernel implements,
//! [`plan`] picks the page size and window size from a query, [`window`] describes and creates
//! windows, [`map`] fills a direct window with all of RAM, [`iova`] and [`dynamic`] map
//! buffers on demand through a window smaller than RAM (or the default window), [`handover`]
//! takes over a window a previous kernel left. The host-only `papr-model` crate is a PAPR
//! hypervisor (QEMU 7.2 and PowerVM VF profiles) implementing both interfaces for tests.

pub mod ddw;
pub mod dynamic;
pub mod handover;
pub mod hcall;
pub mod iova;
pub mod map;
pub mod plan;
pub mod rtas;
pub mod tce;
pub mod window;

pub use ddw::{enable_ddw, Ddw, DdwError, DdwMapping, PeRequest};
pub use dynamic::{BufferError, DynamicWindow, Mapping, UnmapError, UnmapFailure};
pub use hcall::{HcallError, HcallName, TceCalls, TceHcall};
pub use iova::{IovaAllocator, IovaError};
pub use map::{clear_window, map_ram, MapError, MapStats, MultiTce};
pub use plan::{largest_page_shift, plan_window, PlanError, WindowLimit, WindowMode, WindowPlan};
pub use rtas::{
    BusyWait, CreateResponse, DdwCall, DdwRtas, Delay, PeAddress, QueryOutputs, QueryResponse, RtasError,
};
pub use tce::{DmaDirection, Tce, TceError, TcePermission, MAX_TCES_PER_CALL};
pub use window::{create_window, CreateError, DmaMask, DmaWindow, WindowError, CREATE_ATTEMPTS};
