//! Configuration header register offsets and the Command/Status registers.
//!
//! Offsets follow the type 0 header of PCI Local Bus 3.0 §6.1 (Figure 6-1) and the type 1
//! (PCI-to-PCI bridge) header of the PCI-to-PCI Bridge Architecture 1.2 §3.2. Command bits are
//! §6.2.2, Status bits §6.2.3.

use bitflags::bitflags;

/// Vendor ID (16 bits); 0xffff (and 0x0000) means no function.
pub const VENDOR_ID: u16 = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits), see [`Command`].
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits), see [`Status`].
pub const STATUS: u16 = 0x06;
/// Revision ID (8 bits); the 24-bit class code follows in bits 8–31 of the same dword.
pub const REVISION_ID: u16 = 0x08;
/// Programming interface byte, the low byte of the class code.
pub const PROG_IF: u16 = 0x09;
/// Cache line size (8 bits).
pub const CACHE_LINE_SIZE: u16 = 0x0c;
/// Latency timer (8 bits).
pub const LATENCY_TIMER: u16 = 0x0d;
/// Header type (8 bits): layout in bits 0–6, multi-function flag in bit 7.
pub const HEADER_TYPE: u16 = 0x0e;
/// BIST (8 bits).
pub const BIST: u16 = 0x0f;
/// Base Address Register 0; BAR n is at `BAR0 + 4 * n`.
pub const BAR0: u16 = 0x10;
/// Subsystem vendor ID (type 0, 16 bits).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
/// Subsystem ID (type 0, 16 bits).
pub const SUBSYSTEM_ID: u16 = 0x2e;
/// Expansion ROM base address (type 0).
pub const EXPANSION_ROM: u16 = 0x30;
/// Capabilities pointer (8 bits, types 0 and 1), valid when [`Status::CAPABILITIES_LIST`].
pub const CAPABILITIES_POINTER: u16 = 0x34;
/// Interrupt line (8 bits).
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin (8 bits).
pub const INTERRUPT_PIN: u16 = 0x3d;

/// Primary bus number (type 1, 8 bits).
pub const PRIMARY_BUS: u16 = 0x18;
/// Secondary bus number (type 1, 8 bits): the bus directly behind the bridge.
pub const SECONDARY_BUS: u16 = 0x19;
/// Subordinate bus number (type 1, 8 bits): the highest bus behind the bridge.
pub const SUBORDINATE_BUS: u16 = 0x1a;
/// I/O base (type 1, 8 bits): address bits 15–12 in bits 7–4, decode width in bits 3–0
/// (PCI-to-PCI Bridge Architecture 1.2 §3.2.5.6).
pub const IO_BASE: u16 = 0x1c;
/// I/O limit (type 1, 8 bits), laid out as [`IO_BASE`].
pub const IO_LIMIT: u16 = 0x1d;
/// Memory base (type 1, 16 bits): address bits 31–20 in bits 15–4 (§3.2.5.8).
pub const MEMORY_BASE: u16 = 0x20;
/// Memory limit (type 1, 16 bits), laid out as [`MEMORY_BASE`].
pub const MEMORY_LIMIT: u16 = 0x22;
/// Prefetchable memory base (type 1, 16 bits): address bits 31–20 in bits 15–4, decode width in
/// bits 3–0 (§3.2.5.9).
pub const PREFETCHABLE_BASE: u16 = 0x24;
/// Prefetchable memory limit (type 1, 16 bits), laid out as [`PREFETCHABLE_BASE`].
pub const PREFETCHABLE_LIMIT: u16 = 0x26;
/// Prefetchable base, address bits 63–32 (type 1, 32 bits; §3.2.5.10).
pub const PREFETCHABLE_BASE_UPPER: u16 = 0x28;
/// Prefetchable limit, address bits 63–32 (type 1, 32 bits; §3.2.5.10).
pub const PREFETCHABLE_LIMIT_UPPER: u16 = 0x2c;
/// I/O base, address bits 31–16 (type 1, 16 bits; §3.2.5.11).
pub const IO_BASE_UPPER: u16 = 0x30;
/// I/O limit, address bits 31–16 (type 1, 16 bits; §3.2.5.11).
pub const IO_LIMIT_UPPER: u16 = 0x32;

