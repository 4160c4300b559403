//! One partitionable endpoint's whole DMA set-up: the function the kernel calls for every PE
//! and the hypervisor model's scenarios, fault sweep and fuzzer call too.
//!
//! [`PeSetUp::for_phb`] reads what the set-up needs from the typed [`Platform`]: the PE's node
//! (the nearest node at or above the first device's that carries `ibm,dma-window`; Linux
//! `arch/powerpc/platforms/pseries/iommu.c : pci_dma_find`), its default window, its DDW
//! properties, the bus ranges no window may hand out (the PHB's 32-bit MMIO windows and MSI
//! doorbell), RAM and the hot-plug maximum (Linux `ddw_memory_hotplug_max`), and each device's
//! DMA mask from what its driver declares ([`crate::devices`]). QEMU puts the node on the PHB,
//! so a PHB is one PE shared by all its devices; the DDW is planned for the PE's 64-bit
//! devices, and narrower devices keep the default window.
//!
//! [`set_up`] then runs a fresh boot's set-up ([`enable_ddw`]) or, on a warm restart, takes
//! over what the previous kernel handed over ([`take_over`], [`ensure_default`]) and settles
//! the outcome into the PE's [`PeDma`]. Its [`SetUpReport`] says what happened, for
//! [`super::pe_report`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::ddw::{
    enable_ddw, twice, Addressing, DdwError, DdwFacts, DefaultWindow, PeRequest, Restore, SingleWindowPath,
};
use super::handover::{ensure_default, take_over, Handover, TakeOver, TakeOverError, WarmPolicy};
use super::hcall::{HcallError, TceCalls};
use super::iova_window::IovaWindow;
use super::map::{clear_window, MultiTce};
use super::rtas::{DdwRtas, Delay, PeAddress};
use super::window::{DmaWindow, WindowError};
use crate::addr::{BusAddr, PhysRange};
use crate::cmdline::DdwPolicy;
use crate::devices::DmaDevice;
use crate::devtree::dma_window::DdwExtensions;
use crate::devtree::phb::PhbInfo;
use crate::devtree::platform::Platform;
use crate::dma::{PeDma, WarmError};

/// The PE's default window as the device tree describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultWindowDesc {
    /// `ibm,dma-window` describes a usable window.
    Usable(DmaWindow),
    /// It describes a window this driver cannot use.
    Unusable(WindowError),
    /// The PE's node has no `ibm,dma-window`.
    Missing,
}

impl DefaultWindowDesc {
    /// The window, if usable.
    pub fn window(&self) -> Option<DmaWindow> {
        match self {
            DefaultWindowDesc::Usable(window) => Some(*window),
            _ => None,
        }
    }
}

/// Why a PE gets no Dynamic DMA Window at all (nothing is asked of the hypervisor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoDdw {
    /// `ddw=off`.
    PolicyOff,
    /// The PE's node is below the PHB (a per-device PE, as PowerVM describes some slots).
    NodeBelowPhb {
        /// The node.
        node: String,
    },
    /// The PE's node has no `ibm,ddw-applicable`.
    NotApplicable,
    /// No function of the PE has a driver that makes DMA.
    NoDmaDevice,
    /// The PE's node has no `ibm,dma-window`: PowerVM omits it for a PE it has frozen
    /// (Linux "powerpc/pseries/iommu: LPAR panics during boot up with a frozen PE"); the PE
    /// gets no DMA at all and its devices are stopped.
    NoDmaWindow,
    /// The PE's devices all have narrow DMA masks: the default window serves them.
    NoWideDevice {
        /// How many narrow devices.
        narrow: usize,
        /// How many of them drive more than 32 bits (a limited-addressing window would serve
        /// them, but the platform offers none).
        limited: usize,
    },
}

