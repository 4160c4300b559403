//! Enabling a Dynamic DMA Window on one partitionable endpoint: query, plan, create, map.
//!
//! The sequence follows LoPAR ("Dynamic DMA Window (DDW) option": `ibm,query-pe-dma-window`,
//! `ibm,create-pe-dma-window`, `ibm,remove-pe-dma-window`, `ibm,reset-pe-dma-windows`) and
//! Linux `arch/powerpc/platforms/pseries/iommu.c : enable_ddw`:
//! 1. `ibm,query-pe-dma-window` with 6 outputs when `ibm,ddw-extensions` entry 2 is 1, else 5;
//! 2. pick the largest offered I/O page size and a window covering the highest RAM address
//!    including hot-pluggable memory ([`plan_window`](super::plan::plan_window));
//! 3. `ibm,create-pe-dma-window` (busy answers retried, [`create_window`]);
//! 4. a direct window gets every RAM range mapped at bus base + physical address
//!    ([`map_ram`]); a window capped below RAM becomes a dynamic (IOMMU-mapped) one.
//!
//! On any failure after the create, what was mapped is cleared and the window removed, so the
//! PE is left exactly as it was: on its default window.
//!
//! A PE whose query answers 0 free windows (PowerVM SR-IOV VFs: one window per PE; Linux
//! `enable_ddw` "windows_available == 0" branch) can only get a DDW in place of its default
//! window: provided the default window has no live mapping (Linux `iommu_table_in_use`) and
//! `ibm,ddw-extensions` offers the reset call, every TCE of the default window is cleared
//! (H_STUFF_TCE ≤ 512), the window removed and the query repeated; the DDW then occupies table
//! slot 0 (Linux 6.11 "powerpc/pseries/iommu: Use the table\[0\] for IOV VF's DDW"; QEMU
//! `rtas_ibm_create_pe_dma_window` puts it at bus address 0). Any failure after the removal
//! calls `ibm,reset-pe-dma-windows` and checks with a query and an H_GET_TCE that the default
//! window is back. QEMU always answers a free window, so [`SingleWindowPath::Always`] takes
//! this path on purpose.

use core::fmt;

use super::hcall::TceCalls;
use super::iova_window::IovaWindow;
use alloc::boxed::Box;

use super::hcall::HcallError;
use super::map::{clear_window, map_ram, MapError, MapStats, MultiTce};
use super::plan::{plan_window_for, PlanError, PlanFor, WindowMode, WindowPlan};
use super::rtas::{
    retry_busy, CreateResponse, DdwRtas, Delay, PeAddress, QueryOutputs, QueryResponse, RtasError,
};
use super::window::{create_window, CreateError, DmaMask, DmaWindow, WindowError};
use crate::addr::{BusAddr, Liobn, PhysRange};
use crate::devtree::dma_window::DdwExtensions;

/// What address range the window is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// Devices that drive all 64 address bits: the window goes wherever the hypervisor puts it.
    Full,
    /// Devices that drive `mask_bits` (33..=63) bits: the PE is put in limited-addressing mode
    /// first, so that the window starts at 4 GiB, and it must end within the mask (Linux v6.15,
    /// 67dfc11982f7 "create DDW for devices with DMA mask less than 64-bits").
    Limited {
        /// The devices' mask bits.
        mask_bits: u32,
    },
}

/// When the single-window path (replace the default window) is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SingleWindowPath {
    /// Only when the query answers no free window.
    WhenNoneFree,
    /// Always (`ddw=single`), even when a window is free.
    Always,
}

