//! PCI host bridges (PHBs): BUID, address windows, DMA-window properties and PCI children.
//!
//! Facts, all from QEMU 7.2 hw/ppc/spapr_pci.c `spapr_dt_phb` (and LoPAR "PHB Node
//! Properties"):
//! - a PHB is a root child `pci@<buid>` with `device_type = "pci"`, `compatible =
//!   "IBM,Logical_PHB"`; `reg` = {BUID u64, 0 u64}, so the BUID is the first 2 cells (index 0:
//!   0x0800_0000_2000_0000);
//! - `ranges` entries are 3 child cells (phys.hi with the space code in bits 24–25 and the
//!   prefetchable flag in bit 30, then a 64-bit bus address), root `#address-cells` parent cells
//!   and the PHB's `#size-cells` (2) size cells: IO bus 0, MEM32 bus 0x8000_0000 → 32 TiB + 2 GiB,
//!   MEM64 identity;
//! - the DMA window and DDW properties are parsed by [`super::dma_window`]; a malformed one is
//!   reported and left out without losing the PHB.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use fdt::node::FdtNode;
use fdt::Fdt;

use crate::addr::{BusAddr, PhysAddr};
use crate::devtree::cells::{self, be_u32, check_cell_count, entry_count, CellCounts, CellReader};
use crate::devtree::dma_window::{
    parse_ddw_applicable, parse_dma_window, DdwApplicable, DdwExtensions, DmaWindowProp,
};
use crate::devtree::error::DtError;
use crate::devtree::intx::InterruptMap;
use crate::devtree::pci_node::{pci_functions, PciNodeInfo};

/// PCI address space of a `ranges` entry (phys.hi bits 24–25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciSpace {
    /// Configuration space (code 0).
    Config,
    /// I/O space (code 1).
    Io,
    /// 32-bit memory space (code 2).
    Mem32,
    /// 64-bit memory space (code 3).
    Mem64,
}

impl PciSpace {
    /// Decodes the space code of a phys.hi cell.
    pub fn from_phys_hi(phys_hi: u32) -> Self {
        match (phys_hi >> 24) & 0x3 {
            0 => PciSpace::Config,
            1 => PciSpace::Io,
            2 => PciSpace::Mem32,
            _ => PciSpace::Mem64,
        }
    }

    /// True for either memory space.
    pub fn is_memory(self) -> bool {
        matches!(self, PciSpace::Mem32 | PciSpace::Mem64)
    }
}

/// One `ranges` entry: a PCI bus window and where the CPU sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciRange {
    /// Address space of the window.
    pub space: PciSpace,
    /// Prefetchable memory (phys.hi bit 30).
    pub prefetchable: bool,
    /// First PCI bus address of the window.
    pub bus_addr: u64,
    /// Guest-physical address of `bus_addr`.
    pub cpu_addr: PhysAddr,
    /// Window length in bytes.
    pub size: u64,
}

impl PciRange {
    /// The CPU address of bus range `[bus_addr, bus_addr + len)` if it lies wholly in this window.
    pub fn bus_to_cpu(&self, bus_addr: u64, len: u64) -> Option<PhysAddr> {
        let offset = bus_addr.checked_sub(self.bus_addr)?;
        let end = offset.checked_add(len)?;
        if end > self.size {
            return None;
        }
        self.cpu_addr.checked_add(offset)
    }
}

/// Parses `ranges` of a PHB: 3 child cells, `parent_address_cells`, then `size_cells` per entry.
pub fn parse_ranges(
    bytes: &[u8],
    parent_address_cells: u32,
    size_cells: u32,
) -> Result<Vec<PciRange>, DtError> {
    check_cell_count("#address-cells", parent_address_cells)?;
    check_cell_count("#size-cells", size_cells)?;
    let entry_cells = 3 + (parent_address_cells + size_cells) as usize;
    let count = entry_count("ranges", bytes, entry_cells)?;
    let mut reader = CellReader::new("ranges", bytes)?;
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        let phys_hi = reader.read_u32()?;
        let bus_addr = reader.read_u64()?;
        let cpu_addr = reader.read_cells(parent_address_cells)?;
        let size = reader.read_cells(size_cells)?;
        if bus_addr.checked_add(size).is_none() || cpu_addr.checked_add(size).is_none() {
            return Err(DtError::BadValue { prop: "ranges", why: "window runs past 2^64" });
        }
        ranges.push(PciRange {
            space: PciSpace::from_phys_hi(phys_hi),
            prefetchable: phys_hi & (1 << 30) != 0,
            bus_addr,
            cpu_addr: PhysAddr(cpu_addr),
            size,
        });
    }
    Ok(ranges)
}

