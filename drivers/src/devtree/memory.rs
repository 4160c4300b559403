//! Boot RAM: where guest memory is, from the `memory` nodes.
//!
//! Boot RAM is described by `memory` nodes under the root (`device_type = "memory"`, QEMU names
//! them `memory@<base>`), each with a `reg` of (address, size) pairs in the root's
//! `#address-cells` / `#size-cells` (QEMU `spapr_build_fdt`: 2 and 2). QEMU `spapr_dt_memory`
//! writes one node per NUMA node, so there can be several; they must not overlap.
//!
//! How far memory may grow by hot-plug is in [`super::hotplug`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use fdt::Fdt;

use crate::addr::{PhysAddr, PhysRange};
use crate::devtree::cells::{self, check_cell_count, entry_count, CellCounts, CellReader};
use crate::devtree::error::DtError;

/// Parses a `reg` made of (address, size) pairs into ranges, in property order.
pub fn parse_reg(bytes: &[u8], cells: CellCounts) -> Result<Vec<PhysRange>, DtError> {
    check_cell_count("#address-cells", cells.address)?;
    check_cell_count("#size-cells", cells.size)?;
    let entry_cells = (cells.address + cells.size) as usize;
    let count = entry_count("reg", bytes, entry_cells)?;
    let mut reader = CellReader::new("reg", bytes)?;
    let mut ranges = Vec::with_capacity(count);
    for _ in 0..count {
        let base = reader.read_cells(cells.address)?;
        let size = reader.read_cells(cells.size)?;
        if base.checked_add(size).is_none() {
            return Err(DtError::BadValue { prop: "reg", why: "range runs past 2^64" });
        }
        ranges.push(PhysRange { base: PhysAddr(base), size });
    }
    Ok(ranges)
}

/// Drops empty ranges and sorts by base; returns the ranges kept and those dropped because they
/// overlap a kept one.
fn sort_and_split_overlaps(mut ranges: Vec<PhysRange>) -> (Vec<PhysRange>, Vec<PhysRange>) {
    ranges.retain(|r| r.size != 0);
    ranges.sort_by_key(|r| r.base);
    let (mut kept, mut overlapping) = (Vec::with_capacity(ranges.len()), Vec::new());
    for range in ranges {
        match kept.last() {
            Some(prev) if PhysRange::end(prev) > range.base.get() => overlapping.push(range),
            _ => kept.push(range),
        }
    }
    (kept, overlapping)
}

/// Drops empty ranges, sorts by base and fails if any two overlap.
pub fn sorted_disjoint(ranges: Vec<PhysRange>) -> Result<Vec<PhysRange>, DtError> {
    match sort_and_split_overlaps(ranges) {
        (kept, overlapping) if overlapping.is_empty() => Ok(kept),
        _ => Err(DtError::BadValue { prop: "reg", why: "memory ranges overlap" }),
    }
}

/// Every RAM range from the `memory` nodes, sorted by base, empty ranges dropped. Any malformed
/// `reg` or any overlap is an error.
pub fn memory_ranges(fdt: &Fdt<'_>) -> Result<Vec<PhysRange>, DtError> {
    let (mut all, mut bad) = (Vec::new(), Vec::new());
    for_each_memory_node(fdt, &mut all, &mut bad)?;
    match bad.into_iter().next() {
        Some((_, err)) => Err(err),
        None => sorted_disjoint(all),
    }
}

/// Like [`memory_ranges`], but a malformed node or an overlapping range is left out and
/// described in `problems` instead of failing everything.
pub fn memory_ranges_skipping_bad(fdt: &Fdt<'_>, problems: &mut Vec<String>) -> Vec<PhysRange> {
    let (mut all, mut bad) = (Vec::new(), Vec::new());
    if let Err(err) = for_each_memory_node(fdt, &mut all, &mut bad) {
        problems.push(format!("/: {err}; no memory ranges were read"));
    }
    for (node, err) in bad {
        problems.push(format!("/{node}: {err}; memory node skipped"));
    }
    let (kept, overlapping) = sort_and_split_overlaps(all);
    for r in overlapping {
        let (base, size) = (r.base.get(), r.size);
        problems.push(format!("memory range {base:#x}+{size:#x} overlaps another; range skipped"));
    }
    kept
}

