//! The partition's hypervisor as the IOMMU driver sees it: the TCE hypercalls and the DDW RTAS
//! calls of one PE's node (tokens from `ibm,ddw-applicable` and `ibm,ddw-extensions`).
//!
//! Writing a TCE gives a device access to memory, so the adapter that writes them
//! ([`PeHypervisor`]) is created in one place only, [`set_up_pe`], and moved into the PE's
//! [`PeState`], whose hypervisor interface is private: from then on TCEs are written only by
//! the IOMMU driver, for memory mapped through [`drivers::dma::DmaMemory`] (owned by its
//! mapping) and, in a direct window, for all of RAM (the policy that 64-bit devices reach RAM
//! without a hypercall per buffer, as under Linux).
//!
//! Call layouts (LoPAR "ibm,query-pe-dma-window" … "ibm,reset-pe-dma-windows"): query
//! (config_addr, BUID hi, BUID lo) → status, windows available, largest block (one cell, or
//! hi and lo with 6 outputs), page-size mask, migration mask; create (config_addr, BUID hi,
//! BUID lo, page shift, window shift) → status, LIOBN, bus address hi, lo; remove (LIOBN) →
//! status; reset (config_addr, BUID hi, BUID lo) → status.

use arch_ppc64::rtas::RtasStatus;
use arch_ppc64::tce;
use drivers::addr::{BusAddr, Liobn};
use drivers::devtree::dma_window::DdwApplicable;
use drivers::dma::{share, PeState, SharedPe};
use drivers::iommu::inject::{Inject, SetUpFault};
use drivers::iommu::witness::{Evidence, Witness};
use drivers::iommu::{
    set_up, CreateResponse, DdwCall, DdwRtas, Delay, HcallError, PeAddress, PeSetUp, QueryOutputs,
    QueryResponse, ReadTce, RtasError, SetUpReport, Start, Tce, TceCalls, TceHcall,
};

use super::rtas::{Firmware, ValueCall};

/// RTAS status used when the call could not be made at all (buffer too small, H_RTAS failed).
const NOT_CALLED: i32 = i32::MIN;

/// The hypervisor interfaces for one PE: its DDW RTAS calls and the TCE hypercalls.
pub struct PeHypervisor {
    firmware: Firmware,
    tokens: DdwApplicable,
    reset_token: Option<u32>,
}

/// Sets up the PE `setup` describes (see [`drivers::iommu::set_up`]) and returns its DMA state,
/// which alone holds the PE's hypervisor adapter from now on, what happened, and what the
/// hypervisor answered (a [`Witness`] sits between the driver and the adapter, `fault` above
/// the witness).
pub fn set_up_pe(
    firmware: Firmware,
    setup: &PeSetUp<'_>,
    start: Start,
    fault: SetUpFault,
    delay: &mut impl Delay,
) -> (SharedPe<PeHypervisor>, SetUpReport, Evidence) {
    let tokens = setup.phb.ddw_applicable.unwrap_or(DdwApplicable { query: 0, create: 0, remove: 0 });
    let reset_token = setup.phb.ddw_extensions.as_ref().and_then(|e| e.reset_token());
    let mut hv = PeHypervisor { firmware, tokens, reset_token };
    let mut dma = setup.initial_dma();
    let mut witness = Witness::new(&mut hv, setup.default.window().map(|w| w.liobn()));
    if let Start::Warm { found: Some(found), .. } = &start {
        witness = witness.inheriting(found.window.liobn(), found.slot);
    }
    let report = set_up(&mut Inject::new(&mut witness, fault), delay, setup, start, &mut dma);
    let evidence = witness.evidence;
    (share(PeState::new(dma, hv)), report, evidence)
}

impl PeHypervisor {
    fn call(
        &self,
        call: ValueCall,
        token: u32,
        args: &[u32],
        rets: &mut [u32],
        what: DdwCall,
    ) -> Result<(), RtasError> {
        match self.firmware.value_call(call, token, args, rets) {
            Ok(RtasStatus::SUCCESS) => Ok(()),
            Ok(status) => Err(RtasError { call: what, status: status.0 }),
            Err(_) => Err(RtasError { call: what, status: NOT_CALLED }),
        }
    }
}

