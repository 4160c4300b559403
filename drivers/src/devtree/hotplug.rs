//! Hot-plug memory: how far guest memory may grow, and in what block size.
//!
//! DMA windows that map all of memory must also cover memory hot-plugged later (Linux
//! `ddw_memory_hotplug_max`). LoPAR "Dynamic Reconfiguration Memory" (Linux `drmem.c`) describes
//! it in `/ibm,dynamic-reconfiguration-memory`: `ibm,lmb-size` (2 cells) plus either
//! `ibm,dynamic-memory` (v1: count, then per LMB `base u64, drc-index, reserved, assoc-index,
//! flags`, 6 cells) or `ibm,dynamic-memory-v2` (count, then per run `num-lmbs, base u64,
//! drc-index, assoc-index, flags`, 6 cells). QEMU adds that node only after
//! client-architecture-support; before it (and on FDT-direct boots) there is only
//! `/rtas/ibm,lrdr-capacity` = `<max-addr hi, lo, lmb-size hi, lo, max-cpus>`, where QEMU
//! `spapr_dt_rtas` puts the end of device memory, or 0 when the machine has none.

use alloc::vec::Vec;
use fdt::Fdt;

use crate::addr::{PhysAddr, PhysRange};
use crate::devtree::cells::{self, CellReader};
use crate::devtree::error::DtError;

/// Node holding the dynamic-reconfiguration (hot-plug) memory description.
pub const DRCONF_PATH: &str = "/ibm,dynamic-reconfiguration-memory";

/// Cells per `ibm,dynamic-memory` (v1) entry and per `ibm,dynamic-memory-v2` entry.
const DRCONF_ENTRY_CELLS: usize = 6;

/// Where the hot-plug memory description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotplugSource {
    /// `ibm,dynamic-memory` under [`DRCONF_PATH`].
    DynamicMemoryV1,
    /// `ibm,dynamic-memory-v2` under [`DRCONF_PATH`].
    DynamicMemoryV2,
    /// `/rtas/ibm,lrdr-capacity`.
    LrdrCapacity,
}

/// How far memory may grow by hot-plug, and in what block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotplugMemory {
    /// One past the highest address hot-plugged memory can occupy.
    pub max_addr: u64,
    /// Size of one logical memory block (LMB) in bytes.
    pub lmb_size: u64,
    /// Which property this came from.
    pub source: HotplugSource,
}

/// Parses `ibm,lmb-size` (exactly 2 cells, non-zero).
pub fn parse_lmb_size(bytes: &[u8]) -> Result<u64, DtError> {
    if bytes.len() != 8 {
        return Err(DtError::BadLength {
            prop: "ibm,lmb-size",
            len: bytes.len(),
            expected: "8 bytes (two cells)",
        });
    }
    let size = CellReader::new("ibm,lmb-size", bytes)?.read_u64()?;
    if size == 0 {
        return Err(DtError::BadValue { prop: "ibm,lmb-size", why: "LMB size is zero" });
    }
    Ok(size)
}

/// Splits a drconf property into its leading count and a reader over exactly that many 6-cell
/// entries; a count that disagrees with the length either way is an error.
fn drconf_entries<'a>(prop: &'static str, bytes: &'a [u8]) -> Result<(u32, CellReader<'a>), DtError> {
    let mut reader = CellReader::new(prop, bytes)?;
    let count = reader.read_u32()?;
    let needed = (count as usize).checked_mul(DRCONF_ENTRY_CELLS);
    if needed != Some(reader.remaining_cells()) {
        return Err(DtError::BadLength {
            prop,
            len: bytes.len(),
            expected: "4 + 24 * count bytes (count from the first cell)",
        });
    }
    Ok((count, reader))
}

/// LMB flag: the LMB is assigned to this partition (Linux `DRCONF_MEM_ASSIGNED`, QEMU
/// `SPAPR_LMB_FLAGS_ASSIGNED`).
pub const LMB_ASSIGNED: u32 = 0x8;
/// LMB flag: the DRC index is not valid (QEMU `SPAPR_LMB_FLAGS_DRC_INVALID`).
pub const LMB_DRC_INVALID: u32 = 0x20;
/// LMB flag: reserved, not usable (Linux `DRCONF_MEM_RESERVED`).
pub const LMB_RESERVED: u32 = 0x80;

