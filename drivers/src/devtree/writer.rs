//! `FdtWriter`: builds a flattened device tree (DTB) blob node by node.
//!
//! SLOF and VOF boots have no blob to hand over, so the kernel walks the Open Firmware tree
//! ([`super::of`]) and serialises it with this writer; everything downstream then parses one
//! FDT with the `fdt` crate, whatever the boot path.
//!
//! Facts relied on (devicetree spec v0.4 §5 (FDT format)):
//! - the header is ten big-endian `u32`s: magic `0xd00dfeed`, totalsize, off_dt_struct,
//!   off_dt_strings, off_mem_rsvmap, version (17), last_comp_version (16), boot_cpuid_phys,
//!   size_dt_strings, size_dt_struct;
//! - the memory reservation block is 8-byte aligned, holds big-endian `(address, size)` `u64`
//!   pairs and ends with a `(0, 0)` entry;
//! - the structure block is a sequence of 4-byte aligned big-endian tokens: `FDT_BEGIN_NODE` (1)
//!   followed by the NUL-terminated node name, `FDT_END_NODE` (2), `FDT_PROP` (3) followed by
//!   `len`, `nameoff` and the value, and a final `FDT_END` (9);
//! - property names live NUL-terminated in the strings block, referenced by byte offset, so a
//!   name used many times is stored once;
//! - the root node's name is empty, and a node's properties precede its subnodes.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::DtError;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_VERSION: u32 = 17;
const FDT_LAST_COMPATIBLE_VERSION: u32 = 16;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
/// Ten `u32` header fields.
const HEADER_SIZE: usize = 40;
/// One reservation entry: two `u64`s.
const RESERVATION_ENTRY_SIZE: usize = 16;

/// One node that `begin_node` opened and `end_node` has not yet closed.
struct OpenNode {
    /// Whether a subnode was already written, after which properties are no longer allowed.
    has_subnodes: bool,
}

/// Builds a flattened device tree blob (version 17, last compatible version 16).
///
/// Call [`begin_node`](Self::begin_node) with `""` for the root, add properties, nest
/// subnodes, close every node with [`end_node`](Self::end_node) and call
/// [`finish`](Self::finish). Mistakes (bad names, unbalanced nodes) are reported as
/// [`DtError::Malformed`], never as panics.
pub struct FdtWriter {
    reservations: Vec<(u64, u64)>,
    structure: Vec<u8>,
    strings: Vec<u8>,
    string_offsets: BTreeMap<String, u32>,
    open_nodes: Vec<OpenNode>,
    root_written: bool,
}

impl Default for FdtWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FdtWriter {
    /// An empty writer: no reservations, no nodes.
    pub fn new() -> Self {
        Self {
            reservations: Vec::new(),
            structure: Vec::new(),
            strings: Vec::new(),
            string_offsets: BTreeMap::new(),
            open_nodes: Vec::new(),
            root_written: false,
        }
    }

    /// Adds a `(base, size)` entry to the memory reservation block.
    pub fn add_reservation(&mut self, base: u64, size: u64) {
        self.reservations.push((base, size));
    }

    /// Opens a node named `name` (`""` for the root) inside the currently open node.
    ///
    /// Fails if the name contains `/` or NUL, if a non-root node has an empty name, if the
    /// root has a non-empty name, or if a second root is started.
    pub fn begin_node(&mut self, name: &str) -> Result<(), DtError> {
        if name.contains('/') || name.contains('\0') {
            return Err(DtError::Malformed("node name contains '/' or NUL"));
        }
        match self.open_nodes.last_mut() {
            None => {
                if self.root_written {
                    return Err(DtError::Malformed("second root node"));
                }
                if !name.is_empty() {
                    return Err(DtError::Malformed("root node name must be empty"));
                }
                self.root_written = true;
            }
            Some(parent) => {
                if name.is_empty() {
                    return Err(DtError::Malformed("empty node name below the root"));
                }
                parent.has_subnodes = true;
            }
        }
        push_u32(&mut self.structure, FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        pad_to_4(&mut self.structure);
        self.open_nodes.push(OpenNode { has_subnodes: false });
        Ok(())
    }

    /// Adds property `name` with raw `value` (possibly empty) to the currently open node.
    ///
    /// Fails if no node is open, if the node already has subnodes, or if the name is empty
    /// or contains NUL.
    pub fn property(&mut self, name: &str, value: &[u8]) -> Result<(), DtError> {
        match self.open_nodes.last() {
            None => return Err(DtError::Malformed("property outside any node")),
            Some(node) if node.has_subnodes => return Err(DtError::Malformed("property after a subnode")),
            Some(_) => {}
        }
        if name.is_empty() || name.contains('\0') {
            return Err(DtError::Malformed("property name empty or contains NUL"));
        }
        let length =
            u32::try_from(value.len()).map_err(|_| DtError::Malformed("property value longer than 4 GiB"))?;
        let name_offset = self.string_offset(name)?;
        push_u32(&mut self.structure, FDT_PROP);
        push_u32(&mut self.structure, length);
        push_u32(&mut self.structure, name_offset);
        self.structure.extend_from_slice(value);
        pad_to_4(&mut self.structure);
        Ok(())
    }

    /// Adds a property holding one big-endian 32-bit cell.
    pub fn property_u32(&mut self, name: &str, value: u32) -> Result<(), DtError> {
        self.property(name, &value.to_be_bytes())
    }

    /// Adds a property holding a list of big-endian 32-bit cells.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) -> Result<(), DtError> {
        let bytes: Vec<u8> = cells.iter().flat_map(|cell| cell.to_be_bytes()).collect();
        self.property(name, &bytes)
    }

