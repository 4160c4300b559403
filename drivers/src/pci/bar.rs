//! Base Address Register decoding and sizing.
//!
//! PCI Local Bus 3.0 §6.2.5.1: bit 0 of a BAR selects I/O (1) or memory (0) space. Memory
//! BARs carry the type in bits 1–2 (00 = 32-bit, 10 = 64-bit using the next BAR as the upper
//! half, 01/11 reserved) and the prefetchable flag in bit 3; the address is bits 4 and up. I/O
//! BARs carry the address in bits 2 and up. Sizing: write all ones, read back, the lowest set
//! address bit is the size (a read-back of 0 means the BAR is not implemented), then restore the
//! original value. Decode is disabled in the Command register meanwhile (§6.2.5.1
//! "Implementation note: sizing a base address register") so that the transient all-ones
//! address cannot claim bus cycles.

use alloc::{format, string::String, vec::Vec};

use super::bdf::Bdf;
use super::config::{ConfigAccess, ConfigError};
use super::header::{bar_offset, Command, COMMAND};

/// Address bits of a memory BAR's low register.
const MEM_ADDRESS_MASK: u32 = !0xf;
/// Address bits of an I/O BAR.
const IO_ADDRESS_MASK: u32 = !0x3;

/// Which address space a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// I/O space.
    Io,
    /// 32-bit memory space.
    Mem32,
    /// 64-bit memory space (two BAR registers).
    Mem64,
}

impl BarKind {
    /// Decodes the type bits of a BAR's (low) register; `None` for the reserved memory types.
    pub const fn from_register(raw: u32) -> Option<Self> {
        if raw & 1 != 0 {
            return Some(BarKind::Io);
        }
        match (raw >> 1) & 0x3 {
            0 => Some(BarKind::Mem32),
            2 => Some(BarKind::Mem64),
            _ => None,
        }
    }

    /// Number of BAR registers this kind occupies.
    pub const fn registers(self) -> u8 {
        match self {
            BarKind::Mem64 => 2,
            BarKind::Io | BarKind::Mem32 => 1,
        }
    }

    /// True for the memory kinds.
    pub const fn is_memory(self) -> bool {
        !matches!(self, BarKind::Io)
    }

    /// Address bits of the low register.
    const fn low_address_mask(self) -> u32 {
        match self {
            BarKind::Io => IO_ADDRESS_MASK,
            BarKind::Mem32 | BarKind::Mem64 => MEM_ADDRESS_MASK,
        }
    }
}

/// One implemented BAR of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR register index, 0..=5 (the low register for 64-bit BARs).
    pub index: u8,
    /// Address space.
    pub kind: BarKind,
    /// Prefetchable memory (always false for I/O).
    pub prefetchable: bool,
    /// Bus address programmed in the BAR; 0 means unassigned.
    pub bus_addr: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
}

impl Bar {
    /// True if firmware (or the kernel) programmed a non-zero address.
    pub const fn is_assigned(&self) -> bool {
        self.bus_addr != 0
    }

    /// Configuration offset of the (low) BAR register.
    pub const fn register_offset(&self) -> u16 {
        bar_offset(self.index)
    }
}

/// Decodes and sizes the first `count` BAR registers of `bdf`.
///
/// Memory and I/O decode are switched off around the sizing writes and the original Command
/// value is written back afterwards; every BAR register gets its original value back. Problems
/// (failed accesses, reserved BAR types, a 64-bit BAR in the last slot) are appended to
/// `problems` and the affected BAR is skipped.
pub fn probe_bars(cfg: &mut impl ConfigAccess, bdf: Bdf, count: u8, problems: &mut Vec<String>) -> Vec<Bar> {
    let command = match cfg.read_u16(bdf, COMMAND) {
        Ok(value) => value,
        Err(error) => {
            problems.push(format!("command register unreadable ({error}): BARs not probed"));
            return Vec::new();
        }
    };
    let decode = (Command::IO_SPACE | Command::MEMORY_SPACE).bits();
    let decode_was_on = command & decode != 0;
    if decode_was_on {
        if let Err(error) = cfg.write_u16(bdf, COMMAND, command & !decode) {
            problems.push(format!("cannot disable decode ({error}): BARs not probed"));
            return Vec::new();
        }
    }
    let bars = probe_bar_registers(cfg, bdf, count, problems);
    if decode_was_on {
        if let Err(error) = cfg.write_u16(bdf, COMMAND, command) {
            problems.push(format!("cannot restore command register {command:#06x} ({error})"));
        }
    }
    bars
}

