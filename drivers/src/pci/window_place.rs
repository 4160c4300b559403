//! Placing what sits behind bridges, top-down, once the windows on the root bus have their
//! bases (the kernel's layout): each bridge's windows are programmed — opened at their base
//! with their planned size, or closed (base above limit, PCI-to-PCI Bridge Architecture 1.2
//! §3.2.5.8) — and every BAR and child window is put at its planned offset. The order follows
//! Linux `drivers/pci/setup-bus.c : __pci_bus_assign_resources` (a bus's resources, then the
//! buses below); the code is this project's own.

use alloc::{collections::BTreeMap, format, vec::Vec};

use super::assign::{Assignment, BarOrigin, Window};
use super::bar::program_bar;
use super::bridge::{write_window, WindowKind, WindowWriteError};
use super::config::ConfigAccess;
use super::function::Function;
use super::window_plan::{depths, parents, BridgePlan, Item, Packed, Plan};

/// Bus addresses given to bridge windows: `(bridge index, kind) → base`.
pub type Bases = BTreeMap<(usize, WindowKind), u64>;

/// Programs every bridge's windows and places what they hold; `bases` holds the root-level
/// windows' bases on entry and gains the nested ones. Returns the BARs placed.
pub fn place_behind_bridges(
    cfg: &mut impl ConfigAccess,
    functions: &mut [Function],
    plans: &[Option<BridgePlan>],
    bases: &mut Bases,
) -> Vec<Assignment> {
    let depths = depths(&parents(functions));
    let mut bridges: Vec<usize> =
        (0..functions.len()).filter(|&i| plans.get(i).is_some_and(Option::is_some)).collect();
    bridges.sort_by_key(|&i| depths[i]);
    let mut assignments = Vec::new();
    for bridge in bridges {
        let Some(plan) = &plans[bridge] else { continue };
        for kind in WindowKind::ALL {
            match (plan.window(kind), bases.get(&(bridge, kind)).copied()) {
                (Plan::Sized(packed), Some(base)) => {
                    if open(cfg, functions, bridge, kind, Window { bus_base: base, size: packed.size }) {
                        fill(cfg, functions, packed, base, bases, &mut assignments);
                    } else {
                        orphan(functions, bridge, kind, packed);
                    }
                }
                (Plan::Sized(packed), None) => {
                    close(cfg, functions, bridge, kind);
                    orphan(functions, bridge, kind, packed);
                }
                (Plan::Empty | Plan::Failed, _) => close(cfg, functions, bridge, kind),
            }
        }
    }
    assignments
}

/// Opens the window; false (with a problem) if that failed.
fn open(
    cfg: &mut impl ConfigAccess,
    functions: &mut [Function],
    index: usize,
    kind: WindowKind,
    window: Window,
) -> bool {
    let function = &mut functions[index];
    let Some(mut bridge) = function.bridge else { return false };
    match write_window(cfg, function.bdf, &bridge, kind, Some(window)) {
        Ok(()) => {
            bridge.set_window(kind, Some(window));
            function.bridge = Some(bridge);
            true
        }
        Err(error) => {
            let (base, size) = (window.bus_base, window.size);
            function
                .problems
                .push(format!("opening its {kind} window at {base:#x}+{size:#x} failed ({error})"));
            false
        }
    }
}

/// Closes the window (nothing to do for one the bridge does not implement).
fn close(cfg: &mut impl ConfigAccess, functions: &mut [Function], index: usize, kind: WindowKind) {
    let function = &mut functions[index];
    let Some(mut bridge) = function.bridge else { return };
    match write_window(cfg, function.bdf, &bridge, kind, None) {
        Ok(()) | Err(WindowWriteError::NotImplemented) => {
            bridge.set_window(kind, None);
            function.bridge = Some(bridge);
        }
        Err(error) => function.problems.push(format!("closing its {kind} window failed ({error})")),
    }
}

/// Programs each BAR of an opened window and records each child window's base.
fn fill(
    cfg: &mut impl ConfigAccess,
    functions: &mut [Function],
    packed: &Packed,
    base: u64,
    bases: &mut Bases,
    assignments: &mut Vec<Assignment>,
) {
    for &(item, offset) in &packed.items {
        let address = base + offset;
        match item {
            Item::Window { bridge, kind } => {
                bases.insert((bridge, kind), address);
            }
            Item::Bar { function, position } => {
                let function = &mut functions[function];
                let bar = function.bars[position].clone();
                match program_bar(cfg, function.bdf, &bar, address) {
                    Ok(()) => {
                        function.bars[position].bus_addr = address;
                        assignments.push(Assignment {
                            bdf: function.bdf,
                            bar_index: bar.index,
                            bus_addr: address,
                            size: bar.size,
                            origin: BarOrigin::Kernel,
                        });
                    }
                    Err(error) => function
                        .problems
                        .push(format!("BAR{}: writing {address:#x} failed ({error})", bar.index)),
                }
            }
        }
    }
}

/// Reports the BARs a window that could not be opened would have held (nested windows report
/// theirs when their turn comes: they got no base).
fn orphan(functions: &mut [Function], bridge: usize, kind: WindowKind, packed: &Packed) {
    let bdf = functions[bridge].bdf;
    for &(item, _) in &packed.items {
        if let Item::Bar { function, position } = item {
            let index = functions[function].bars[position].index;
            let problem = format!(
                "BAR{index}: not assigned, the {kind} window of bridge {bdf} above it could not be opened"
            );
            functions[function].problems.push(problem);
        }
    }
}
