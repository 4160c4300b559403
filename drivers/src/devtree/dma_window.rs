//! The default DMA window and the Dynamic DMA Window (DDW) properties of a PHB.
//!
//! Facts, from LoPAR "ibm,dma-window", "ibm,ddw-applicable", "ibm,ddw-extensions", QEMU 7.2
//! hw/ppc/spapr_pci.c `spapr_dt_phb` and hw/ppc/spapr_iommu.c `spapr_dma_dt`:
//! - `ibm,dma-window` = LIOBN, bus address, size, with `ibm,#dma-address-cells` /
//!   `ibm,#dma-size-cells` = 2/2 on the same node: `<0x80000000 0 0 0 0x40000000>` (1 GiB at
//!   bus address 0). Linux `of_parse_dma_window` falls back to `#address-cells` /
//!   `#size-cells` when the `ibm,` counts are absent;
//! - `ibm,ddw-applicable` = `<query create remove>` RTAS tokens (`<0x2026 0x2027 0x2028>`);
//!   Linux iommu.c indexes it 0..3 (`DDW_APPLICABLE_SIZE`);
//! - `ibm,ddw-extensions` = `<count, ext…>`; QEMU 7.1+ writes `<2, reset-token, 1>`. LoPAR
//!   (app_papr_binding, sec_rtas_dma_window R1-1/R1-2): clients tolerate short lists and ignore
//!   extra entries. Indexes follow Linux iommu.c `DDW_EXT_*` (0 = count, 1 = reset token,
//!   2 = 64-bit query outputs, 3 = limited addressing mode; LoPAR numbers them from 1).

use alloc::vec::Vec;

use crate::addr::{BusAddr, Liobn};
use crate::devtree::cells::{check_cell_count, entry_count, CellReader};
use crate::devtree::error::DtError;

/// The default DMA window from `ibm,dma-window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaWindowProp {
    /// TCE table of the window.
    pub liobn: Liobn,
    /// First bus address (IOVA) of the window.
    pub bus_addr: BusAddr,
    /// Window length in bytes.
    pub size: u64,
}

/// Parses `ibm,dma-window` with the given address and size cell counts. The length must be a
/// whole number of (LIOBN, address, size) entries; the first is returned. Address cells may also
/// be 3 (a PCI address, when the count fell back to a PCI node's `#address-cells`): phys.hi is
/// then dropped, as Linux `of_read_number` does.
pub fn parse_dma_window(bytes: &[u8], address_cells: u32, size_cells: u32) -> Result<DmaWindowProp, DtError> {
    const PROP: &str = "ibm,dma-window";
    if !(1..=3).contains(&address_cells) {
        return Err(DtError::BadValue { prop: PROP, why: "DMA address must take 1 to 3 cells" });
    }
    check_cell_count("ibm,#dma-size-cells", size_cells)?;
    let entry_cells = 1 + (address_cells + size_cells) as usize;
    if entry_count(PROP, bytes, entry_cells)? == 0 {
        return Err(DtError::BadLength { prop: PROP, len: 0, expected: "at least one window" });
    }
    let mut reader = CellReader::new(PROP, bytes)?;
    let liobn = Liobn(reader.read_u32()?);
    let bus_addr = if address_cells == 3 {
        reader.skip_cells(1)?;
        reader.read_u64()?
    } else {
        reader.read_cells(address_cells)?
    };
    let size = reader.read_cells(size_cells)?;
    if size == 0 {
        return Err(DtError::BadValue { prop: PROP, why: "window size is zero" });
    }
    if bus_addr.checked_add(size).is_none() {
        return Err(DtError::BadValue { prop: PROP, why: "window runs past 2^64" });
    }
    Ok(DmaWindowProp { liobn, bus_addr: BusAddr(bus_addr), size })
}

