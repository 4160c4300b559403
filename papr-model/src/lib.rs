//! A model of a PAPR hypervisor's DDW RTAS calls and TCE hypercalls, implementing the
//! driver's [`TceCalls`] and [`DdwRtas`] for host tests.
//!
//! One PHB (index 0) with the boot-time default window, TCE tables as maps from entry index to
//! raw TCE (absent = 0), a log of every call and fault injection (by the n-th call of a kind,
//! [`Fault`], or by position in the whole call log, [`HypervisorModel::inject_at`]).
//!
//! Two [`Profile`]s:
//! - [`Profile::Qemu72`]: QEMU 7.2's `spapr_rtas_ddw.c` and `spapr_iommu.c`, quirks included;
//! - [`Profile::PowervmVf`]: a PowerVM SR-IOV virtual function (Linux `enable_ddw`'s
//!   "windows_available == 0" path): one window per PE (the query answers 0 while the default
//!   window exists), H_STUFF_TCE above 512 is H_P4 (Linux commit "powerpc/iommu: limit number
//!   of TCEs to 512 for H_STUFF_TCE hcall"), 64K pages (`page_size_mask` configurable), a TCE
//!   budget that caps the largest block so the window may be smaller than RAM, windows at bus
//!   2^59, a 2 GiB default window, and — after the Linux comment in
//!   `spapr_tce_take_ownership` that reset "doesn't clear the entries on the table" — a reset
//!   that brings the default window back with whatever slot 0's table last held.
//!
//! Behaviour follows QEMU 7.2 and LoPAR, with the constants of [`papr`] (the model's own, not
//! the driver's):
//! - QEMU `hw/ppc/spapr_pci.c` / `spapr_iommu.c`: default window LIOBN 0x80000000, bus 0,
//!   1 GiB, 4 KiB pages; LIOBNs `0x80000000 | n` (`SPAPR_PCI_LIOBN`); query mask 0x107 for the
//!   default `pgsz` 0x1211000;
//! - QEMU `hw/ppc/spapr_rtas_ddw.c`: query answers 2 − active windows and a largest block of
//!   2^31 (5 outputs) or 2^37 (6 outputs); create rejects a page shift missing from the mask or
//!   a window below one page with −3, more than 2^31 TCEs or no free window with −1, places the
//!   window at 0 when no window is active else at 2^59, and takes the first free LIOBN; remove
//!   of an unknown window is −3 and does not restore the default; reset restores it;
//! - QEMU `hw/ppc/spapr_iommu.c` and Linux `arch/powerpc/kvm/book3s_64_vio.c`: IOBAs must lie
//!   inside the window and be page aligned, TCE addresses page aligned, else H_PARAMETER;
//!   H_PUT_TCE_INDIRECT rejects more than 512 entries and stops at the first bad entry leaving
//!   earlier ones written; H_STUFF_TCE checks the range and, with [`StuffLimit::Papr512`],
//!   answers H_P4 above 512 entries as PAPR/PowerVM do (QEMU does not).
//!
//! [`TceCalls`]: drivers::iommu::hcall::TceCalls
//! [`DdwRtas`]: drivers::iommu::rtas::DdwRtas

pub mod papr;
mod rtas;
pub mod scenario;
mod tce;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::vec::Vec;

use drivers::addr::{BusAddr, Liobn, PhysAddr};
use drivers::iommu::hcall::TceHcall;
use drivers::iommu::rtas::DdwCall;
use drivers::iommu::tce::TcePermission;

/// LIOBN of window `n` on PHB 0 (`SPAPR_PCI_LIOBN(0, n)`).
pub const fn model_liobn(n: u32) -> Liobn {
    Liobn(0x8000_0000 | n)
}

/// BUID of PHB 0.
pub const MODEL_BUID: u64 = 0x800_0000_2000_0000;

/// The bus address of a second window (`dma64_win_addr`, 2^59).
pub const DMA64_WINDOW_BASE: u64 = 1 << 59;

/// Default window size (1 GiB) and page shift (4 KiB).
pub const DEFAULT_WINDOW_SIZE: u64 = 1 << 30;

/// Translates QEMU's `pgsz` property (bit n = 2^n bytes) into the query's page-size mask
/// (QEMU `spapr_page_mask_to_query_mask`).
pub fn query_mask_from_pgsz(pgsz: u64) -> u32 {
    papr::QUERY_PAGE_SIZES
        .iter()
        .filter(|&&(shift, _)| pgsz & (1u64 << shift) != 0)
        .map(|&(_, bit)| bit)
        .sum()
}

