//! One PE's whole DMA set-up run against the model — the driver's own per-PE set-up
//! ([`drivers::iommu::set_up`], the function the kernel calls), built from a [`Platform`] as
//! the kernel builds it, then every device mapping a buffer, checking what the device reaches,
//! and unmapping it — and the invariants every outcome must satisfy whatever calls failed:
//! - every window the model holds is one the driver uses, or one the error names as not
//!   removable (no leaked window);
//! - the PE is left on its default window or on its DDW (single faults; a double fault may
//!   leave it without a window only when the error says the reset failed);
//! - every device can map a buffer (after one retry when the injected fault hit its own map
//!   call) and reaches exactly that buffer through the IOMMU;
//! - a failed map writes no entry and clears none but its own;
//! - no window holds an entry the driver does not account for: a direct DDW holds exactly
//!   RAM at base + physical, every other window only the buffers still mapped.
//!
//! The fault sweep (`tests/fault_sweep.rs`) and the fuzzer drive these.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use drivers::addr::{BusAddr, Liobn, PhysAddr, PhysRange};
use drivers::cmdline::DdwPolicy;
use drivers::devices::{DmaDevice, DriverDecl, EDU, VIRTIO_BLK};
use drivers::devtree::dma_window::{DdwApplicable, DdwExtensions, DmaWindowProp};
use drivers::devtree::hotplug::{HotplugMemory, HotplugSource};
use drivers::devtree::pci_node::PciNodeInfo;
use drivers::devtree::phb::{PciRange, PciSpace, PhbInfo};
use drivers::devtree::platform::Platform;
use drivers::devtree::rtas::RtasInfo;
use drivers::dma::{
    DeviceDma, DmaMapping, DmaMemory, DmaMode, DmaTranslation, MapBufferError, PeDma, WarmError,
};
use drivers::iommu::conformance::{hv_lines, PeConformance};
use drivers::iommu::ddw::{DdwError, DdwMapping};
use drivers::iommu::handover::{Handover, TakeOverError, WarmPolicy};
use drivers::iommu::pe::{set_up, PeSetUp, SetUpReport, Start};
use drivers::iommu::pe_report::Line;
use drivers::iommu::witness::Witness;
use drivers::iommu::{
    BufferError, BusyWait, CreateError, Delay, DmaDirection, DmaMask, DmaWindow, MultiTce, PeAddress,
    TcePermission,
};
use drivers::pci::Bdf;

use crate::{model_liobn, HypervisorModel, ModelConfig, MODEL_BUID};

/// The PE every scenario sets up (its first device is at 00:01.0).
pub const PE: PeAddress = PeAddress { config_addr: 0x800, buid: MODEL_BUID };

/// The PHB's node path.
const PHB_PATH: &str = "/pci@800000020000000";

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

/// Memory the model pretends a device reaches: an address and a length, no bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelMemory {
    /// The pretend guest-physical address.
    pub phys: PhysAddr,
    /// Its length.
    pub len: u64,
}

// SAFETY: the model's devices reach no real memory; the address and length never change.
unsafe impl DmaMemory for ModelMemory {
    fn phys(&self) -> PhysAddr {
        self.phys
    }