impl fmt::Display for NoDdw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoDdw::PolicyOff => write!(f, "ddw=off on the kernel command line"),
            NoDdw::NodeBelowPhb { node } => {
                write!(f, "the PE node {node} is below the PHB; per-device PEs are not handled yet")
            }
            NoDdw::NotApplicable => {
                write!(f, "the PE node has no ibm,ddw-applicable (the platform offers no DDW)")
            }
            NoDdw::NoDmaDevice => write!(f, "no PCI function on this PHB has a driver that makes DMA"),
            NoDdw::NoDmaWindow => write!(
                f,
                "the PE node has no ibm,dma-window (PowerVM omits it for a frozen PE): no DMA, its devices are \
                 stopped"
            ),
            NoDdw::NoWideDevice { narrow, limited: 0 } => write!(
                f,
                "the PE's {narrow} device(s) drive fewer than 64 address bits; the default window serves them"
            ),
            NoDdw::NoWideDevice { narrow, limited } => write!(
                f,
                "the PE's {narrow} device(s) drive fewer than 64 address bits ({limited} of them more than 32) \
                 and ibm,ddw-extensions offers no limited-addressing mode; the default window serves them"
            ),
        }
    }
}

/// Everything one PE's DMA set-up needs, read from the platform.
#[derive(Clone, Debug)]
pub struct PeSetUp<'a> {
    /// The PHB the PE is on.
    pub phb: &'a PhbInfo,
    /// The PE's node.
    pub node: String,
    /// The default window.
    pub default: DefaultWindowDesc,
    /// Whether the multi-TCE hcalls exist.
    pub multi_tce: MultiTce,
    /// The PE's RTAS address, or why no DDW is attempted.
    pub ddw: Result<PeAddress, NoDdw>,
    /// The policy the request follows.
    pub policy: DdwPolicy,
    /// All of the platform, for the hot-plug maximum.
    pub platform: &'a Platform,
    /// The RAM a direct DDW maps: the boot tree's ([`Platform::memory`]) by default; at run
    /// time what memory DLPAR has left ([`crate::dlpar::memory::Memory::present`]).
    pub ram: &'a [PhysRange],
    /// Devices of the PE that keep the default window for their narrow masks.
    pub narrow_devices: u32,
    /// Bus ranges no window may hand out.
    pub iova_holes: Vec<(BusAddr, u64)>,
    /// A cap on the DDW's size (log2 bytes), from `ddw-max=`.
    pub max_window_shift: Option<u32>,
    /// Full 64-bit addressing, or limited addressing for devices of fewer bits.
    pub addressing: Addressing,
}

/// The nearest node at or above `device_path` (inside `phb`) carrying `ibm,dma-window`.
fn pe_node(phb: &PhbInfo, device_path: &str) -> String {
    let mut at = device_path;
    while at.len() > phb.path.len() && at.starts_with(phb.path.as_str()) {
        if phb.children.iter().any(|n| n.path == at && n.has_dma_window) {
            return String::from(at);
        }
        match at.rfind('/') {
            Some(cut) => at = &at[..cut],
            None => break,
        }
    }
    phb.path.clone()
}

