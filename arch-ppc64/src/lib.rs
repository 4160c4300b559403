//! The ppc64le pseries boundary: everything that executes special instructions or calls
//! firmware and the hypervisor lives here, behind small safe APIs.
//!
//! Entry assembly (`entry.S`) switches the CPU to 64-bit little-endian with FP/VMX/VSX on and
//! calls [`boot::arch_boot_entry`], which hands a [`boot::BootHandoff`] to the kernel's
//! `kernel_main`. Statuses from firmware and the hypervisor become `Result`s here.
#![no_std]
#![cfg(target_arch = "powerpc64")]

pub mod boot;
pub mod console;
pub mod cpu;
pub mod exceptions;
pub mod firmware;
pub mod hcall;
pub mod mmu;
pub mod of;
pub mod rtas;
pub mod tce;
pub mod xics;

core::arch::global_asm!(include_str!("entry.S"));
