//! One PE's whole DMA set-up run against the model — DDW enablement, then every device mapping
//! a buffer, checking what the device reaches, and unmapping it — and the invariants every
//! outcome must satisfy whatever calls failed:
//! - every window the model holds is one the driver uses, or one the error names as not
//!   removable (no leaked window);
//! - the PE is left on its default window or on its DDW (single faults; a double fault may
//!   leave it without a window only when the error says the reset failed);
//! - every device can map a buffer (after one retry when the injected fault hit its own map
//!   call) and reaches exactly that buffer through the IOMMU;
//! - no window holds an entry the driver does not account for: a direct DDW holds exactly
//!   RAM at base + physical, every other window only the buffers still mapped.
//!
//! The fault sweep (`tests/fault_sweep.rs`) and the fuzzer drive these.

use std::format;
use std::string::String;
use std::vec::Vec;

use drivers::addr::{BusAddr, Liobn, PhysAddr, PhysRange};
use drivers::devtree::dma_window::DdwExtensions;
use drivers::dma::{DeviceDma, DmaHandle, MapBufferError, PeDma, WarmError};
use drivers::iommu::ddw::{enable_ddw, DdwError, DdwMapping, DefaultWindow, PeRequest};
use drivers::iommu::handover::{ensure_default, take_over, Handover, TakeOverError, WarmPolicy};
use drivers::iommu::{
    BufferError, BusyWait, CreateError, Delay, DmaDirection, DmaMask, DmaWindow, DynamicWindow, MultiTce,
    PeAddress, TcePermission,
};

use crate::{model_liobn, HypervisorModel, ModelConfig, MODEL_BUID};

/// The PE every scenario sets up.
pub const PE: PeAddress = PeAddress { config_addr: 0x800, buid: MODEL_BUID };

/// Counts busy waits instead of waiting.
#[derive(Debug, Default)]
pub struct CountingDelay {
    /// Waits asked for.
    pub waits: usize,
}

impl Delay for CountingDelay {
    fn wait(&mut self, _: BusyWait) {
        self.waits += 1;
    }
}

/// One PE's set-up.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Hypervisor settings.
    pub config: ModelConfig,
    /// RAM ranges.
    pub ram: Vec<PhysRange>,
    /// Highest possible RAM address (hot-plug included).
    pub ram_end: u64,
    /// `ibm,ddw-extensions`.
    pub extensions: Option<DdwExtensions>,
    /// Whether the multi-TCE hcalls may be used.
    pub multi_tce: MultiTce,
    /// `ddw=single`.
    pub force_single_window: bool,
    /// A 28-bit device (like `edu`) shares the PE.
    pub narrow_device: bool,
    /// Early boot code keeps a buffer mapped in the default window during the set-up.
    pub early_mapping: bool,
    /// Bus ranges a dynamic window must not hand out.
    pub iova_holes: Vec<(BusAddr, u64)>,
    /// Run the set-up a second time, as a kexec'd kernel would find things, with this policy
    /// for the window the first left.
    pub warm_restart: Option<WarmPolicy>,
}

impl Scenario {
    /// A PE on `config` with `ram`, the profile's extensions, multi-TCE and one 64-bit device.
    pub fn new(config: ModelConfig, ram: Vec<PhysRange>) -> Self {
        let ram_end = ram.iter().map(PhysRange::end).max().unwrap_or(0);
        Self {
            config,
            ram,
            ram_end,
            extensions: Some(DdwExtensions { cells: config.extensions_cells().to_vec() }),
            multi_tce: MultiTce::Available,
            force_single_window: false,
            narrow_device: false,
            early_mapping: false,
            iova_holes: Vec::new(),
            warm_restart: None,
        }
    }