/// What the DDW setup of one PE needs to know.
#[derive(Clone, Copy, Debug)]
pub struct PeRequest<'a> {
    /// The PE's RTAS address.
    pub pe: PeAddress,
    /// `ibm,ddw-extensions` of the PE's node, if present.
    pub extensions: Option<&'a DdwExtensions>,
    /// System RAM ranges to map (the memory nodes; not assumed contiguous).
    pub ram: &'a [PhysRange],
    /// End of the highest address RAM may ever occupy, hot-pluggable memory included.
    pub ram_end: u64,
    /// Address bits of the devices the window is for (64 for the 64-bit window).
    pub device_mask_bits: u32,
    /// Whether the PE is first put in limited-addressing mode (a window for devices of fewer
    /// than 64 bits, placed at 4 GiB).
    pub addressing: Addressing,
    /// Whether H_PUT_TCE_INDIRECT / H_STUFF_TCE exist.
    pub multi_tce: MultiTce,
    /// The default window and how many of its pages are mapped (needed to replace it).
    pub default: Option<DefaultWindow>,
    /// When to take the single-window path.
    pub single_window: SingleWindowPath,
    /// A cap on the window's size (log2 bytes), from the kernel's command line.
    pub max_window_shift: Option<u32>,
    /// Bus ranges a dynamic window must never hand out (32-bit MMIO, MSI doorbells).
    pub iova_holes: &'a [(BusAddr, u64)],
}

/// The PE's default window as the single-window path needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultWindow {
    /// The window (`ibm,dma-window`).
    pub window: DmaWindow,
    /// Pages mapped in it now; it may only be removed when this is 0.
    pub live_pages: u64,
    /// Devices of the PE whose DMA mask only the default window serves (e.g. `edu`'s 28 bits).
    pub narrow_devices: u32,
}

/// Why a single-window PE keeps its default window without trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SingleWindowRefusal {
    /// `ibm,ddw-extensions` offers no reset call, so a removed default window could not be
    /// brought back.
    NoResetExtension,
    /// The PE has no default window to give up.
    NoDefaultWindow,
    /// The default window still maps this many pages.
    DefaultInUse {
        /// Live pages.
        pages: u64,
    },
    /// Devices of the PE need the default window for their narrow DMA masks.
    DefaultNeeded {
        /// How many.
        devices: u32,
    },
}

impl fmt::Display for SingleWindowRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SingleWindowRefusal::NoResetExtension => {
                write!(f, "ibm,ddw-extensions offers no ibm,reset-pe-dma-windows to restore it")
            }
            SingleWindowRefusal::NoDefaultWindow => write!(f, "the PE has no default window to replace"),
            SingleWindowRefusal::DefaultInUse { pages } => {
                write!(f, "the default window still maps {pages} page(s)")
            }
            SingleWindowRefusal::DefaultNeeded { devices } => {
                write!(f, "{devices} device(s) of the PE have DMA masks only the default window serves")
            }
        }
    }
}

/// How the default window came back after a failure on the single-window path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restore {
    /// The reset call's failure, if it failed.
    pub reset: Option<RtasError>,
    /// The default window was back before any reset: the hypervisor restored it when the last
    /// DDW was removed (QEMU ≥ 7.1, "spapr/ddw: Reset DMA when the last non-default window is
    /// removed"), so no reset was called.
    pub by_hypervisor: bool,
    /// Windows the query reported after the reset (`None` if it failed).
    pub windows_available: Option<u32>,
    /// Whether H_GET_TCE on the default window's first entry succeeded (the window exists).
    pub default_back: bool,
    /// The failure clearing the restored window, if any: reset need not clear the table
    /// (Linux `spapr_tce_take_ownership`: the reset "doesn't clear the entries"), so whatever
    /// slot 0 held is cleared before the window is used again.
    pub cleared: Option<HcallError>,
}

impl Restore {
    /// Whether the PE is back on a clean default window.
    pub fn is_clean(&self) -> bool {
        self.reset.is_none() && self.default_back && self.cleared.is_none()
    }
}

/// Whether [`restore_default`] first looks for a default window the hypervisor brought back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreFrom {
    /// No DDW of this driver is left on the PE: if the default window answers already, the
    /// hypervisor restored it, and a second reset is not called.
    NoWindowLeft,
    /// A window may still be in place (a removal failed, or the DDW replaced the default in
    /// slot 0): only the reset brings the default window back.
    WindowsLeft,
}