/// RTAS tokens of the DDW calls from `ibm,ddw-applicable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwApplicable {
    /// `ibm,query-pe-dma-window`.
    pub query: u32,
    /// `ibm,create-pe-dma-window`.
    pub create: u32,
    /// `ibm,remove-pe-dma-window`.
    pub remove: u32,
}

/// Parses `ibm,ddw-applicable`: at least 3 cells, extra cells ignored.
pub fn parse_ddw_applicable(bytes: &[u8]) -> Result<DdwApplicable, DtError> {
    const PROP: &str = "ibm,ddw-applicable";
    let mut reader = CellReader::new(PROP, bytes)?;
    if reader.remaining_cells() < 3 {
        return Err(DtError::BadLength {
            prop: PROP,
            len: bytes.len(),
            expected: "at least 12 bytes (3 tokens)",
        });
    }
    Ok(DdwApplicable { query: reader.read_u32()?, create: reader.read_u32()?, remove: reader.read_u32()? })
}

/// `ibm,ddw-extensions` as raw cells, cell 0 being the number of extensions that follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdwExtensions {
    /// The property's cells, including the leading count.
    pub cells: Vec<u32>,
}

impl DdwExtensions {
    /// Index of the `ibm,reset-pe-dma-windows` token (Linux `DDW_EXT_RESET_DMA_WIN`).
    pub const RESET_DMA_WINDOW: usize = 1;
    /// Index of the 64-bit query-output flag (Linux `DDW_EXT_QUERY_OUT_SIZE`).
    pub const QUERY_OUT_SIZE: usize = 2;
    /// Index of the limited-addressing-mode flag (Linux `DDW_EXT_LIMITED_ADDR_MODE`).
    pub const LIMITED_ADDR_MODE: usize = 3;

    /// Parses the property: whole cells, at least the count cell. A count larger than the cells
    /// present is accepted (a short list); cells past the count are kept but never returned.
    pub fn parse(bytes: &[u8]) -> Result<Self, DtError> {
        let mut reader = CellReader::new("ibm,ddw-extensions", bytes)?;
        if reader.is_empty() {
            return Err(DtError::BadLength {
                prop: "ibm,ddw-extensions",
                len: 0,
                expected: "at least the count cell",
            });
        }
        let mut cells = Vec::with_capacity(reader.remaining_cells());
        while !reader.is_empty() {
            cells.push(reader.read_u32()?);
        }
        Ok(Self { cells })
    }

    /// The number of extensions the firmware claims (cell 0).
    pub fn count(&self) -> u32 {
        self.cells.first().copied().unwrap_or(0)
    }

    /// Extension `index` (1-based, Linux numbering) if it is both within the count and present.
    pub fn get(&self, index: usize) -> Option<u32> {
        if index == 0 || index > self.count() as usize {
            return None;
        }
        self.cells.get(index).copied()
    }

    /// Token of `ibm,reset-pe-dma-windows`, if provided.
    pub fn reset_token(&self) -> Option<u32> {
        self.get(Self::RESET_DMA_WINDOW)
    }

    /// True if `ibm,query-pe-dma-window` may be called with 6 outputs (64-bit largest block).
    pub fn query_outputs_64bit(&self) -> bool {
        self.get(Self::QUERY_OUT_SIZE) == Some(1)
    }