impl<'a> PeSetUp<'a> {
    /// The set-up of the PE on `phb` whose DMA devices are `devices`, under `policy`.
    pub fn for_phb(
        platform: &'a Platform,
        phb: &'a PhbInfo,
        devices: &[DmaDevice],
        policy: DdwPolicy,
    ) -> PeSetUp<'a> {
        let first_path = devices.iter().find_map(|d| {
            phb.children
                .iter()
                .find(|n| n.bus == d.bdf.bus && n.device == d.bdf.device && n.function == d.bdf.function)
                .map(|n| n.path.as_str())
        });
        let node = first_path.map_or_else(|| phb.path.clone(), |path| pe_node(phb, path));
        let default = match phb.dma_window.as_ref().map(DmaWindow::from_default) {
            Some(Ok(window)) => DefaultWindowDesc::Usable(window),
            Some(Err(error)) => DefaultWindowDesc::Unusable(error),
            None => DefaultWindowDesc::Missing,
        };
        // Devices of 33 to 63 bits get a limited-addressing window where the platform offers
        // one (and no 64-bit device asks for a full one); the window then serves the narrowest
        // of them, and only devices of 32 bits or fewer keep needing the default window.
        let limited_bits = devices.iter().map(|d| d.driver.dma_mask_bits).filter(|&b| b > 32 && b < 64).min();
        let wide = devices.iter().find(|d| d.driver.is_64bit());
        let offers_limited = phb.ddw_extensions.as_ref().is_some_and(DdwExtensions::limited_addressing);
        let addressing = match (wide, limited_bits) {
            (None, Some(mask_bits)) if offers_limited => Addressing::Limited { mask_bits },
            _ => Addressing::Full,
        };
        let served_bits = match addressing {
            Addressing::Full => 64,
            Addressing::Limited { mask_bits } => mask_bits,
        };
        let narrow = devices.iter().filter(|d| d.driver.dma_mask_bits < served_bits).count();
        let limited = devices.iter().filter(|d| (33..64).contains(&d.driver.dma_mask_bits)).count();
        let ddw = if policy == DdwPolicy::Off {
            Err(NoDdw::PolicyOff)
        } else if node != phb.path {
            Err(NoDdw::NodeBelowPhb { node: node.clone() })
        } else if default == DefaultWindowDesc::Missing {
            Err(NoDdw::NoDmaWindow)
        } else if phb.ddw_applicable.is_none() {
            Err(NoDdw::NotApplicable)
        } else if devices.is_empty() {
            Err(NoDdw::NoDmaDevice)
        } else if wide.is_none() && addressing == Addressing::Full {
            Err(NoDdw::NoWideDevice { narrow, limited })
        } else {
            // The DDW calls take the address of a device of the PE (Linux `query_ddw`:
            // "retrieve them from the pci device, not the node with the dma-window property").
            let first = devices.first().map_or(0, |d| d.bdf.config_addr(0));
            Ok(PeAddress { config_addr: first, buid: phb.buid })
        };
        PeSetUp {
            phb,
            node,
            default,
            multi_tce: platform.multi_tce(),
            ddw,
            policy,
            platform,
            ram: &platform.memory,
            narrow_devices: narrow as u32,
            iova_holes: phb.iova_holes(),
            max_window_shift: None,
            addressing,
        }
    }

    /// The PE's windows before any DDW: the default window, if usable, with a fresh allocator
    /// that never hands out the holes.
    pub fn initial_dma(&self) -> PeDma {
        let default =
            self.default.window().map(|w| IovaWindow::with_holes(w, self.multi_tce, &self.iova_holes));
        PeDma { default, ddw: None }
    }

    /// The request for the DDW, given the PE's current windows (whose default window may hold
    /// live mappings), or `None` when no DDW is attempted.
    pub fn request(&self, dma: &PeDma) -> Option<PeRequest<'_>> {
        let default = dma.default.as_ref().map(|d| DefaultWindow {
            window: *d.window(),
            live_pages: d.in_use(),
            narrow_devices: self.narrow_devices,
        });
        self.request_with(default)
    }

    /// The request for the DDW with `default` as the default window's state.
    fn request_with(&self, default: Option<DefaultWindow>) -> Option<PeRequest<'_>> {
        let pe = *self.ddw.as_ref().ok()?;
        let single_window = match self.policy.forces_single_window() {
            true => SingleWindowPath::Always,
            false => SingleWindowPath::WhenNoneFree,
        };
        Some(PeRequest {
            pe,
            extensions: self.phb.ddw_extensions.as_ref(),
            ram: self.ram,
            ram_end: self.platform.max_possible_ram_addr(),
            device_mask_bits: 64,
            addressing: self.addressing,
            multi_tce: self.multi_tce,
            default,
            single_window,
            max_window_shift: self.max_window_shift,
            iova_holes: &self.iova_holes,
        })
    }
}

/// Whether this is the first set-up since the machine started, or a warm restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The windows are as the platform booted.
    Fresh,
    /// A previous kernel ran (kexec): it handed over `found` for this PE, or nothing.
    Warm {
        /// What to do with a window found.
        policy: WarmPolicy,
        /// The previous kernel's handover for this PE.
        found: Option<Handover>,
    },
}

/// A warm take-over, for the report.
pub type TakeOverSummary = TakeOver<DdwFacts>;

/// What [`set_up`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetUpReport {
    /// The DDW step.
    pub outcome: SetUpOutcome,
    /// On a warm restart, the default window the previous kernel left in place, cleared before
    /// use (it may hold that kernel's entries; a reset's default window is cleared by the
    /// reset's own restore): `Some(Ok(()))` cleared, `Some(Err(_))` it would not clear and is
    /// not used, `None` nothing to clear (a fresh boot, or no default window kept).
    pub inherited_default: Option<Result<(), HcallError>>,
}