/// Brings the PE back to its boot-time default window (`default`) — by `ibm,reset-pe-dma-windows`
/// unless the hypervisor already did — checks with a query and an H_GET_TCE that the window
/// answers, and clears every entry of it.
pub fn restore_default(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
    default: &DmaWindow,
    from: RestoreFrom,
) -> Restore {
    let by_hypervisor =
        from == RestoreFrom::NoWindowLeft && hv.get_tce(default.liobn(), default.bus_base()).is_ok();
    let reset = match by_hypervisor {
        true => None,
        false => retry_busy(delay, || hv.reset(request.pe)).err(),
    };
    let outputs = request.query_outputs();
    let windows_available = hv.query(request.pe, outputs).ok().map(|q| q.windows_available);
    // One retry each: a transient failure must not cost the PE its only window.
    let default_back = by_hypervisor
        || (reset.is_none() && twice(|| hv.get_tce(default.liobn(), default.bus_base())).is_ok());
    let cleared = match default_back {
        true => twice(|| clear_window(hv, default, request.multi_tce)).err(),
        false => None,
    };
    Restore { reset, by_hypervisor, windows_available, default_back, cleared }
}

impl PeRequest<'_> {
    /// What the window is planned for. In limited-addressing mode the window starts at
    /// 4 GiB, so it may span only half the mask's reach (a power of two that still ends
    /// within it).
    pub fn plan_for(&self) -> PlanFor {
        let device_mask_bits = match self.addressing {
            Addressing::Full => self.device_mask_bits,
            Addressing::Limited { mask_bits } => mask_bits.saturating_sub(1).min(self.device_mask_bits),
        };
        PlanFor {
            ram_top: self.ram.iter().map(PhysRange::end).max().unwrap_or(0),
            ram_end: self.ram_end,
            device_mask_bits,
            max_window_shift: self.max_window_shift,
        }
    }

    /// 6 outputs when the "64-bit query" extension says so, else 5.
    pub fn query_outputs(&self) -> QueryOutputs {
        if self.extensions.is_some_and(DdwExtensions::query_outputs_64bit) {
            QueryOutputs::Six
        } else {
            QueryOutputs::Five
        }
    }
}

/// A created window: direct (all RAM mapped), dynamic (mapped buffer by buffer) or hybrid.
#[derive(Debug)]
pub enum DdwMapping {
    /// Bus address = bus base + physical address for all RAM.
    Direct,
    /// An IOVA allocator over the window.
    Dynamic(IovaWindow),
    /// RAM below `direct_end` at bus base + physical address; above it, buffers through an
    /// allocator over the window's upper part (its direct part reserved).
    Hybrid {
        /// One past the last directly mapped physical address.
        direct_end: u64,
        /// The allocator for the rest.
        upper: IovaWindow,
    },
}

impl DdwMapping {
    /// The report's mode.
    pub fn mode(&self) -> WindowMode {
        match self {
            DdwMapping::Direct => WindowMode::Direct,
            DdwMapping::Dynamic(_) => WindowMode::Dynamic,
            DdwMapping::Hybrid { direct_end, .. } => WindowMode::Hybrid { direct_end: *direct_end },
        }
    }

    /// The allocator of the window's dynamically mapped part, if it has one.
    pub fn iova_window_mut(&mut self) -> Option<&mut IovaWindow> {
        match self {
            DdwMapping::Direct => None,
            DdwMapping::Dynamic(window) | DdwMapping::Hybrid { upper: window, .. } => Some(window),
        }
    }
}

/// A Dynamic DMA Window in place on a PE.
#[derive(Debug)]
pub struct Ddw {
    /// The query's answer (`None` for a window taken over whose query failed: nothing is
    /// known, and nothing is made up).
    pub query: Option<QueryResponse>,
    /// Outputs the query was called with.
    pub outputs: QueryOutputs,
    /// The plan the window was created from.
    pub plan: WindowPlan,
    /// The window as created.
    pub window: DmaWindow,
    /// The table slot it occupies (1 next to the default window, 0 when it replaced it).
    pub slot: u32,
    /// Hypercalls spent mapping RAM (zero for a dynamic window).
    pub stats: MapStats,
    /// RAM ranges mapped.
    pub ranges: usize,
    /// Direct, dynamic or hybrid.
    pub mapping: DdwMapping,
    /// Where RAM's bus addresses in the window would have met MMIO (the PHB's windows, the MSI
    /// doorbell), which kept a planned direct window dynamic.
    pub mmio_collision: Option<(BusAddr, u64)>,
}