    /// True if the platform can put a PE in limited-addressing mode (LoPAR 2.13; non-zero
    /// entry 3, and the reset token that switches it on).
    pub fn limited_addressing(&self) -> bool {
        self.get(Self::LIMITED_ADDR_MODE).is_some_and(|v| v != 0) && self.reset_token().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    #[test]
    fn dma_window_qemu_default() {
        let prop = be(&[0x8000_0000, 0, 0, 0, 0x4000_0000]);
        let window = DmaWindowProp { liobn: Liobn(0x8000_0000), bus_addr: BusAddr(0), size: 0x4000_0000 };
        assert_eq!(parse_dma_window(&prop, 2, 2), Ok(window));
        // Two windows: the first is returned.
        let two = be(&[0x8000_0000, 0, 0, 0, 0x4000_0000, 0x8000_0001, 0, 0, 0, 1]);
        assert_eq!(parse_dma_window(&two, 2, 2), Ok(window));
        // 1/1 cells, and a 3-cell PCI address whose phys.hi is dropped.
        let small = be(&[7, 0x1000, 0x2000]);
        assert_eq!(parse_dma_window(&small, 1, 1).map(|w| w.bus_addr), Ok(BusAddr(0x1000)));
        let pci = be(&[7, 0x0200_0000, 1, 0, 0, 0x2000]);
        assert_eq!(parse_dma_window(&pci, 3, 2).map(|w| w.bus_addr), Ok(BusAddr(1 << 32)));
    }

    #[test]
    fn dma_window_malformed() {
        let good = be(&[0x8000_0000, 0, 0, 0, 0x4000_0000]);
        assert!(parse_dma_window(&good[..16], 2, 2).is_err()); // 4 cells
        assert!(parse_dma_window(&be(&[1, 0, 0, 0, 1, 0]), 2, 2).is_err()); // 6 cells
        assert!(parse_dma_window(&good[..19], 2, 2).is_err()); // misaligned
        assert!(parse_dma_window(&[], 2, 2).is_err());
        assert!(parse_dma_window(&good, 4, 0).is_err());
        assert!(parse_dma_window(&good, 0, 4).is_err());
        assert!(parse_dma_window(&be(&[1, 0, 0, 0, 0]), 2, 2).is_err()); // size 0
        let overflow = be(&[1, 0xffff_ffff, 0xffff_0000, 0, 0x1_0000]);
        assert!(parse_dma_window(&overflow, 2, 2).is_err());
    }

    #[test]
    fn ddw_applicable() {
        let tokens = DdwApplicable { query: 0x2026, create: 0x2027, remove: 0x2028 };
        assert_eq!(parse_ddw_applicable(&be(&[0x2026, 0x2027, 0x2028])), Ok(tokens));
        assert_eq!(parse_ddw_applicable(&be(&[0x2026, 0x2027, 0x2028, 9])), Ok(tokens));
        assert!(parse_ddw_applicable(&be(&[0x2026, 0x2027])).is_err());
        assert!(parse_ddw_applicable(&[0; 13]).is_err());
        assert!(parse_ddw_applicable(&[]).is_err());
    }

    #[test]
    fn ddw_extensions_long_short_and_extra() {
        let qemu_72 = DdwExtensions::parse(&be(&[2, 0x2029, 1])).unwrap();
        assert_eq!(qemu_72.count(), 2);
        assert_eq!(qemu_72.reset_token(), Some(0x2029));
        assert!(qemu_72.query_outputs_64bit());
        assert_eq!(qemu_72.get(DdwExtensions::LIMITED_ADDR_MODE), None);
        let qemu_70 = DdwExtensions::parse(&be(&[1, 0x2029])).unwrap();
        assert_eq!(qemu_70.reset_token(), Some(0x2029));
        assert!(!qemu_70.query_outputs_64bit());
        // Short list: count says 3, only 1 present.
        let short = DdwExtensions::parse(&be(&[3, 0x2029])).unwrap();
        assert_eq!((short.reset_token(), short.query_outputs_64bit()), (Some(0x2029), false));
        // Extras past the count are ignored.
        let extra = DdwExtensions::parse(&be(&[1, 0x2029, 1])).unwrap();
        assert!(!extra.query_outputs_64bit());
        assert_eq!(extra.get(0), None);
        assert_eq!(DdwExtensions::parse(&be(&[0])).unwrap().reset_token(), None);
        assert!(DdwExtensions::parse(&[]).is_err());
        assert!(DdwExtensions::parse(&[0, 0, 0, 2, 0]).is_err());
    }
}