/// How H_STUFF_TCE treats counts above 512.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StuffLimit {
    /// QEMU: no limit beyond the window's end.
    Qemu,
    /// PAPR / PowerVM: more than 512 entries is H_P4.
    Papr512,
}

/// The hypervisors the model imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// QEMU 7.2 pseries (TCG or KVM): two windows per PE.
    Qemu72,
    /// A PowerVM SR-IOV virtual function: one window per PE.
    PowervmVf,
    /// A PowerVM dedicated adapter, from logs Linux developers posted: a 2 GiB default window
    /// of 4 KiB pages, query mask 0x103 (4K, 64K, 2M), a largest block of 2^24 TCEs, DDWs at
    /// bus 2^59, H_STUFF_TCE limited to 512.
    Powervm,
    /// QEMU 7.2 under KVM-HV: the TCE hcalls are handled in the host kernel, which also
    /// requires TCE addresses inside guest memory (`guest_ram_end`, [`KVM_GUEST_RAM`] by
    /// default: set it to the scenario's RAM end).
    KvmHv,
}

/// The guest memory the `kvm-hv` profile assumes unless told otherwise (4 GiB).
pub const KVM_GUEST_RAM: u64 = 4 << 30;

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 4] = [Profile::Qemu72, Profile::PowervmVf, Profile::Powervm, Profile::KvmHv];

    /// The profile's name as the issue and the docs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Qemu72 => "qemu-7.2",
            Profile::PowervmVf => "powervm-vf",
            Profile::Powervm => "powervm",
            Profile::KvmHv => "kvm-hv",
        }
    }

    /// The profile's settings.
    pub const fn config(self) -> ModelConfig {
        match self {
            Profile::Qemu72 => ModelConfig {
                buid: MODEL_BUID,
                page_size_mask: 0x107,
                stuff_limit: StuffLimit::Qemu,
                max_windows: 2,
                default_window_size: DEFAULT_WINDOW_SIZE,
                tce_budget: None,
                window_base: WindowBase::Qemu,
                reset_keeps_entries: false,
                guest_ram_end: None,
                restores_default_on_last_remove: true,
                create_slot: SlotChoice::FirstFree,
                limited_addressing: false,
            },
            Profile::KvmHv => ModelConfig { guest_ram_end: Some(KVM_GUEST_RAM), ..Profile::Qemu72.config() },
            Profile::PowervmVf => ModelConfig {
                buid: MODEL_BUID,
                page_size_mask: 0x3,
                stuff_limit: StuffLimit::Papr512,
                max_windows: 1,
                default_window_size: 2 << 30,
                tce_budget: Some(1 << 16),
                window_base: WindowBase::Fixed(DMA64_WINDOW_BASE),
                reset_keeps_entries: true,
                guest_ram_end: None,
                restores_default_on_last_remove: false,
                create_slot: SlotChoice::FirstFree,
                limited_addressing: false,
            },
            Profile::Powervm => ModelConfig {
                page_size_mask: 0x103,
                max_windows: 2,
                tce_budget: Some(1 << 24),
                ..Profile::PowervmVf.config()
            },
        }
    }
}

/// Where a created window starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowBase {
    /// QEMU: bus 0 when no window is active, else 2^59.
    Qemu,
    /// Always this bus address.
    Fixed(u64),
}

/// Model settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// The PHB's BUID.
    pub buid: u64,
    /// Page-size mask answered by query.
    pub page_size_mask: u32,
    /// H_STUFF_TCE count rule.
    pub stuff_limit: StuffLimit,
    /// Windows a PE may have at once (QEMU 2; a PowerVM SR-IOV VF 1).
    pub max_windows: usize,
    /// Size of the boot-time default window (4 KiB pages at bus 0).
    pub default_window_size: u64,
    /// Most TCEs a created window may have; the query's largest block never exceeds it.
    pub tce_budget: Option<u64>,
    /// Where created windows start.
    pub window_base: WindowBase,
    /// Whether reset restores the default window with the entries slot 0's table last held.
    pub reset_keeps_entries: bool,
    /// KVM-HV's in-kernel TCE handling (Linux arch/powerpc/kernel/iommu.c `iommu_tce_check_gpa`): TCE addresses must lie
    /// in guest memory, i.e. below this address; `None`: not checked (QEMU stores TCEs
    /// verbatim).
    pub guest_ram_end: Option<u64>,
    /// QEMU ≥ 7.1 ("spapr/ddw: Reset DMA when the last non-default window is removed"): when
    /// a window other than slot 0's is removed and none is left, the default window comes back
    /// (fresh). Slot 0's table keeps its "default" flag even when a DDW reuses it, so removing
    /// a DDW in slot 0 does not (the flag is never cleared in QEMU's code).
    pub restores_default_on_last_remove: bool,
    /// Which free table slot a create takes (QEMU walks its tables in an order it does not
    /// define).
    pub create_slot: SlotChoice,
    /// LoPAR 2.13's limited-addressing mode (`ibm,ddw-extensions` entry 3): the reset call with
    /// a fourth input of 1 switches it on, and windows created in it start at 4 GiB.
    pub limited_addressing: bool,
}