/// One drconf entry: `lmbs` consecutive LMBs from `base`, with `flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LmbRun {
    base: u64,
    end: u64,
    drc: u32,
    flags: u32,
}

/// The entries of `ibm,dynamic-memory` (v1: one LMB each) or `ibm,dynamic-memory-v2` (a run
/// of LMBs each).
fn lmb_runs(prop: &'static str, bytes: &[u8], lmb_size: u64) -> Result<Vec<LmbRun>, DtError> {
    let v2 = prop == "ibm,dynamic-memory-v2";
    let (count, mut reader) = drconf_entries(prop, bytes)?;
    let mut runs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let lmbs = if v2 { reader.read_u32()? } else { 1 };
        let base = reader.read_u64()?;
        // v1: drc-index, reserved, assoc-index; v2: drc-index, assoc-index.
        let drc = reader.read_u32()?;
        reader.skip_cells(if v2 { 1 } else { 2 })?;
        let flags = reader.read_u32()?;
        let end = lmb_size
            .checked_mul(u64::from(lmbs))
            .and_then(|len| base.checked_add(len))
            .ok_or(DtError::BadValue { prop, why: "LMB run runs past 2^64" })?;
        runs.push(LmbRun { base, end, drc, flags });
    }
    Ok(runs)
}

/// The end of the highest LMB listed in `ibm,dynamic-memory` (v1), or `None` if it lists none.
pub fn dynamic_memory_v1_end(bytes: &[u8], lmb_size: u64) -> Result<Option<u64>, DtError> {
    Ok(lmb_runs("ibm,dynamic-memory", bytes, lmb_size)?.iter().map(|r| r.end).max())
}

/// The end of the highest LMB run listed in `ibm,dynamic-memory-v2`, or `None` if it lists none.
pub fn dynamic_memory_v2_end(bytes: &[u8], lmb_size: u64) -> Result<Option<u64>, DtError> {
    Ok(lmb_runs("ibm,dynamic-memory-v2", bytes, lmb_size)?.iter().map(|r| r.end).max())
}

/// One logical memory block as the boot device tree lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lmb {
    /// Its DRC index (QEMU: `0x80000000 | base / 256 MiB`).
    pub drc: u32,
    /// Its first address.
    pub base: u64,
    /// Its `ibm,dynamic-memory` flags (`LMB_ASSIGNED`, …).
    pub flags: u32,
}

impl Lmb {
    /// Whether the LMB is this partition's RAM now.
    pub const fn is_assigned(&self) -> bool {
        self.flags & LMB_ASSIGNED != 0 && self.flags & (LMB_RESERVED | LMB_DRC_INVALID) == 0
    }

    /// Whether it can be hot-plugged at all (neither reserved nor without a valid DRC).
    pub const fn is_hotpluggable(&self) -> bool {
        self.flags & (LMB_RESERVED | LMB_DRC_INVALID) == 0
    }
}

/// Every LMB of the drconf node, one entry per block (a v2 run of `n` is `n` LMBs with
/// consecutive DRC indexes), keyed for lookup by DRC index. QEMU never updates the guest's
/// copy of the property, so a kernel keeps this table itself from boot on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LmbTable {
    /// Bytes per LMB.
    pub lmb_size: u64,
    /// The LMBs in address order.
    pub lmbs: Vec<Lmb>,
}

impl LmbTable {
    /// The LMB with DRC index `drc`.
    pub fn by_drc(&self, drc: u32) -> Option<&Lmb> {
        self.lmbs.iter().find(|l| l.drc == drc)
    }

    /// The range `lmb` covers.
    pub fn range(&self, lmb: &Lmb) -> PhysRange {
        PhysRange { base: PhysAddr(lmb.base), size: self.lmb_size }
    }
}

/// Most LMBs a table holds (QEMU: 256 MiB each, so 64 TiB of memory).
const MAX_LMBS: u64 = 1 << 18;

