//! BAR assignment: the root bus's BARs and, where the kernel owns the layout, the bridges'
//! windows and every BAR behind them.
//!
//! On QEMU pseries, SLOF assigns BARs itself (`aik/SLOF : board-qemu/slof/pci-phb.fs`), but
//! with VOF (`x-vof=on`) or an FDT-direct boot nobody does, and QEMU ≥ 4.2 says so with
//! `linux,pci-probe-only = 0` (QEMU hw/ppc/spapr_pci.c `spapr_dt_phb`). Rules implemented here:
//! - a BAR whose address is 0 is unassigned (memory and I/O alike), so 0 is never handed out;
//! - assigned root-bus BARs are kept ([`BarOrigin::Firmware`]) and their ranges reserved;
//! - behind bridges, [`BridgeLayout`] decides: firmware's layout is kept, reserved and checked
//!   (`bridge_check`), or the kernel sizes every bridge window (`window_plan`) and places it
//!   and what it holds (`window_place`), every BAR behind a bridge included;
//! - what needs room on the root bus — unassigned BARs and, in the kernel's layout, the root
//!   bridges' windows — is placed largest first at the lowest aligned free address (PCI Local
//!   Bus 3.0 §6.2.5.1: a BAR decodes a power-of-two, size-aligned range): Mem64 BARs and 64-bit
//!   prefetchable windows into the 64-bit window, falling back to the 32-bit one; Mem32 BARs,
//!   memory windows and 32-bit prefetchable windows into the 32-bit window (which must end at
//!   or below 4 GiB); I/O into the I/O window;
//! - decode and bus mastering are then enabled (`decode`).
//!
//! A BAR or window that does not fit is recorded in `Function::problems` and left unassigned
//! (a window closed, and every BAR it would have held named too).

use alloc::{format, vec::Vec};

use super::bar::{program_bar, BarKind};
use super::bdf::Bdf;
use super::bridge::WindowKind;
use super::bridge_check::check_firmware_layout;
use super::config::ConfigAccess;
use super::decode::enable_decode;
use super::error::PciError;
use super::function::Function;
use super::space::{Range, Reserved};
use super::window_place::{place_behind_bridges, Bases};
use super::window_plan::{plan_windows, BridgePlan, Plan, Reach};

/// Highest exclusive end of a 32-bit bus address range.
const FOUR_GIB: u64 = 1 << 32;

/// One bus address range: a PHB window, or a bridge's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// First bus address.
    pub bus_base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl Window {
    /// True if `[address, address + size)` lies inside the window.
    pub fn holds(&self, address: u64, size: u64) -> bool {
        let end = address.checked_add(size);
        let window_end = self.bus_base.checked_add(self.size);
        address >= self.bus_base && end.zip(window_end).is_some_and(|(end, window_end)| end <= window_end)
    }
}

/// The PHB's windows (from the `ranges` property: space codes 1, 2 and 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Windows {
    /// I/O space window.
    pub io: Option<Window>,
    /// 32-bit memory window.
    pub mem32: Option<Window>,
    /// 64-bit memory window.
    pub mem64: Option<Window>,
}

/// Who lays out what is behind the PCI-to-PCI bridges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BridgeLayout {
    /// Firmware numbered the buses, opened the windows and placed the BARs behind bridges
    /// (SLOF): kept, and checked.
    Firmware,
    /// Nobody did (VOF, FDT-direct): the kernel numbers the buses (`numbering`), sizes and
    /// opens the windows and places every BAR behind a bridge.
    Kernel,
}

/// Who chose a BAR's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarOrigin {
    /// It was already programmed when enumeration ran.
    Firmware,
    /// [`assign_bars`] placed it.
    Kernel,
}

/// One assigned BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// Function owning the BAR.
    pub bdf: Bdf,
    /// BAR register index.
    pub bar_index: u8,
    /// Bus address.
    pub bus_addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Who chose the address.
    pub origin: BarOrigin,
}

