//! Translation for a pseries guest: what the tables and hypervisor requests must contain,
//! built and checked on the host; `arch-ppc64::mmu` installs them.
//!
//! - [`cas`]: the `ibm,client-architecture-support` buffer that asks Open Firmware (and
//!   through it QEMU) for the radix MMU and guest TLB shootdown;
//! - [`radix`]: a 4-level radix tree (52-bit, ISA 3.0) mapping RAM cacheable and executable
//!   and every PHB MMIO window cache-inhibited and guarded, with 1 GiB and 2 MiB leaves, and
//!   the process-table entry that points at it;
//! - [`hash`]: for CPUs without radix (POWER8), the SLB entries and bolted 16 MiB hashed
//!   page-table entries of the same identity map.

pub mod cas;
pub mod hash;
pub mod radix;

pub use radix::{Attr, MmuError, Radix, TableMemory};
