//! The project's QEMU test harness and host tools.
//!
//! `image` builds the raw `-bios` image; `qemu` boots a kernel under a chosen firmware and
//! machine with a timeout, saving the console and QEMU's trace; `report` parses the kernel's
//! `key=value` lines and QEMU's trace so tests can assert on both.

pub mod image;
