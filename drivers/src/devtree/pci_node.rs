//! PCI device nodes under a PHB: bus/device/function and IDs of every function QEMU describes.
//!
//! QEMU ≥ 4.x `spapr_dt_pci_device` (hw/ppc/spapr_pci.c) writes one child node per PCI function
//! under the PHB, recursing through bridges (`spapr_dt_pci_bus`), named
//! `<class-name>@<slot>[,<fn>]`, with `vendor-id`, `device-id`, `class-code` (one cell each) and
//! a `reg` whose entries use the IEEE 1275 PCI binding: 3 address cells (phys.hi, phys.mid,
//! phys.lo) and 2 size cells, 5 cells per entry. Entry 0 is the config-space entry, phys.hi =
//! `bus << 16 | dev << 11 | fn << 8`, which is exactly the RTAS config_addr (LoPAR
//! "ibm,read-pci-config"). Nested bridge children are flattened into one list; each keeps its
//! path and whether it carries its own `ibm,dma-window` (a PE below the PHB, as PowerVM
//! describes per-slot PEs; Linux `pci_dma_find` walks up to the nearest such node).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::node::FdtNode;

use crate::devtree::cells::{self, be_u32, entry_count, CellReader};
use crate::devtree::error::DtError;

/// Cells per `reg` entry of a PCI node: 3 address cells + 2 size cells (PCI bus binding).
pub const PCI_REG_ENTRY_CELLS: usize = 5;

/// Bridges nested deeper than this are not descended into (a guard against hostile trees).
pub const MAX_BRIDGE_DEPTH: usize = 16;

/// Space code bits (24–25) of phys.hi.
const SPACE_CODE_MASK: u32 = 0x0300_0000;

/// One PCI function described in the device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciNodeInfo {
    /// Node name, e.g. `virtio-net@1` or `ethernet@2,1`.
    pub name: String,
    /// Full path, e.g. `/pci@800000020000000/pci@2/scsi@0`.
    pub path: String,
    /// Whether the node itself has `ibm,dma-window` (it is a PE's node).
    pub has_dma_window: bool,
    /// Bridges between the PHB and this function (0 = directly on the PHB's root bus).
    pub depth: usize,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0–31.
    pub device: u8,
    /// Function number, 0–7.
    pub function: u8,
    /// `vendor-id`.
    pub vendor_id: Option<u32>,
    /// `device-id`.
    pub device_id: Option<u32>,
    /// `class-code` (base class, subclass, prog-if in the low 24 bits).
    pub class_code: Option<u32>,
}

impl PciNodeInfo {
    /// The RTAS config_addr of register 0 of this function (`bus << 16 | dev << 11 | fn << 8`).
    pub fn config_address(&self) -> u32 {
        (u32::from(self.bus) << 16) | (u32::from(self.device) << 11) | (u32::from(self.function) << 8)
    }

    /// Builds the info for node `name` from its raw `reg`, `vendor-id`, `device-id` and
    /// `class-code` values.
    pub fn from_raw(
        name: &str,
        depth: usize,
        reg: &[u8],
        vendor_id: Option<&[u8]>,
        device_id: Option<&[u8]>,
        class_code: Option<&[u8]>,
    ) -> Result<Self, DtError> {
        let (bus, device, function) = parse_bus_device_function(reg)?;
        Ok(Self {
            name: name.to_string(),
            path: name.to_string(),
            has_dma_window: false,
            depth,
            bus,
            device,
            function,
            vendor_id: vendor_id.map(|b| be_u32("vendor-id", b)).transpose()?,
            device_id: device_id.map(|b| be_u32("device-id", b)).transpose()?,
            class_code: class_code.map(|b| be_u32("class-code", b)).transpose()?,
        })
    }
}

/// Decodes bus, device and function from entry 0 of a PCI node's `reg`, which must be a
/// config-space entry (space code 0).
pub fn parse_bus_device_function(reg: &[u8]) -> Result<(u8, u8, u8), DtError> {
    let entries = entry_count("reg", reg, PCI_REG_ENTRY_CELLS)?;
    if entries == 0 {
        return Err(DtError::BadLength { prop: "reg", len: 0, expected: "at least one 20-byte entry" });
    }
    let phys_hi = CellReader::new("reg", reg)?.read_u32()?;
    if phys_hi & SPACE_CODE_MASK != 0 {
        return Err(DtError::BadValue { prop: "reg", why: "entry 0 is not a config-space address" });
    }
    let [_, bus, devfn, _] = phys_hi.to_be_bytes();
    Ok((bus, devfn >> 3, devfn & 0x7))
}

/// Every PCI function under `phb` (whose path is `phb_path`), bridges flattened, in tree order.
/// A node whose properties are malformed is skipped and described in `problems`.
pub fn pci_functions(phb: FdtNode<'_, '_>, phb_path: &str, problems: &mut Vec<String>) -> Vec<PciNodeInfo> {
    let mut found = Vec::new();
    collect(phb, phb_path, 0, &mut found, problems);
    found
}

