//! A QEMU-7.2-like hypervisor model implementing [`TceCalls`] and [`DdwRtas`] for host tests.
//!
//! One PHB (index 0) with the boot-time default window and room for two windows, TCE tables as
//! maps from entry index to raw TCE (absent = 0), a log of every call and fault injection.
//! Behaviour follows ../shared/docs/papr-ddw-facts.md:
//! - §2.2/§7: default window LIOBN 0x80000000, bus 0, 1 GiB, 4 KiB pages; LIOBNs
//!   `0x80000000 | n`; query mask 0x107 for the default `pgsz` 0x1211000;
//! - §2.3 (QEMU `spapr_rtas_ddw.c`): query answers 2 − active windows and a largest block of
//!   2^31 (5 outputs) or 2^37 (6 outputs); create rejects a page shift missing from the mask or
//!   a window below one page with −3, more than 2^31 TCEs or no free window with −1, places the
//!   window at 0 when no window is active else at 2^59, and takes the first free LIOBN; remove
//!   of an unknown window is −3 and does not restore the default; reset restores it;
//! - §2.4 (QEMU `spapr_iommu.c` and KVM `book3s_64_vio.c`): IOBAs must lie inside the window
//!   and be page aligned, TCE addresses page aligned, else H_PARAMETER; H_PUT_TCE_INDIRECT
//!   rejects more than 512 entries and stops at the first bad entry leaving earlier ones
//!   written; H_STUFF_TCE checks the range and, with [`StuffLimit::Papr512`], answers H_P4
//!   above 512 entries as PAPR/PowerVM do (QEMU does not).
//!
//! [`TceCalls`]: drivers::iommu::hcall::TceCalls
//! [`DdwRtas`]: drivers::iommu::rtas::DdwRtas

mod rtas;
mod tce;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::vec::Vec;

use drivers::addr::{BusAddr, Liobn, PhysAddr};
use drivers::iommu::hcall::TceHcall;
use drivers::iommu::plan::PAGE_SIZE_BITS;
use drivers::iommu::rtas::DdwCall;
use drivers::iommu::tce::{Tce, TcePermission};

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
    PAGE_SIZE_BITS.iter().filter(|&&(_, shift)| pgsz & (1u64 << shift) != 0).map(|&(bit, _)| bit).sum()
}

/// How H_STUFF_TCE treats counts above 512.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StuffLimit {
    /// QEMU: no limit beyond the window's end.
    Qemu,
    /// PAPR / PowerVM: more than 512 entries is H_P4.
    Papr512,
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { buid: MODEL_BUID, page_size_mask: 0x107, stuff_limit: StuffLimit::Qemu, max_windows: 2 }
    }
}

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
            ModelCall::Rtas(DdwCall::Reset { .. }) => CallKind::Reset,
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
}

impl ModelWindow {
    fn new(n: u32, bus_base: u64, page_shift: u32, tce_count: u64) -> Self {
        Self {
            liobn: model_liobn(n),
            bus_base: BusAddr(bus_base),
            page_shift,
            tce_count,
            tces: BTreeMap::new(),
        }
    }

    fn default_window() -> Self {
        Self::new(0, 0, 12, DEFAULT_WINDOW_SIZE >> 12)
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
            windows: [Some(ModelWindow::default_window()), None],
            calls: Vec::new(),
            counts: [0; CallKind::ALL.len()],
            faults: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Adds a fault.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push(fault);
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
        let tce = Tce::from_raw(*window.tces.get(&(offset >> window.page_shift))?);
        let page_mask = (1u64 << window.page_shift) - 1;
        (!tce.is_clear())
            .then(|| (PhysAddr((tce.raw() & !page_mask) | (offset & page_mask)), tce.permission()))
    }

    /// Logs `call` and returns the fault injected for it, if any.
    fn record(&mut self, call: ModelCall) -> Option<Fault> {
        let kind = call.kind();
        self.calls.push(call);
        self.counts[kind as usize] += 1;
        let nth = self.counts[kind as usize];
        self.faults.iter().copied().find(|fault| fault.kind == kind && fault.nth == nth)
    }

    fn window_mut(&mut self, liobn: Liobn) -> Option<&mut ModelWindow> {
        self.windows.iter_mut().flatten().find(|window| window.liobn == liobn)
    }
}