    fn len(&self) -> u64 {
        self.len
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
    /// `ddw=`.
    pub policy: DdwPolicy,
    /// The mask bits of the PE's first device (64: a virtio-blk; 33–63: a device that needs a
    /// limited-addressing window).
    pub first_device_bits: u32,
    /// A 28-bit device (like `edu`) shares the PE.
    pub narrow_device: bool,
    /// Early boot code keeps a buffer mapped in the default window during the set-up.
    pub early_mapping: bool,
    /// The PHB's memory windows (bus address, size; 32-bit below 4 GiB, else 64-bit): no DMA
    /// window may hand them out.
    pub mmio: Vec<(u64, u64)>,
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
            extensions: Some(DdwExtensions { cells: config.extensions_cells() }),
            multi_tce: MultiTce::Available,
            policy: DdwPolicy::Auto,
            first_device_bits: 64,
            narrow_device: false,
            early_mapping: false,
            mmio: Vec::new(),
            warm_restart: None,
        }
    }

    /// QEMU's 32-bit MMIO window: 2 GiB at bus 2 GiB.
    pub fn with_qemu_mmio32(self) -> Self {
        Self { mmio: vec![(0x8000_0000, 0x8000_0000)], ..self }
    }

    /// The platform the kernel would read from this PE's device tree.
    pub fn platform(&self) -> Platform {
        let ram_top = self.ram.iter().map(PhysRange::end).max().unwrap_or(0);
        let hotplug = (self.ram_end > ram_top).then_some(HotplugMemory {
            max_addr: self.ram_end,
            lmb_size: 256 << 20,
            source: HotplugSource::DynamicMemoryV2,
        });
        let hypertas = match self.multi_tce {
            MultiTce::Available => vec![String::from("hcall-multi-tce")],
            MultiTce::Unavailable => Vec::new(),
        };
        let rtas = RtasInfo { tokens: Vec::new(), hypertas, rtas_size: None };
        let ranges = self
            .mmio
            .iter()
            .map(|&(bus, size)| PciRange {
                space: if bus.saturating_add(size) <= 1 << 32 { PciSpace::Mem32 } else { PciSpace::Mem64 },
                prefetchable: false,
                bus_addr: bus,
                cpu_addr: PhysAddr(0x2000_0000_0000 + bus),
                size,
            })
            .collect();
        let node = |name: &str, device: u8| PciNodeInfo {
            name: String::from(name),
            path: format!("{PHB_PATH}/{name}"),
            has_dma_window: false,
            depth: 0,
            bus: 0,
            device,
            function: 0,
            vendor_id: None,
            device_id: None,
            class_code: None,
        };
        let phb = PhbInfo {
            path: String::from(PHB_PATH),
            buid: self.config.buid,
            ranges,
            dma_window: Some(DmaWindowProp {
                liobn: model_liobn(0),
                bus_addr: BusAddr(0),
                size: self.config.default_window_size,
            }),
            ddw_applicable: Some(DdwApplicable { query: 0x20, create: 0x21, remove: 0x22 }),
            ddw_extensions: self.extensions.clone(),
            children: vec![node("scsi@1", 1), node("unknown@2", 2)],
            drc_indexes: Vec::new(),
            my_drc_index: None,
            interrupt_map: None,
        };
        Platform {
            memory: self.ram.clone(),
            hotplug,
            rtas: Some(rtas),
            phbs: vec![phb],
            ..Platform::default()
        }
    }

    /// The default window as `ibm,dma-window` describes it.
    pub fn default_window(&self) -> DmaWindow {
        let size = self.config.default_window_size;
        DmaWindow::with_size(model_liobn(0), BusAddr(0), 12, size)
            .expect("the profile's default window is valid")
    }

    /// The PE's devices: a virtio-blk at 00:01.0 (driving `first_device_bits` address bits) and,
    /// with `narrow_device`, an `edu` at 00:02.0.
    pub fn devices(&self) -> Vec<DmaDevice> {
        let first: &'static DriverDecl = if self.first_device_bits == VIRTIO_BLK.dma_mask_bits {
            &VIRTIO_BLK
        } else {
            // A model-only device of another width; leaked once per scenario (test code).
            std::boxed::Box::leak(std::boxed::Box::new(DriverDecl {
                dma_mask_bits: self.first_device_bits,
                ..VIRTIO_BLK
            }))
        };
        let mut devices = vec![DmaDevice { bdf: Bdf { bus: 0, device: 1, function: 0 }, driver: first }];
        if self.narrow_device {
            devices.push(DmaDevice { bdf: Bdf { bus: 0, device: 2, function: 0 }, driver: &EDU });
        }
        devices
    }
}

/// What a device did.
#[derive(Debug)]
pub struct DeviceReport {
    /// The device's DMA mask bits.
    pub mask_bits: u32,
    /// Its mode, or why it has none.
    pub mode: Result<DmaMode, String>,
}

/// What a run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The hypervisor afterwards (its call log included).
    pub model: HypervisorModel,
    /// The DDW step's error, if it failed.
    pub error: Option<DdwError>,
    /// The first set-up's report.
    pub report: SetUpReport,
    /// The window the first set-up handed over, on a warm restart.
    pub found: Option<Handover>,
    /// The warm restart's report.
    pub warm_report: Option<SetUpReport>,
    /// The warm restart's error, if it failed.
    pub warm_error: Option<WarmError>,
    /// The PE's DMA state afterwards.
    pub pe: PeDma,
    /// Each device's mode.
    pub devices: Vec<DeviceReport>,
    /// Buffers still mapped because unmapping failed twice: (window, iova).
    pub kept_mapped: Vec<(Liobn, BusAddr)>,
    /// What the witness saw of the hypervisor, per set-up (the warm restart's second).
    pub conformance: Vec<PeConformance>,
    /// The `hv.*` lines rendered from it.
    pub hv: Vec<Line>,
    /// Positions (1-based, as `inject_at` counts) of the calls each set-up made.
    pub set_up_calls: Vec<core::ops::Range<usize>>,
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
fn probe_buffer(scenario: &Scenario, device: usize) -> ModelMemory {
    let first = scenario.ram.iter().find(|r| r.size >= 0x10_0000).copied();
    let base = first.map_or(0, |r| r.base.get());
    ModelMemory { phys: PhysAddr(base + 0x4_0000 + device as u64 * 0x1_0000 + 0x123), len: 0x2000 }
}

