//! Dynamic logical partitioning (DLPAR): events the platform raises while the kernel runs —
//! resources added or removed, power warnings — and the per-resource procedures.
//!
//! - [`event`]: the RTAS event logs `check-exception` returns (hot-plug and EPOW sections);
//! - [`connector`]: the device-tree fragment `ibm,configure-connector` describes;
//! - [`drc`]: dynamic-reconfiguration connectors, their sensor and indicators, and taking a
//!   logical resource in or giving it back;
//! - [`memory`]: memory add and remove with every direct DMA window kept exact.

pub mod connector;
pub mod drc;
pub mod event;
pub mod memory;