    /// The DDW request for this scenario's PE, with `default` as its default window.
    pub fn request(&self, default: Option<DefaultWindow>) -> PeRequest<'_> {
        PeRequest {
            pe: PE,
            extensions: self.extensions.as_ref(),
            ram: &self.ram,
            ram_end: self.ram_end,
            device_mask_bits: 64,
            multi_tce: self.multi_tce,
            default,
            force_single_window: self.force_single_window,
            iova_holes: &self.iova_holes,
        }
    }

    /// The default window as `ibm,dma-window` describes it.
    pub fn default_window(&self) -> DmaWindow {
        let shift = 63 - self.config.default_window_size.leading_zeros();
        DmaWindow::new(model_liobn(0), BusAddr(0), 12, shift).expect("the profile's default window is valid")
    }
}

/// What a device did.
#[derive(Debug)]
pub struct DeviceReport {
    /// The device's DMA mask bits.
    pub mask_bits: u32,
    /// Its mode, or why it has none.
    pub mode: Result<drivers::dma::DmaMode, String>,
}

/// What a run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The hypervisor afterwards (its call log included).
    pub model: HypervisorModel,
    /// The DDW step's error, if it failed.
    pub error: Option<DdwError>,
    /// The window the first set-up handed over, on a warm restart.
    pub found: Option<Handover>,
    /// The warm restart's error, if it failed.
    pub warm_error: Option<WarmError>,
    /// The PE's DMA state afterwards.
    pub pe: PeDma,
    /// Each device's mode.
    pub devices: Vec<DeviceReport>,
    /// Buffers still mapped because unmapping failed twice: (window, iova).
    pub kept_mapped: Vec<(Liobn, BusAddr)>,
    /// Invariants broken during the run.
    pub violations: Vec<String>,
    /// Failures the driver reported honestly but a single fault must not cause: a device
    /// that could not map after its retry, a mapping whose cleanup failed.
    pub reported: Vec<String>,
    /// Windows where a failed map's cleanup failed too, so its IOVAs stay reserved with
    /// entries in them.
    pub reserved_in: Vec<Liobn>,
}

/// A buffer each device maps: three pages at an odd offset, inside the first RAM range.
fn probe_buffer(scenario: &Scenario, device: usize) -> (PhysAddr, u64) {
    let first = scenario.ram.iter().find(|r| r.size >= 0x10_0000).copied();
    let base = first.map_or(0, |r| r.base.get());
    (PhysAddr(base + 0x4_0000 + device as u64 * 0x1_0000 + 0x123), 0x2000)
}