/// Runs `scenario`, letting `inject` arm faults on the fresh model first.
pub fn run(scenario: &Scenario, inject: impl FnOnce(&mut HypervisorModel)) -> Outcome {
    let mut model = HypervisorModel::new(scenario.config);
    inject(&mut model);
    let mut delay = CountingDelay::default();
    let platform = scenario.platform();
    let devices = scenario.devices();
    let setup = PeSetUp::for_phb(&platform, &platform.phbs[0], &devices, scenario.policy);
    let mut pe = setup.initial_dma();
    let mut log = RunLog::default();

    let early = scenario.early_mapping.then(|| {
        let early = DeviceDma {
            mode: pe.choose_mode(DmaMask::from_bits(32), DmaTranslation::Iommu).ok()?,
            mask: DmaMask::from_bits(32),
        };
        let memory = ModelMemory { phys: PhysAddr(0x1000), len: 0x1000 };
        early
            .map(&mut pe, &mut model, memory, DmaDirection::Bidirectional)
            .ok()
            .map(|mapping| (early, mapping))
    });
    let default_liobn = setup.default.window().map(|w| w.liobn());
    let mut set_up_calls = Vec::new();
    let before = model.calls().len();
    let mut witness = Witness::new(&mut model, default_liobn);
    let report = set_up(&mut witness, &mut delay, &setup, Start::Fresh, &mut pe);
    let mut conformance = vec![PeConformance::observe(0, "", &setup, &report, &witness.evidence)];
    set_up_calls.push(before + 1..model.calls().len() + 1);
    let error = report.ddw_error().cloned();

    if let Some(Some((early, mapping))) = early {
        if let Err(failure) = early.unmap(&mut pe, &mut model, mapping) {
            match early.unmap(&mut pe, &mut model, failure.mapping) {
                Ok(_) => {}
                Err(failure) => {
                    let (liobn, iova) = (mode_liobn(failure.mapping.mode()), failure.mapping.bus_addr());
                    match liobn {
                        Some(liobn) if pe.default.is_some() => log.kept_mapped.push((liobn, iova)),
                        _ => {
                            log.violations.push("the default window with a live mapping was given up".into())
                        }
                    }
                }
            }
        }
    }

    let (mut found, mut warm_error, mut warm_report) = (None, None, None);
    if let Some(policy) = scenario.warm_restart {
        // The next kernel knows the device tree and the handover, nothing else.
        found = pe.handover(PE);
        let mut next = setup.initial_dma();
        let before = model.calls().len();
        let mut witness = Witness::new(&mut model, default_liobn);
        if let Some(found) = found {
            witness = witness.inheriting(found.window.liobn(), found.slot);
        }
        let report = set_up(&mut witness, &mut delay, &setup, Start::Warm { policy, found }, &mut next);
        conformance.push(PeConformance::observe(0, "warm restart", &setup, &report, &witness.evidence));
        set_up_calls.push(before + 1..model.calls().len() + 1);
        warm_error = report.warm_error();
        warm_report = Some(report);
        pe = next;
        // What the first set-up could not unmap is still in the hypervisor's tables, which
        // this set-up's allocators believe empty.
        log.inherited = log.kept_mapped.clone();
    }

    let mut reports = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        let mask = device.driver.dma_mask();
        let mode = pe.choose_mode(mask, DmaTranslation::Iommu);
        reports.push(DeviceReport {
            mask_bits: device.driver.dma_mask_bits,
            mode: mode.map_err(|e| format!("{e}")),
        });
        let Ok(mode) = mode else { continue };
        exercise_device(
            &mut model,
            &mut pe,
            &DeviceDma { mode, mask },
            probe_buffer(scenario, index),
            &mut log,
        );
    }
    let hv = hv_lines(&platform, &conformance);
    let RunLog { violations, reported, kept_mapped, reserved_in, .. } = log;
    Outcome {
        model,
        error,
        report,
        found,
        warm_report,
        warm_error,
        pe,
        devices: reports,
        kept_mapped,
        violations,
        reported,
        reserved_in,
        conformance,
        hv,
        set_up_calls,
    }
}

