//! The project's QEMU test harness and host tools.
//!
//! `image` builds the raw `-bios` image; `build` finds or builds the kernel; `qemu` boots it
//! under a chosen firmware and machine with a timeout, saving the console and QEMU's trace;
//! `kv` and `trace` parse the kernel's `key=value` lines and QEMU's trace so tests can assert
//! on both; `disk` makes the disk images of the DMA self-tests and checks what the kernel
//! reported about them and left in them; `bridges` puts devices behind PCI-to-PCI bridges and
//! judges the kernel's report of them by QEMU's trace; `summary` renders the report for a
//! person (text and SVG).

pub mod bench;
pub mod bridges;
pub mod build;
pub mod ddw_replay;
pub mod disk;
pub mod hotplug;
pub mod image;
pub mod kv;
pub mod kvm;
pub mod qemu;
pub mod qmp;
pub mod summary;
pub mod trace;