/// First offset of the PCI Express extended configuration space (PCIe Base 4.0 §7.6).
pub const EXTENDED_CAPABILITIES_START: u16 = 0x100;

/// Header layout: ordinary function (type 0).
pub const HEADER_TYPE_NORMAL: u8 = 0x00;
/// Header layout: PCI-to-PCI bridge (type 1).
pub const HEADER_TYPE_BRIDGE: u8 = 0x01;
/// Header layout: CardBus bridge (type 2), not supported here.
pub const HEADER_TYPE_CARDBUS: u8 = 0x02;
/// Header type bit 7: the device implements functions 1..=7.
pub const HEADER_TYPE_MULTIFUNCTION: u8 = 0x80;
/// Header type bits 0–6: the layout.
pub const HEADER_TYPE_LAYOUT_MASK: u8 = 0x7f;

/// Number of BARs in a type 0 header.
pub const BARS_NORMAL: u8 = 6;
/// Number of BARs in a type 1 header.
pub const BARS_BRIDGE: u8 = 2;

/// Offset of BAR `index` (no range check; callers keep `index < 6`).
pub const fn bar_offset(index: u8) -> u16 {
    BAR0 + 4 * index as u16
}

bitflags! {
    /// The Command register (PCI Local Bus 3.0 §6.2.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Command: u16 {
        /// Respond to I/O space accesses.
        const IO_SPACE = 1 << 0;
        /// Respond to memory space accesses.
        const MEMORY_SPACE = 1 << 1;
        /// Act as a bus master (DMA).
        const BUS_MASTER = 1 << 2;
        /// Monitor special cycles.
        const SPECIAL_CYCLES = 1 << 3;
        /// May use Memory Write and Invalidate.
        const MEMORY_WRITE_AND_INVALIDATE = 1 << 4;
        /// VGA palette snooping.
        const VGA_PALETTE_SNOOP = 1 << 5;
        /// Respond to parity errors.
        const PARITY_ERROR_RESPONSE = 1 << 6;
        /// Stepping control (hardwired 0 in PCI 3.0).
        const STEPPING_CONTROL = 1 << 7;
        /// Drive SERR#.
        const SERR_ENABLE = 1 << 8;
        /// Fast back-to-back transactions to different targets.
        const FAST_BACK_TO_BACK = 1 << 9;
        /// Do not assert INTx.
        const INTERRUPT_DISABLE = 1 << 10;
    }
}

bitflags! {
    /// The Status register (PCI Local Bus 3.0 §6.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// An INTx interrupt is pending.
        const INTERRUPT_STATUS = 1 << 3;
        /// The capabilities pointer at 0x34 is valid.
        const CAPABILITIES_LIST = 1 << 4;
        /// 66 MHz capable.
        const CAPABLE_66MHZ = 1 << 5;
        /// Fast back-to-back capable.
        const FAST_BACK_TO_BACK = 1 << 7;
        /// Master data parity error.
        const MASTER_DATA_PARITY_ERROR = 1 << 8;
        /// DEVSEL timing, low bit (01 = medium).
        const DEVSEL_MEDIUM = 1 << 9;
        /// DEVSEL timing, high bit (10 = slow).
        const DEVSEL_SLOW = 1 << 10;
        /// This function signalled a target abort.
        const SIGNALED_TARGET_ABORT = 1 << 11;
        /// This function received a target abort.
        const RECEIVED_TARGET_ABORT = 1 << 12;
        /// This function received a master abort.
        const RECEIVED_MASTER_ABORT = 1 << 13;
        /// This function signalled a system error.
        const SIGNALED_SYSTEM_ERROR = 1 << 14;
        /// This function detected a parity error.
        const DETECTED_PARITY_ERROR = 1 << 15;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_offsets() {
        assert_eq!(bar_offset(0), 0x10);
        assert_eq!(bar_offset(5), 0x24);
    }

    #[test]
    fn decode_enable_bits() {
        let cmd = Command::from_bits_retain(0x0407);
        assert!(cmd.contains(Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER));
        assert!(cmd.contains(Command::INTERRUPT_DISABLE));
        assert!(Status::from_bits_retain(0x0010).contains(Status::CAPABILITIES_LIST));
    }
}
