//! The boot report: a readable summary plus stable `key=value` lines (documented in README.md).
//!
//! Human lines start with two spaces or a heading; machine lines are `key=value` with dotted
//! keys (no spaces in keys; the value is the rest of the line), one fact per line.

use alloc::string::String;
use arch_ppc64::println;
use core::fmt::Write;
use drivers::devtree::phb::{PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::iommu::MultiTce;
use drivers::pci::{Assignment, BarKind, BarOrigin, BridgeLayout, Function, WindowKind};

/// Prints one machine-readable fact.
#[macro_export]
macro_rules! kv {
    ($key:expr, $($arg:tt)*) => {
        arch_ppc64::println!("{}={}", $key, format_args!($($arg)*))
    };
}

/// `0x…` or `none`.
pub fn hex_or_none(value: Option<u64>) -> String {
    match value {
        Some(v) => alloc::format!("{v:#x}"),
        None => String::from("none"),
    }
}

/// CPU, memory and RTAS facts.
pub fn platform(platform: &Platform) {
    println!("== platform");
    kv!("cpu.count", "{}", platform.cpus.count);
    kv!("cpu.pvr", "{}", hex_or_none(platform.cpus.pvr.map(u64::from)));
    kv!("cpu.timebase_hz", "{}", platform.cpus.timebase_hz.unwrap_or(0));
    kv!("mem.ranges", "{}", platform.memory.len());
    for (i, range) in platform.memory.iter().enumerate() {
        println!("  memory {:#014x}..{:#014x} ({} MiB)", range.base.0, range.end(), range.size >> 20);
        kv!(alloc::format!("mem.range.{i}"), "{:#x}+{:#x}", range.base.0, range.size);
    }
    for (i, range) in platform.lmb_memory.iter().enumerate() {
        kv!(alloc::format!("mem.lmb.{i}"), "{:#x}+{:#x}", range.base.0, range.size);
    }
    kv!("mem.total", "{:#x}", platform.total_ram());
    kv!("mem.max_addr", "{:#x}", platform.max_ram_addr());
    match &platform.hotplug {
        Some(hp) => {
            kv!("mem.hotplug_max", "{:#x}", hp.max_addr);
            kv!("mem.hotplug_source", "{:?}", hp.source);
            kv!("mem.lmb_size", "{:#x}", hp.lmb_size);
        }
        None => kv!("mem.hotplug_max", "none"),
    }
    match &platform.rtas {
        Some(rtas) => {
            kv!("rtas.tokens", "{}", rtas.tokens.len());
            for (name, token) in &rtas.tokens {
                kv!(alloc::format!("rtas.token.{name}"), "{token:#x}");
            }
            kv!("rtas.hypertas", "{}", rtas.hypertas.join(","));
        }
        None => kv!("rtas.tokens", "0"),
    }
}

fn space_name(space: PciSpace) -> &'static str {
    match space {
        PciSpace::Config => "config",
        PciSpace::Io => "io",
        PciSpace::Mem32 => "mem32",
        PciSpace::Mem64 => "mem64",
    }
}

/// One PHB's device-tree facts.
pub fn phb(index: usize, phb: &PhbInfo, multi_tce: MultiTce) {
    println!("== PHB {index}: {} (BUID {:#x})", phb.path, phb.buid);
    let key = |name: &str| alloc::format!("phb.{index}.{name}");
    kv!(key("path"), "{}", phb.path);
    kv!(key("buid"), "{:#x}", phb.buid);
    for (j, range) in phb.ranges.iter().enumerate() {
        kv!(
            key(&alloc::format!("range.{j}")),
            "{},bus={:#x},cpu={:#x},size={:#x}{}",
            space_name(range.space),
            range.bus_addr,
            range.cpu_addr.0,
            range.size,
            if range.prefetchable { ",prefetchable" } else { "" }
        );
    }
    match &phb.dma_window {
        Some(w) => kv!(key("dma_window"), "liobn={},bus={},size={:#x}", w.liobn, w.bus_addr, w.size),
        None => kv!(key("dma_window"), "none"),
    }
    match &phb.ddw_applicable {
        Some(d) => kv!(key("ddw_applicable"), "{:#x},{:#x},{:#x}", d.query, d.create, d.remove),
        None => kv!(key("ddw_applicable"), "none"),
    }
    match &phb.ddw_extensions {
        Some(ext) => {
            let mut text = String::new();
            for (i, cell) in ext.cells.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(text, "{sep}{cell:#x}");
            }
            kv!(key("ddw_extensions"), "{}", text);
        }
        None => kv!(key("ddw_extensions"), "none"),
    }
    kv!(key("multi_tce"), "{}", if multi_tce == MultiTce::Available { "yes" } else { "no" });
    kv!(key("dt_functions"), "{}", phb.children.len());
}

