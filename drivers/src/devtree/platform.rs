//! `Platform`: everything the kernel needs from the device tree, gathered in one pass.
//!
//! [`Platform::from_fdt`] never fails as a whole: each item (CPU summary, memory node, hot-plug
//! description, `/rtas`, each PHB and its optional DMA properties, each PCI node, console,
//! bootargs) is parsed on its own, and a malformed one is left out with a sentence naming the
//! node and property pushed to [`Platform::problems`]. Boot code can then print the problems and
//! carry on with what was readable.
//!
//! Console: QEMU `spapr_vty` (hw/char/spapr_vty.c) creates `/vdevice/vty@71000000` with
//! `compatible = "hvterm1"` and `reg = <0x71000000>` (`/vdevice` has `#address-cells = 1`,
//! `#size-cells = 0`); that reg is the vterm number for H_PUT_TERM_CHAR. When `/chosen`
//! `stdout-path` names a vty it wins, otherwise the vty with the lowest reg. `bootargs` comes from
//! `/chosen` (QEMU `spapr_dt_chosen`, only when `-append` is non-empty).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::node::FdtNode;
use fdt::Fdt;

use crate::addr::PhysRange;
use crate::devtree::cells::{self, be_u32, single_string, string_list};
use crate::devtree::cpu::{cpu_info, CpuInfo};
use crate::devtree::hotplug::{
    assigned_lmbs, hotplug_memory, lmb_table, HotplugMemory, LmbTable, DRCONF_PATH,
};
use crate::devtree::identity::{firmware_identity, FirmwareIdentity};
use crate::devtree::memory::memory_ranges_skipping_bad;
use crate::devtree::phb::{phbs, PhbInfo};
use crate::devtree::rtas::{rtas_info, RtasInfo};
use crate::iommu::map::MultiTce;

/// The platform as described by the device tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    /// CPU summary (default when `/cpus` is unreadable).
    pub cpus: CpuInfo,
    /// RAM present, sorted, disjoint, non-empty: the memory nodes and the LMBs the
    /// dynamic-reconfiguration node says are assigned (a DIMM present at boot).
    pub memory: Vec<PhysRange>,
    /// The part of `memory` that came from assigned LMBs.
    pub lmb_memory: Vec<PhysRange>,
    /// How far memory may grow by hot-plug, if described.
    pub hotplug: Option<HotplugMemory>,
    /// Every LMB of the dynamic-reconfiguration node (for memory DLPAR), if there is one.
    pub lmbs: Option<LmbTable>,
    /// `/rtas`, if present and readable.
    pub rtas: Option<RtasInfo>,
    /// PCI host bridges that could be read.
    pub phbs: Vec<PhbInfo>,
    /// Vterm number of the console vty (its `reg`).
    pub vterm: Option<u32>,
    /// Kernel command line from `/chosen/bootargs`, if non-empty.
    pub bootargs: Option<String>,
    /// Root `compatible`/`model` and `/hypervisor`: who the platform says it is.
    pub identity: FirmwareIdentity,
    /// One sentence per item that was malformed and left out.
    pub problems: Vec<String>,
}

impl Platform {
    /// Reads everything it can from `fdt`.
    pub fn from_fdt(fdt: &Fdt<'_>) -> Platform {
        let mut problems = Vec::new();
        let cpus = cpu_info(fdt).unwrap_or_else(|err| {
            problems.push(format!("/cpus: {err}; CPU information left out"));
            CpuInfo::default()
        });
        let mut memory = memory_ranges_skipping_bad(fdt, &mut problems);
        let lmb_memory = assigned_lmbs(fdt).unwrap_or_else(|err| {
            problems.push(format!("{DRCONF_PATH}: {err}; its LMBs are not used as RAM"));
            Vec::new()
        });
        memory = merge_ranges(memory.into_iter().chain(lmb_memory.iter().copied()));
        let lmbs = lmb_table(fdt).unwrap_or_else(|err| {
            problems.push(format!("{DRCONF_PATH}: {err}; memory hot-plug is not handled"));
            None
        });
        let hotplug = hotplug_memory(fdt).unwrap_or_else(|err| {
            problems.push(format!("hot-plug memory: {err}; left out"));
            None
        });
        let rtas = rtas_info(fdt).unwrap_or_else(|err| {
            problems.push(format!("/rtas: {err}; RTAS information left out"));
            None
        });
        let phbs = phbs(fdt, &mut problems);
        let vterm = console_vterm(fdt, &mut problems);
        let bootargs = bootargs(fdt, &mut problems);
        let identity = firmware_identity(fdt);
        Platform { cpus, memory, lmb_memory, hotplug, lmbs, rtas, phbs, vterm, bootargs, identity, problems }
    }