/// The window a TCE-mapped buffer of `mode` lives in.
fn mode_liobn(mode: DmaMode) -> Option<Liobn> {
    match mode {
        DmaMode::DdwIommu { liobn } | DmaMode::DefaultIommu { liobn } | DmaMode::Hybrid { liobn, .. } => {
            Some(liobn)
        }
        DmaMode::Bypass | DmaMode::Direct { .. } => None,
    }
}

#[derive(Default)]
struct RunLog {
    violations: Vec<String>,
    reported: Vec<String>,
    kept_mapped: Vec<(Liobn, BusAddr)>,
    reserved_in: Vec<Liobn>,
    /// Buffers the first set-up of a warm restart left mapped (`kept_mapped` then).
    inherited: Vec<(Liobn, BusAddr)>,
}

/// Every window's entries.
fn tables(model: &HypervisorModel) -> Vec<(Liobn, BTreeMap<u64, u64>)> {
    model.windows().map(|window| (window.liobn, window.tces.clone())).collect()
}

/// How a map that failed and reported its entries cleared changed the tables, if it did:
/// it may not write an entry, and may clear only entries no mapping of this set-up accounts
/// for (a previous set-up's, at IOVAs this set-up's allocator believes free).
fn failed_map_change(
    model: &HypervisorModel,
    before: &[(Liobn, BTreeMap<u64, u64>)],
    inherited: &[(Liobn, BusAddr)],
) -> Option<&'static str> {
    for window in model.windows() {
        let old = before.iter().find(|(liobn, _)| *liobn == window.liobn).map(|(_, tces)| tces);
        if window.tces.iter().any(|(index, raw)| old.and_then(|old| old.get(index)) != Some(raw)) {
            return Some("left TCEs behind");
        }
    }
    for (liobn, tces) in before {
        let Some(window) = model.window(*liobn) else { return Some("lost a window") };
        // A kept buffer is at most 4 pages, as in `stale_entries`.
        let first =
            |iova: BusAddr| iova.get().checked_sub(window.bus_base.get()).map(|o| o >> window.page_shift);
        let inherited_at = |index: u64| {
            inherited
                .iter()
                .any(|&(l, iova)| l == *liobn && first(iova).is_some_and(|k| index >= k && index < k + 4))
        };
        if tces.keys().any(|index| !window.tces.contains_key(index) && !inherited_at(*index)) {
            return Some("cleared TCEs it had not written");
        }
    }
    None
}

fn map_with_retry(
    model: &mut HypervisorModel,
    pe: &mut PeDma,
    device: &DeviceDma,
    memory: ModelMemory,
    log: &mut RunLog,
) -> Option<DmaMapping<ModelMemory>> {
    let mut memory = Some(memory);
    for attempt in 0..2 {
        let before = tables(model);
        let failure = match device.map(pe, model, memory.take()?, DmaDirection::Bidirectional) {
            Ok(mapping) => return Some(mapping),
            Err(failure) => failure,
        };
        let error = failure.error;
        memory = failure.memory;
        match error {
            MapBufferError::Iommu(BufferError::Hcall { cleanup: Some(_), error: failed }) => {
                log.reported.push(format!("{error}"));
                log.reserved_in.push(failed.call.liobn());
                if memory.is_some() {
                    log.violations
                        .push(format!("a map whose cleanup failed handed its memory back: {error}"));
                }
            }
            _ => {
                if memory.is_none() {
                    log.violations.push(format!("a map that cleaned up kept its memory: {error}"));
                }
                if let Some(change) = failed_map_change(model, &before, &log.inherited) {
                    log.violations.push(format!("a failed map {change}: {error}"));
                }
            }
        }
        if attempt == 1 {
            log.reported.push(format!("mask {:#x}: the device cannot map a buffer: {error}", device.mask.0));
        }
    }
    None
}