/// The drconf node's LMB table, or `None` when the tree has none (no CAS, no hot-plug memory).
pub fn lmb_table(fdt: &Fdt<'_>) -> Result<Option<LmbTable>, DtError> {
    let Some(node) = fdt.find_node(DRCONF_PATH) else { return Ok(None) };
    let Some(lmb_bytes) = cells::prop(node, "ibm,lmb-size") else { return Ok(None) };
    let lmb_size = parse_lmb_size(lmb_bytes)?;
    let runs = match (cells::prop(node, "ibm,dynamic-memory-v2"), cells::prop(node, "ibm,dynamic-memory")) {
        (Some(v2), _) => lmb_runs("ibm,dynamic-memory-v2", v2, lmb_size)?,
        (None, Some(v1)) => lmb_runs("ibm,dynamic-memory", v1, lmb_size)?,
        (None, None) => return Ok(None),
    };
    let total: u64 = runs.iter().map(|r| (r.end - r.base) / lmb_size).sum();
    if total > MAX_LMBS {
        return Err(DtError::BadValue { prop: "ibm,dynamic-memory", why: "lists more than 2^18 LMBs" });
    }
    let mut lmbs = Vec::with_capacity(total as usize);
    for run in &runs {
        for i in 0..(run.end - run.base) / lmb_size {
            let drc = run.drc.wrapping_add(i as u32);
            lmbs.push(Lmb { drc, base: run.base + i * lmb_size, flags: run.flags });
        }
    }
    lmbs.sort_unstable_by_key(|l| l.base);
    Ok(Some(LmbTable { lmb_size, lmbs }))
}

/// The RAM the drconf node says is assigned to this partition now: LMBs flagged assigned and
/// neither reserved nor without a DRC (Linux `early_init_drmem_lmb` adds exactly these), as
/// ranges in address order. Unassigned LMBs are hot-plug room, never RAM to map.
pub fn assigned_lmbs(fdt: &Fdt<'_>) -> Result<Vec<PhysRange>, DtError> {
    let Some(node) = fdt.find_node(DRCONF_PATH) else { return Ok(Vec::new()) };
    let Some(lmb_bytes) = cells::prop(node, "ibm,lmb-size") else { return Ok(Vec::new()) };
    let lmb_size = parse_lmb_size(lmb_bytes)?;
    let runs = match (cells::prop(node, "ibm,dynamic-memory-v2"), cells::prop(node, "ibm,dynamic-memory")) {
        (Some(v2), _) => lmb_runs("ibm,dynamic-memory-v2", v2, lmb_size)?,
        (None, Some(v1)) => lmb_runs("ibm,dynamic-memory", v1, lmb_size)?,
        (None, None) => return Ok(Vec::new()),
    };
    let mut ranges: Vec<PhysRange> = runs
        .iter()
        .filter(|r| r.flags & LMB_ASSIGNED != 0 && r.flags & (LMB_RESERVED | LMB_DRC_INVALID) == 0)
        .filter(|r| r.end > r.base)
        .map(|r| PhysRange { base: PhysAddr(r.base), size: r.end - r.base })
        .collect();
    ranges.sort_unstable_by_key(|r| r.base);
    Ok(ranges)
}

/// Parses `ibm,lrdr-capacity` (exactly 5 cells). `None` when max-addr is 0 (no device memory).
pub fn parse_lrdr_capacity(bytes: &[u8]) -> Result<Option<HotplugMemory>, DtError> {
    const PROP: &str = "ibm,lrdr-capacity";
    if bytes.len() != 20 {
        return Err(DtError::BadLength { prop: PROP, len: bytes.len(), expected: "20 bytes (5 cells)" });
    }
    let mut reader = CellReader::new(PROP, bytes)?;
    let max_addr = reader.read_u64()?;
    let lmb_size = reader.read_u64()?;
    if max_addr == 0 {
        return Ok(None);
    }
    if lmb_size == 0 {
        return Err(DtError::BadValue { prop: PROP, why: "LMB size is zero" });
    }
    Ok(Some(HotplugMemory { max_addr, lmb_size, source: HotplugSource::LrdrCapacity }))
}

