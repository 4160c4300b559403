//! Checking firmware's layout behind bridges (SLOF numbers the buses and opens the windows
//! itself): what would not route is reported in words on the function concerned; nothing is
//! changed.
//!
//! What must hold (PCI-to-PCI Bridge Architecture 1.2 §3.2.5.2–4 and §3.2.5.6–10):
//! - a bridge's primary bus is the bus it sits on, its secondary bus is above that, its
//!   subordinate bus is at least its secondary bus, its bus range lies inside the range of the
//!   bridge above it, and sibling bridges' ranges do not overlap;
//! - each BAR behind a bridge is assigned and lies inside a window of the bridge that forwards
//!   its kind: I/O in the I/O window, non-prefetchable memory in the memory window,
//!   prefetchable memory in the prefetchable or the memory window;
//! - each open window lies inside a window of the same kind of the bridge above it (a
//!   prefetchable one may sit in a memory window), or inside the PHB's windows for a bridge on
//!   the root bus.

use alloc::{format, string::String, vec::Vec};

use super::assign::{Window, Windows};
use super::bar::BarKind;
use super::bridge::{Bridge, WindowKind};
use super::function::Function;
use super::window_plan::parents;

/// Records a problem on every function whose firmware-made bridge layout does not hold.
pub fn check_firmware_layout(functions: &mut [Function], windows: &Windows) {
    let parents = parents(functions);
    for index in 0..functions.len() {
        let parent =
            parents[index].and_then(|p| functions[p].bridge.map(|bridge| (functions[p].bdf, bridge)));
        let mut problems = Vec::new();
        if let Some(bridge) = functions[index].bridge {
            check_buses(&functions[index], &bridge, parent, &mut problems);
            check_siblings(functions, &parents, index, &bridge, &mut problems);
            check_windows(&bridge, parent, windows, &mut problems);
        }
        if let Some((above, bridge)) = parent {
            check_bars(&functions[index], above, &bridge, &mut problems);
        }
        functions[index].problems.extend(problems);
    }
}

fn check_buses(
    function: &Function,
    bridge: &Bridge,
    parent: Option<(super::bdf::Bdf, Bridge)>,
    problems: &mut Vec<String>,
) {
    let (bus, buses) = (function.bdf.bus, bridge.buses);
    if buses.primary != bus {
        problems
            .push(format!("its primary bus number is {:02x}, but it sits on bus {bus:02x}", buses.primary));
    }
    if buses.secondary != 0 && buses.secondary <= bus {
        problems
            .push(format!("its secondary bus {:02x} is not above its own bus {bus:02x}", buses.secondary));
    }
    if buses.subordinate < buses.secondary {
        problems.push(format!(
            "its subordinate bus {:02x} is below its secondary bus {:02x}",
            buses.subordinate, buses.secondary
        ));
    }
    if let Some((above, up)) = parent {
        let inside = up.buses.secondary <= buses.secondary && buses.subordinate <= up.buses.subordinate;
        if !inside {
            problems.push(format!(
                "its buses {:02x}-{:02x} are outside the buses {:02x}-{:02x} of bridge {above} above it",
                buses.secondary, buses.subordinate, up.buses.secondary, up.buses.subordinate
            ));
        }
    }
}

/// Bus ranges of earlier bridges on the same bus must not overlap this one's.
fn check_siblings(
    functions: &[Function],
    parents: &[Option<usize>],
    index: usize,
    bridge: &Bridge,
    problems: &mut Vec<String>,
) {
    let (low, high) = (bridge.buses.secondary, bridge.buses.subordinate);
    for (other, sibling) in functions.iter().enumerate().take(index) {
        let Some(theirs) = sibling.bridge else { continue };
        let same_bus = parents[other] == parents[index] && sibling.bdf.bus == functions[index].bdf.bus;
        if same_bus && theirs.buses.secondary <= high && low <= theirs.buses.subordinate {
            problems.push(format!(
                "its buses {low:02x}-{high:02x} overlap the buses {:02x}-{:02x} of bridge {} beside it",
                theirs.buses.secondary, theirs.buses.subordinate, sibling.bdf
            ));
        }
    }
}

/// Each open window inside the bridge above it, or inside the PHB's windows.
fn check_windows(
    bridge: &Bridge,
    parent: Option<(super::bdf::Bdf, Bridge)>,
    windows: &Windows,
    problems: &mut Vec<String>,
) {
    for kind in WindowKind::ALL {
        let Some(window) = bridge.window(kind) else { continue };
        let (base, size) = (window.bus_base, window.size);
        let holders: &[WindowKind] = match kind {
            WindowKind::Io => &[WindowKind::Io],
            WindowKind::Memory => &[WindowKind::Memory],
            WindowKind::Prefetchable => &[WindowKind::Prefetchable, WindowKind::Memory],
        };
        match parent {
            Some((above, up)) => {
                let held = holders.iter().filter_map(|&k| up.window(k)).any(|w| w.holds(base, size));
                if !held {
                    problems.push(format!(
                        "its {kind} window {base:#x}+{size:#x} is outside the windows of bridge {above} above it \
                         ({})",
                        forwarded(&up)
                    ));
                }
            }
            None => {
                let phb: [Option<Window>; 2] = match kind {
                    WindowKind::Io => [windows.io, None],
                    WindowKind::Memory | WindowKind::Prefetchable => [windows.mem32, windows.mem64],
                };
                if !phb.iter().flatten().any(|w| w.holds(base, size)) {
                    problems
                        .push(format!("its {kind} window {base:#x}+{size:#x} is outside the PHB's windows"));
                }
            }
        }
    }
}

/// Each BAR assigned and inside a window of the bridge above that forwards its kind.
fn check_bars(function: &Function, above: super::bdf::Bdf, bridge: &Bridge, problems: &mut Vec<String>) {
    for bar in &function.bars {
        if !bar.is_assigned() {
            problems.push(format!("BAR{}: firmware left it unassigned behind bridge {above}", bar.index));
            continue;
        }
        let holders: &[WindowKind] = match (bar.kind, bar.prefetchable) {
            (BarKind::Io, _) => &[WindowKind::Io],
            (_, false) => &[WindowKind::Memory],
            (_, true) => &[WindowKind::Prefetchable, WindowKind::Memory],
        };
        let held = holders.iter().filter_map(|&k| bridge.window(k)).any(|w| w.holds(bar.bus_addr, bar.size));
        if !held {
            problems.push(format!(
                "BAR{} at {:#x}+{:#x} is outside the windows of bridge {above} above it ({})",
                bar.index,
                bar.bus_addr,
                bar.size,
                forwarded(bridge)
            ));
        }
    }
}

/// The open windows of `bridge` in words, e.g. `mem 0x80000000+0x100000, pref closed`.
pub fn forwarded(bridge: &Bridge) -> String {
    let parts: Vec<String> = WindowKind::ALL
        .iter()
        .filter(|&&kind| bridge.decode(kind).is_some())
        .map(|&kind| match bridge.window(kind) {
            Some(w) => format!("{} {:#x}+{:#x}", kind.name(), w.bus_base, w.size),
            None => format!("{} closed", kind.name()),
        })
        .collect();
    parts.join(", ")
}
