//! Sizing the bridges' windows bottom-up, where the kernel owns the layout: what each window of
//! each bridge must hold, how big it is, how it is aligned and where each item sits in it.
//!
//! Rules (PCI-to-PCI Bridge Architecture 1.2 §3.2.5.6–10; the grouping is the one Linux makes in
//! `drivers/pci/setup-bus.c : __pci_bus_size_bridges`, `pbus_size_mem`, `pbus_size_io`):
//! - an I/O BAR goes into the I/O window, a non-prefetchable memory BAR into the memory window
//!   (32-bit, so a non-prefetchable 64-bit BAR gets a 32-bit address there);
//! - a prefetchable 64-bit BAR goes into the prefetchable window; a prefetchable 32-bit BAR only
//!   when that window stays below 4 GiB, else into the memory window (prefetchable memory may
//!   always sit in a non-prefetchable window); a bridge without a prefetchable window puts
//!   them all in its memory window;
//! - a bridge's window goes into the same kind of window of the bridge above it, a
//!   prefetchable one into the memory window when the bridge above has no prefetchable window
//!   or would place it above 4 GiB while it decodes only 32 bits ([`Reach`]);
//! - a window holds its items largest alignment first, each at its natural alignment (a BAR
//!   decodes a size-aligned power of two, PCI Local Bus 3.0 §6.2.5.1); its size is rounded up
//!   to the granule (4 KiB I/O, 1 MiB memory) and its alignment is the largest of its items'
//!   and the granule, so every item stays aligned wherever the window lands.
//!
//! A window that cannot be sized (its items overflow, or it is larger than its decoder
//! reaches) is reported on the bridge and stays closed; the BARs it would have held are
//! reported unassigned, never silently dropped.

use alloc::{format, vec, vec::Vec};

use super::bar::{Bar, BarKind};
use super::bridge::{Bridge, Decode, WindowKind};
use super::function::Function;

/// Where a prefetchable window may be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Below 4 GiB only (a 32-bit decoder here or above).
    Below4G,
    /// Anywhere (64-bit decoders all the way up to the PHB).
    Anywhere,
}

/// Something a window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// `functions[function].bars[position]`.
    Bar {
        /// Index of the function.
        function: usize,
        /// Position in its `bars`.
        position: usize,
    },
    /// The window of `kind` of the bridge `functions[bridge]`.
    Window {
        /// Index of the bridge.
        bridge: usize,
        /// Which of its windows.
        kind: WindowKind,
    },
}

/// A sized window: its size and alignment and each item's offset in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Bytes, a multiple of the granule.
    pub size: u64,
    /// Alignment of its base, a power of two.
    pub align: u64,
    /// Items with their offsets from the base.
    pub items: Vec<(Item, u64)>,
}

/// The outcome of sizing one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing needs it: it stays closed.
    Empty,
    /// It must be opened with this size.
    Sized(Packed),
    /// It could not be sized (already reported): it stays closed.
    Failed,
}

/// The three windows of one bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePlan {
    /// I/O, memory and prefetchable, in [`WindowKind::ALL`] order.
    pub windows: [Plan; 3],
    /// Where its prefetchable window may go.
    pub reach: Reach,
}

impl BridgePlan {
    /// The plan of the window of `kind`.
    pub fn window(&self, kind: WindowKind) -> &Plan {
        &self.windows[kind as usize]
    }
}

/// Index of each function's upstream bridge in `functions`.
pub fn parents(functions: &[Function]) -> Vec<Option<usize>> {
    functions
        .iter()
        .map(|f| f.upstream.and_then(|up| functions.iter().position(|b| b.bdf == up && b.bridge.is_some())))
        .collect()
}

/// Bridges between each function and the root bus (0 on the root bus); a loop in the parent
/// links stops counting at the number of functions.
pub fn depths(parents: &[Option<usize>]) -> Vec<usize> {
    (0..parents.len())
        .map(|start| {
            let mut depth = 0;
            let mut at = parents[start];
            while let Some(parent) = at {
                depth += 1;
                if depth > parents.len() {
                    break;
                }
                at = parents[parent];
            }
            depth
        })
        .collect()
}

