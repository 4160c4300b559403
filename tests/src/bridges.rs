//! Devices behind PCI-to-PCI bridges: building the chain of QEMU `pci-bridge`s a test puts a
//! device behind, and judging what the kernel reported about it against QEMU's trace.
//!
//! Generic over the device: [`with_bridges`] returns the bus to attach any device to, and
//! [`check_bridged`] follows `pci.N.BB:DD.F.behind` from the device up to the root bus.
//!
//! Facts used (PCI-to-PCI Bridge Architecture 1.2 §3.2.5; QEMU 7.2 `hw/pci/pci_bridge.c :
//! pci_bridge_get_base`, `pci_bridge_get_limit`): bus numbers at 0x18 (primary, secondary,
//! subordinate); the I/O base/limit pair at 0x1c (address bits 15–12 in bits 7–4, 4 KiB
//! granules), memory at 0x20 and prefetchable at 0x24 (address bits 31–20 in bits 15–4, 1 MiB
//! granules), the prefetchable upper halves at 0x28/0x2c; a window is open when base ≤ limit.
//! QEMU's trace shows each configuration access with its value but not its width, so a
//! register's last value is taken from the last access the kernel made to it (the kernel
//! reads and writes these registers at these widths, after anything firmware did).

use crate::kv::parse_hex;
use crate::qemu::{Outcome, Scenario};
use crate::trace::{ConfigAccess, Trace};

/// QEMU's `pci-bridge` (Red Hat, Inc. PCI bridge).
pub const PCI_BRIDGE_ID: &str = "1b36:0001";

/// `scenario` with `levels` nested QEMU `pci-bridge`s (`br0` on the root bus at its first free
/// slot, each further one in slot 2 of the previous), and the id of the innermost bus.
pub fn with_bridges(mut scenario: Scenario, levels: usize) -> (Scenario, String) {
    assert!(levels > 0, "a chain of bridges needs at least one");
    scenario = scenario.device("pci-bridge,id=br0,chassis_nr=1");
    for level in 1..levels {
        let spec = format!("pci-bridge,id=br{level},bus=br{},addr=2,chassis_nr={}", level - 1, level + 1);
        scenario = scenario.device(&spec);
    }
    (scenario, format!("br{}", levels - 1))
}

/// One bridge window as reported or as QEMU holds it: `(bus base, size)`, `None` when closed.
pub type BusWindow = Option<(u64, u64)>;

/// A bridge as the kernel reported it (`pci.N.BB:DD.F.bridge`, `.window.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeReport {
    /// `BB:DD.F`.
    pub bdf: String,
    /// Primary, secondary and subordinate bus numbers.
    pub buses: (u8, u8, u8),
    /// `firmware` or `kernel`.
    pub by: String,
    /// I/O, memory and prefetchable windows.
    pub windows: [BusWindow; 3],
}

/// The names of the windows in [`BridgeReport::windows`] order.
pub const WINDOWS: [&str; 3] = ["io", "mem", "pref"];

impl BridgeReport {
    /// Parses the report lines of the bridge at `bdf` on PHB `phb`, or fails the outcome.
    pub fn read(outcome: &Outcome, phb: usize, bdf: &str) -> Self {
        let key = |name: &str| format!("pci.{phb}.{bdf}.{name}");
        let line = outcome.require(&key("bridge"));
        let field = |name: &str| {
            line.split(',').find_map(|part| part.strip_prefix(&format!("{name}="))).map(str::to_string)
        };
        let bus = |name: &str| field(name).and_then(|v| u8::from_str_radix(&v, 16).ok());
        let (Some(primary), Some(secondary), Some(subordinate), Some(by)) =
            (bus("primary"), bus("secondary"), bus("subordinate"), field("by"))
        else {
            outcome.fail(&format!("{}={line} does not parse", key("bridge")));
        };
        let windows = WINDOWS.map(|name| {
            let value = outcome.require(&key(&format!("window.{name}")));
            parse_window(value).unwrap_or_else(|| {
                outcome.fail(&format!("{}={value} does not parse", key(&format!("window.{name}"))))
            })
        });
        Self { bdf: bdf.to_string(), buses: (primary, secondary, subordinate), by, windows }
    }
}

/// `bus=0x…,cpu=…,size=0x…` → `Some(Some((bus, size)))`; `closed` or `none` → `Some(None)`.
pub fn parse_window(value: &str) -> Option<BusWindow> {
    if value == "closed" || value == "none" {
        return Some(None);
    }
    let field = |name: &str| value.split(',').find_map(|part| part.strip_prefix(name)).and_then(parse_hex);
    Some(Some((field("bus=")?, field("size=")?)))
}