/// The hot-plug memory limit: from [`DRCONF_PATH`] (v2 preferred, as Linux does) when it lists
/// any LMB, else from `/rtas/ibm,lrdr-capacity`; `None` when neither describes device memory.
pub fn hotplug_memory(fdt: &Fdt<'_>) -> Result<Option<HotplugMemory>, DtError> {
    if let Some(node) = fdt.find_node(DRCONF_PATH) {
        let lmb_bytes = cells::prop(node, "ibm,lmb-size")
            .ok_or(DtError::Missing { node: DRCONF_PATH, prop: "ibm,lmb-size" })?;
        let lmb_size = parse_lmb_size(lmb_bytes)?;
        let found = if let Some(v2) = cells::prop(node, "ibm,dynamic-memory-v2") {
            dynamic_memory_v2_end(v2, lmb_size)?.map(|end| (end, HotplugSource::DynamicMemoryV2))
        } else if let Some(v1) = cells::prop(node, "ibm,dynamic-memory") {
            dynamic_memory_v1_end(v1, lmb_size)?.map(|end| (end, HotplugSource::DynamicMemoryV1))
        } else {
            None
        };
        if let Some((max_addr, source)) = found {
            return Ok(Some(HotplugMemory { max_addr, lmb_size, source }));
        }
    }
    match fdt.find_node("/rtas").and_then(|rtas| cells::prop(rtas, "ibm,lrdr-capacity")) {
        Some(bytes) => parse_lrdr_capacity(bytes),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    #[test]
    fn lmb_size() {
        assert_eq!(parse_lmb_size(&be(&[0, 0x1000_0000])), Ok(0x1000_0000));
        assert!(parse_lmb_size(&be(&[0x1000_0000])).is_err());
        assert!(parse_lmb_size(&be(&[0, 0, 0])).is_err());
        assert!(parse_lmb_size(&be(&[0, 0])).is_err());
    }

    #[test]
    fn only_assigned_lmbs_are_ram() {
        use crate::devtree::writer::FdtWriter;
        let lmb = 0x1000_0000u32;
        // v2, as QEMU 7.2 writes it for 2 GiB of boot RAM and one 512 MiB DIMM of 2 GiB
        // possible: boot RAM reserved, the DIMM assigned, a gap and the tail free.
        let v2 = be(&[
            4, //
            8,
            0,
            0,
            0,
            0xffff_ffff,
            LMB_RESERVED | LMB_DRC_INVALID, // [0, 2 GiB)
            2,
            0,
            0x8000_0000,
            0x8000_0008,
            0,
            LMB_ASSIGNED | 0x100, // [2, 2.5 GiB)
            1,
            0,
            0xa000_0000,
            0x8000_000a,
            0xffff_ffff,
            0, // [2.5, 2.75 GiB)
            5,
            0,
            0xb000_0000,
            0x8000_000b,
            0xffff_ffff,
            0, // [2.75, 4 GiB)
        ]);
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.begin_node("ibm,dynamic-reconfiguration-memory").unwrap();
        w.property_cells("ibm,lmb-size", &[0, lmb]).unwrap();
        w.property("ibm,dynamic-memory-v2", &v2).unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        let blob = w.finish(0).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(
            assigned_lmbs(&fdt),
            Ok(vec![PhysRange { base: PhysAddr(0x8000_0000), size: 0x2000_0000 }])
        );
        assert_eq!(hotplug_memory(&fdt).unwrap().map(|h| h.max_addr), Some(0x1_0000_0000));
        let table = lmb_table(&fdt).unwrap().expect("a table");
        assert_eq!((table.lmb_size, table.lmbs.len()), (0x1000_0000, 16));
        let dimm = table.by_drc(0x8000_0009).expect("the DIMM's second LMB");
        assert_eq!((dimm.base, dimm.is_assigned()), (0x9000_0000, true));
        let free = table.by_drc(0x8000_000c).expect("a free LMB");
        assert_eq!((free.base, free.is_assigned(), free.is_hotpluggable()), (0xc000_0000, false, true));
        assert!(!table.lmbs[0].is_hotpluggable(), "boot RAM is reserved");
    }

    #[test]
    fn dynamic_memory_v1() {
        let lmb = 0x1000_0000;
        let prop = be(&[2, 0, 0x2000_0000, 1, 0, 0, 8, 0, 0x3000_0000, 2, 0, 0, 8]);
        assert_eq!(dynamic_memory_v1_end(&prop, lmb), Ok(Some(0x4000_0000)));
        assert_eq!(dynamic_memory_v1_end(&be(&[0]), lmb), Ok(None));
        // Count larger than the data, count smaller than the data, misaligned, empty.
        assert!(dynamic_memory_v1_end(&be(&[3, 0, 0x2000_0000, 1, 0, 0, 8]), lmb).is_err());
        assert!(dynamic_memory_v1_end(&be(&[0, 0, 0x2000_0000, 1, 0, 0, 8]), lmb).is_err());
        assert!(dynamic_memory_v1_end(&prop[..prop.len() - 1], lmb).is_err());
        assert!(dynamic_memory_v1_end(&[], lmb).is_err());
        assert!(dynamic_memory_v1_end(&be(&[u32::MAX]), lmb).is_err());
        let top = be(&[1, 0xffff_ffff, 0xf000_0000, 1, 0, 0, 8]);
        assert!(dynamic_memory_v1_end(&top, lmb).is_err());
    }

    #[test]
    fn dynamic_memory_v2() {
        let lmb = 0x1000_0000;
        let prop = be(&[2, 4, 0, 0x2000_0000, 1, 0, 8, 2, 0, 0x8000_0000, 5, 0, 8]);
        assert_eq!(dynamic_memory_v2_end(&prop, lmb), Ok(Some(0xa000_0000)));
        assert!(dynamic_memory_v2_end(&prop[..24], lmb).is_err());
        assert!(dynamic_memory_v2_end(&be(&[1, u32::MAX, 0xffff_ffff, 0, 0, 0, 0]), lmb).is_err());
    }

    #[test]
    fn lrdr_capacity() {
        let prop = be(&[0x1, 0, 0, 0x1000_0000, 4]);
        let expected =
            HotplugMemory { max_addr: 1 << 32, lmb_size: 0x1000_0000, source: HotplugSource::LrdrCapacity };
        assert_eq!(parse_lrdr_capacity(&prop), Ok(Some(expected)));
        assert_eq!(parse_lrdr_capacity(&be(&[0, 0, 0, 0x1000_0000, 4])), Ok(None));
        assert!(parse_lrdr_capacity(&prop[..16]).is_err());
        assert!(parse_lrdr_capacity(&be(&[1, 0, 0, 0x1000_0000, 4, 0])).is_err());
        assert!(parse_lrdr_capacity(&be(&[1, 0, 0, 0, 4])).is_err());
    }

    /// `/rtas` with an lrdr-capacity of 4 GiB and, if `drconf` is given, the drconf node with
    /// those (name, cells) properties.
    fn tree(drconf: Option<&[(&str, &[u32])]>) -> Vec<u8> {
        use crate::devtree::writer::FdtWriter;
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.begin_node("rtas").unwrap();
        w.property_cells("ibm,lrdr-capacity", &[1, 0, 0, 0x1000_0000, 4]).unwrap();
        w.end_node().unwrap();
        if let Some(props) = drconf {
            w.begin_node("ibm,dynamic-reconfiguration-memory").unwrap();
            for (name, cells) in props {
                w.property_cells(name, cells).unwrap();
            }
            w.end_node().unwrap();
        }
        w.end_node().unwrap();
        w.finish(0).unwrap()
    }

    fn hotplug(blob: &[u8]) -> Result<Option<HotplugMemory>, DtError> {
        hotplug_memory(&Fdt::new(blob).unwrap())
    }

    #[test]
    fn drconf_preferred_over_lrdr() {
        let lmb: &[u32] = &[0, 0x1000_0000];
        let v1: &[u32] = &[1, 0, 0x2000_0000, 1, 0, 0, 8];
        let v2: &[u32] = &[1, 8, 0, 0x2000_0000, 1, 0, 8];
        let both =
            tree(Some(&[("ibm,lmb-size", lmb), ("ibm,dynamic-memory", v1), ("ibm,dynamic-memory-v2", v2)]));
        let found = hotplug(&both).unwrap().unwrap();
        assert_eq!((found.max_addr, found.source), (0xa000_0000, HotplugSource::DynamicMemoryV2));
        let only_v1 = tree(Some(&[("ibm,lmb-size", lmb), ("ibm,dynamic-memory", v1)]));
        let found = hotplug(&only_v1).unwrap().unwrap();
        assert_eq!((found.max_addr, found.source), (0x3000_0000, HotplugSource::DynamicMemoryV1));
        // Node without any LMB list, or without a node: lrdr-capacity.
        for blob in [tree(Some(&[("ibm,lmb-size", lmb)])), tree(None)] {
            let found = hotplug(&blob).unwrap().unwrap();
            assert_eq!((found.max_addr, found.source), (1 << 32, HotplugSource::LrdrCapacity));
        }
        // A malformed drconf node is an error, not a silent fallback.
        let bad = tree(Some(&[("ibm,lmb-size", &[0x1000_0000]), ("ibm,dynamic-memory", v1)]));
        assert!(hotplug(&bad).is_err());
        assert!(hotplug(&tree(Some(&[("ibm,dynamic-memory", v1)]))).is_err());
    }
}