/// Everything about one PHB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhbInfo {
    /// Node path, e.g. `/pci@800000020000000`.
    pub path: String,
    /// Bus unit ID, the PHB's name in RTAS PCI and DDW calls.
    pub buid: u64,
    /// Address windows from `ranges`.
    pub ranges: Vec<PciRange>,
    /// Default DMA window, if described and well-formed.
    pub dma_window: Option<DmaWindowProp>,
    /// DDW RTAS tokens, if DDW is offered and the property is well-formed.
    pub ddw_applicable: Option<DdwApplicable>,
    /// DDW extensions, if present and well-formed.
    pub ddw_extensions: Option<DdwExtensions>,
    /// PCI functions described under the PHB, bridges flattened.
    pub children: Vec<PciNodeInfo>,
    /// The DRC indexes of its slots (`ibm,drc-indexes`: count, then indexes; QEMU one per
    /// devfn, `spapr_dt_drc`), for PCI hot-plug; empty if absent or malformed.
    pub drc_indexes: Vec<u32>,
    /// Its own DRC index (`ibm,my-drc-index`), for PHB hot-plug; `None` if absent.
    pub my_drc_index: Option<u32>,
    /// Its functions' INTx routing (`interrupt-map`), if described and well-formed.
    pub interrupt_map: Option<InterruptMap>,
}

/// QEMU's MSI doorbell: every sPAPR PHB decodes MSI writes at this bus address, inside its
/// IOMMU's address space (QEMU include/hw/pci-host/spapr.h `SPAPR_PCI_MSI_WINDOW`); the device
/// tree does not describe it.
pub const QEMU_MSI_WINDOW: u64 = 0x400_0000_0000;
/// The part of [`QEMU_MSI_WINDOW`] a window's allocator keeps clear.
pub const QEMU_MSI_WINDOW_SIZE: u64 = 0x10_0000;

impl PhbInfo {
    /// Bus ranges a DMA window's allocator must never hand out on this PHB: its memory
    /// windows, 32- and 64-bit (a window at bus 0 would alias MMIO32, Linux `enable_ddw`
    /// reserves it; PowerVM may place MMIO inside a DDW's bus range, Linux v6.14 "IOMMU
    /// incorrectly marks MMIO range in DDW"), and the MSI doorbell.
    pub fn iova_holes(&self) -> Vec<(BusAddr, u64)> {
        let mut holes: Vec<(BusAddr, u64)> = self
            .ranges
            .iter()
            .filter(|r| r.space.is_memory())
            .map(|r| (BusAddr(r.bus_addr), r.size))
            .collect();
        holes.push((BusAddr(QEMU_MSI_WINDOW), QEMU_MSI_WINDOW_SIZE));
        holes
    }

    /// BUID split into (high, low) cells, as RTAS PCI and DDW calls take it.
    pub fn buid_cells(&self) -> (u32, u32) {
        ((self.buid >> 32) as u32, self.buid as u32)
    }

    /// The CPU address of a bus range in `space`, through the first window that holds all of it.
    /// MEM32 and MEM64 windows are both searched for either memory space.
    pub fn bus_to_cpu(&self, space: PciSpace, bus_addr: u64, len: u64) -> Option<PhysAddr> {
        self.ranges
            .iter()
            .filter(|r| r.space == space || (r.space.is_memory() && space.is_memory()))
            .find_map(|r| r.bus_to_cpu(bus_addr, len))
    }
}

/// Parses the BUID from a PHB's `reg`: the first 2 cells of a whole-cell property.
pub fn parse_buid(bytes: &[u8]) -> Result<u64, DtError> {
    let mut reader = CellReader::new("reg", bytes)?;
    if reader.remaining_cells() < 2 {
        return Err(DtError::BadLength {
            prop: "reg",
            len: bytes.len(),
            expected: "at least 8 bytes (BUID)",
        });
    }
    reader.read_u64()
}