/// What a created window is, for the report (a [`Ddw`] without its allocator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwFacts {
    /// The query's answer, if there is one.
    pub query: Option<QueryResponse>,
    /// Outputs the query was called with.
    pub outputs: QueryOutputs,
    /// The plan the window was created from.
    pub plan: WindowPlan,
    /// The window as created.
    pub window: DmaWindow,
    /// Its table slot.
    pub slot: u32,
    /// Hypercalls spent mapping RAM.
    pub stats: MapStats,
    /// RAM ranges mapped.
    pub ranges: usize,
    /// Direct, dynamic or hybrid.
    pub mode: WindowMode,
    /// See [`Ddw::mmio_collision`].
    pub mmio_collision: Option<(BusAddr, u64)>,
}

impl Ddw {
    /// The window's facts.
    pub fn facts(&self) -> DdwFacts {
        let Ddw { query, outputs, plan, window, slot, stats, ranges, mmio_collision, .. } = *self;
        DdwFacts {
            query,
            outputs,
            plan,
            window,
            slot,
            stats,
            ranges,
            mode: self.mapping.mode(),
            mmio_collision,
        }
    }

    /// The bus-address offset of a direct (or hybrid) window (`None` for a dynamic one).
    pub fn direct_offset(&self) -> Option<u64> {
        match self.mapping {
            DdwMapping::Direct | DdwMapping::Hybrid { .. } => Some(self.window.bus_base().get()),
            DdwMapping::Dynamic(_) => None,
        }
    }
}

/// Why a PE stays on its default window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdwError {
    /// The query call failed.
    Query(RtasError),
    /// Switching limited-addressing mode on failed; nothing was created or removed.
    LimitedAddressing(RtasError),
    /// In limited-addressing mode the window was placed where the devices' mask cannot reach
    /// all of it; it was removed again.
    BeyondMask {
        /// The window.
        window: DmaWindow,
        /// The devices' mask bits.
        mask_bits: u32,
        /// Its removal's failure, if it failed.
        removal: Option<RtasError>,
    },
    /// The query answered no free window (a single-window PE).
    NoWindowAvailable {
        /// The answer.
        query: QueryResponse,
    },
    /// The answer could not be turned into a window.
    Plan {
        /// The answer.
        query: QueryResponse,
        /// Why.
        error: PlanError,
    },
    /// The window the hypervisor allows would be dynamic and no larger than the default
    /// window; nothing was created or removed.
    NoGain {
        /// The planned (or, once created, usable) window's size in bytes.
        window_size: u64,
        /// The default window's size.
        default_size: u64,
        /// The window, if it had been created (and was removed again).
        created: Option<Liobn>,
        /// Its removal's failure, if it failed.
        removal: Option<RtasError>,
    },
    /// The create call failed (nothing to undo, or the bad window was already removed).
    Create(CreateError),
    /// The PE has one window, in use by the default window, and it was not replaced.
    SingleWindowRefused {
        /// The answer.
        query: QueryResponse,
        /// Why not.
        why: SingleWindowRefusal,
    },
    /// Clearing or removing the default window failed; it is still in place.
    RemoveDefault {
        /// The failing clear.
        clear: Option<HcallError>,
        /// The failing remove.
        remove: Option<RtasError>,
    },
    /// A step after the default window's removal failed; the default window was reset.
    AfterRemoval {
        /// The failing step.
        cause: Box<DdwError>,
        /// How the reset went.
        restore: Restore,
    },
    /// Mapping RAM failed; the mapped part was cleared and the window removed.
    Map {
        /// The window that was created.
        window: DmaWindow,
        /// The failing hcall (and any failure clearing).
        error: MapError,
        /// The remove call's failure, if it failed too.
        removal: Option<RtasError>,
    },
}