/// Sizes every bridge's windows; the result is indexed like `functions` (`None` for
/// functions that are not bridges or whose registers could not be read). Problems are
/// recorded on the functions concerned.
pub fn plan_windows(functions: &mut [Function]) -> Vec<Option<BridgePlan>> {
    let parents = parents(functions);
    let depths = depths(&parents);
    let reach = reaches(functions, &parents, &depths);
    let mut plans: Vec<Option<BridgePlan>> = vec![None; functions.len()];
    let mut bridges: Vec<usize> = (0..functions.len()).filter(|&i| functions[i].bridge.is_some()).collect();
    bridges.sort_by_key(|&i| core::cmp::Reverse(depths[i]));
    for index in bridges {
        let tree = Tree { parents: &parents, plans: &plans, reach: &reach };
        let plan = plan_bridge(functions, &tree, index);
        plans[index] = Some(plan);
    }
    plans
}

/// What sizing one bridge needs to know of the others.
#[derive(Clone, Copy)]
struct Tree<'a> {
    /// Each function's upstream bridge.
    parents: &'a [Option<usize>],
    /// The bridges sized so far (all deeper ones).
    plans: &'a [Option<BridgePlan>],
    /// Where each bridge's prefetchable window may go.
    reach: &'a [Reach],
}

/// Where each bridge's prefetchable window may be placed (`Below4G` for non-bridges).
fn reaches(functions: &[Function], parents: &[Option<usize>], depths: &[usize]) -> Vec<Reach> {
    let mut reach = vec![Reach::Below4G; functions.len()];
    let mut order: Vec<usize> = (0..functions.len()).collect();
    order.sort_by_key(|&i| depths[i]);
    for index in order {
        let Some(bridge) = functions[index].bridge else { continue };
        let wide = bridge.prefetchable_decode == Some(Decode::Bits64);
        let above = match parents[index] {
            None => Reach::Anywhere,
            Some(parent) => match functions[parent].bridge {
                Some(up) if up.prefetchable_decode.is_some() => reach[parent],
                _ => Reach::Below4G,
            },
        };
        reach[index] = if wide { above } else { Reach::Below4G };
    }
    reach
}

/// The window of a bridge (with `bridge`'s registers and `reach`) that a BAR behind it goes
/// into, `None` if it has none that can hold it.
pub fn bar_destination(bar: &Bar, bridge: &Bridge, reach: Reach) -> Option<WindowKind> {
    let has_prefetchable = bridge.prefetchable_decode.is_some();
    match bar.kind {
        BarKind::Io => bridge.io_decode.map(|_| WindowKind::Io),
        _ if !bar.prefetchable => Some(WindowKind::Memory),
        BarKind::Mem64 if has_prefetchable => Some(WindowKind::Prefetchable),
        BarKind::Mem32 if has_prefetchable && reach == Reach::Below4G => Some(WindowKind::Prefetchable),
        BarKind::Mem32 | BarKind::Mem64 => Some(WindowKind::Memory),
    }
}

/// The window of the parent bridge that a child bridge's window of `kind` goes into.
pub fn window_destination(
    kind: WindowKind,
    child: Reach,
    parent: &Bridge,
    parent_reach: Reach,
) -> Option<WindowKind> {
    match kind {
        WindowKind::Io => parent.io_decode.map(|_| WindowKind::Io),
        WindowKind::Memory => Some(WindowKind::Memory),
        WindowKind::Prefetchable => {
            let fits = child == Reach::Anywhere || parent_reach == Reach::Below4G;
            match parent.prefetchable_decode {
                Some(_) if fits => Some(WindowKind::Prefetchable),
                _ => Some(WindowKind::Memory),
            }
        }
    }
}

/// Requests per window kind: `(item, size, alignment)`.
type Requests = [Vec<(Item, u64, u64)>; 3];

/// Collects what sits directly behind the bridge `functions[index]` and packs each window.
fn plan_bridge(functions: &mut [Function], tree: &Tree<'_>, index: usize) -> BridgePlan {
    let bridge = functions[index].bridge.unwrap_or_default();
    let mut requests = collect_requests(functions, tree, index);
    let windows = WindowKind::ALL.map(|kind| {
        let taken = core::mem::take(&mut requests[kind as usize]);
        let decode = bridge.decode(kind).unwrap_or(Decode::Bits32);
        match pack(kind, decode, taken) {
            Ok(None) => Plan::Empty,
            Ok(Some(packed)) => Plan::Sized(packed),
            Err(why) => {
                report_unsized(functions, index, kind, &why);
                Plan::Failed
            }
        }
    });
    BridgePlan { windows, reach: tree.reach[index] }
}