/// Reads one PHB node at `path` whose parent has `root_cells`. `reg` and `ranges` are required;
/// a malformed DMA or DDW property is left `None` and described in `problems`, as is a skipped
/// PCI child node.
pub fn phb_info(
    node: FdtNode<'_, '_>,
    path: &str,
    root_cells: CellCounts,
    problems: &mut Vec<String>,
) -> Result<PhbInfo, DtError> {
    let reg = cells::prop(node, "reg").ok_or(DtError::Missing { node: "PCI host bridge", prop: "reg" })?;
    let buid = parse_buid(reg)?;
    let own_cells = cells::cell_counts(node, CellCounts { address: 3, size: 2 })?;
    let ranges = match cells::prop(node, "ranges") {
        Some(bytes) => parse_ranges(bytes, root_cells.address, own_cells.size)?,
        None => return Err(DtError::Missing { node: "PCI host bridge", prop: "ranges" }),
    };
    let dma_window = cells::prop(node, "ibm,dma-window").map(|bytes| {
        let address = match cells::prop(node, "ibm,#dma-address-cells") {
            Some(b) => be_u32("ibm,#dma-address-cells", b)?,
            None => own_cells.address,
        };
        let size = match cells::prop(node, "ibm,#dma-size-cells") {
            Some(b) => be_u32("ibm,#dma-size-cells", b)?,
            None => own_cells.size,
        };
        parse_dma_window(bytes, address, size)
    });
    let dma_window = keep_or_report(dma_window, path, "ibm,dma-window", problems);
    let applicable = cells::prop(node, "ibm,ddw-applicable").map(parse_ddw_applicable);
    let ddw_applicable = keep_or_report(applicable, path, "ibm,ddw-applicable", problems);
    let extensions = cells::prop(node, "ibm,ddw-extensions").map(DdwExtensions::parse);
    let ddw_extensions = keep_or_report(extensions, path, "ibm,ddw-extensions", problems);
    let children = pci_functions(node, path, problems);
    let drc_indexes = cells::prop(node, "ibm,drc-indexes").map(parse_drc_indexes);
    let drc_indexes = keep_or_report(drc_indexes, path, "ibm,drc-indexes", problems).unwrap_or_default();
    let my_drc_index = cells::prop(node, "ibm,my-drc-index").map(|b| be_u32("ibm,my-drc-index", b));
    let my_drc_index = keep_or_report(my_drc_index, path, "ibm,my-drc-index", problems);
    let interrupt_cells = match cells::prop(node, "#interrupt-cells") {
        Some(b) => be_u32("#interrupt-cells", b)?,
        None => 1,
    };
    let interrupt_map = cells::prop(node, "interrupt-map").map(|map| {
        InterruptMap::parse(map, cells::prop(node, "interrupt-map-mask"), own_cells.address, interrupt_cells)
    });
    let interrupt_map = keep_or_report(interrupt_map, path, "interrupt-map", problems);
    Ok(PhbInfo {
        path: String::from(path),
        buid,
        ranges,
        dma_window,
        ddw_applicable,
        ddw_extensions,
        children,
        drc_indexes,
        my_drc_index,
        interrupt_map,
    })
}

/// Parses `ibm,drc-indexes`: a count cell, then exactly that many indexes.
pub fn parse_drc_indexes(bytes: &[u8]) -> Result<Vec<u32>, DtError> {
    let mut reader = CellReader::new("ibm,drc-indexes", bytes)?;
    let count = reader.read_u32()? as usize;
    if reader.remaining_cells() != count {
        return Err(DtError::BadLength {
            prop: "ibm,drc-indexes",
            len: bytes.len(),
            expected: "4 + 4 * count bytes (count from the first cell)",
        });
    }
    (0..count).map(|_| reader.read_u32()).collect()
}

/// An optional property's parse result: the value, or `None` with the error described.
fn keep_or_report<T>(
    parsed: Option<Result<T, DtError>>,
    path: &str,
    prop: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    match parsed? {
        Ok(value) => Some(value),
        Err(err) => {
            problems.push(format!("{path}: {err}; {prop} ignored"));
            None
        }
    }
}