/// The DDW step of [`set_up`].
// Made once per PE and set-up, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetUpOutcome {
    /// No DDW was attempted.
    NoDdw(NoDdw),
    /// A fresh boot's set-up.
    Fresh(Result<DdwFacts, DdwError>),
    /// A warm restart with nothing handed over: the described default window was checked
    /// (and brought back by a reset if it was gone), then the set-up ran as on a fresh boot.
    WarmNoWindow(Result<(Option<Restore>, Result<DdwFacts, DdwError>), TakeOverError>),
    /// A warm restart that found `found`.
    WarmTakeOver {
        /// The handed-over window.
        found: Handover,
        /// What became of it.
        result: Result<TakeOverSummary, TakeOverError>,
    },
}

impl SetUpReport {
    /// The DDW in use afterwards, if any.
    pub fn ddw(&self) -> Option<&DdwFacts> {
        self.outcome.ddw()
    }

    /// The fresh set-up's error, if one ran and failed.
    pub fn ddw_error(&self) -> Option<&DdwError> {
        self.outcome.ddw_error()
    }

    /// The warm restart's error, if it failed.
    pub fn warm_error(&self) -> Option<WarmError> {
        self.outcome.warm_error()
    }
}

impl SetUpOutcome {
    /// The DDW in use afterwards, if any.
    pub fn ddw(&self) -> Option<&DdwFacts> {
        match self {
            SetUpOutcome::NoDdw(_) => None,
            SetUpOutcome::Fresh(result) | SetUpOutcome::WarmNoWindow(Ok((_, result))) => result.as_ref().ok(),
            SetUpOutcome::WarmNoWindow(Err(_)) => None,
            SetUpOutcome::WarmTakeOver { result, .. } => match result {
                Ok(TakeOver::Reused { ddw, .. }) => Some(ddw),
                Ok(TakeOver::Replaced { fresh, .. }) => fresh.as_ref().ok(),
                Err(_) => None,
            },
        }
    }

    /// The fresh set-up's error, if one ran and failed.
    pub fn ddw_error(&self) -> Option<&DdwError> {
        match self {
            SetUpOutcome::Fresh(Err(error)) | SetUpOutcome::WarmNoWindow(Ok((_, Err(error)))) => Some(error),
            SetUpOutcome::WarmTakeOver {
                result: Ok(TakeOver::Replaced { fresh: Err(error), .. }), ..
            } => Some(error),
            _ => None,
        }
    }

    /// The warm restart's error, if it failed.
    pub fn warm_error(&self) -> Option<WarmError> {
        match self {
            SetUpOutcome::WarmNoWindow(Err(error))
            | SetUpOutcome::WarmTakeOver { result: Err(error), .. } => {
                Some(WarmError::TakeOver(error.clone()))
            }
            SetUpOutcome::WarmNoWindow(Ok((_, Err(error))))
            | SetUpOutcome::WarmTakeOver {
                result: Ok(TakeOver::Replaced { fresh: Err(error), .. }), ..
            } => Some(WarmError::Fresh(error.clone())),
            _ => None,
        }
    }
}

/// Sets up the DMA windows of the PE `setup` describes, starting from its windows `dma` (as
/// [`PeSetUp::initial_dma`] gives them, perhaps with live mappings in the default window), and
/// settles the outcome into `dma`. Whatever the hypervisor answers, the PE is left on its
/// default window or its DDW, or the report says why neither is usable.
pub fn set_up(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    setup: &PeSetUp<'_>,
    start: Start,
    dma: &mut PeDma,
) -> SetUpReport {
    let (outcome, inherited_default) = match start {
        Start::Fresh => (fresh(hv, delay, setup, dma), None),
        Start::Warm { policy, found } => warm(hv, delay, setup, dma, policy, found),
    };
    SetUpReport { outcome, inherited_default }
}

fn no_ddw(setup: &PeSetUp<'_>) -> SetUpOutcome {
    SetUpOutcome::NoDdw(setup.ddw.clone().err().unwrap_or(NoDdw::NotApplicable))
}