impl DdwError {
    /// The window this failure created and could not remove, if any.
    pub fn window_left(&self) -> Option<Liobn> {
        match self {
            DdwError::Map { window, removal: Some(_), .. }
            | DdwError::BeyondMask { window, removal: Some(_), .. } => Some(window.liobn()),
            DdwError::Create(CreateError::BadResponse { response, removal: Some(_), .. }) => {
                Some(response.liobn)
            }
            DdwError::NoGain { created: Some(liobn), removal: Some(_), .. } => Some(*liobn),
            DdwError::AfterRemoval { cause, .. } => cause.window_left(),
            _ => None,
        }
    }
}

impl fmt::Display for DdwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DdwError::Query(error) | DdwError::LimitedAddressing(error) => write!(f, "{error}"),
            DdwError::BeyondMask { window, mask_bits, removal } => {
                write!(
                    f,
                    "in limited-addressing mode the window {} at {} of {:#x} bytes ends beyond the devices' \
                     {mask_bits}-bit mask",
                    window.liobn(),
                    window.bus_base(),
                    window.size()
                )?;
                match removal {
                    None => write!(f, "; it was removed"),
                    Some(error) => write!(f, "; removing it failed too: {error}"),
                }
            }
            DdwError::NoWindowAvailable { query } => write!(
                f,
                "ibm,query-pe-dma-window reported 0 windows available (largest block {:#x} TCEs, page sizes \
                 {:#x}); removing the default window is not attempted",
                query.largest_block, query.page_size_mask
            ),
            DdwError::SingleWindowRefused { why, .. } => write!(
                f,
                "ibm,query-pe-dma-window reported 0 windows available and the default window cannot be \
                 replaced: {why}"
            ),
            DdwError::RemoveDefault { clear: Some(error), .. } => {
                write!(f, "clearing the default window before removing it failed: {error}")
            }
            DdwError::RemoveDefault { remove: Some(error), .. } => {
                write!(f, "removing the default window failed: {error}")
            }
            DdwError::RemoveDefault { .. } => write!(f, "removing the default window failed"),
            DdwError::AfterRemoval { cause, restore } => {
                write!(f, "{cause}; after the default window's removal, so ")?;
                match (restore.reset, restore.default_back, restore.cleared) {
                    (None, true, None) if restore.by_hypervisor => {
                        write!(f, "the hypervisor restored it on its own (no reset was needed)")
                    }
                    (None, true, None) => write!(f, "ibm,reset-pe-dma-windows restored it"),
                    (None, true, Some(error)) => write!(
                        f,
                        "ibm,reset-pe-dma-windows restored it but clearing it failed ({error}): it is not used"
                    ),
                    (None, false, _) => {
                        write!(f, "ibm,reset-pe-dma-windows succeeded but the default window does not answer")
                    }
                    (Some(error), ..) => write!(f, "the reset failed too ({error}): the PE has no DMA window"),
                }
            }
            DdwError::Plan { error, .. } => write!(f, "{error}"),
            DdwError::NoGain { window_size, default_size, .. } => write!(
                f,
                "the largest window allowed ({window_size:#x} bytes) would be dynamic and no larger than the \
                 default window ({default_size:#x} bytes); keeping the default window"
            ),
            DdwError::Create(error) => write!(f, "{error}"),
            DdwError::Map { window, error, removal } => {
                write!(f, "mapping RAM into the window (liobn {}) failed: {error}", window.liobn())?;
                match removal {
                    None => write!(f, "; the window was removed"),
                    Some(removal) => write!(f, "; removing the window failed too: {removal}"),
                }
            }
        }
    }
}