    /// One past the highest boot RAM address (0 with no RAM).
    pub fn max_ram_addr(&self) -> u64 {
        self.memory.iter().map(PhysRange::end).max().unwrap_or(0)
    }

    /// Total boot RAM in bytes.
    pub fn total_ram(&self) -> u64 {
        self.memory.iter().fold(0u64, |sum, r| sum.saturating_add(r.size))
    }

    /// One past the highest address RAM may ever occupy, hot-plug included (what a DMA window
    /// that maps all memory must cover; Linux `ddw_memory_hotplug_max`).
    pub fn max_possible_ram_addr(&self) -> u64 {
        let hotplug = self.hotplug.map_or(0, |h| h.max_addr);
        self.max_ram_addr().max(hotplug)
    }

    /// Whether the hypervisor offers H_PUT_TCE_INDIRECT and H_STUFF_TCE (`hcall-multi-tce` in
    /// `/rtas/ibm,hypertas-functions`, LoPAR "Hypervisor RTAS properties").
    pub fn multi_tce(&self) -> MultiTce {
        match self.rtas.as_ref().is_some_and(|r| r.has_hypertas("hcall-multi-tce")) {
            true => MultiTce::Available,
            false => MultiTce::Unavailable,
        }
    }

    /// The PHB with bus unit ID `buid`.
    pub fn phb(&self, buid: u64) -> Option<&PhbInfo> {
        self.phbs.iter().find(|p| p.buid == buid)
    }
}