/// Maps the memory (retrying once), checks every byte's page translates to it, unmaps
/// (retrying once) and checks the IOVAs no longer reach memory.
fn exercise_device(
    model: &mut HypervisorModel,
    pe: &mut PeDma,
    device: &DeviceDma,
    memory: ModelMemory,
    log: &mut RunLog,
) {
    let (phys, len) = (memory.phys, memory.len);
    let Some(mapping) = map_with_retry(model, pe, device, memory, log) else { return };
    let bus = mapping.bus_addr();
    let revocable = mapping.revocable();
    if bus.get().checked_add(len - 1).is_none_or(|last| last > device.mask.highest()) {
        log.violations.push(format!("{bus} + {len:#x} is beyond the device's mask {:#x}", device.mask.0));
    }
    let reach = |model: &HypervisorModel, offset: u64| match device.mode {
        DmaMode::Bypass => Some((PhysAddr(bus.get() + offset), TcePermission::ReadWrite)),
        _ => model.translate(BusAddr(bus.get() + offset)),
    };
    for offset in [0, 0xfff, len / 2, len - 1] {
        let seen = reach(model, offset);
        if seen != Some((PhysAddr(phys.get() + offset), TcePermission::ReadWrite)) {
            log.violations
                .push(format!("{bus}+{offset:#x} reaches {seen:?}, not {:#x}", phys.get() + offset));
        }
    }
    let unmapped = match device.unmap(pe, model, mapping) {
        Ok(memory) => Ok(memory),
        Err(failure) => device.unmap(pe, model, failure.mapping),
    };
    match unmapped {
        Ok(memory) if memory.phys != phys => {
            log.violations.push(format!("unmap gave back {memory:?}, not {phys}"))
        }
        // A direct mapping (or a hybrid window's direct part) stays reachable: it is RAM's.
        Ok(_) if !revocable => {}
        Ok(_) => {
            for offset in [0, len - 1] {
                if let Some(seen) = model.translate(BusAddr(bus.get() + offset)) {
                    log.violations.push(format!("{bus}+{offset:#x} still reaches {seen:?} after unmap"));
                }
            }
        }
        Err(failure) => {
            let liobn = mode_liobn(failure.mapping.mode()).unwrap_or(model_liobn(0));
            log.kept_mapped.push((liobn, failure.mapping.bus_addr()));
        }
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
    if let Some(WarmError::TakeOver(TakeOverError::Stuck { window, .. })) = &outcome.warm_error {
        unremoved.push(*window);
    }
    let unclean = |e: Option<&DdwError>| matches!(e, Some(DdwError::AfterRemoval { restore, .. }) if !restore.is_clean());
    // A default window the warm restart could not clear is out of use, and reported so.
    let default_dropped =
        outcome.warm_report.as_ref().is_some_and(|r| matches!(r.inherited_default, Some(Err(_))));
    let restore_failed = unclean(outcome.error.as_ref())
        || unclean(warm_fresh)
        || default_dropped
        || matches!(
            outcome.warm_error,
            Some(WarmError::TakeOver(
                TakeOverError::Reset(_) | TakeOverError::NoDefault | TakeOverError::Stuck { .. }
            ))
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
    let direct = outcome
        .pe
        .ddw
        .as_ref()
        .filter(|d| matches!(d.mapping, DdwMapping::Direct | DdwMapping::Hybrid { .. }));
    for window in outcome.model.windows() {
        let kept: Vec<u64> = outcome
            .kept_mapped
            .iter()
            .filter(|(liobn, _)| *liobn == window.liobn)
            .filter_map(|(_, iova)| iova.get().checked_sub(window.bus_base.get()))
            .map(|offset| offset >> window.page_shift)
            .collect();
        let is_direct = direct.is_some_and(|d| d.window.liobn() == window.liobn);
        let mut unexplained = 0usize;
        let mut expected_direct = 0u64;
        for (&index, &raw) in &window.tces {
            let iova = window.bus_base.get() + (index << window.page_shift);
            let identity = is_direct
                && raw & 3 == 3
                && (raw & !0xfff) == iova - window.bus_base.get()
                && scenario.ram.iter().any(|r| {
                    let page = 1u64 << window.page_shift;
                    let phys = raw & !0xfff;
                    phys + page > r.base.get() && phys < r.end()
                });
            // A kept buffer's LIOBN may since name another window (the default window's, reused
            // by a DDW that replaced it): that window's RAM entries are RAM's, not the buffer's.
            if identity {
                expected_direct += 1;
            } else if !kept.iter().any(|&k| index >= k && index < k + 4) {
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
