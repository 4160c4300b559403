//! The configuration-space access seam: [`ConfigAccess`], access widths and access errors.
//!
//! The kernel implements [`ConfigAccess`] with RTAS `ibm,read-pci-config` /
//! `ibm,write-pci-config` (in: config_addr, BUID hi, BUID lo, size[, value]; out: status[,
//! value]); host tests implement it with `fake::FakeConfigSpace`. Values are plain numbers:
//! RTAS already byte-reverses little-endian configuration space.
//!
//! Facts the implementations and callers rely on (QEMU 7.2 `hw/ppc/spapr_pci.c :
//! rtas_ibm_read_pci_config`, `finish_read_pci_config`; LoPAR `ibm,read-pci-config` R1-5):
//! - size must be 1, 2 or 4 and the offset naturally aligned and below the config size (256,
//!   or 4096 for PCIe functions), otherwise status −1;
//! - an absent device gives status −1 (hardware error) on QEMU, while LoPAR requires "success
//!   with all ones". Both mean "no device"; see [`ConfigError::means_absent`].

use core::fmt;

use super::bdf::Bdf;

/// Size of the conventional configuration space (PCI Local Bus 3.0 §6.1).
pub const CONFIG_SPACE_SIZE: u16 = 0x100;
/// Size of the PCI Express extended configuration space (PCIe Base 4.0 §7.2.2).
pub const EXTENDED_CONFIG_SPACE_SIZE: u16 = 0x1000;
/// RTAS status "hardware error", which QEMU returns for an absent device.
pub const RTAS_HARDWARE_ERROR: i32 = -1;

/// Width of one configuration access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// One byte.
    Byte,
    /// Two bytes.
    Word,
    /// Four bytes.
    Dword,
}

impl Width {
    /// Number of bytes (the RTAS `size` argument).
    pub const fn bytes(self) -> u16 {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }

    /// Mask selecting the bits a value of this width can hold.
    pub const fn value_mask(self) -> u32 {
        match self {
            Width::Byte => 0xff,
            Width::Word => 0xffff,
            Width::Dword => 0xffff_ffff,
        }
    }
}

/// Why one configuration access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// No function answers at this address.
    NoDevice,
    /// The firmware call failed with this RTAS status.
    Failed {
        /// RTAS status word (−1 hardware error, −3 parameter error, …).
        status: i32,
    },
    /// The offset is unaligned for the width or beyond the configuration space.
    BadOffset,
}

impl ConfigError {
    /// True for errors that mean "nothing at this address": [`ConfigError::NoDevice`] and
    /// RTAS status −1, which is what QEMU returns for an absent device.
    pub const fn means_absent(self) -> bool {
        matches!(self, ConfigError::NoDevice | ConfigError::Failed { status: RTAS_HARDWARE_ERROR })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoDevice => write!(f, "no device"),
            ConfigError::Failed { status } => write!(f, "config access failed (status {status})"),
            ConfigError::BadOffset => write!(f, "bad config offset"),
        }
    }
}

/// Checks that `offset` is naturally aligned for `width` and that the access ends within the
/// 4 KiB extended configuration space. Implementations of [`ConfigAccess`] may use it.
pub const fn check_offset(offset: u16, width: Width) -> Result<(), ConfigError> {
    let bytes = width.bytes();
    if !offset.is_multiple_of(bytes) || offset as u32 + bytes as u32 > EXTENDED_CONFIG_SPACE_SIZE as u32 {
        Err(ConfigError::BadOffset)
    } else {
        Ok(())
    }
}

/// Access to PCI configuration space (one PHB).
///
/// Implementations return [`ConfigError::NoDevice`] (or RTAS status −1) for absent functions and
/// may return all-ones instead; callers treat both as absence. The provided `read_u*`/`write_u*`
/// helpers narrow the value to the access width.
pub trait ConfigAccess {
    /// Reads `width` bytes at `offset` of `bdf`'s configuration space.
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, ConfigError>;

    /// Writes the low `width` bytes of `value` at `offset` of `bdf`'s configuration space.
    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), ConfigError>;

    /// Reads one byte.
    fn read_u8(&mut self, bdf: Bdf, offset: u16) -> Result<u8, ConfigError> {
        Ok((self.read(bdf, offset, Width::Byte)? & 0xff) as u8)
    }

    /// Reads one 16-bit word.
    fn read_u16(&mut self, bdf: Bdf, offset: u16) -> Result<u16, ConfigError> {
        Ok((self.read(bdf, offset, Width::Word)? & 0xffff) as u16)
    }

    /// Reads one 32-bit dword.
    fn read_u32(&mut self, bdf: Bdf, offset: u16) -> Result<u32, ConfigError> {
        self.read(bdf, offset, Width::Dword)
    }

    /// Writes one 16-bit word.
    fn write_u16(&mut self, bdf: Bdf, offset: u16, value: u16) -> Result<(), ConfigError> {
        self.write(bdf, offset, Width::Word, u32::from(value))
    }

    /// Writes one 32-bit dword.
    fn write_u32(&mut self, bdf: Bdf, offset: u16, value: u32) -> Result<(), ConfigError> {
        self.write(bdf, offset, Width::Dword, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_offset_enforces_alignment_and_bounds() {
        assert_eq!(check_offset(0xffc, Width::Dword), Ok(()));
        assert_eq!(check_offset(0xffe, Width::Word), Ok(()));
        assert_eq!(check_offset(0xfff, Width::Byte), Ok(()));
        assert_eq!(check_offset(0x2, Width::Dword), Err(ConfigError::BadOffset));
        assert_eq!(check_offset(0x1000, Width::Byte), Err(ConfigError::BadOffset));
    }

    #[test]
    fn rtas_hardware_error_means_absent() {
        assert!(ConfigError::NoDevice.means_absent());
        assert!(ConfigError::Failed { status: -1 }.means_absent());
        assert!(!ConfigError::Failed { status: -3 }.means_absent());
        assert!(!ConfigError::BadOffset.means_absent());
    }
}
