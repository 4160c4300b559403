//! A compact, polled NVMe driver (NVM Express Base Specification 2.0, NVM Command Set
//! Specification 1.0) for QEMU's `nvme` device and real controllers alike: controller reset
//! and enable, the admin queue pair, Identify, I/O queue pairs, reads and writes described
//! by PRP lists, completions found by polling the phase tag — no interrupts.
//!
//! Every address the controller is given — queues, PRP lists, data — is a *bus* address
//! handed out by the caller's DMA mapping ([`DeviceMemory::bus`], or the data's mapping), so
//! the same code serves a direct DDW (bus = physical + the window's base), a TCE window
//! (per-buffer IOVAs) and no IOMMU at all. The kernel provides the registers ([`NvmeRegs`],
//! volatile MMIO on BAR 0) and the memory ([`NvmeEnv`], heap pages mapped through the device's
//! `DeviceHandle`); host tests drive the same code against a model controller.
//!
//! - [`spec`]: registers, command and completion layouts, status codes;
//! - [`prp`]: the PRP entries of one transfer;
//! - [`queue`]: one queue pair;
//! - [`controller`]: bring-up, Identify, I/O queues, transfers, shutdown.

pub mod controller;
pub mod prp;
pub mod queue;
pub mod spec;
pub mod stream;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use alloc::string::String;

use crate::addr::BusAddr;

pub use controller::{Config, Controller, Identity, IoOp, Namespace, NvmeError, Pending};
pub use stream::{stream, RequestBuffers};

/// The controller's BAR 0 registers; offsets from the BAR. NVMe registers are little-endian:
/// implementations convert, and order each write after earlier stores to memory (so an entry
/// is in memory before its doorbell) and each read before later loads.
pub trait NvmeRegs {
    /// Reads the 32-bit register at `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: usize, value: u32);

    /// Reads a 64-bit register as two 32-bit halves, low first (§3.1.3: a host may access
    /// 64-bit registers as two 32-bit accesses).
    fn read64(&mut self, offset: usize) -> u64 {
        let low = self.read32(offset);
        u64::from(low) | (u64::from(self.read32(offset + 4)) << 32)
    }

    /// Writes a 64-bit register as two 32-bit halves, low first.
    fn write64(&mut self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

/// Memory the controller reaches by DMA (queues, PRP lists, Identify data): zeroed when
/// allocated, page aligned, mapped for the device in both directions.
pub trait DeviceMemory {
    /// The bus address of the first byte, as the device uses it.
    fn bus(&self) -> BusAddr;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty (never, for memory an [`NvmeEnv`] handed out).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the little-endian dword at `offset` as the device last wrote it (a volatile load,
    /// ordered before later loads); all ones outside the memory.
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes the little-endian dword at `offset` (ignored outside the memory).
    fn write_u32(&mut self, offset: usize, value: u32);
}

/// What the controller needs from its environment.
pub trait NvmeEnv {
    /// Its DMA memory.
    type Memory: DeviceMemory;
    /// `bytes` of zeroed, page-aligned memory mapped for the device (both directions).
    fn alloc(&mut self, bytes: usize) -> Result<Self::Memory, String>;
    /// Takes memory back once the controller can no longer reach it (disabled): unmaps it.
    fn free(&mut self, memory: Self::Memory) -> Result<(), String>;
    /// A clock for timeouts, in microseconds.
    fn now_us(&mut self) -> u64;
}
