//! The PAPR firmware ABI vocabulary: what the hypervisor and RTAS take and answer, as types.
//!
//! This crate sits at the bottom of the workspace: `arch-ppc64` (which makes the calls) and
//! `drivers` (which decides what to call) both use it, and it uses nothing. It holds no
//! policy and no `unsafe`:
//! - [`addr`]: guest-physical addresses, PCI bus addresses and LIOBNs as distinct types;
//! - [`hcall`]: hypercall opcodes and the status word (LoPAR "Hypervisor Call Interrupt",
//!   Linux `arch/powerpc/include/asm/hvcall.h`);
//! - [`rtas`]: the RTAS status word (LoPAR "RTAS Call Interface", "RTAS Status Word");
//! - [`tce`]: the layout of a Translation Control Entry and the limits of the multi-TCE calls
//!   (LoPAR "TCE Definition", "H_PUT_TCE_INDIRECT", "H_STUFF_TCE").
//!
//! Statuses are open sets, so they are integer newtypes with named constants, never Rust
//! enums (a hypervisor may answer a value no enum lists).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod hcall;
pub mod rtas;
pub mod tce;