/// Queries, creates and (for a direct window) maps all RAM; on failure the PE is left on its
/// default window and the error names the failing call.
///
/// `hv` is the partition's hypervisor: RTAS and the TCE hcalls act on the same tables.
// The error carries every argument of the failing call for the report; it is returned once
// per PE at boot, so its size does not matter.
#[allow(clippy::result_large_err)]
pub fn enable_ddw(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
) -> Result<Ddw, DdwError> {
    let outputs = request.query_outputs();
    let query = hv.query(request.pe, outputs).map_err(DdwError::Query)?;
    if let Addressing::Limited { .. } = request.addressing {
        retry_busy(delay, || hv.enable_limited_addressing(request.pe))
            .map_err(DdwError::LimitedAddressing)?;
    }
    if query.windows_available > 0 && request.single_window == SingleWindowPath::WhenNoneFree {
        return create_and_map(hv, delay, request, query, 1);
    }
    let default = single_window_check(request, query)?;
    // Plan from this answer before giving anything up: the window must be possible and
    // worth the default window's place.
    let plan =
        plan_window_for(&query, &request.plan_for()).map_err(|error| DdwError::Plan { query, error })?;
    worth_it(request, &plan)?;
    if let Err(error) = clear_window(hv, &default, request.multi_tce) {
        return Err(DdwError::RemoveDefault { clear: Some(error), remove: None });
    }
    if let Err(error) = retry_busy(delay, || hv.remove(default.liobn())) {
        return Err(DdwError::RemoveDefault { clear: None, remove: Some(error) });
    }
    let replaced = hv.query(request.pe, outputs).map_err(DdwError::Query).and_then(|query| {
        if query.windows_available == 0 {
            return Err(DdwError::NoWindowAvailable { query });
        }
        create_and_map(hv, delay, request, query, 0)
    });
    replaced.map_err(|cause| {
        let from = match cause.window_left() {
            Some(_) => RestoreFrom::WindowsLeft,
            None => RestoreFrom::NoWindowLeft,
        };
        let restore = restore_default(hv, delay, request, &default, from);
        DdwError::AfterRemoval { cause: Box::new(cause), restore }
    })
}

/// A dynamic window no larger than the default window gains nothing (and in slot 0 would
/// lose the default window's room).
#[allow(clippy::result_large_err)]
fn worth_it(request: &PeRequest<'_>, plan: &WindowPlan) -> Result<(), DdwError> {
    let window_size = 1u64.checked_shl(plan.window_shift).unwrap_or(u64::MAX);
    // A window at bus 0 loses its first page (IOVA 0 is never handed out).
    let usable = window_size.saturating_sub(1 << plan.page_shift);
    match request.default {
        Some(default) if plan.mode == WindowMode::Dynamic && usable <= default.window.size() => {
            Err(DdwError::NoGain {
                window_size,
                default_size: default.window.size(),
                created: None,
                removal: None,
            })
        }
        _ => Ok(()),
    }
}

/// `call`, and once more if it fails.
pub(crate) fn twice<T, E>(mut call: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    call().or_else(|_| call())
}

/// The default window, if a single-window PE may give it up.
#[allow(clippy::result_large_err)]
fn single_window_check(request: &PeRequest<'_>, query: QueryResponse) -> Result<DmaWindow, DdwError> {
    let refuse = |why| Err(DdwError::SingleWindowRefused { query, why });
    if request.extensions.and_then(DdwExtensions::reset_token).is_none() {
        return refuse(SingleWindowRefusal::NoResetExtension);
    }
    match request.default {
        None => refuse(SingleWindowRefusal::NoDefaultWindow),
        Some(DefaultWindow { live_pages: pages @ 1.., .. }) => {
            refuse(SingleWindowRefusal::DefaultInUse { pages })
        }
        Some(DefaultWindow { narrow_devices: devices @ 1.., .. }) => {
            refuse(SingleWindowRefusal::DefaultNeeded { devices })
        }
        Some(DefaultWindow { window, .. }) => Ok(window),
    }
}