/// What needs room on the root bus.
#[derive(Clone, Copy)]
enum Request {
    /// `functions[function].bars[position]`.
    Bar { function: usize, position: usize },
    /// The window of `kind` of the root bridge `functions[bridge]`.
    Window { bridge: usize, kind: WindowKind, size: u64, align: u64, reach: Reach },
}

impl Request {
    fn size(self, functions: &[Function]) -> u64 {
        match self {
            Request::Bar { function, position } => functions[function].bars[position].size,
            Request::Window { size, .. } => size,
        }
    }
}

/// Assigns BARs (and, in the kernel's layout, bridge windows), keeps firmware assignments,
/// and enables decode and bus mastering (see the module documentation for the rules).
///
/// Returns all assigned BARs (firmware and kernel). Fails only for an invalid window.
pub fn assign_bars(
    cfg: &mut impl ConfigAccess,
    functions: &mut [Function],
    windows: &Windows,
    layout: BridgeLayout,
) -> Result<Vec<Assignment>, PciError> {
    validate_window(windows.io, BarKind::Io, FOUR_GIB)?;
    validate_window(windows.mem32, BarKind::Mem32, FOUR_GIB)?;
    validate_window(windows.mem64, BarKind::Mem64, u64::MAX)?;
    let mut reserved = Reserved::default();
    let plans = match layout {
        BridgeLayout::Firmware => {
            check_firmware_layout(functions, windows);
            reserve_root_bridge_windows(functions, &mut reserved);
            Vec::new()
        }
        BridgeLayout::Kernel => {
            for function in functions.iter_mut().filter(|f| f.upstream.is_some()) {
                function.bars.iter_mut().for_each(|bar| bar.bus_addr = 0);
            }
            plan_windows(functions)
        }
    };
    let mut assignments = reserve_firmware_bars(functions, &mut reserved);
    let mut requests: Vec<Request> = Vec::new();
    for (index, function) in functions.iter().enumerate().filter(|(_, f)| f.upstream.is_none()) {
        for (position, bar) in function.bars.iter().enumerate() {
            if !bar.is_assigned() {
                requests.push(Request::Bar { function: index, position });
            }
        }
        if let Some(Some(plan)) = plans.get(index) {
            requests.extend(window_requests(index, plan));
        }
    }
    requests.sort_by_key(|request| core::cmp::Reverse(request.size(functions)));
    let mut bases = Bases::new();
    for request in requests {
        match request {
            Request::Bar { function, position } => {
                let function = &mut functions[function];
                if let Some(assignment) = place_bar(cfg, function, position, windows, &mut reserved) {
                    assignments.push(assignment);
                }
            }
            Request::Window { bridge, kind, size, align, reach } => {
                let candidates = window_candidates(kind, reach, windows);
                match reserved.take(kind_space(kind), &candidates, size, align) {
                    Some(base) => {
                        bases.insert((bridge, kind), base);
                    }
                    None => functions[bridge].problems.push(format!(
                        "its {kind} window ({size:#x} bytes for what is behind it) does not fit in the PHB's \
                         windows: closed, what is behind it is not assigned"
                    )),
                }
            }
        }
    }
    if layout == BridgeLayout::Kernel {
        assignments.extend(place_behind_bridges(cfg, functions, &plans, &mut bases));
    }
    enable_decode(cfg, functions);
    Ok(assignments)
}

/// The sized windows of a root bridge, as requests.
fn window_requests(bridge: usize, plan: &BridgePlan) -> Vec<Request> {
    WindowKind::ALL
        .into_iter()
        .filter_map(|kind| match plan.window(kind) {
            Plan::Sized(packed) => Some(Request::Window {
                bridge,
                kind,
                size: packed.size,
                align: packed.align,
                reach: plan.reach,
            }),
            Plan::Empty | Plan::Failed => None,
        })
        .collect()
}

