//! CPU facts: how many processor nodes, which PVR, and the timebase and core clock rates.
//!
//! QEMU `spapr_dt_cpus` / `spapr_dt_cpu` (hw/ppc/spapr.c) write one node per core under `/cpus`
//! (e.g. `PowerPC,POWER9@0`) with `device_type = "cpu"`, `cpu-version` = the PVR (or the logical
//! compatibility PVR such as 0x0f000005 when a compat mode is set), `timebase-frequency`
//! (512 MHz on POWER9) and `clock-frequency`, both one cell. The Devicetree Specification allows
//! two cells for either frequency (§3.7.1), so both sizes are accepted. Threads are listed in each
//! node's `ibm,ppc-interrupt-server#s`; [`CpuInfo::count`] counts nodes, not threads.

use fdt::Fdt;

use crate::devtree::cells::{self, be_u32, be_u32_or_u64};
use crate::devtree::error::DtError;

/// Summary of the `/cpus` node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// Number of `/cpus` children with `device_type = "cpu"` (cores on pseries).
    pub count: usize,
    /// `cpu-version` of the first CPU node.
    pub pvr: Option<u32>,
    /// `timebase-frequency` of the first CPU node, in Hz.
    pub timebase_hz: Option<u64>,
    /// `clock-frequency` of the first CPU node, in Hz.
    pub clock_hz: Option<u64>,
    /// log2 of the hashed page table's size (`ibm,pft-size` = <0, shift>), if present.
    pub pft_shift: Option<u32>,
    /// Whether `ibm,segment-page-sizes` offers 16 MiB pages in 16 MiB-base segments (`None`
    /// without the property).
    pub hash_16m_pages: Option<bool>,
    /// The first CPU's first interrupt server number (`ibm,ppc-interrupt-server#s`): where
    /// `ibm,set-xive` routes a source for it (LoPAR "Interrupt Support").
    pub interrupt_server: Option<u32>,
}

/// Parses `cpu-version` (exactly one cell).
pub fn parse_pvr(bytes: &[u8]) -> Result<u32, DtError> {
    be_u32("cpu-version", bytes)
}

/// Parses `ibm,pft-size` (two cells: 0, log2 of the hashed page table's bytes, 18..=46).
pub fn parse_pft_size(bytes: &[u8]) -> Result<u32, DtError> {
    const PROP: &str = "ibm,pft-size";
    if bytes.len() != 8 {
        return Err(DtError::BadLength { prop: PROP, len: bytes.len(), expected: "8 bytes (2 cells)" });
    }
    let shift = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if !(18..=46).contains(&shift) {
        return Err(DtError::BadValue { prop: PROP, why: "table size outside 2^18..2^46 bytes" });
    }
    Ok(shift)
}

/// Whether `ibm,segment-page-sizes` (LoPAR; QEMU `spapr_dt_cpu`: per segment base size
/// `<base shift, SLB encoding, count, then count × <page shift, PTE encoding>>`) lists pages
/// of 2^`page` bytes in segments of base 2^`base`.
pub fn offers_page(bytes: &[u8], base: u32, page: u32) -> Result<bool, DtError> {
    const PROP: &str = "ibm,segment-page-sizes";
    if !bytes.len().is_multiple_of(4) {
        return Err(DtError::BadLength { prop: PROP, len: bytes.len(), expected: "whole cells" });
    }
    let cells: alloc::vec::Vec<u32> =
        bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut at = 0;
    while at + 3 <= cells.len() {
        let (seg_base, count) = (cells[at], cells[at + 2] as usize);
        let pairs = cells.get(at + 3..at + 3 + 2 * count).ok_or(DtError::BadValue {
            prop: PROP,
            why: "a segment size lists more page sizes than the property holds",
        })?;
        if seg_base == base && pairs.chunks_exact(2).any(|p| p[0] == page) {
            return Ok(true);
        }
        at += 3 + 2 * count;
    }
    Ok(false)
}

/// Parses a one- or two-cell frequency property named `prop`, rejecting 0 Hz.
pub fn parse_frequency(prop: &'static str, bytes: &[u8]) -> Result<u64, DtError> {
    match be_u32_or_u64(prop, bytes)? {
        0 => Err(DtError::BadValue { prop, why: "frequency is zero" }),
        hz => Ok(hz),
    }
}