/// Parses the `reg` of every root child that is a memory node into `out`; per-node errors go to
/// `bad` with the node name. Fails only if the root's cell counts are unreadable.
fn for_each_memory_node<'a>(
    fdt: &Fdt<'a>,
    out: &mut Vec<PhysRange>,
    bad: &mut Vec<(&'a str, DtError)>,
) -> Result<(), DtError> {
    let root = fdt.find_node("/").ok_or(DtError::Malformed("no root node"))?;
    let root_cells = cells::cell_counts(root, CellCounts::PSERIES_ROOT)?;
    for node in root.children() {
        let is_memory = cells::has_device_type(node, "memory") || node.name.starts_with("memory@");
        if !is_memory {
            continue;
        }
        let parsed = cells::prop(node, "reg")
            .ok_or(DtError::Missing { node: "memory", prop: "reg" })
            .and_then(|bytes| parse_reg(bytes, root_cells));
        match parsed {
            Ok(ranges) => out.extend(ranges),
            Err(err) => bad.push((node.name, err)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    const TWO_TWO: CellCounts = CellCounts { address: 2, size: 2 };

    fn range(base: u64, size: u64) -> PhysRange {
        PhysRange { base: PhysAddr(base), size }
    }

    #[test]
    fn reg_good_and_bad() {
        let reg = be(&[0, 0, 0, 0x2000_0000, 1, 0, 0, 0x1000_0000]);
        assert_eq!(parse_reg(&reg, TWO_TWO), Ok(vec![range(0, 0x2000_0000), range(1 << 32, 0x1000_0000)]));
        let one_one = CellCounts { address: 1, size: 1 };
        assert_eq!(parse_reg(&be(&[0x1000, 0x100]), one_one), Ok(vec![range(0x1000, 0x100)]));
        // Short (3 of 4 cells), misaligned, bad cell counts, overflowing.
        assert!(parse_reg(&be(&[0, 0, 0]), TWO_TWO).is_err());
        assert!(parse_reg(&[0; 15], TWO_TWO).is_err());
        assert!(parse_reg(&be(&[0, 0, 0, 0]), CellCounts { address: 3, size: 1 }).is_err());
        assert!(parse_reg(&be(&[0, 0, 0, 0]), CellCounts { address: 2, size: 0 }).is_err());
        assert!(parse_reg(&be(&[0xffff_ffff, 0xffff_f000, 0, 0x2000]), TWO_TWO).is_err());
    }

    #[test]
    fn ranges_sorted_and_overlap_rejected() {
        let sorted = sorted_disjoint(vec![range(0x1000, 0x1000), range(0, 0), range(0, 0x1000)]);
        assert_eq!(sorted, Ok(vec![range(0, 0x1000), range(0x1000, 0x1000)]));
        assert!(sorted_disjoint(vec![range(0, 0x2000), range(0x1000, 0x1000)]).is_err());
    }

    /// A root with 2/2 cells and one `memory@` node per `reg`.
    fn tree(regs: &[&[u32]]) -> Vec<u8> {
        use crate::devtree::writer::FdtWriter;
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        for (i, reg) in regs.iter().enumerate() {
            w.begin_node(&format!("memory@{i}")).unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_cells("reg", reg).unwrap();
            w.end_node().unwrap();
        }
        w.begin_node("cpus").unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.finish(0).unwrap()
    }

    #[test]
    fn memory_nodes_sorted_and_checked() {
        let blob = tree(&[&[0, 0x4000_0000, 0, 0x1000], &[0, 0, 0, 0x2000], &[0, 0x5000, 0, 0]]);
        let fdt = Fdt::new(&blob).unwrap();
        let expected = vec![range(0, 0x2000), range(0x4000_0000, 0x1000)];
        assert_eq!(memory_ranges(&fdt), Ok(expected.clone()));
        let mut problems = Vec::new();
        assert_eq!(memory_ranges_skipping_bad(&fdt, &mut problems), expected);
        assert!(problems.is_empty());

        let blob = tree(&[&[0, 0, 0, 0x2000], &[0, 0x1000, 0, 0x2000], &[0, 0x8000, 0x10]]);
        let fdt = Fdt::new(&blob).unwrap();
        assert!(memory_ranges(&fdt).is_err());
        let mut problems = Vec::new();
        assert_eq!(memory_ranges_skipping_bad(&fdt, &mut problems), [range(0, 0x2000)]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("/memory@2: property reg is 12 bytes long"));
        assert!(problems[1].contains("overlaps"));
    }
}
