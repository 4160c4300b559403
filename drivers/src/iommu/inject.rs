//! Failures injected on purpose (`ddw=single-fail`, `ddw=single-fail-map`), to exercise the
//! single-window path's recovery on real firmware. The injector sits above the
//! [`Witness`](super::witness::Witness), so the conformance report never blames the hypervisor
//! for them.

use super::hcall::{HcallError, TceCalls, TceHcall};
use super::rtas::{CreateResponse, DdwCall, DdwRtas, PeAddress, QueryOutputs, QueryResponse, RtasError};
use super::tce::{ReadTce, Tce};
use crate::addr::{BusAddr, Liobn};

/// H_HARDWARE, the status an injected hcall failure returns (LoPAR hcall return codes).
const H_HARDWARE: i64 = -1;

/// Which call of a set-up fails on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetUpFault {
    /// None: every call goes to the hypervisor.
    None,
    /// The first `ibm,create-pe-dma-window` answers −1 without calling RTAS.
    FailFirstCreate,
    /// The first H_PUT_TCE_INDIRECT answers H_HARDWARE without calling the hypervisor (the DDW
    /// exists, so the driver must remove it and bring the default window back).
    FailFirstMap,
}

/// Injects a [`SetUpFault`] once.
pub struct Inject<'a, H> {
    hv: &'a mut H,
    fault: SetUpFault,
}

impl<'a, H> Inject<'a, H> {
    /// Wraps `hv`.
    pub fn new(hv: &'a mut H, fault: SetUpFault) -> Self {
        Inject { hv, fault }
    }

    fn fires(&mut self, which: SetUpFault) -> bool {
        if self.fault == which {
            self.fault = SetUpFault::None;
            return true;
        }
        false
    }
}

impl<H: DdwRtas> DdwRtas for Inject<'_, H> {
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError> {
        self.hv.query(pe, outputs)
    }

    fn create(
        &mut self,
        pe: PeAddress,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<CreateResponse, RtasError> {
        if self.fires(SetUpFault::FailFirstCreate) {
            return Err(RtasError { call: DdwCall::Create { pe, page_shift, window_shift }, status: -1 });
        }
        self.hv.create(pe, page_shift, window_shift)
    }

    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        self.hv.remove(liobn)
    }

    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        self.hv.reset(pe)
    }

    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        self.hv.enable_limited_addressing(pe)
    }
}

impl<H: TceCalls> TceCalls for Inject<'_, H> {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        self.hv.put_tce(liobn, ioba, tce)
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        if self.fires(SetUpFault::FailFirstMap) {
            let call = TceHcall::PutTceIndirect { liobn, ioba, count: tces.len() };
            return Err(HcallError { call, status: H_HARDWARE });
        }
        self.hv.put_tce_indirect(liobn, ioba, tces)
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        self.hv.stuff_tce(liobn, ioba, tce, count)
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
        self.hv.get_tce(liobn, ioba)
    }

    fn sync(&mut self) {
        self.hv.sync();
    }
}
