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
}

/// Parses `cpu-version` (exactly one cell).
pub fn parse_pvr(bytes: &[u8]) -> Result<u32, DtError> {
    be_u32("cpu-version", bytes)
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
        let blob = tree(&[("cpu-version", &[0x004e_1202]), ("timebase-frequency", &[0, 512_000_000])]);
        let info = cpu_info(&Fdt::new(&blob).unwrap()).unwrap();
        let expected =
            CpuInfo { count: 2, pvr: Some(0x004e_1202), timebase_hz: Some(512_000_000), clock_hz: None };
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