/// Runs `scenario`, letting `inject` arm faults on the fresh model first.
pub fn run(scenario: &Scenario, inject: impl FnOnce(&mut HypervisorModel)) -> Outcome {
    let mut model = HypervisorModel::new(scenario.config);
    inject(&mut model);
    let mut delay = CountingDelay::default();
    let default_window = scenario.default_window();
    let mut pe = PeDma { default: Some(DynamicWindow::new(default_window, scenario.multi_tce)), ddw: None };
    let mut log = RunLog::default();

    let early = scenario.early_mapping.then(|| {
        let default = pe.default.as_mut().expect("set above");
        let mask = DmaMask::from_bits(32);
        default.map_buffer(&mut model, PhysAddr(0x1000), 0x1000, DmaDirection::Bidirectional, mask).ok()
    });
    let default = pe.default.as_ref().map(|d| DefaultWindow {
        window: *d.window(),
        live_pages: d.in_use(),
        narrow_devices: u32::from(scenario.narrow_device),
    });
    let request = scenario.request(default);
    let error = pe.settle(enable_ddw(&mut model, &mut delay, &request)).err();

    if let Some(Some(mapping)) = early {
        let default = pe.default.as_mut();
        match default.map(|d| d.unmap(&mut model, mapping)) {
            Some(Ok(())) => {}
            Some(Err(e)) => match pe.default.as_mut().map(|d| d.unmap(&mut model, e.mapping)) {
                Some(Ok(())) => {}
                Some(Err(e)) => log.kept_mapped.push((e.mapping.liobn(), e.mapping.iova())),
                None => log.violations.push("the early mapping lost its window".into()),
            },
            None => log.violations.push("the default window with a live mapping was given up".into()),
        }
    }

    let (mut found, mut warm_error) = (None, None);
    if let Some(policy) = scenario.warm_restart {
        // The next kernel knows the device tree and the handover, nothing else.
        found = pe.ddw.as_ref().map(|ddw| Handover::of(PE, ddw));
        let default = || Some(DynamicWindow::new(default_window, scenario.multi_tce));
        let mut next = PeDma::default();
        let request = scenario.request(Some(DefaultWindow {
            window: default_window,
            live_pages: 0,
            narrow_devices: u32::from(scenario.narrow_device),
        }));
        warm_error = match &found {
            Some(found) => {
                let result = take_over(&mut model, &mut delay, &request, found, policy);
                next.settle_take_over(found, default(), result).err()
            }
            None => match ensure_default(&mut model, &mut delay, &request) {
                Ok(_) => {
                    next.default = default();
                    next.settle(enable_ddw(&mut model, &mut delay, &request)).err().map(WarmError::Fresh)
                }
                Err(error) => Some(WarmError::TakeOver(error)),
            },
        };
        pe = next;
    }

    let mut devices = Vec::new();
    let masks: &[u32] = if scenario.narrow_device { &[64, 28] } else { &[64] };
    for (index, &bits) in masks.iter().enumerate() {
        let mask = DmaMask::from_bits(bits);
        let mode = pe.choose_mode(mask, true);
        devices.push(DeviceReport { mask_bits: bits, mode: mode.map_err(|e| format!("{e}")) });
        let Ok(mode) = mode else { continue };
        let device = DeviceDma { mode, mask };
        let (phys, len) = probe_buffer(scenario, index);
        exercise_device(&mut model, &mut pe, &device, phys, len, &mut log);
    }
    let RunLog { violations, reported, kept_mapped, reserved_in } = log;
    Outcome { model, error, found, warm_error, pe, devices, kept_mapped, violations, reported, reserved_in }
}

#[derive(Default)]
struct RunLog {
    violations: Vec<String>,
    reported: Vec<String>,
    kept_mapped: Vec<(Liobn, BusAddr)>,
    reserved_in: Vec<Liobn>,
}

fn map_with_retry(
    model: &mut HypervisorModel,
    pe: &mut PeDma,
    device: &DeviceDma,
    phys: PhysAddr,
    len: u64,
    log: &mut RunLog,
) -> Option<DmaHandle> {
    for attempt in 0..2 {
        let before = model.mapped_entries();
        let error = match device.map(pe, model, phys, len, DmaDirection::Bidirectional) {
            Ok(handle) => return Some(handle),
            Err(error) => error,
        };
        match error {
            MapBufferError::Iommu(BufferError::Hcall { cleanup: Some(_), error: failed }) => {
                log.reported.push(format!("{error}"));
                log.reserved_in.push(failed.call.liobn());
            }
            _ if model.mapped_entries() != before => {
                log.violations.push(format!("a failed map left TCEs behind: {error}"))
            }
            _ => {}
        }
        if attempt == 1 {
            log.reported.push(format!("mask {:#x}: the device cannot map a buffer: {error}", device.mask.0));
        }
    }
    None
}