/// Which free table slot a create takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotChoice {
    /// The lowest.
    FirstFree,
    /// The highest.
    LastFree,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Profile::Qemu72.config()
    }
}

impl ModelConfig {
    /// `ibm,ddw-extensions` as the profile's firmware puts it in the device tree: the reset
    /// token (QEMU's is 0x2b), for 6-output queries entry 2 = 1, and with limited addressing
    /// entry 3 = 1.
    pub fn extensions_cells(&self) -> Vec<u32> {
        match self.limited_addressing {
            true => vec![3, RESET_TOKEN, 1, 1],
            false => vec![2, RESET_TOKEN, 1],
        }
    }
}

/// The reset call's token in [`ModelConfig::extensions_cells`].
pub const RESET_TOKEN: u32 = 0x2b;

/// The kind of a call, for counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// H_PUT_TCE.
    PutTce,
    /// H_PUT_TCE_INDIRECT.
    PutTceIndirect,
    /// H_STUFF_TCE.
    StuffTce,
    /// H_GET_TCE.
    GetTce,
    /// `sync`.
    Sync,
    /// `ibm,query-pe-dma-window`.
    Query,
    /// `ibm,create-pe-dma-window`.
    Create,
    /// `ibm,remove-pe-dma-window`.
    Remove,
    /// `ibm,reset-pe-dma-windows`.
    Reset,
}

impl CallKind {
    /// Every kind, in declaration order (`kind as usize` indexes this).
    pub const ALL: [CallKind; 9] = [
        CallKind::PutTce,
        CallKind::PutTceIndirect,
        CallKind::StuffTce,
        CallKind::GetTce,
        CallKind::Sync,
        CallKind::Query,
        CallKind::Create,
        CallKind::Remove,
        CallKind::Reset,
    ];
}

/// One recorded call with its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelCall {
    /// A TCE hcall.
    Hcall(TceHcall),
    /// `sync`.
    Sync,
    /// A DDW RTAS call.
    Rtas(DdwCall),
}

impl ModelCall {
    /// The call's kind.
    pub const fn kind(&self) -> CallKind {
        match self {
            ModelCall::Hcall(TceHcall::PutTce { .. }) => CallKind::PutTce,
            ModelCall::Hcall(TceHcall::PutTceIndirect { .. }) => CallKind::PutTceIndirect,
            ModelCall::Hcall(TceHcall::StuffTce { .. }) => CallKind::StuffTce,
            ModelCall::Hcall(TceHcall::GetTce { .. }) => CallKind::GetTce,
            ModelCall::Sync => CallKind::Sync,
            ModelCall::Rtas(DdwCall::Query { .. }) => CallKind::Query,
            ModelCall::Rtas(DdwCall::Create { .. }) => CallKind::Create,
            ModelCall::Rtas(DdwCall::Remove { .. }) => CallKind::Remove,
            ModelCall::Rtas(DdwCall::Reset { .. } | DdwCall::LimitedAddressing { .. }) => CallKind::Reset,
        }
    }
}

/// Makes the `nth` (1-based) call of `kind` fail with `status`. For H_PUT_TCE_INDIRECT the
/// first `entries_written` entries are stored first, as QEMU does before a bad entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Which calls.
    pub kind: CallKind,
    /// Which of them (1 = the first).
    pub nth: usize,
    /// Status returned (RTAS statuses are truncated to `i32`).
    pub status: i64,
    /// Entries written before failing (H_PUT_TCE_INDIRECT only).
    pub entries_written: usize,
}

/// One enabled window of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelWindow {
    /// Its LIOBN.
    pub liobn: Liobn,
    /// First bus address.
    pub bus_base: BusAddr,
    /// log2 of the page size.
    pub page_shift: u32,
    /// Number of entries.
    pub tce_count: u64,
    /// Non-zero entries by index.
    pub tces: BTreeMap<u64, u64>,
    /// KVM's rule: a TCE must point below this guest-physical address.
    pub guest_ram_end: Option<u64>,
}

impl ModelWindow {
    fn new(n: u32, bus_base: u64, page_shift: u32, tce_count: u64, config: &ModelConfig) -> Self {
        Self {
            liobn: model_liobn(n),
            bus_base: BusAddr(bus_base),
            page_shift,
            tce_count,
            tces: BTreeMap::new(),
            guest_ram_end: config.guest_ram_end,
        }
    }