fn pe_args(pe: PeAddress) -> [u32; 3] {
    [pe.config_addr, (pe.buid >> 32) as u32, pe.buid as u32]
}

impl DdwRtas for PeHypervisor {
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError> {
        let mut rets = [0u32; 5];
        let n = outputs.count() as usize - 1;
        let what = DdwCall::Query { pe, outputs };
        self.call(ValueCall::QueryPeDmaWindow, self.tokens.query, &pe_args(pe), &mut rets[..n], what)?;
        Ok(match outputs {
            QueryOutputs::Five => QueryResponse {
                windows_available: rets[0],
                largest_block: u64::from(rets[1]),
                page_size_mask: rets[2],
                migration_capable: rets[3],
            },
            QueryOutputs::Six => QueryResponse {
                windows_available: rets[0],
                largest_block: u64::from(rets[1]) << 32 | u64::from(rets[2]),
                page_size_mask: rets[3],
                migration_capable: rets[4],
            },
        })
    }

    fn create(
        &mut self,
        pe: PeAddress,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<CreateResponse, RtasError> {
        let [config, hi, lo] = pe_args(pe);
        let mut rets = [0u32; 3];
        let what = DdwCall::Create { pe, page_shift, window_shift };
        let args = [config, hi, lo, page_shift, window_shift];
        self.call(ValueCall::CreatePeDmaWindow, self.tokens.create, &args, &mut rets, what)?;
        let bus_base = u64::from(rets[1]) << 32 | u64::from(rets[2]);
        Ok(CreateResponse { liobn: Liobn(rets[0]), bus_base: BusAddr(bus_base) })
    }

    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        let what = DdwCall::Remove { liobn };
        self.call(ValueCall::RemovePeDmaWindow, self.tokens.remove, &[liobn.0], &mut [], what)
    }

    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        let what = DdwCall::Reset { pe };
        // Without the extension there is no reset call; report it as a parameter error.
        let token = self.reset_token.ok_or(RtasError { call: what, status: -3 })?;
        self.call(ValueCall::ResetPeDmaWindows, token, &pe_args(pe), &mut [], what)
    }

    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        let what = DdwCall::LimitedAddressing { pe };
        let token = self.reset_token.ok_or(RtasError { call: what, status: -3 })?;
        let [config, hi, lo] = pe_args(pe);
        // LoPAR 2.13: the reset call with a fourth input of 1 (Linux `limited_dma_window`).
        self.call(ValueCall::ResetPeDmaWindows, token, &[config, hi, lo, 1], &mut [], what)
    }
}

impl TceCalls for PeHypervisor {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        let call = TceHcall::PutTce { liobn, ioba, tce };
        // SAFETY: only the IOMMU driver calls this, through the PE state that owns this
        // adapter (module docs), for memory its mapping owns or for RAM in a direct window.
        unsafe { tce::put_tce(liobn, ioba, tce.raw()) }
            .map_err(|status| HcallError { call, status: status.0 })
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        let call = TceHcall::PutTceIndirect { liobn, ioba, count: tces.len() };
        let mut raw = [0u64; drivers::iommu::MAX_TCES_PER_CALL];
        let Some(list) = raw.get_mut(..tces.len()) else {
            return Err(HcallError { call, status: arch_ppc64::hcall::HcallStatus::PARAMETER.0 });
        };
        for (slot, tce) in list.iter_mut().zip(tces) {
            *slot = tce.raw();
        }
        // SAFETY: as for `put_tce`, for every entry.
        unsafe { tce::put_tce_indirect(liobn, ioba, list) }
            .map_err(|status| HcallError { call, status: status.0 })
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        let call = TceHcall::StuffTce { liobn, ioba, tce, count };
        // SAFETY: as for `put_tce` (the driver stuffs only the clear entry).
        unsafe { tce::stuff_tce(liobn, ioba, tce.raw(), count) }
            .map_err(|status| HcallError { call, status: status.0 })
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
        let call = TceHcall::GetTce { liobn, ioba };
        tce::get_tce(liobn, ioba).map(ReadTce).map_err(|status| HcallError { call, status: status.0 })
    }

    fn sync(&mut self) {
        arch_ppc64::cpu::sync();
    }
}