/// Maps `[phys, phys+len)` (retrying once), checks every byte's page translates to it, unmaps
/// (retrying once) and checks the IOVAs no longer reach memory.
fn exercise_device(
    model: &mut HypervisorModel,
    pe: &mut PeDma,
    device: &DeviceDma,
    phys: PhysAddr,
    len: u64,
    log: &mut RunLog,
) {
    let Some(handle) = map_with_retry(model, pe, device, phys, len, log) else { return };
    let bus = handle.bus_addr();
    if bus.get().checked_add(len - 1).is_none_or(|last| last > device.mask.highest()) {
        log.violations.push(format!("{bus} + {len:#x} is beyond the device's mask {:#x}", device.mask.0));
    }
    let reach = |model: &HypervisorModel, offset: u64| match handle {
        DmaHandle::Fixed { .. } if matches!(device.mode, drivers::dma::DmaMode::Bypass) => {
            Some((PhysAddr(bus.get() + offset), TcePermission::ReadWrite))
        }
        _ => model.translate(BusAddr(bus.get() + offset)),
    };
    for offset in [0, 0xfff, len / 2, len - 1] {
        let seen = reach(model, offset);
        if seen != Some((PhysAddr(phys.get() + offset), TcePermission::ReadWrite)) {
            log.violations
                .push(format!("{bus}+{offset:#x} reaches {seen:?}, not {:#x}", phys.get() + offset));
        }
    }
    let unmapped = match device.unmap(pe, model, handle) {
        Ok(()) => Ok(()),
        Err(e) => device.unmap(pe, model, DmaHandle::Mapped(e.mapping)),
    };
    match unmapped {
        Ok(()) if matches!(device.mode, drivers::dma::DmaMode::Direct { .. }) => {}
        Ok(()) => {
            for offset in [0, len - 1] {
                if let Some(seen) = model.translate(BusAddr(bus.get() + offset)) {
                    log.violations.push(format!("{bus}+{offset:#x} still reaches {seen:?} after unmap"));
                }
            }
        }
        Err(e) => log.kept_mapped.push((e.mapping.liobn(), e.mapping.iova())),
    }
}

/// How strictly [`check`] judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// One fault: nothing may be lost.
    SingleFault,
    /// Several faults: losses are allowed only where the error reports them.
    Reported,
}

/// Every invariant `outcome` breaks (empty when all hold).
pub fn check(scenario: &Scenario, outcome: &Outcome, strictness: Strictness) -> Vec<String> {
    let mut broken = outcome.violations.clone();
    let pe = &outcome.pe;
    let model = &outcome.model;
    // Windows the driver knows about: in use, or named by the error as not removed.
    let mut known: Vec<Liobn> = Vec::new();
    known.extend(pe.default.as_ref().map(|d| d.window().liobn()));
    known.extend(pe.ddw.as_ref().map(|d| d.window.liobn()));
    let warm_fresh = match &outcome.warm_error {
        Some(WarmError::Fresh(error)) => Some(error),
        _ => None,
    };
    let mut unremoved: Vec<Liobn> =
        [outcome.error.as_ref(), warm_fresh].into_iter().flatten().filter_map(unremoved_by).collect();
    if let (Some(WarmError::TakeOver(TakeOverError::Remove(_))), Some(found)) =
        (&outcome.warm_error, outcome.found)
    {
        unremoved.push(found.window.liobn());
    }
    let unclean = |e: Option<&DdwError>| matches!(e, Some(DdwError::AfterRemoval { restore, .. }) if !restore.is_clean());
    let restore_failed = unclean(outcome.error.as_ref())
        || unclean(warm_fresh)
        || matches!(
            outcome.warm_error,
            Some(WarmError::TakeOver(TakeOverError::Reset(_) | TakeOverError::NoDefault))
        );
    let default_liobn = model_liobn(0);
    for window in model.windows() {
        let ok = known.contains(&window.liobn)
            || unremoved.contains(&window.liobn)
            // A default window that came back but could not be cleared is not used.
            || (restore_failed && window.liobn == default_liobn);
        if !ok {
            broken.push(format!("window {} is leaked: the driver does not use it", window.liobn));
        }
    }
    for liobn in &known {
        if model.window(*liobn).is_none() {
            broken.push(format!("the driver uses window {liobn}, which the hypervisor does not have"));
        }
    }
    if strictness == Strictness::SingleFault {
        if !unremoved.is_empty() || restore_failed {
            broken
                .push(format!("a single fault lost a window: {:?} {:?}", outcome.error, outcome.warm_error));
        }
        if pe.default.is_none() && pe.ddw.is_none() {
            broken.push("the PE has neither its default window nor a DDW".into());
        }
        broken.extend(outcome.reported.iter().map(|r| format!("a single fault caused: {r}")));
        if !outcome.kept_mapped.is_empty() {
            broken.push(format!("a single fault left buffers mapped: {:?}", outcome.kept_mapped));
        }
    } else if pe.default.is_none() && pe.ddw.is_none() && !restore_failed {
        broken.push(format!("the PE has no window and the error does not say so: {:?}", outcome.error));
    }
    for device in &outcome.devices {
        if let Err(why) = &device.mode {
            if strictness == Strictness::SingleFault || !restore_failed {
                broken.push(format!("the {}-bit device has no DMA: {why}", device.mask_bits));
            }
        }
    }
    let lost = |liobn: Liobn| unremoved.contains(&liobn) || (restore_failed && liobn == default_liobn);
    broken.extend(stale_entries(scenario, outcome, lost));
    broken
}

