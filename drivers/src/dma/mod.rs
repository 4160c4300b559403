//! Per-device DMA: how a device reaches RAM through its PE's windows, and handing it memory.
//!
//! - [`hot_ram`]: what memory hot-plugged at run time needs in a PE's DDW;
//! - [`pe`]: a PE's windows ([`PeDma`]) and the mode each device gets ([`DmaMode`]);
//! - [`memory`]: [`DmaMemory`], the contract memory handed to a device must keep;
//! - [`mapping`]: [`DmaMapping`], memory owned by a mapping for as long as it lives;
//! - [`shared`]: [`PeState`] (windows plus the private hypervisor interface) shared by the
//!   PE's devices, each holding a [`DeviceHandle`].

pub mod hot_ram;
pub mod mapping;
pub mod memory;
pub mod pe;
pub mod shared;

pub use hot_ram::HotRam;
pub use mapping::{DmaMapping, MapBufferError, MapFailure, Retired, UnmapFailure};
pub use memory::DmaMemory;
pub use pe::{DeviceDma, DmaMode, DmaTranslation, ModeError, PeDma, WarmError};
pub use shared::{share, DeviceHandle, PeState, SharedPe};