/// What QEMU's trace says the bridge at `bdf` holds: bus numbers and the three windows, from
/// the last access to each register.
pub fn traced_bridge(trace: &[ConfigAccess], bdf: &str) -> Option<((u8, u8, u8), [BusWindow; 3])> {
    let last = |offset: u32| trace.iter().rev().find(|a| a.bdf == bdf && a.offset == offset).map(|a| a.value);
    let [primary, secondary, subordinate, _] = last(0x18)?.to_le_bytes();
    let io_pair = last(0x1c)?;
    let io = window(u64::from(io_pair & 0xf0) << 8, u64::from(io_pair >> 8 & 0xf0) << 8 | 0xfff);
    let memory_pair = last(0x20)?;
    let memory =
        window(u64::from(memory_pair & 0xfff0) << 16, u64::from(memory_pair >> 16 & 0xfff0) << 16 | 0xf_ffff);
    let pref_pair = last(0x24)?;
    // The decode type is read-only: take it from a read, whatever a write carried.
    let read = trace
        .iter()
        .rev()
        .find(|a| a.bdf == bdf && a.offset == 0x24 && !a.write)
        .map_or(pref_pair, |a| a.value);
    let wide = read & 0xf == 1;
    let upper = |offset| if wide { last(offset).map(u64::from) } else { Some(0) };
    let pref = window(
        u64::from(pref_pair & 0xfff0) << 16 | upper(0x28)? << 32,
        u64::from(pref_pair >> 16 & 0xfff0) << 16 | upper(0x2c)? << 32 | 0xf_ffff,
    );
    Some(((primary, secondary, subordinate), [io, memory, pref]))
}

fn window(base: u64, limit: u64) -> BusWindow {
    (base <= limit).then(|| (base, limit - base + 1))
}

fn inside(inner: (u64, u64), outer: (u64, u64)) -> bool {
    inner.0 >= outer.0 && inner.0 + inner.1 <= outer.0 + outer.1
}

/// The device at `device` on PHB 0 sits behind exactly `levels` bridges, laid out by `by`:
/// follows `.behind` up to the root bus and checks, for each step, the bridge's ID and the
/// tree's node, bus numbers (the device on the secondary bus, each range inside the one
/// above), windows (the device's BARs inside the windows of their kind, each window inside
/// the one above or a PHB window), no problem reported, and that the kernel's bus numbers and
/// windows are what QEMU's trace shows the bridge holding. Returns the bridges, innermost first.
pub fn check_bridged(
    outcome: &Outcome,
    trace: &Trace,
    device: &str,
    levels: usize,
    by: &str,
) -> Vec<BridgeReport> {
    outcome.expect_kv("phb.0.bridge_layout", by);
    let accesses = trace.config_accesses();
    let mut chain: Vec<BridgeReport> = Vec::new();
    let mut at = device.to_string();
    while let Some(up) = outcome.kv.get(&format!("pci.0.{at}.behind")) {
        let up = up.to_string();
        outcome.expect_kv(&format!("pci.0.{up}.id"), PCI_BRIDGE_ID);
        let bridge = BridgeReport::read(outcome, 0, &up);
        if bridge.by != by {
            outcome.fail(&format!("bridge {up} reports by={}, expected {by}", bridge.by));
        }
        let (_, secondary, subordinate) = bridge.buses;
        let bus = u8::from_str_radix(&at[..2], 16).unwrap_or_else(|_| outcome.fail(&format!("bad BDF {at}")));
        if bus != secondary {
            outcome.fail(&format!(
                "{at} is on bus {bus:02x}, but bridge {up} has secondary bus {secondary:02x}"
            ));
        }
        if let Some(below) = chain.last() {
            if below.buses.1 < secondary || below.buses.2 > subordinate {
                outcome.fail(&format!(
                    "bridge {} buses {:?} not inside {up}'s {:?}",
                    below.bdf, below.buses, bridge.buses
                ));
            }
            check_windows_nest(outcome, below, &bridge);
        }
        match traced_bridge(&accesses, &up) {
            Some((buses, windows)) if buses == bridge.buses && windows == bridge.windows => {}
            traced => outcome.fail(&format!(
                "bridge {up}: the kernel reports {:?} {:x?}, QEMU's trace shows it holding {traced:x?}",
                bridge.buses, bridge.windows
            )),
        }
        chain.push(bridge);
        at = up;
    }
    if chain.len() != levels {
        outcome.fail(&format!("{device} is behind {} bridges ({chain:?}), expected {levels}", chain.len()));
    }
    if !at.starts_with("00:") {
        outcome.fail(&format!("the outermost bridge {at} is not on the root bus"));
    }
    check_root_windows(outcome, chain.last().expect("levels > 0"));
    check_device_bars(outcome, trace, device, &chain[0]);
    for bdf in std::iter::once(device).chain(chain.iter().map(|b| b.bdf.as_str())) {
        outcome.expect_kv(&format!("pci.0.{bdf}.dt"), "match");
        let problems = outcome.kv.all(&format!("pci.0.{bdf}.problem"));
        if !problems.is_empty() {
            outcome.fail(&format!("{bdf} has problems: {problems:?}"));
        }
    }
    chain
}

