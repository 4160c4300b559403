//! The DMA self-test's logic, kept apart from the I/O so the host can check it: where its
//! buffers go ([`placement`]), what a disk's test reads and writes ([`disk`]), and the `edu`
//! round trip through a device's DMA handle ([`edu`]). The kernel's `device_tests` drive the
//! devices with it.

pub mod bench;
pub mod disk;
pub mod edu;
pub mod placement;