#[allow(clippy::result_large_err)]
fn create_and_map(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    request: &PeRequest<'_>,
    query: QueryResponse,
    slot: u32,
) -> Result<Ddw, DdwError> {
    let outputs = request.query_outputs();
    let plan =
        plan_window_for(&query, &request.plan_for()).map_err(|error| DdwError::Plan { query, error })?;
    worth_it(request, &plan)?;
    let window = create_window(hv, delay, request.pe, &plan).map_err(DdwError::Create)?;
    if let Addressing::Limited { mask_bits } = request.addressing {
        if !window.fits_dma_mask(DmaMask::from_bits(mask_bits)) {
            let removal = retry_busy(delay, || hv.remove(window.liobn())).err();
            return Err(DdwError::BeyondMask { window, mask_bits, removal });
        }
    }
    // Next to the default window the new one must not share its bus addresses (QEMU puts it
    // at 2^59, PowerVM high too); a hypervisor that does otherwise gets its window back.
    if let Some(default) = request.default.filter(|d| slot == 1 && d.window.overlaps(&window)) {
        let response = CreateResponse { liobn: window.liobn(), bus_base: window.bus_base() };
        let removal = retry_busy(delay, || hv.remove(window.liobn())).err();
        let why = WindowError::Overlaps { other: default.window.liobn() };
        return Err(DdwError::Create(CreateError::BadResponse { response, why, removal }));
    }
    // RAM's bus addresses must not meet MMIO: a window where they would is used dynamically,
    // its allocator keeping the MMIO out (real PHBs route such DMA to the BAR, not to RAM).
    let collision = match plan.mode {
        WindowMode::Direct | WindowMode::Hybrid { .. } => {
            mmio_collision(&window, request.ram, request.iova_holes)
        }
        WindowMode::Dynamic => None,
    };
    let mode = if collision.is_some() { WindowMode::Dynamic } else { plan.mode };
    let (stats, mapping) = match mode {
        WindowMode::Direct | WindowMode::Hybrid { .. } => {
            match map_ram(hv, &window, request.ram, request.multi_tce) {
                Ok(stats) => (stats, direct_mapping(&window, mode, request)),
                Err(error) => {
                    let removal = retry_busy(delay, || hv.remove(window.liobn())).err();
                    return Err(DdwError::Map { window, error, removal });
                }
            }
        }
        WindowMode::Dynamic => {
            let mut dynamic = IovaWindow::with_holes(window, request.multi_tce, request.iova_holes);
            // What the holes leave must still beat the default window.
            let usable = dynamic.allocator_mut().free_pages() << window.page_shift();
            if let Some(default) = request.default.filter(|d| usable <= d.window.size()) {
                let removal = retry_busy(delay, || hv.remove(window.liobn())).err();
                let default_size = default.window.size();
                let created = Some(window.liobn());
                return Err(DdwError::NoGain { window_size: usable, default_size, created, removal });
            }
            (MapStats::default(), DdwMapping::Dynamic(dynamic))
        }
    };
    let ranges = match mapping {
        DdwMapping::Direct | DdwMapping::Hybrid { .. } => request.ram.iter().filter(|r| r.size > 0).count(),
        DdwMapping::Dynamic(_) => 0,
    };
    let mmio_collision = collision;
    Ok(Ddw { query: Some(query), outputs, plan, window, slot, stats, ranges, mapping, mmio_collision })
}

/// The mapping of a window whose RAM was just mapped directly: all of it, or (hybrid) RAM
/// below `direct_end` with an allocator over the rest of the window.
pub(crate) fn direct_mapping(window: &DmaWindow, mode: WindowMode, request: &PeRequest<'_>) -> DdwMapping {
    match mode {
        WindowMode::Hybrid { direct_end } => {
            let mut upper = IovaWindow::with_holes(*window, request.multi_tce, request.iova_holes);
            // The direct part is RAM's: the allocator hands out only what lies above it.
            let _ = upper.allocator_mut().reserve(window.bus_base(), direct_end);
            DdwMapping::Hybrid { direct_end, upper }
        }
        _ => DdwMapping::Direct,
    }
}

/// The first place where RAM's bus addresses in `window` (bus base + physical) meet one of
/// `holes`, as (bus address, length).
fn mmio_collision(window: &DmaWindow, ram: &[PhysRange], holes: &[(BusAddr, u64)]) -> Option<(BusAddr, u64)> {
    ram.iter().filter(|r| r.size > 0).find_map(|range| {
        let start = window.bus_base().get().checked_add(range.base.get())?;
        let end = start.checked_add(range.size)?;
        holes.iter().find_map(|&(hole, len)| {
            let (low, high) = (start.max(hole.get()), end.min(hole.get().saturating_add(len)));
            // Not `then_some`: its argument is evaluated first, and `high - low` underflows when
            // the ranges do not meet.
            if low < high {
                Some((BusAddr(low), high - low))
            } else {
                None
            }
        })
    })
}