/// Walks the BAR registers with decode already disabled.
fn probe_bar_registers(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    count: u8,
    problems: &mut Vec<String>,
) -> Vec<Bar> {
    let mut bars = Vec::new();
    let mut index = 0u8;
    while index < count {
        let raw = match cfg.read_u32(bdf, bar_offset(index)) {
            Ok(raw) => raw,
            Err(error) => {
                problems.push(format!("BAR{index}: read failed ({error})"));
                index += 1;
                continue;
            }
        };
        let Some(kind) = BarKind::from_register(raw) else {
            problems.push(format!("BAR{index}: reserved memory type in {raw:#010x}"));
            index += 1;
            continue;
        };
        if index + kind.registers() > count {
            problems.push(format!("BAR{index}: 64-bit BAR in the last BAR register"));
            break;
        }
        match size_bar(cfg, bdf, index, kind, raw) {
            Ok(Some(bar)) => bars.push(bar),
            Ok(None) => {}
            Err(error) => problems.push(format!("BAR{index}: sizing failed ({error})")),
        }
        index += kind.registers();
    }
    bars
}

/// Sizes one BAR whose low register holds `low`; `Ok(None)` if it is not implemented.
fn size_bar(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    index: u8,
    kind: BarKind,
    low: u32,
) -> Result<Option<Bar>, ConfigError> {
    let low_offset = bar_offset(index);
    let low_readback = sizing_readback(cfg, bdf, low_offset, low)?;
    let (high, high_readback) = if kind == BarKind::Mem64 {
        let high_offset = low_offset + 4;
        let high = cfg.read_u32(bdf, high_offset)?;
        (high, sizing_readback(cfg, bdf, high_offset, high)?)
    } else {
        (0, 0)
    };
    let address_bits = (u64::from(high_readback) << 32) | u64::from(low_readback & kind.low_address_mask());
    if address_bits == 0 {
        return Ok(None);
    }
    Ok(Some(Bar {
        index,
        kind,
        prefetchable: kind.is_memory() && low & 0x8 != 0,
        bus_addr: (u64::from(high) << 32) | u64::from(low & kind.low_address_mask()),
        size: address_bits & address_bits.wrapping_neg(),
    }))
}

/// Writes all ones to the BAR register at `offset`, reads it back and restores `original`
/// (also when the read-back failed).
fn sizing_readback(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    offset: u16,
    original: u32,
) -> Result<u32, ConfigError> {
    cfg.write_u32(bdf, offset, u32::MAX)?;
    let readback = cfg.read_u32(bdf, offset);
    let restored = cfg.write_u32(bdf, offset, original);
    let readback = readback?;
    restored?;
    Ok(readback)
}

/// Writes `bus_addr` into the BAR register(s) of `bar`, keeping the read-only type bits.
pub fn program_bar(
    cfg: &mut impl ConfigAccess,
    bdf: Bdf,
    bar: &Bar,
    bus_addr: u64,
) -> Result<(), ConfigError> {
    let offset = bar.register_offset();
    let low_address = (bus_addr as u32) & bar.kind.low_address_mask();
    cfg.write_u32(bdf, offset, low_address)?;
    if bar.kind == BarKind::Mem64 {
        cfg.write_u32(bdf, offset + 4, (bus_addr >> 32) as u32)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_register() {
        assert_eq!(BarKind::from_register(0x0000_c001), Some(BarKind::Io));
        assert_eq!(BarKind::from_register(0xfe00_0000), Some(BarKind::Mem32));
        assert_eq!(BarKind::from_register(0x0000_000c), Some(BarKind::Mem64));
        assert_eq!(BarKind::from_register(0x0000_0002), None);
        assert_eq!(BarKind::from_register(0x0000_0006), None);
    }

    #[test]
    fn registers_per_kind() {
        assert_eq!(BarKind::Mem64.registers(), 2);
        assert_eq!(BarKind::Io.registers(), 1);
        assert!(!BarKind::Io.is_memory());
    }
}