    /// Adds a NUL-terminated string property; fails if `value` itself contains NUL.
    pub fn property_string(&mut self, name: &str, value: &str) -> Result<(), DtError> {
        if value.contains('\0') {
            return Err(DtError::Malformed("string property value contains NUL"));
        }
        let mut bytes = Vec::with_capacity(value.len().saturating_add(1));
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.property(name, &bytes)
    }

    /// Closes the most recently opened node; fails if no node is open.
    pub fn end_node(&mut self) -> Result<(), DtError> {
        if self.open_nodes.pop().is_none() {
            return Err(DtError::Malformed("end_node without an open node"));
        }
        push_u32(&mut self.structure, FDT_END_NODE);
        Ok(())
    }

    /// Number of nodes currently open (0 before the root and after it is closed).
    pub fn depth(&self) -> usize {
        self.open_nodes.len()
    }

    /// Size in bytes the blob would have if it were finished now (used to enforce size limits).
    pub fn encoded_len(&self) -> usize {
        let reservation_bytes =
            (self.reservations.len().saturating_add(1)).saturating_mul(RESERVATION_ENTRY_SIZE);
        HEADER_SIZE
            .saturating_add(reservation_bytes)
            .saturating_add(self.structure.len())
            .saturating_add(4)
            .saturating_add(self.strings.len())
    }

    /// Assembles the blob with `boot_cpuid` as `boot_cpuid_phys`.
    ///
    /// Fails unless exactly one root was written and every node has been closed, or if the
    /// blob would not fit the header's 32-bit fields.
    pub fn finish(self, boot_cpuid: u32) -> Result<Vec<u8>, DtError> {
        if !self.root_written {
            return Err(DtError::Malformed("no root node"));
        }
        if !self.open_nodes.is_empty() {
            return Err(DtError::Malformed("unclosed node at finish"));
        }
        let too_big = || DtError::Malformed("device tree blob larger than 4 GiB");
        // HEADER_SIZE is a multiple of 8, so the reservation block is 8-byte aligned, and
        // reservation entries are 16 bytes, so the structure block is 4-byte aligned.
        let reservation_offset = HEADER_SIZE;
        let reservation_size = self
            .reservations
            .len()
            .checked_add(1)
            .and_then(|entries| entries.checked_mul(RESERVATION_ENTRY_SIZE))
            .ok_or_else(too_big)?;
        let structure_offset = reservation_offset.checked_add(reservation_size).ok_or_else(too_big)?;
        let structure_size = self.structure.len().checked_add(4).ok_or_else(too_big)?;
        let strings_offset = structure_offset.checked_add(structure_size).ok_or_else(too_big)?;
        let total_size = strings_offset.checked_add(self.strings.len()).ok_or_else(too_big)?;
        let field = |value: usize| u32::try_from(value).map_err(|_| too_big());

        let mut blob = Vec::with_capacity(total_size);
        for header_field in [
            FDT_MAGIC,
            field(total_size)?,
            field(structure_offset)?,
            field(strings_offset)?,
            field(reservation_offset)?,
            FDT_VERSION,
            FDT_LAST_COMPATIBLE_VERSION,
            boot_cpuid,
            field(self.strings.len())?,
            field(structure_size)?,
        ] {
            push_u32(&mut blob, header_field);
        }
        for &(base, size) in self.reservations.iter().chain(core::iter::once(&(0, 0))) {
            blob.extend_from_slice(&base.to_be_bytes());
            blob.extend_from_slice(&size.to_be_bytes());
        }
        blob.extend_from_slice(&self.structure);
        push_u32(&mut blob, FDT_END);
        blob.extend_from_slice(&self.strings);
        Ok(blob)
    }

