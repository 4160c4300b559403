//! Bus/device/function addresses and their RTAS `config_addr` encoding.
//!
//! A PCI function is named by its bus (0..=255), device (0..=31) and function (0..=7) numbers
//! (PCI Local Bus 3.0 §3.2.2.3.2, type 1 configuration address).
//!
//! On pseries the configuration space is reached through RTAS `ibm,read-pci-config` /
//! `ibm,write-pci-config`, whose 32-bit `config_addr` argument carries the bus in bits 16–23, the
//! device in bits 11–15, the function in bits 8–10, register bits 0–7 in bits 0–7 and register
//! bits 8–11 (extended configuration space) in bits 28–31 (LoPAR "Config_addr" table; QEMU
//! `hw/ppc/spapr_pci.c : rtas_pci_cfgaddr` decodes `((arg >> 20) & 0xf00) | (arg & 0xff)`).
//! The same `bus << 16 | dev << 11 | fn << 8` value is phys.hi of entry 0 of a device node's
//! `reg` property (QEMU `spapr_dt_pci_device`).

use core::fmt;

/// Number of device numbers on one bus.
pub const DEVICES_PER_BUS: u8 = 32;
/// Number of function numbers in one device.
pub const FUNCTIONS_PER_DEVICE: u8 = 8;

/// A PCI bus/device/function address.
///
/// The fields are public for convenience; [`Bdf::new`] is the validating constructor and
/// [`Bdf::config_addr`] masks out-of-range device/function numbers rather than corrupting
/// neighbouring fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// A BDF, or `None` if `device >= 32` or `function >= 8`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < DEVICES_PER_BUS && function < FUNCTIONS_PER_DEVICE {
            Some(Self { bus, device, function })
        } else {
            None
        }
    }

    /// The RTAS `config_addr` for `register` (0..=0xfff) of this function:
    /// `bus << 16 | dev << 11 | fn << 8 | (reg & 0xff) | ((reg & 0xf00) << 20)`.
    pub const fn config_addr(self, register: u16) -> u32 {
        let reg = register as u32;
        ((self.bus as u32) << 16)
            | (((self.device & 0x1f) as u32) << 11)
            | (((self.function & 0x7) as u32) << 8)
            | (reg & 0xff)
            | ((reg & 0xf00) << 20)
    }

    /// The BDF encoded in a `config_addr` or in phys.hi of a device node's `reg` entry
    /// (register and space-code bits are ignored).
    pub const fn from_config_addr(config_addr: u32) -> Self {
        Self {
            bus: (config_addr >> 16) as u8,
            device: ((config_addr >> 11) & 0x1f) as u8,
            function: ((config_addr >> 8) & 0x7) as u8,
        }
    }

    /// The same device with another function number, or `None` if `function >= 8`.
    pub const fn with_function(self, function: u8) -> Option<Self> {
        Self::new(self.bus, self.device, function)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.device, self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn new_validates_device_and_function() {
        assert!(Bdf::new(0, 31, 7).is_some());
        assert!(Bdf::new(0, 32, 0).is_none());
        assert!(Bdf::new(0, 0, 8).is_none());
    }

    #[test]
    fn display_is_bus_dev_fn_hex() {
        let bdf = Bdf::new(0x1a, 0x1f, 3).unwrap();
        assert_eq!(bdf.to_string(), "1a:1f.3");
        assert_eq!(Bdf::new(0, 1, 0).unwrap().to_string(), "00:01.0");
    }

    #[test]
    fn config_addr_low_registers() {
        let bdf = Bdf::new(1, 2, 3).unwrap();
        assert_eq!(bdf.config_addr(0x10), 0x0001_1310);
    }

    #[test]
    fn config_addr_extended_registers_use_top_nibble() {
        let bdf = Bdf::new(0, 1, 0).unwrap();
        assert_eq!(bdf.config_addr(0x100), 0x1000_0800);
        assert_eq!(bdf.config_addr(0xffc), 0xf000_08fc);
        // QEMU's decode recovers the register.
        let addr = bdf.config_addr(0x348);
        assert_eq!(((addr >> 20) & 0xf00) | (addr & 0xff), 0x348);
    }

    #[test]
    fn config_addr_round_trips_bdf() {
        let bdf = Bdf::new(0xff, 31, 7).unwrap();
        assert_eq!(Bdf::from_config_addr(bdf.config_addr(0xe40)), bdf);
    }

    #[test]
    fn config_addr_masks_out_of_range_fields() {
        let bogus = Bdf { bus: 0, device: 0xff, function: 0xff };
        assert_eq!(bogus.config_addr(0), 0x0000_ff00);
    }
}