/// Reads `/cpus`. A missing `/cpus` or a malformed property of the first CPU node is an error;
/// missing properties are `None`.
pub fn cpu_info(fdt: &Fdt<'_>) -> Result<CpuInfo, DtError> {
    let cpus = fdt.find_node("/cpus").ok_or(DtError::Malformed("no /cpus node"))?;
    let mut info = CpuInfo::default();
    for node in cpus.children().filter(|n| cells::has_device_type(*n, "cpu")) {
        info.count += 1;
        if info.count > 1 {
            continue;
        }
        info.pvr = cells::prop(node, "cpu-version").map(parse_pvr).transpose()?;
        info.timebase_hz = cells::prop(node, "timebase-frequency")
            .map(|b| parse_frequency("timebase-frequency", b))
            .transpose()?;
        info.clock_hz = cells::prop(node, "clock-frequency")
            .map(|b| parse_frequency("clock-frequency", b))
            .transpose()?;
        info.pft_shift = cells::prop(node, "ibm,pft-size").map(parse_pft_size).transpose()?;
        info.hash_16m_pages =
            cells::prop(node, "ibm,segment-page-sizes").map(|b| offers_page(b, 24, 24)).transpose()?;
        info.interrupt_server = cells::prop(node, "ibm,ppc-interrupt-server#s")
            .and_then(|b| b.get(..4))
            .map(|b| be_u32("ibm,ppc-interrupt-server#s", b))
            .transpose()?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvr() {
        assert_eq!(parse_pvr(&[0x00, 0x4e, 0x12, 0x02]), Ok(0x004e_1202));
        assert!(parse_pvr(&[0x00, 0x4e, 0x12]).is_err());
        assert!(parse_pvr(&[0; 8]).is_err());
        assert!(parse_pvr(&[]).is_err());
    }

    #[test]
    fn segment_page_sizes() {
        let cells = |c: &[u32]| c.iter().flat_map(|x| x.to_be_bytes()).collect::<alloc::vec::Vec<u8>>();
        // 4K base: 4K, 64K; 64K base: 64K (QEMU with cap-hpt-max-page-size=64K).
        let small = cells(&[12, 0, 2, 12, 0, 16, 7, 16, 0x110, 1, 16, 1]);
        assert_eq!(offers_page(&small, 24, 24), Ok(false));
        let big = cells(&[12, 0, 1, 12, 0, 24, 0x100, 1, 24, 0]);
        assert_eq!(offers_page(&big, 24, 24), Ok(true));
        assert!(offers_page(&cells(&[24, 0x100, 3, 24, 0]), 24, 24).is_err());
        assert!(offers_page(&[0, 0, 0], 24, 24).is_err());
    }

    #[test]
    fn pft_size() {
        assert_eq!(parse_pft_size(&[0, 0, 0, 0, 0, 0, 0, 24]), Ok(24));
        assert!(parse_pft_size(&[0, 0, 0, 24]).is_err());
        assert!(parse_pft_size(&[0, 0, 0, 0, 0, 0, 0, 7]).is_err());
        assert!(parse_pft_size(&[0, 0, 0, 0, 0, 0, 0, 60]).is_err());
    }

    #[test]
    fn frequencies() {
        let one_cell = 512_000_000u32.to_be_bytes();
        assert_eq!(parse_frequency("timebase-frequency", &one_cell), Ok(512_000_000));
        let two_cells = [0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(parse_frequency("clock-frequency", &two_cells), Ok(1 << 32));
        assert!(parse_frequency("timebase-frequency", &[0; 4]).is_err());
        assert!(parse_frequency("timebase-frequency", &[0; 5]).is_err());
        assert!(parse_frequency("timebase-frequency", &[0; 12]).is_err());
        assert!(parse_frequency("timebase-frequency", &[1, 2]).is_err());
    }

    fn tree(first_cpu: &[(&str, &[u32])]) -> Vec<u8> {
        use crate::devtree::writer::FdtWriter;
        let mut w = FdtWriter::new();
        w.begin_node("").unwrap();
        w.begin_node("cpus").unwrap();
        w.begin_node("PowerPC,POWER9@0").unwrap();
        w.property_string("device_type", "cpu").unwrap();
        for (name, cells) in first_cpu {
            w.property_cells(name, cells).unwrap();
        }
        w.end_node().unwrap();
        w.begin_node("PowerPC,POWER9@8").unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_cells("cpu-version", &[0xdead]).unwrap();
        w.end_node().unwrap();
        w.begin_node("not-a-cpu").unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.end_node().unwrap();
        w.finish(0).unwrap()
    }

    #[test]
    fn cpus_node() {
        let blob = tree(&[
            ("cpu-version", &[0x004e_1202]),
            ("timebase-frequency", &[0, 512_000_000]),
            ("ibm,ppc-interrupt-server#s", &[8, 9]),
        ]);
        let info = cpu_info(&Fdt::new(&blob).unwrap()).unwrap();
        let expected = CpuInfo {
            count: 2,
            pvr: Some(0x004e_1202),
            timebase_hz: Some(512_000_000),
            clock_hz: None,
            pft_shift: None,
            hash_16m_pages: None,
            interrupt_server: Some(8),
        };
        assert_eq!(info, expected);
        let bad = tree(&[("cpu-version", &[0x004e, 0x1202])]);
        assert!(cpu_info(&Fdt::new(&bad).unwrap()).is_err());
        let mut w = crate::devtree::writer::FdtWriter::new();
        w.begin_node("").unwrap();
        w.end_node().unwrap();
        let no_cpus = w.finish(0).unwrap();
        assert!(cpu_info(&Fdt::new(&no_cpus).unwrap()).is_err());
    }
}