fn collect(
    parent: FdtNode<'_, '_>,
    parent_path: &str,
    depth: usize,
    found: &mut Vec<PciNodeInfo>,
    problems: &mut Vec<String>,
) {
    for node in parent.children() {
        let path = format!("{parent_path}/{}", node.name);
        let Some(reg) = cells::prop(node, "reg") else {
            problems.push(format!("{path}: property reg is missing; PCI node skipped"));
            continue;
        };
        let parsed = PciNodeInfo::from_raw(
            node.name,
            depth,
            reg,
            cells::prop(node, "vendor-id"),
            cells::prop(node, "device-id"),
            cells::prop(node, "class-code"),
        );
        match parsed {
            Ok(info) => found.push(PciNodeInfo {
                path: path.clone(),
                has_dma_window: cells::prop(node, "ibm,dma-window").is_some(),
                ..info
            }),
            Err(err) => {
                problems.push(format!("{path}: {err}; PCI node skipped"));
                continue;
            }
        }
        if node.children().next().is_some() {
            if depth >= MAX_BRIDGE_DEPTH {
                problems.push(format!("{path}: bridges nested too deeply; children skipped"));
            } else {
                collect(node, &path, depth + 1, found, problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    #[test]
    fn bus_device_function_from_reg() {
        // bus 1, device 3, function 2; a second (BAR) entry follows.
        let phys_hi = (1 << 16) | (3 << 11) | (2 << 8);
        let reg = be(&[phys_hi, 0, 0, 0, 0, 0x0200_0000 | phys_hi | 0x10, 0, 0, 0, 0x1000]);
        assert_eq!(parse_bus_device_function(&reg), Ok((1, 3, 2)));
        let info = PciNodeInfo::from_raw("x@3,2", 0, &reg, None, None, None).unwrap();
        assert_eq!(info.config_address(), phys_hi);
    }

    #[test]
    fn bad_reg_is_an_error() {
        assert!(parse_bus_device_function(&[]).is_err());
        assert!(parse_bus_device_function(&be(&[0, 0, 0, 0])).is_err()); // 4 of 5 cells
        assert!(parse_bus_device_function(&be(&[0; 6])).is_err()); // 6 cells
        assert!(parse_bus_device_function(&[0; 21]).is_err()); // misaligned
        assert!(parse_bus_device_function(&be(&[0x0200_0800, 0, 0, 0, 0])).is_err());
        // MEM32
    }

    #[test]
    fn ids() {
        let reg = be(&[0x800, 0, 0, 0, 0]);
        let vendor = be(&[0x1af4]);
        let device = be(&[0x1000]);
        let class = be(&[0x02_0000]);
        let info =
            PciNodeInfo::from_raw("ethernet@1", 1, &reg, Some(&vendor), Some(&device), Some(&class)).unwrap();
        assert_eq!((info.bus, info.device, info.function), (0, 1, 0));
        assert_eq!(info.vendor_id, Some(0x1af4));
        assert_eq!(info.device_id, Some(0x1000));
        assert_eq!(info.class_code, Some(0x02_0000));
        assert!(PciNodeInfo::from_raw("e@1", 0, &reg, Some(&[0x1a, 0xf4]), None, None).is_err());
        assert!(PciNodeInfo::from_raw("e@1", 0, &reg, None, Some(&[0; 8]), None).is_err());
    }

    #[test]
    fn bridges_are_flattened_and_bad_nodes_skipped() {
        use crate::devtree::writer::FdtWriter;
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.begin_node("pci@800000020000000").unwrap();
        w.begin_node("pci@2").unwrap(); // bridge 0:2.0 to bus 1
        w.property_cells("reg", &[0x1000, 0, 0, 0, 0]).unwrap();
        w.begin_node("scsi@0").unwrap();
        w.property_cells("reg", &[0x1_0000, 0, 0, 0, 0]).unwrap();
        w.property_cells("vendor-id", &[0x1af4]).unwrap();
        w.end_node().unwrap();
        w.begin_node("broken@1").unwrap();
        w.property_cells("reg", &[0x1_0800, 0, 0]).unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.begin_node("no-reg@3").unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        let blob = w.finish(0).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let phb = fdt.find_node("/pci@800000020000000").unwrap();
        let mut problems = Vec::new();
        let found = pci_functions(phb, "/pci@800000020000000", &mut problems);
        let names: Vec<(&str, usize, u8, u8)> =
            found.iter().map(|f| (f.name.as_str(), f.depth, f.bus, f.device)).collect();
        assert_eq!(names, [("pci@2", 0, 0, 2), ("scsi@0", 1, 1, 0)]);
        assert_eq!(found[1].path, "/pci@800000020000000/pci@2/scsi@0");
        assert!(!found[1].has_dma_window);
        assert_eq!(found[1].vendor_id, Some(0x1af4));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("/pci@800000020000000/pci@2/broken@1: property reg"));
        assert!(problems[1].starts_with("/pci@800000020000000/no-reg@3: property reg is missing"));
    }
}
