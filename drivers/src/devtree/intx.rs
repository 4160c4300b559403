//! PCI INTx routing: which interrupt source of the platform's interrupt controller a PCI
//! function's pin raises, from its PHB's `interrupt-map` and `interrupt-map-mask` (IEEE 1275
//! PCI binding and "Interrupt Mapping" recommended practice; LoPAR "PCI Host Bridge" node).
//!
//! Each map entry is a child unit address (the PHB's `#address-cells`, 3: `phys.hi` holds
//! bus/device/function), a child interrupt specifier (the PHB's `#interrupt-cells`, 1: the pin,
//! 1 = INTA), the parent controller's phandle and the parent's specifier. PAPR's interrupt
//! controllers (XICS and XIVE) take two cells, source number and sense (LoPAR "Interrupt
//! Source Controller"), which is the only parent shape parsed here. QEMU writes one entry per
//! device and pin with the mask `<0xf800 0 0 0xffffffff>`, the pins swizzled by device number
//! (hw/ppc/spapr_pci.c `spapr_dt_phb`, `pci_swizzle_map_irq_fn`).

use alloc::vec::Vec;

use super::cells::CellReader;
use super::error::DtError;
use crate::pci::bdf::Bdf;

/// Cells of a PAPR interrupt controller's specifier: source number, sense.
const PARENT_CELLS: usize = 2;

/// One entry: the masked child address and pin, and the source they raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxRoute {
    /// `phys.hi` of the child unit address, masked.
    pub phys_hi: u32,
    /// The pin (1 = INTA … 4 = INTD), masked.
    pub pin: u32,
    /// The controller's interrupt source number.
    pub source: u32,
}

/// A PHB's INTx routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptMap {
    mask_phys_hi: u32,
    mask_pin: u32,
    routes: Vec<IntxRoute>,
}

impl InterruptMap {
    /// Parses `interrupt-map` (`map`) with `interrupt-map-mask` (`mask`; all ones if absent)
    /// for a node of `address_cells` (3 for PCI) and `interrupt_cells` (1 for PCI).
    pub fn parse(
        map: &[u8],
        mask: Option<&[u8]>,
        address_cells: u32,
        interrupt_cells: u32,
    ) -> Result<Self, DtError> {
        if address_cells != 3 || interrupt_cells != 1 {
            return Err(DtError::BadValue {
                prop: "interrupt-map",
                why: "only PCI child specifiers (3 address cells, 1 interrupt cell) are parsed",
            });
        }
        let child = 4;
        let (mask_phys_hi, mask_pin) = match mask {
            Some(bytes) => {
                let mut reader = CellReader::new("interrupt-map-mask", bytes)?;
                if reader.remaining_cells() != child {
                    return Err(DtError::BadLength {
                        prop: "interrupt-map-mask",
                        len: bytes.len(),
                        expected: "16 bytes (3 address cells, 1 interrupt cell)",
                    });
                }
                let hi = reader.read_u32()?;
                let (mid, lo) = (reader.read_u32()?, reader.read_u32()?);
                if mid != 0 || lo != 0 {
                    return Err(DtError::BadValue {
                        prop: "interrupt-map-mask",
                        why: "a mask on the 64-bit part of the PCI address is not supported",
                    });
                }
                (hi, reader.read_u32()?)
            }
            None => (u32::MAX, u32::MAX),
        };
        let mut reader = CellReader::new("interrupt-map", map)?;
        let entry = child + 1 + PARENT_CELLS;
        if reader.remaining_cells() % entry != 0 {
            return Err(DtError::BadLength {
                prop: "interrupt-map",
                len: map.len(),
                expected: "a multiple of 28 bytes (4 child cells, a phandle, 2 parent cells)",
            });
        }
        let mut routes = Vec::with_capacity(reader.remaining_cells() / entry);
        while reader.remaining_cells() > 0 {
            let phys_hi = reader.read_u32()? & mask_phys_hi;
            let _ = (reader.read_u32()?, reader.read_u32()?);
            let pin = reader.read_u32()? & mask_pin;
            let _phandle = reader.read_u32()?;
            let source = reader.read_u32()?;
            let _sense = reader.read_u32()?;
            routes.push(IntxRoute { phys_hi, pin, source });
        }
        Ok(Self { mask_phys_hi, mask_pin, routes })
    }

    /// The source that `pin` (1 = INTA) of the function at `bdf` raises, if the map has it.
    pub fn source(&self, bdf: Bdf, pin: u8) -> Option<u32> {
        let phys_hi = (u32::from(bdf.bus) << 16 | u32::from(bdf.device) << 11 | u32::from(bdf.function) << 8)
            & self.mask_phys_hi;
        let pin = u32::from(pin) & self.mask_pin;
        self.routes.iter().find(|r| r.phys_hi == phys_hi && r.pin == pin).map(|r| r.source)
    }

    /// Every entry.
    pub fn routes(&self) -> &[IntxRoute] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// QEMU's shape for devices 0 and 1: pins swizzled by device number.
    fn qemu_map() -> Vec<u8> {
        let mut v = Vec::new();
        for device in 0..2u32 {
            for pin in 1..=4u32 {
                let source = 0x1200 + (device + pin - 1) % 4;
                v.extend_from_slice(&[device << 11, 0, 0, pin, 0x1111, source, 1]);
            }
        }
        cells(&v)
    }

    #[test]
    fn qemus_map_routes_each_device_and_pin() {
        let mask = cells(&[0xf800, 0, 0, 0xffff_ffff]);
        let map = InterruptMap::parse(&qemu_map(), Some(&mask), 3, 1).unwrap();
        assert_eq!(map.routes().len(), 8);
        let bdf = |device, function| Bdf { bus: 0, device, function };
        assert_eq!(map.source(bdf(0, 0), 1), Some(0x1200));
        assert_eq!(map.source(bdf(1, 0), 1), Some(0x1201), "swizzled");
        assert_eq!(map.source(bdf(1, 0), 4), Some(0x1200));
        // The mask ignores the function number; bus 1 is not ignored by an exact mask.
        assert_eq!(map.source(bdf(0, 3), 2), Some(0x1201));
        assert_eq!(map.source(bdf(2, 0), 1), None, "no entry for device 2");
        assert_eq!(map.source(bdf(0, 0), 0), None, "pin 0: no interrupt");
    }

    #[test]
    fn malformed_maps_are_errors() {
        let map = qemu_map();
        assert!(InterruptMap::parse(&map[..map.len() - 4], None, 3, 1).is_err(), "a cut entry");
        assert!(InterruptMap::parse(&map, Some(&cells(&[0xf800, 0, 0])), 3, 1).is_err());
        assert!(InterruptMap::parse(&map, Some(&cells(&[0xf800, 1, 0, 7])), 3, 1).is_err());
        assert!(InterruptMap::parse(&map, None, 2, 1).is_err());
        assert!(InterruptMap::parse(&[1, 2, 3], None, 3, 1).is_err());
        // Without a mask every field must match exactly.
        let exact = InterruptMap::parse(&map, None, 3, 1).unwrap();
        assert_eq!(exact.source(Bdf { bus: 0, device: 1, function: 0 }, 2), Some(0x1202));
    }
}