/// `ranges` sorted, with overlapping ones merged and empty ones dropped (touching ones stay
/// apart: they are separate memory nodes; the IOMMU driver maps them as one span).
pub fn merge_ranges(ranges: impl IntoIterator<Item = PhysRange>) -> Vec<PhysRange> {
    let mut sorted: Vec<PhysRange> = ranges.into_iter().filter(|r| r.size > 0).collect();
    sorted.sort_unstable_by_key(|r| r.base);
    let mut merged: Vec<PhysRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.base.get() < last.end() => {
                last.size = last.end().max(range.end()) - last.base.get();
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// True for a `/vdevice` child that is a virtual terminal.
fn is_vty(node: FdtNode<'_, '_>) -> bool {
    let named_vty = node.name.split('@').next() == Some("vty");
    let compatible = cells::prop(node, "compatible").map(string_list).unwrap_or_default();
    named_vty || compatible.iter().any(|c| *c == "hvterm1" || *c == "vty")
}

/// The console vterm number (see the module docs for the choice).
fn console_vterm(fdt: &Fdt<'_>, problems: &mut Vec<String>) -> Option<u32> {
    let vdevice = fdt.find_node("/vdevice")?;
    let stdout = fdt
        .find_node("/chosen")
        .and_then(|chosen| cells::prop(chosen, "stdout-path"))
        .and_then(|bytes| single_string("stdout-path", bytes).ok())
        .map(|path| path.split(':').next().unwrap_or(path));
    let mut lowest: Option<u32> = None;
    for node in vdevice.children().filter(|n| is_vty(*n)) {
        let reg = match cells::prop(node, "reg").map(|b| be_u32("reg", b)) {
            Some(Ok(reg)) => reg,
            Some(Err(err)) => {
                problems.push(format!("/vdevice/{}: {err}; vty ignored", node.name));
                continue;
            }
            None => {
                problems.push(format!("/vdevice/{}: property reg is missing; vty ignored", node.name));
                continue;
            }
        };
        if stdout.and_then(|p| p.strip_prefix("/vdevice/")) == Some(node.name) {
            return Some(reg);
        }
        lowest = Some(lowest.map_or(reg, |l| l.min(reg)));
    }
    lowest
}

/// `/chosen/bootargs`, trailing NULs trimmed; `None` when absent or empty.
fn bootargs(fdt: &Fdt<'_>, problems: &mut Vec<String>) -> Option<String> {
    let bytes = fdt.find_node("/chosen").and_then(|chosen| cells::prop(chosen, "bootargs"))?;
    match single_string("bootargs", bytes) {
        Ok("") => None,
        Ok(args) => Some(args.to_string()),
        Err(err) => {
            problems.push(format!("/chosen: {err}; bootargs ignored"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{BusAddr, Liobn, PhysAddr};
    use crate::devtree::dma_window::{DdwApplicable, DmaWindowProp};
    use crate::devtree::error::DtError;
    use crate::devtree::hotplug::HotplugSource;
    use crate::devtree::phb::PciSpace;
    use crate::devtree::writer::FdtWriter;

    /// QEMU 7.2 PHB 0 windows: IO, MEM32 (bus 0x8000_0000), MEM64 (identity, 1 TiB).
    #[rustfmt::skip]
    const QEMU_RANGES: [u32; 21] = [
        0x0100_0000, 0, 0, 0x2000, 0, 0, 0x1_0000,
        0x0200_0000, 0, 0x8000_0000, 0x2000, 0x8000_0000, 0, 0x8000_0000,
        0x0300_0000, 0x2100, 0, 0x2100, 0, 0x100, 0,
    ];

    /// Properties a test may break; `Default` is what QEMU 7.2 writes.
    struct Tree {
        memory_reg: Vec<u32>,
        dma_window: Vec<u32>,
        ddw_applicable: Vec<u32>,
        child_reg: Vec<u32>,
        phb_ranges: Vec<u32>,
    }

    impl Default for Tree {
        fn default() -> Self {
            Tree {
                memory_reg: vec![0, 0, 0, 0x2000_0000],
                dma_window: vec![0x8000_0000, 0, 0, 0, 0x4000_0000],
                ddw_applicable: vec![0x2026, 0x2027, 0x2028],
                child_reg: vec![0x800, 0, 0, 0, 0],
                phb_ranges: QEMU_RANGES.to_vec(),
            }
        }
    }

    fn build(tree: &Tree) -> Result<Vec<u8>, DtError> {
        let mut w = FdtWriter::new();
        w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.begin_node("cpus")?;
        w.begin_node("PowerPC,POWER9@0")?;
        w.property_string("device_type", "cpu")?;
        w.property_u32("cpu-version", 0x004e_1202)?;
        w.property_u32("timebase-frequency", 512_000_000)?;
        w.property_u32("clock-frequency", 1_000_000_000)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("memory@0")?;
        w.property_string("device_type", "memory")?;
        w.property_cells("reg", &tree.memory_reg)?;
        w.end_node()?;
        w.begin_node("rtas")?;
        w.property_u32("power-off", 0x2003)?;
        w.property_u32("ibm,read-pci-config", 0x2024)?;
        w.property_u32("rtas-size", 0x2a38)?;
        w.property("ibm,hypertas-functions", b"hcall-tce\0hcall-multi-tce\0")?;
        w.property_cells("ibm,lrdr-capacity", &[0, 0, 0, 0x1000_0000, 1])?;
        w.end_node()?;
        w.begin_node("vdevice")?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("#size-cells", 0)?;
        w.begin_node("vty@71000000")?;
        w.property_string("compatible", "hvterm1")?;
        w.property_u32("reg", 0x7100_0000)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("pci@800000020000000")?;
        w.property_string("device_type", "pci")?;
        w.property_string("compatible", "IBM,Logical_PHB")?;
        w.property_u32("#address-cells", 3)?;
        w.property_u32("#size-cells", 2)?;
        w.property_cells("reg", &[0x0800_0000, 0x2000_0000, 0, 0])?;
        w.property_cells("ranges", &tree.phb_ranges)?;
        w.property_u32("ibm,#dma-address-cells", 2)?;
        w.property_u32("ibm,#dma-size-cells", 2)?;
        w.property_cells("ibm,dma-window", &tree.dma_window)?;
        w.property_cells("ibm,ddw-applicable", &tree.ddw_applicable)?;
        w.property_cells("ibm,ddw-extensions", &[2, 0x2029, 1])?;
        w.begin_node("ethernet@1")?;
        w.property_u32("vendor-id", 0x1af4)?;
        w.property_u32("device-id", 0x1000)?;
        w.property_u32("class-code", 0x02_0000)?;
        w.property_cells("reg", &tree.child_reg)?;
        w.end_node()?;
        w.end_node()?;
        w.begin_node("chosen")?;
        w.property_string("bootargs", "console=hvc0")?;
        w.property_string("stdout-path", "/vdevice/vty@71000000")?;
        w.end_node()?;
        w.end_node()?;
        w.finish(0)
    }

    fn platform(tree: &Tree) -> Platform {
        let blob = build(tree).unwrap();
        Platform::from_fdt(&Fdt::new(&blob).unwrap())
    }

    #[test]
    fn qemu_like_tree() {
        let p = platform(&Tree::default());
        assert_eq!(p.problems, Vec::<String>::new());
        assert_eq!(p.cpus.count, 1);
        assert_eq!(p.cpus.pvr, Some(0x004e_1202));
        assert_eq!(p.cpus.timebase_hz, Some(512_000_000));
        assert_eq!(p.cpus.clock_hz, Some(1_000_000_000));
        assert_eq!(p.memory, [PhysRange { base: PhysAddr(0), size: 0x2000_0000 }]);
        assert_eq!((p.max_ram_addr(), p.total_ram()), (0x2000_0000, 0x2000_0000));
        assert_eq!(p.hotplug, None); // lrdr-capacity max-addr 0: no device memory
        let rtas = p.rtas.as_ref().unwrap();
        assert_eq!(rtas.token("power-off"), Some(0x2003));
        assert_eq!(rtas.token("ibm,read-pci-config"), Some(0x2024));
        assert_eq!(rtas.token("rtas-size"), None);
        assert_eq!(rtas.rtas_size, Some(0x2a38));
        assert!(rtas.has_hypertas("hcall-multi-tce"));
        assert_eq!(p.vterm, Some(0x7100_0000));
        assert_eq!(p.bootargs.as_deref(), Some("console=hvc0"));

        let phb = p.phb(0x0800_0000_2000_0000).unwrap();
        assert_eq!(phb.path, "/pci@800000020000000");
        assert_eq!(phb.buid_cells(), (0x0800_0000, 0x2000_0000));
        assert_eq!(phb.ranges.len(), 3);
        assert_eq!(phb.ranges[1].space, PciSpace::Mem32);
        let mem32_cpu = phb.bus_to_cpu(PciSpace::Mem32, 0x8000_1000, 0x1000);
        assert_eq!(mem32_cpu, Some(PhysAddr(0x2000_8000_1000)));
        assert_eq!(phb.bus_to_cpu(PciSpace::Io, 0x10, 4), Some(PhysAddr(0x2000_0000_0010)));
        let window = DmaWindowProp { liobn: Liobn(0x8000_0000), bus_addr: BusAddr(0), size: 0x4000_0000 };
        assert_eq!(phb.dma_window, Some(window));
        let ddw = DdwApplicable { query: 0x2026, create: 0x2027, remove: 0x2028 };
        assert_eq!(phb.ddw_applicable, Some(ddw));
        let ext = phb.ddw_extensions.as_ref().unwrap();
        assert_eq!((ext.reset_token(), ext.query_outputs_64bit()), (Some(0x2029), true));
        assert_eq!(phb.children.len(), 1);
        let child = &phb.children[0];
        assert_eq!((child.bus, child.device, child.function), (0, 1, 0));
        assert_eq!((child.vendor_id, child.device_id), (Some(0x1af4), Some(0x1000)));
    }

    #[test]
    fn malformed_items_are_skipped_and_reported() {
        let tree = Tree {
            memory_reg: vec![0, 0, 0x2000_0000],              // 3 cells of 4
            dma_window: vec![0x8000_0000, 0, 0, 0x4000_0000], // 4 cells of 5
            ddw_applicable: vec![0x2026, 0x2027],
            child_reg: vec![0x800, 0, 0, 0], // 4 cells of 5
            ..Tree::default()
        };
        let p = platform(&tree);
        assert!(p.memory.is_empty());
        let phb = &p.phbs[0];
        assert_eq!((phb.dma_window, phb.ddw_applicable), (None, None));
        assert!(phb.ddw_extensions.is_some());
        assert!(phb.children.is_empty());
        assert_eq!(p.problems.len(), 4, "{:?}", p.problems);
        assert!(p.problems[0].starts_with("/memory@0: property reg is 12 bytes long"));
        assert!(p.problems.iter().any(|m| m.starts_with("/pci@800000020000000: property ibm,dma-window")));
        assert!(p.problems.iter().any(|m| m.starts_with("/pci@800000020000000/ethernet@1: property reg")));
        // Everything else is still there.
        assert_eq!(p.vterm, Some(0x7100_0000));
        assert!(p.rtas.is_some());
    }

    #[test]
    fn truncated_ranges_skip_the_phb() {
        let mut ranges = Tree::default().phb_ranges;
        ranges.truncate(6); // one 7-cell entry cut to 6
        let p = platform(&Tree { phb_ranges: ranges, ..Tree::default() });
        assert!(p.phbs.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].contains("ranges"), "{:?}", p.problems);
        assert!(p.problems[0].ends_with("PCI host bridge skipped"));
    }

    #[test]
    fn hotplug_from_lrdr_capacity() {
        let p = Platform {
            memory: vec![PhysRange { base: PhysAddr(0), size: 0x2000_0000 }],
            hotplug: Some(HotplugMemory {
                max_addr: 0x1_0000_0000,
                lmb_size: 0x1000_0000,
                source: HotplugSource::LrdrCapacity,
            }),
            ..Platform::default()
        };
        assert_eq!(p.max_possible_ram_addr(), 0x1_0000_0000);
    }
}