/// Each open window of `below` inside the window of the same kind of `above` (a prefetchable
/// one may sit in the memory window).
fn check_windows_nest(outcome: &Outcome, below: &BridgeReport, above: &BridgeReport) {
    for (kind, window) in below.windows.iter().enumerate() {
        let Some(window) = *window else { continue };
        let holders: &[usize] = if kind == 2 { &[2, 1] } else { &[kind] };
        if !holders.iter().filter_map(|&k| above.windows[k]).any(|outer| inside(window, outer)) {
            outcome.fail(&format!(
                "bridge {} {} window {window:x?} is not inside bridge {}'s windows {:x?}",
                below.bdf, WINDOWS[kind], above.bdf, above.windows
            ));
        }
    }
}

/// Each open window of a root bridge inside one of the PHB's `ranges` of its space.
fn check_root_windows(outcome: &Outcome, root: &BridgeReport) {
    let ranges: Vec<(String, u64, u64)> = outcome
        .kv
        .keys_with_prefix("phb.0.range.")
        .iter()
        .filter_map(|key| {
            let value = outcome.kv.get(key)?;
            let space = value.split(',').next()?.to_string();
            let field = |name: &str| value.split(',').find_map(|p| p.strip_prefix(name)).and_then(parse_hex);
            Some((space, field("bus=")?, field("size=")?))
        })
        .collect();
    for (kind, window) in root.windows.iter().enumerate() {
        let Some(window) = *window else { continue };
        let held = ranges
            .iter()
            .any(|(space, base, size)| (space == "io") == (kind == 0) && inside(window, (*base, *size)));
        if !held {
            outcome.fail(&format!(
                "root bridge {} {} window {window:x?} is outside the PHB's ranges {ranges:x?}",
                root.bdf, WINDOWS[kind]
            ));
        }
    }
}

/// The device's BARs inside the windows of the bridge above (by kind), and mapped by QEMU at
/// the end of the run where the kernel says.
fn check_device_bars(outcome: &Outcome, trace: &Trace, device: &str, bridge: &BridgeReport) {
    let functions = outcome.kv.pci_functions();
    let Some(function) = functions.iter().find(|f| f.phb == 0 && f.bdf == device) else {
        outcome.fail(&format!("no pci.0.{device}.* report"));
    };
    let live = trace.live_mappings();
    for (index, bar, raw) in &function.bars {
        let (Some(index), Some(bar)) = (index, bar) else {
            outcome.fail(&format!("{device}: malformed BAR line {raw}"));
        };
        let holders: &[usize] = match bar.kind.as_str() {
            "io" => &[0],
            _ if bar.bus >= 1 << 32 => &[2],
            _ => &[1, 2],
        };
        if !holders.iter().filter_map(|&k| bridge.windows[k]).any(|w| inside((bar.bus, bar.size), w)) {
            outcome.fail(&format!(
                "{device} BAR{index} {raw} is not inside the windows of bridge {} {:x?}",
                bridge.bdf, bridge.windows
            ));
        }
        let mapped = live
            .iter()
            .any(|m| m.bdf == device && m.bar == *index && m.addr == bar.bus && m.size == bar.size);
        if !mapped {
            outcome.fail(&format!("{device} BAR{index} {raw} is not among QEMU's live mappings"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Firmware;

    fn write(bdf: &str, offset: u32, value: u32) -> ConfigAccess {
        ConfigAccess { device: "pci-bridge".into(), bdf: bdf.into(), offset, value, write: true }
    }

    #[test]
    fn the_chain_of_bridges_reaches_qemu() {
        let (scenario, bus) = with_bridges(Scenario::new("unit-bridges", Firmware::Vof), 2);
        assert_eq!(bus, "br1");
        let args = scenario.qemu_args(&crate::build::Artifacts { elf: "/k".into(), bios: "/k.bin".into() });
        let devices: Vec<&String> = args.windows(2).filter(|w| w[0] == "-device").map(|w| &w[1]).collect();
        assert_eq!(
            devices,
            ["pci-bridge,id=br0,chassis_nr=1", "pci-bridge,id=br1,bus=br0,addr=2,chassis_nr=2"]
        );
    }

    #[test]
    fn windows_parse_from_the_report_and_the_trace() {
        assert_eq!(
            parse_window("bus=0x80100000,cpu=0x200080100000,size=0x100000"),
            Some(Some((0x8010_0000, 0x10_0000)))
        );
        assert_eq!(parse_window("closed"), Some(None));
        assert_eq!(parse_window("bus=zz"), None);
        let trace = [
            write("00:02.0", 0x18, 0x0),
            write("00:02.0", 0x18, 0x01_0100),
            write("00:02.0", 0x1c, 0xf0),
            write("00:02.0", 0x20, 0x8010_8010),
            write("00:02.0", 0x28, 0x2100),
            write("00:02.0", 0x2c, 0x2100),
            ConfigAccess { write: false, ..write("00:02.0", 0x24, 0x0001_0001) },
            write("00:02.0", 0x24, 0x0),
        ];
        let (buses, windows) = traced_bridge(&trace, "00:02.0").unwrap();
        assert_eq!(buses, (0, 1, 1));
        assert_eq!(windows, [None, Some((0x8010_0000, 0x10_0000)), Some((0x2100_0000_0000, 0x10_0000))]);
        assert_eq!(traced_bridge(&trace, "00:03.0"), None);
    }
}