/// The BARs of the functions directly behind `functions[index]` and their sized windows, per
/// window of that bridge they go into; what cannot go anywhere is reported.
fn collect_requests(functions: &mut [Function], tree: &Tree<'_>, index: usize) -> Requests {
    let Tree { parents, plans, reach } = *tree;
    let bridge = functions[index].bridge.unwrap_or_default();
    let bdf = functions[index].bdf;
    let mut requests: Requests = [Vec::new(), Vec::new(), Vec::new()];
    for child in (0..functions.len()).filter(|&c| parents[c] == Some(index)) {
        for position in 0..functions[child].bars.len() {
            let bar = &functions[child].bars[position];
            let (size, bar_index) = (bar.size, bar.index);
            match bar_destination(bar, &bridge, reach[index]) {
                Some(window) => {
                    requests[window as usize].push((Item::Bar { function: child, position }, size, size))
                }
                None => functions[child].problems.push(format!(
                    "BAR{bar_index} is I/O, but bridge {bdf} above it forwards no I/O: not assigned"
                )),
            }
        }
        let Some(child_plan) = &plans[child] else { continue };
        for kind in WindowKind::ALL {
            let Plan::Sized(packed) = child_plan.window(kind) else { continue };
            let item = Item::Window { bridge: child, kind };
            match window_destination(kind, child_plan.reach, &bridge, reach[index]) {
                Some(window) => requests[window as usize].push((item, packed.size, packed.align)),
                None => functions[child].problems.push(format!(
                    "its {kind} window cannot be forwarded: bridge {bdf} above it has no {kind} window"
                )),
            }
        }
    }
    requests
}

/// Reports a window of `functions[index]` that could not be sized, and the BARs it would have
/// held (in function and BAR order).
fn report_unsized(functions: &mut [Function], index: usize, kind: WindowKind, why: &SizeError) {
    let bdf = functions[index].bdf;
    functions[index]
        .problems
        .push(format!("its {kind} window {why}: closed, what is behind it is not assigned"));
    let mut bars: Vec<(usize, usize)> = why
        .items()
        .iter()
        .filter_map(|item| match *item {
            Item::Bar { function, position } => Some((function, position)),
            Item::Window { .. } => None,
        })
        .collect();
    bars.sort_unstable();
    for (function, position) in bars {
        let bar_index = functions[function].bars[position].index;
        let problem =
            format!("BAR{bar_index}: not assigned, the {kind} window of bridge {bdf} could not be sized");
        functions[function].problems.push(problem);
    }
}

/// Why a window could not be sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// Its items add up past 2^64.
    Overflow {
        /// What it would have held.
        items: Vec<Item>,
    },
    /// It is larger than its decoder reaches.
    TooLarge {
        /// The size it would need.
        size: u64,
        /// The decoder's width.
        decode: Decode,
        /// What it would have held.
        items: Vec<Item>,
    },
}

impl SizeError {
    /// What the window would have held.
    pub fn items(&self) -> &[Item] {
        match self {
            SizeError::Overflow { items } | SizeError::TooLarge { items, .. } => items,
        }
    }
}

impl core::fmt::Display for SizeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SizeError::Overflow { .. } => write!(f, "would need more than 2^64 bytes"),
            SizeError::TooLarge { size, decode, .. } => {
                write!(f, "would need {size:#x} bytes, more than its {decode} decoder reaches")
            }
        }
    }
}

/// Packs `(item, size, align)` requests into one window of `kind`: largest alignment first,
/// each at its alignment; `None` when there is nothing to hold.
pub fn pack(
    kind: WindowKind,
    decode: Decode,
    mut requests: Vec<(Item, u64, u64)>,
) -> Result<Option<Packed>, SizeError> {
    if requests.is_empty() {
        return Ok(None);
    }
    requests.sort_by_key(|&(_, size, align)| (core::cmp::Reverse(align), core::cmp::Reverse(size)));
    let granule = kind.granule();
    let all_items = || requests.iter().map(|r| r.0).collect::<Vec<Item>>();
    let overflow = || SizeError::Overflow { items: all_items() };
    let mut cursor = 0u64;
    let mut align = granule;
    let mut items = Vec::with_capacity(requests.len());
    for &(item, size, item_align) in &requests {
        let item_align = item_align.max(1).checked_next_power_of_two().ok_or_else(overflow)?;
        let offset = align_up(cursor, item_align).ok_or_else(overflow)?;
        cursor = offset.checked_add(size).ok_or_else(overflow)?;
        align = align.max(item_align);
        items.push((item, offset));
    }
    let size = align_up(cursor, granule).ok_or_else(overflow)?;
    if size - 1 > decode.max_address() || align - 1 > decode.max_address() {
        return Err(SizeError::TooLarge { size, decode, items: all_items() });
    }
    Ok(Some(Packed { size, align, items }))
}

/// Rounds `value` up to a multiple of `align` (a power of two), `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}