/// Every PHB (root child with `device_type = "pci"`). A PHB that cannot be read is skipped and
/// described in `problems`.
pub fn phbs(fdt: &Fdt<'_>, problems: &mut Vec<String>) -> Vec<PhbInfo> {
    let Some(root) = fdt.find_node("/") else {
        problems.push(String::from("/: the tree has no root node; no PHBs read"));
        return Vec::new();
    };
    let root_cells = match cells::cell_counts(root, CellCounts::PSERIES_ROOT) {
        Ok(counts) => counts,
        Err(err) => {
            problems.push(format!("/: {err}; no PHBs read"));
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for node in root.children().filter(|n| cells::has_device_type(*n, "pci")) {
        let path = format!("/{}", node.name);
        match phb_info(node, &path, root_cells, problems) {
            Ok(info) => found.push(info),
            Err(err) => problems.push(format!("{path}: {err}; PCI host bridge skipped")),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    /// QEMU 7.2 PHB 0: IO, MEM32 (prefetchable here, to test the flag) and MEM64 windows.
    #[rustfmt::skip]
    fn qemu_ranges() -> Vec<u32> {
        vec![
            0x0100_0000, 0, 0, 0x2000, 0, 0, 0x1_0000,
            0x4200_0000, 0, 0x8000_0000, 0x2000, 0x8000_0000, 0, 0x8000_0000,
            0x0300_0000, 0x2100, 0, 0x2100, 0, 0x100, 0,
        ]
    }

    #[test]
    fn ranges_decode() {
        let ranges = parse_ranges(&be(&qemu_ranges()), 2, 2).unwrap();
        let spaces: Vec<PciSpace> = ranges.iter().map(|r| r.space).collect();
        assert_eq!(spaces, [PciSpace::Io, PciSpace::Mem32, PciSpace::Mem64]);
        let mem32 = ranges[1];
        assert!(mem32.prefetchable && !ranges[0].prefetchable);
        assert_eq!((mem32.bus_addr, mem32.cpu_addr), (0x8000_0000, PhysAddr(0x2000_8000_0000)));
        assert_eq!(mem32.size, 0x8000_0000);
        assert_eq!(ranges[2].bus_addr, ranges[2].cpu_addr.get());
        assert_eq!(PciSpace::from_phys_hi(0x0000_0800), PciSpace::Config);
    }

    #[test]
    fn ranges_malformed() {
        let cells = qemu_ranges();
        assert!(parse_ranges(&be(&cells[..6]), 2, 2).is_err()); // 7-cell entry cut to 6
        assert!(parse_ranges(&be(&cells[..13]), 2, 2).is_err());
        assert!(parse_ranges(&be(&cells)[..27], 2, 2).is_err()); // misaligned
        assert!(parse_ranges(&be(&cells), 3, 2).is_err());
        assert!(parse_ranges(&be(&cells), 2, 0).is_err());
        let overflow = be(&[0x0300_0000, 0, 0, 0xffff_ffff, 0xffff_0000, 0, 0x1_0000]);
        assert!(parse_ranges(&overflow, 2, 2).is_err());
        assert_eq!(parse_ranges(&[], 2, 2), Ok(Vec::new()));
    }

    #[test]
    fn bus_to_cpu_stays_inside_the_window() {
        let mem32 = parse_ranges(&be(&qemu_ranges()), 2, 2).unwrap()[1];
        assert_eq!(mem32.bus_to_cpu(0x8000_0000, 0x8000_0000), Some(PhysAddr(0x2000_8000_0000)));
        assert_eq!(mem32.bus_to_cpu(0x7fff_f000, 0x1000), None); // below
        assert_eq!(mem32.bus_to_cpu(0xffff_f000, 0x2000), None); // runs past the end
        assert_eq!(mem32.bus_to_cpu(0x8000_0000, u64::MAX), None); // overflow
    }

    #[test]
    fn buid() {
        let reg = be(&[0x0800_0000, 0x2000_0000, 0, 0]);
        assert_eq!(parse_buid(&reg), Ok(0x0800_0000_2000_0000));
        assert_eq!(parse_buid(&reg[..8]), Ok(0x0800_0000_2000_0000));
        assert!(parse_buid(&reg[..4]).is_err());
        assert!(parse_buid(&reg[..10]).is_err());
    }
}