/// The window an error names as created but not removed.
fn unremoved_by(error: &DdwError) -> Option<Liobn> {
    match error {
        DdwError::Map { window, removal: Some(_), .. } => Some(window.liobn()),
        DdwError::Create(CreateError::BadResponse { response, removal: Some(_), .. }) => Some(response.liobn),
        DdwError::NoGain { created: Some(liobn), removal: Some(_), .. } => Some(*liobn),
        DdwError::AfterRemoval { cause, .. } => unremoved_by(cause),
        _ => None,
    }
}

/// Entries no mapping accounts for.
fn stale_entries(scenario: &Scenario, outcome: &Outcome, lost: impl Fn(Liobn) -> bool) -> Vec<String> {
    let mut broken = Vec::new();
    let direct = outcome.pe.ddw.as_ref().filter(|d| matches!(d.mapping, DdwMapping::Direct));
    for window in outcome.model.windows() {
        let kept: Vec<u64> = outcome
            .kept_mapped
            .iter()
            .filter(|(liobn, _)| *liobn == window.liobn)
            .map(|(_, iova)| (iova.get() - window.bus_base.get()) >> window.page_shift)
            .collect();
        let is_direct = direct.is_some_and(|d| d.window.liobn() == window.liobn);
        let mut unexplained = 0usize;
        let mut expected_direct = 0u64;
        for (&index, &raw) in &window.tces {
            if kept.iter().any(|&k| index >= k && index < k + 4) {
                continue;
            }
            let iova = window.bus_base.get() + (index << window.page_shift);
            let identity = is_direct
                && raw & 3 == 3
                && (raw & !0xfff) == iova - window.bus_base.get()
                && scenario.ram.iter().any(|r| {
                    let page = 1u64 << window.page_shift;
                    let phys = raw & !0xfff;
                    phys + page > r.base.get() && phys < r.end()
                });
            if identity {
                expected_direct += 1;
            } else {
                unexplained += 1;
            }
        }
        // A window the error reports as lost is out of use; its entries are reported with it.
        if unexplained > 0 && !outcome.reserved_in.contains(&window.liobn) && !lost(window.liobn) {
            broken
                .push(format!("window {} holds {unexplained} entries no mapping accounts for", window.liobn));
        }
        if is_direct {
            let page = 1u64 << window.page_shift;
            // Pages RAM touches (two ranges may share one).
            let pages: std::collections::BTreeSet<u64> = scenario
                .ram
                .iter()
                .filter(|r| r.size > 0)
                .flat_map(|r| r.base.get() / page..r.end().div_ceil(page))
                .collect();
            let want = pages.len() as u64;
            if expected_direct != want {
                broken.push(format!(
                    "direct window {} maps {expected_direct} RAM pages, RAM needs {want}",
                    window.liobn
                ));
            }
        }
    }
    broken
}