/// The PHB windows a root bridge's window of `kind` may go into, in order of preference.
fn window_candidates(kind: WindowKind, reach: Reach, windows: &Windows) -> [Option<Window>; 2] {
    match (kind, reach) {
        (WindowKind::Io, _) => [windows.io, None],
        (WindowKind::Memory, _) | (WindowKind::Prefetchable, Reach::Below4G) => [windows.mem32, None],
        (WindowKind::Prefetchable, Reach::Anywhere) => [windows.mem64, windows.mem32],
    }
}

/// The bus address space a window of `kind` lives in.
fn kind_space(kind: WindowKind) -> BarKind {
    match kind {
        WindowKind::Io => BarKind::Io,
        WindowKind::Memory | WindowKind::Prefetchable => BarKind::Mem32,
    }
}

/// Rejects empty, wrapping or too-high windows.
fn validate_window(window: Option<Window>, kind: BarKind, limit: u64) -> Result<(), PciError> {
    let Some(window) = window else {
        return Ok(());
    };
    match window.bus_base.checked_add(window.size) {
        Some(end) if window.size != 0 && end <= limit => Ok(()),
        _ => Err(PciError::BadWindow { kind }),
    }
}

/// Reserves the open windows of the root bridges (firmware's layout): nothing placed on the
/// root bus may overlap what a bridge forwards.
fn reserve_root_bridge_windows(functions: &[Function], reserved: &mut Reserved) {
    for function in functions.iter().filter(|f| f.upstream.is_none()) {
        let Some(bridge) = function.bridge else { continue };
        for kind in WindowKind::ALL {
            if let Some(window) = bridge.window(kind) {
                reserved.space(kind_space(kind)).push(Range::of(window));
            }
        }
    }
}

/// Lists and reserves BARs that already have an address (in the kernel's layout the BARs
/// behind bridges were cleared first, so these are the root bus's).
fn reserve_firmware_bars(functions: &[Function], reserved: &mut Reserved) -> Vec<Assignment> {
    let mut assignments = Vec::new();
    for function in functions {
        for bar in function.bars.iter().filter(|bar| bar.is_assigned()) {
            if function.upstream.is_none() {
                reserved.space(bar.kind).push(Range::of(Window { bus_base: bar.bus_addr, size: bar.size }));
            }
            assignments.push(Assignment {
                bdf: function.bdf,
                bar_index: bar.index,
                bus_addr: bar.bus_addr,
                size: bar.size,
                origin: BarOrigin::Firmware,
            });
        }
    }
    assignments
}

/// Finds room for the root-bus BAR `function.bars[bar_position]`, programs it and reserves
/// it; records a problem and returns `None` if it does not fit or cannot be written.
fn place_bar(
    cfg: &mut impl ConfigAccess,
    function: &mut Function,
    bar_position: usize,
    windows: &Windows,
    reserved: &mut Reserved,
) -> Option<Assignment> {
    let bar = function.bars[bar_position].clone();
    let candidates = match bar.kind {
        BarKind::Io => [windows.io, None],
        BarKind::Mem32 => [windows.mem32, None],
        BarKind::Mem64 => [windows.mem64, windows.mem32],
    };
    let Some(bus_addr) = reserved.take(bar.kind, &candidates, bar.size, bar.size) else {
        let problem = format!("BAR{}: {:#x} bytes of {:?} do not fit", bar.index, bar.size, bar.kind);
        function.problems.push(problem);
        return None;
    };
    if let Err(error) = program_bar(cfg, function.bdf, &bar, bus_addr) {
        let problem = format!("BAR{}: writing {bus_addr:#x} failed ({error})", bar.index);
        function.problems.push(problem);
        return None;
    }
    function.bars[bar_position].bus_addr = bus_addr;
    Some(Assignment {
        bdf: function.bdf,
        bar_index: bar.index,
        bus_addr,
        size: bar.size,
        origin: BarOrigin::Kernel,
    })
}