    /// Offset of `name` in the strings block, appending it the first time it is seen.
    fn string_offset(&mut self, name: &str) -> Result<u32, DtError> {
        if let Some(&offset) = self.string_offsets.get(name) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.strings.len())
            .map_err(|_| DtError::Malformed("strings block larger than 4 GiB"))?;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.string_offsets.insert(String::from(name), offset);
        Ok(offset)
    }
}

/// Appends `value` big-endian.
fn push_u32(buffer: &mut Vec<u8>, value: u32) {
    buffer.extend_from_slice(&value.to_be_bytes());
}

/// Pads with zeros to the next 4-byte boundary (structure block alignment).
fn pad_to_4(buffer: &mut Vec<u8>) {
    while !buffer.len().is_multiple_of(4) {
        buffer.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_u32_at(blob: &[u8], offset: usize) -> u32 {
        let bytes: [u8; 4] = blob[offset..offset + 4].try_into().unwrap();
        u32::from_be_bytes(bytes)
    }

    fn sample_tree() -> Vec<u8> {
        let mut writer = FdtWriter::new();
        writer.add_reservation(0x1000, 0x2000);
        writer.add_reservation(0x3000_0000, 0x10_0000);
        writer.begin_node("").unwrap();
        writer.property_cells("#address-cells", &[2]).unwrap();
        writer.property_u32("#size-cells", 2).unwrap();
        writer.property_string("model", "IBM pSeries (emulated by qemu)").unwrap();
        writer.begin_node("pci@800000020000000").unwrap();
        writer.property_string("device_type", "pci").unwrap();
        writer.property("ranges", &[]).unwrap();
        writer.begin_node("ethernet@1").unwrap();
        writer.property_cells("reg", &[0x800, 0, 0, 0, 0]).unwrap();
        writer.property_u32("phandle", 0x1234).unwrap();
        assert_eq!(writer.depth(), 3);
        writer.end_node().unwrap();
        writer.end_node().unwrap();
        writer.begin_node("chosen").unwrap();
        writer.property_string("bootargs", "console=hvc0").unwrap();
        writer.end_node().unwrap();
        writer.end_node().unwrap();
        assert_eq!(writer.depth(), 0);
        let predicted = writer.encoded_len();
        let blob = writer.finish(3).unwrap();
        assert_eq!(blob.len(), predicted);
        blob
    }

    #[test]
    fn header_fields_follow_the_spec() {
        let blob = sample_tree();
        assert_eq!(be_u32_at(&blob, 0), 0xd00d_feed);
        assert_eq!(be_u32_at(&blob, 4) as usize, blob.len());
        let structure_offset = be_u32_at(&blob, 8) as usize;
        let strings_offset = be_u32_at(&blob, 12) as usize;
        let reservation_offset = be_u32_at(&blob, 16) as usize;
        assert_eq!(reservation_offset % 8, 0);
        assert_eq!(structure_offset % 4, 0);
        assert_eq!(be_u32_at(&blob, 20), 17);
        assert_eq!(be_u32_at(&blob, 24), 16);
        assert_eq!(be_u32_at(&blob, 28), 3);
        assert_eq!(strings_offset + be_u32_at(&blob, 32) as usize, blob.len());
        let structure_size = be_u32_at(&blob, 36) as usize;
        assert_eq!(structure_offset + structure_size, strings_offset);
        assert_eq!(be_u32_at(&blob, structure_offset), 1);
        assert_eq!(be_u32_at(&blob, structure_offset + structure_size - 4), 9);
    }

    #[test]
    fn round_trips_through_the_fdt_crate() {
        let blob = sample_tree();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let root = fdt.find_node("/").unwrap();
        assert_eq!(root.property("#size-cells").map(|p| p.value), Some(&[0, 0, 0, 2][..]));
        assert_eq!(root.property("model").and_then(|p| p.as_str()), Some("IBM pSeries (emulated by qemu)"));
        let pci = fdt.find_node("/pci@800000020000000").unwrap();
        assert_eq!(pci.property("device_type").map(|p| p.value), Some(&b"pci\0"[..]));
        assert_eq!(pci.property("ranges").map(|p| p.value), Some(&[][..]));
        let ethernet = fdt.find_node("/pci@800000020000000/ethernet@1").unwrap();
        assert_eq!(ethernet.name, "ethernet@1");
        let reg = ethernet.property("reg").map(|p| p.value).unwrap();
        assert_eq!(reg.len(), 20);
        assert_eq!(&reg[..4], &[0, 0, 8, 0]);
        assert_eq!(fdt.find_phandle(0x1234).map(|n| n.name), Some("ethernet@1"));
        let bootargs = fdt.find_node("/chosen").and_then(|n| n.property("bootargs"));
        assert_eq!(bootargs.and_then(|p| p.as_str()), Some("console=hvc0"));
        let names: Vec<&str> = fdt.all_nodes().map(|n| n.name).collect();
        assert_eq!(names, ["/", "pci@800000020000000", "ethernet@1", "chosen"]);
    }

    #[test]
    fn reservations_round_trip() {
        let blob = sample_tree();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let reservations: Vec<(usize, usize)> =
            fdt.memory_reservations().map(|r| (r.address() as usize, r.size())).collect();
        assert_eq!(reservations, [(0x1000, 0x2000), (0x3000_0000, 0x10_0000)]);
    }

    #[test]
    fn property_names_are_deduplicated() {
        let mut writer = FdtWriter::new();
        writer.begin_node("").unwrap();
        for unit in 0..3 {
            writer.begin_node(&alloc::format!("cpu@{unit}")).unwrap();
            writer.property_u32("reg", unit).unwrap();
            writer.property_string("device_type", "cpu").unwrap();
            writer.end_node().unwrap();
        }
        writer.end_node().unwrap();
        let blob = writer.finish(0).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let strings: Vec<&str> = fdt.strings().collect();
        assert_eq!(strings, ["reg", "device_type"]);
        let regs: Vec<u32> = fdt
            .all_nodes()
            .filter_map(|n| n.property("reg").and_then(|p| p.as_usize()))
            .map(|reg| reg as u32)
            .collect();
        assert_eq!(regs, [0, 1, 2]);
    }

    #[test]
    fn unbalanced_nodes_are_rejected() {
        let mut writer = FdtWriter::new();
        assert_eq!(writer.end_node(), Err(DtError::Malformed("end_node without an open node")));
        writer.begin_node("").unwrap();
        writer.begin_node("child").unwrap();
        writer.end_node().unwrap();
        assert!(writer.finish(0).is_err());
        assert!(FdtWriter::new().finish(0).is_err());
    }

    #[test]
    fn property_outside_a_node_is_rejected() {
        let mut writer = FdtWriter::new();
        assert!(writer.property_u32("x", 1).is_err());
        writer.begin_node("").unwrap();
        writer.end_node().unwrap();
        assert!(writer.property("x", &[]).is_err());
    }

    #[test]
    fn property_after_subnode_is_rejected() {
        let mut writer = FdtWriter::new();
        writer.begin_node("").unwrap();
        writer.begin_node("child").unwrap();
        writer.end_node().unwrap();
        assert!(writer.property("late", &[]).is_err());
    }

    #[test]
    fn second_root_is_rejected() {
        let mut writer = FdtWriter::new();
        writer.begin_node("").unwrap();
        writer.end_node().unwrap();
        assert!(writer.begin_node("").is_err());
        assert!(writer.finish(0).is_ok());
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut writer = FdtWriter::new();
        assert!(writer.begin_node("not-empty-root").is_err());
        writer.begin_node("").unwrap();
        assert!(writer.begin_node("a/b").is_err());
        assert!(writer.begin_node("a\0b").is_err());
        assert!(writer.begin_node("").is_err());
        assert!(writer.property("", &[1]).is_err());
        assert!(writer.property("bad\0name", &[1]).is_err());
        assert!(writer.property_string("s", "nul\0inside").is_err());
        // Failed calls leave the tree consistent.
        writer.property_u32("ok", 7).unwrap();
        writer.end_node().unwrap();
        let blob = writer.finish(0).unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.all_nodes().count(), 1);
        let root = fdt.find_node("/").unwrap();
        assert_eq!(root.properties().count(), 1);
        assert_eq!(root.property("ok").and_then(|p| p.as_usize()), Some(7));
    }
}