fn fresh(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    setup: &PeSetUp<'_>,
    dma: &mut PeDma,
) -> SetUpOutcome {
    let Some(request) = setup.request(dma) else { return no_ddw(setup) };
    let result = enable_ddw(hv, delay, &request);
    let facts = result.as_ref().map(|ddw| ddw.facts()).map_err(Clone::clone);
    let _ = dma.settle(result);
    SetUpOutcome::Fresh(facts)
}

/// What clearing an inherited default window left.
struct Inherited {
    /// The report's account.
    cleared: Option<Result<(), HcallError>>,
    /// The window, if it would not clear: still there, possibly mapping the previous kernel's
    /// pages, so no device uses it, nothing may replace it and no DDW may overlap it.
    unusable: Option<DmaWindow>,
}

impl Inherited {
    const NONE: Inherited = Inherited { cleared: None, unusable: None };

    /// The request, with an unusable default window described as fully in use.
    fn request<'s>(&self, setup: &'s PeSetUp<'_>, dma: &PeDma) -> Option<PeRequest<'s>> {
        match self.unusable {
            Some(window) => setup.request_with(Some(DefaultWindow {
                window,
                live_pages: window.tce_count(),
                narrow_devices: setup.narrow_devices,
            })),
            None => setup.request(dma),
        }
    }
}

/// Clears the default window a previous kernel left in place (Linux `iommu_table_clear` does
/// the same for a table it inherits outside kdump); one that will not clear is not used.
fn clear_inherited_default(hv: &mut impl TceCalls, setup: &PeSetUp<'_>, dma: &mut PeDma) -> Inherited {
    let Some(window) = dma.default.as_ref().map(|d| *d.window()) else { return Inherited::NONE };
    let cleared = twice(|| clear_window(hv, &window, setup.multi_tce)).map(|_| ());
    let unusable = cleared.is_err().then_some(window);
    if unusable.is_some() {
        dma.default = None;
    }
    Inherited { cleared: Some(cleared), unusable }
}

fn warm(
    hv: &mut (impl DdwRtas + TceCalls),
    delay: &mut impl Delay,
    setup: &PeSetUp<'_>,
    dma: &mut PeDma,
    policy: WarmPolicy,
    found: Option<Handover>,
) -> (SetUpOutcome, Option<Result<(), HcallError>>) {
    let Some(request) = setup.request(dma) else {
        // No DDW is asked for, but the default window may still hold the previous kernel's
        // entries.
        return (no_ddw(setup), clear_inherited_default(hv, setup, dma).cleared);
    };
    match found {
        None => {
            let default = dma.default.take();
            let restore = match ensure_default(hv, delay, &request) {
                Ok(restore) => restore,
                Err(error) => return (SetUpOutcome::WarmNoWindow(Err(error)), None),
            };
            dma.default = default;
            // A default window brought back by a reset was cleared by it; one that was there
            // all along is cleared now.
            let inherited =
                if restore.is_none() { clear_inherited_default(hv, setup, dma) } else { Inherited::NONE };
            let Some(request) = inherited.request(setup, dma) else {
                return (no_ddw(setup), inherited.cleared);
            };
            let result = enable_ddw(hv, delay, &request);
            let facts = result.as_ref().map(|ddw| ddw.facts()).map_err(Clone::clone);
            let _ = dma.settle(result);
            (SetUpOutcome::WarmNoWindow(Ok((restore, facts))), inherited.cleared)
        }
        Some(found) => {
            // Next to a DDW (slot 1) the default window stayed in place and is cleared now; a
            // DDW in slot 0 had replaced it, and the reset that brings it back clears it.
            let inherited =
                if found.slot != 0 { clear_inherited_default(hv, setup, dma) } else { Inherited::NONE };
            let Some(request) = inherited.request(setup, dma) else {
                return (no_ddw(setup), inherited.cleared);
            };
            let default = dma.default.take();
            let result = take_over(hv, delay, &request, &found, policy);
            let summary = result.as_ref().map(TakeOver::facts).map_err(Clone::clone);
            let _ = dma.settle_take_over(&found, default, result);
            (SetUpOutcome::WarmTakeOver { found, result: summary }, inherited.cleared)
        }
    }
}
