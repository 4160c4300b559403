//! The partition's hypervisor as the DDW driver sees it: the DDW RTAS calls of one PE's node
//! (tokens from `ibm,ddw-applicable` and `ibm,ddw-extensions`) plus the TCE hypercalls.
//!
//! Call layouts (LoPAR `sec_rtas_dma_window.xml`, ../shared/docs/papr-ddw-facts.md §2.3):
//! query (config_addr, BUID hi, BUID lo) → status, windows available, largest block (one
//! cell, or hi and lo with 6 outputs), page-size mask, migration mask; create (config_addr,
//! BUID hi, BUID lo, page shift, window shift) → status, LIOBN, bus address hi, lo; remove
//! (LIOBN) → status; reset (config_addr, BUID hi, BUID lo) → status.

use arch_ppc64::cpu;
use arch_ppc64::rtas::{Rtas, RtasStatus};
use arch_ppc64::tce::HvTce;
use drivers::addr::{BusAddr, Liobn};
use drivers::devtree::dma_window::DdwApplicable;
use drivers::iommu::{
    BusyWait, CreateResponse, DdwCall, DdwRtas, Delay, HcallError, PeAddress, QueryOutputs, QueryResponse,
    RtasError, Tce, TceCalls,
};

/// RTAS status used when the call could not be made at all (buffer too small, H_RTAS failed).
const NOT_CALLED: i32 = i32::MIN;

/// The hypervisor interfaces for one PE.
pub struct PeHypervisor {
    rtas: Rtas,
    tokens: DdwApplicable,
    reset_token: Option<u32>,
    tce: HvTce,
    /// Test knob (`ddw=single-fail`): the next create fails with -1 without calling RTAS.
    pub fail_next_create: bool,
}

impl PeHypervisor {
    /// The calls named by the PE node's `ibm,ddw-applicable` (and its reset extension).
    pub fn new(rtas: Rtas, tokens: DdwApplicable, reset_token: Option<u32>) -> Self {
        Self { rtas, tokens, reset_token, tce: HvTce, fail_next_create: false }
    }

    fn call(&self, token: u32, args: &[u32], rets: &mut [u32], what: DdwCall) -> Result<(), RtasError> {
        match self.rtas.call(token, args, rets) {
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
        self.call(self.tokens.query, &pe_args(pe), &mut rets[..n], DdwCall::Query { pe, outputs })?;
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
        if core::mem::take(&mut self.fail_next_create) {
            return Err(RtasError { call: what, status: -1 });
        }
        self.call(self.tokens.create, &[config, hi, lo, page_shift, window_shift], &mut rets, what)?;
        let bus_base = u64::from(rets[1]) << 32 | u64::from(rets[2]);
        Ok(CreateResponse { liobn: Liobn(rets[0]), bus_base: BusAddr(bus_base) })
    }

    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        self.call(self.tokens.remove, &[liobn.0], &mut [], DdwCall::Remove { liobn })
    }

    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        let what = DdwCall::Reset { pe };
        // Without the extension there is no reset call; report it as a parameter error.
        let token = self.reset_token.ok_or(RtasError { call: what, status: -3 })?;
        self.call(token, &pe_args(pe), &mut [], what)
    }
}

impl TceCalls for PeHypervisor {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        self.tce.put_tce(liobn, ioba, tce)
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        self.tce.put_tce_indirect(liobn, ioba, tces)
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        self.tce.stuff_tce(liobn, ioba, tce, count)
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<Tce, HcallError> {
        self.tce.get_tce(liobn, ioba)
    }

    fn sync(&mut self) {
        self.tce.sync();
    }
}

/// Busy waits spin on the timebase.
pub struct TimebaseDelay {
    /// Timebase ticks per second.
    pub hz: u64,
}

impl Delay for TimebaseDelay {
    fn wait(&mut self, wait: BusyWait) {
        let ms = match wait {
            BusyWait::Immediately => return,
            BusyWait::Milliseconds(ms) => u64::from(ms),
        };
        let start = cpu::timebase();
        let ticks = self.hz / 1000 * ms;
        while cpu::timebase().wrapping_sub(start) < ticks {
            core::hint::spin_loop();
        }
    }
}