    fn default_window(config: &ModelConfig) -> Self {
        Self::new(0, 0, 12, config.default_window_size >> 12, config)
    }

    /// One past the last bus address.
    pub fn end(&self) -> u64 {
        self.bus_base.get() + (self.tce_count << self.page_shift)
    }
}

/// The hypervisor model.
#[derive(Clone, Debug)]
pub struct HypervisorModel {
    config: ModelConfig,
    windows: [Option<ModelWindow>; 2],
    calls: Vec<ModelCall>,
    counts: [usize; CallKind::ALL.len()],
    faults: Vec<Fault>,
    position_faults: Vec<(usize, i64)>,
    /// Entries slot 0's table held when its window was removed (see `reset_keeps_entries`).
    retained: BTreeMap<u64, u64>,
    /// Whether limited-addressing mode is on.
    limited_mode: bool,
}

impl Default for HypervisorModel {
    fn default() -> Self {
        Self::new(ModelConfig::default())
    }
}

impl HypervisorModel {
    /// A freshly booted PHB: only the default window.
    pub fn new(config: ModelConfig) -> Self {
        Self {
            config,
            windows: [Some(ModelWindow::default_window(&config)), None],
            calls: Vec::new(),
            counts: [0; CallKind::ALL.len()],
            faults: Vec::new(),
            position_faults: Vec::new(),
            retained: BTreeMap::new(),
            limited_mode: false,
        }
    }

    /// A freshly booted PHB of `profile`.
    pub fn with_profile(profile: Profile) -> Self {
        Self::new(profile.config())
    }

    /// The settings.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Adds a fault.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Makes the call at `position` (1-based, over every call since the log was last cleared)
    /// fail with `status`, whatever its kind. H_PUT_TCE_INDIRECT then writes nothing.
    pub fn inject_at(&mut self, position: usize, status: i64) {
        self.position_faults.push((position, status));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> &[ModelCall] {
        &self.calls
    }

    /// Number of calls of `kind` so far.
    pub fn count(&self, kind: CallKind) -> usize {
        self.counts[kind as usize]
    }

    /// Forgets the call log (windows and faults stay).
    pub fn clear_log(&mut self) {
        self.calls.clear();
        self.counts = [0; CallKind::ALL.len()];
    }

    /// The enabled window with this LIOBN.
    pub fn window(&self, liobn: Liobn) -> Option<&ModelWindow> {
        self.windows.iter().flatten().find(|window| window.liobn == liobn)
    }

    /// All enabled windows.
    pub fn windows(&self) -> impl Iterator<Item = &ModelWindow> {
        self.windows.iter().flatten()
    }

    /// Number of non-zero entries over all windows.
    pub fn mapped_entries(&self) -> usize {
        self.windows().map(|window| window.tces.len()).sum()
    }

    /// What a device DMA to `iova` reaches: the physical address and the permission, or `None`
    /// when no window covers it or the entry is clear (QEMU `spapr_tce_translate_iommu`).
    pub fn translate(&self, iova: BusAddr) -> Option<(PhysAddr, TcePermission)> {
        let window = self.windows().find(|w| iova >= w.bus_base && iova.get() < w.end())?;
        let offset = iova.get() - window.bus_base.get();
        let raw = *window.tces.get(&(offset >> window.page_shift))?;
        let page_mask = (1u64 << window.page_shift) - 1;
        let permission = match (raw & papr::TCE_READ != 0, raw & papr::TCE_WRITE != 0) {
            (false, false) => return None,
            (true, false) => TcePermission::Read,
            (false, true) => TcePermission::Write,
            (true, true) => TcePermission::ReadWrite,
        };
        Some((PhysAddr((raw & !page_mask) | (offset & page_mask)), permission))
    }

    /// Logs `call` and returns the fault injected for it, if any.
    fn record(&mut self, call: ModelCall) -> Option<Fault> {
        let kind = call.kind();
        self.calls.push(call);
        self.counts[kind as usize] += 1;
        let nth = self.counts[kind as usize];
        let position = self.calls.len();
        let by_position = self.position_faults.iter().find(|&&(at, _)| at == position);
        by_position
            .map(|&(_, status)| Fault { kind, nth, status, entries_written: 0 })
            .or_else(|| self.faults.iter().copied().find(|fault| fault.kind == kind && fault.nth == nth))
    }

    fn window_mut(&mut self, liobn: Liobn) -> Option<&mut ModelWindow> {
        self.windows.iter_mut().flatten().find(|window| window.liobn == liobn)
    }
}