fn bar_kind(kind: BarKind) -> &'static str {
    match kind {
        BarKind::Io => "io",
        BarKind::Mem32 => "mem32",
        BarKind::Mem64 => "mem64",
    }
}

/// One PCI function found in config space, with its BAR assignments and the DT cross-check.
pub fn function(phb_index: usize, phb: &PhbInfo, function: &Function, assignments: &[Assignment]) {
    let bdf = function.bdf;
    let key = |name: &str| alloc::format!("pci.{phb_index}.{bdf}.{name}");
    println!(
        "  {bdf} {:04x}:{:04x} class {:06x} caps {}",
        function.vendor_id,
        function.device_id,
        function.class_code,
        function.capability_names()
    );
    kv!(key("id"), "{:04x}:{:04x}", function.vendor_id, function.device_id);
    kv!(key("class"), "{:#08x}", function.class_code);
    kv!(key("caps"), "{}", function.capability_names());
    for bar in &function.bars {
        let origin = assignments
            .iter()
            .find(|a| a.bdf == bdf && a.bar_index == bar.index)
            .map(|a| match a.origin {
                BarOrigin::Firmware => "firmware",
                BarOrigin::Kernel => "kernel",
            })
            .unwrap_or("unassigned");
        let cpu = phb
            .ranges
            .iter()
            .find_map(|r| r.bus_to_cpu(bar.bus_addr, bar.size.max(1)))
            .map(|a| alloc::format!("{:#x}", a.0))
            .unwrap_or_else(|| String::from("none"));
        kv!(
            key(&alloc::format!("bar.{}", bar.index)),
            "{},bus={:#x},cpu={},size={:#x},by={}",
            bar_kind(bar.kind),
            bar.bus_addr,
            cpu,
            bar.size,
            origin
        );
    }
    if let Some(msix) = &function.msix {
        kv!(
            key("msix"),
            "table_size={},bar={},offset={:#x}",
            msix.table_size,
            msix.table_bar,
            msix.table_offset
        );
    }
    if let Some(sriov) = &function.sriov {
        kv!(key("sriov"), "total_vfs={},vf_device={:#06x}", sriov.total_vfs, sriov.vf_device_id);
    }
    let dt = phb
        .children
        .iter()
        .find(|n| n.bus == bdf.bus && n.device == bdf.device && n.function == bdf.function);
    let verdict = match dt {
        None => "missing",
        Some(node)
            if node.vendor_id == Some(u32::from(function.vendor_id))
                && node.device_id == Some(u32::from(function.device_id)) =>
        {
            "match"
        }
        Some(_) => "mismatch",
    };
    kv!(key("dt"), "{}", verdict);
    if let Some(upstream) = function.upstream {
        kv!(key("behind"), "{}", upstream);
    }
    for problem in &function.problems {
        kv!(key("problem"), "{}", problem);
    }
}

/// `kernel` or `firmware`: who laid out what is behind the bridges.
pub fn layout_name(layout: BridgeLayout) -> &'static str {
    match layout {
        BridgeLayout::Firmware => "firmware",
        BridgeLayout::Kernel => "kernel",
    }
}

/// A bridge's bus numbers and windows (nothing for other functions).
pub fn bridge(phb_index: usize, phb: &PhbInfo, function: &Function, layout: BridgeLayout) {
    let Some(bridge) = function.bridge else { return };
    let bdf = function.bdf;
    let key = |name: &str| alloc::format!("pci.{phb_index}.{bdf}.{name}");
    let buses = bridge.buses;
    kv!(
        key("bridge"),
        "primary={:02x},secondary={:02x},subordinate={:02x},by={}",
        buses.primary,
        buses.secondary,
        buses.subordinate,
        layout_name(layout)
    );
    let mut said = String::new();
    for kind in WindowKind::ALL {
        let name = kind.name();
        let value = match (bridge.decode(kind), bridge.window(kind)) {
            (None, _) => String::from("none"),
            (Some(_), None) => String::from("closed"),
            (Some(_), Some(w)) => {
                let space = if kind == WindowKind::Io { PciSpace::Io } else { PciSpace::Mem64 };
                let cpu = phb
                    .bus_to_cpu(space, w.bus_base, w.size)
                    .map(|a| alloc::format!("{:#x}", a.0))
                    .unwrap_or_else(|| String::from("none"));
                let _ = write!(said, " {name} {:#x}+{:#x}", w.bus_base, w.size);
                alloc::format!("bus={:#x},cpu={cpu},size={:#x}", w.bus_base, w.size)
            }
        };
        kv!(key(&alloc::format!("window.{name}")), "{}", value);
    }
    println!(
        "  {bdf} bridge to buses {:02x}-{:02x}:{}",
        buses.secondary,
        buses.subordinate,
        if said.is_empty() { " no window open" } else { said.as_str() }
    );
}
