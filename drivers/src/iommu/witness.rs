//! What the hypervisor actually answered during a PE's set-up: a pass-through over its DDW RTAS
//! calls and TCE hypercalls that keeps the evidence the conformance report
//! ([`super::conformance`]) states — the first query's offer, busy answers, failures, the
//! largest H_STUFF_TCE and H_PUT_TCE_INDIRECT counts, and whether the default window was back
//! before any reset after the last DDW went.
//!
//! Injected failures ([`super::inject`]) sit above the witness, so they are never reported as
//! the hypervisor's.

use alloc::vec::Vec;

use super::hcall::{HcallError, TceCalls};
use super::rtas::{BusyWait, CreateResponse, DdwRtas, PeAddress, QueryOutputs, QueryResponse, RtasError};
use super::tce::{ReadTce, Tce};
use crate::addr::{BusAddr, Liobn};

/// Failures kept per set-up (the rest are only counted).
const KEPT_FAILURES: usize = 8;

/// Busy answers to one call with one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusySeen {
    /// The call's name (`ibm,create-pe-dma-window`, …).
    pub call: &'static str,
    /// The busy status (−2 or 9900–9905).
    pub status: i32,
    /// How many times.
    pub count: u32,
}

/// Whether the default window came back by itself when the last DDW was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAfterRemove {
    /// H_GET_TCE on the default window succeeded after `removed` went and before any reset:
    /// the hypervisor restored it on its own.
    Restored {
        /// The DDW whose removal left no window.
        removed: Liobn,
    },
    /// H_GET_TCE on it failed: it stayed removed until a reset, as LoPAR describes.
    StayedRemoved {
        /// The DDW whose removal left no window.
        removed: Liobn,
    },
}

/// What the witness saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The first successful query's answer (the PE's offer).
    pub offer: Option<QueryResponse>,
    /// Busy answers, by call and status.
    pub busy: Vec<BusySeen>,
    /// RTAS failures other than busy (first few).
    pub rtas_failures: Vec<RtasError>,
    /// TCE hcall failures (first few).
    pub hcall_failures: Vec<HcallError>,
    /// All failures, kept or not.
    pub failure_count: u32,
    /// The largest H_STUFF_TCE count sent, and whether one that large succeeded.
    pub largest_stuff: Option<(u32, bool)>,
    /// The largest H_PUT_TCE_INDIRECT count sent.
    pub largest_indirect: Option<usize>,
    /// See [`DefaultAfterRemove`]; `None` if the case did not arise.
    pub default_after_remove: Option<DefaultAfterRemove>,
    /// Whether H_GET_TCE on the default window succeeded after a successful
    /// `ibm,reset-pe-dma-windows` (`None`: no reset, or it was not probed).
    pub default_after_reset: Option<bool>,
}

/// The pass-through. `default` is the PE's default window (`None` if it has none).
pub struct Witness<'a, H> {
    hv: &'a mut H,
    default: Option<Liobn>,
    /// What was seen so far.
    pub evidence: Evidence,
    /// Whether the default window is believed to exist.
    default_present: bool,
    /// DDWs created in this set-up (or inherited) and not removed. In table slot 0 a DDW has
    /// the default window's LIOBN (QEMU `spapr_tce_new_table` numbers LIOBNs by slot).
    live: Vec<Liobn>,
    /// The DDW whose removal left the PE with no window, until the default is probed.
    removed_last: Option<Liobn>,
    /// A reset succeeded and the default window has not been probed since.
    reset_pending: bool,
}

impl<'a, H> Witness<'a, H> {
    /// Watches `hv` for a PE whose default window is `default`.
    pub fn new(hv: &'a mut H, default: Option<Liobn>) -> Self {
        Witness {
            hv,
            default,
            evidence: Evidence::default(),
            default_present: default.is_some(),
            live: Vec::new(),
            removed_last: None,
            reset_pending: false,
        }
    }

    /// A warm restart's set-up: `liobn` in table `slot` was left by the previous kernel (in
    /// slot 0 it replaced the default window).
    pub fn inheriting(mut self, liobn: Liobn, slot: u32) -> Self {
        self.live.push(liobn);
        if slot == 0 {
            self.default_present = false;
        }
        self
    }

    fn rtas<T>(&mut self, answer: Result<T, RtasError>) -> Result<T, RtasError> {
        if let Err(error) = &answer {
            self.evidence.failure_count += 1;
            match BusyWait::for_status(error.status) {
                Some(_) => {
                    let call = error.call.name();
                    match self.evidence.busy.iter_mut().find(|b| b.call == call && b.status == error.status) {
                        Some(seen) => seen.count += 1,
                        None => self.evidence.busy.push(BusySeen { call, status: error.status, count: 1 }),
                    }
                }
                None if self.evidence.rtas_failures.len() < KEPT_FAILURES => {
                    self.evidence.rtas_failures.push(*error)
                }
                None => {}
            }
        }
        answer
    }

    fn hcall<T>(&mut self, answer: Result<T, HcallError>) -> Result<T, HcallError> {
        if let Err(error) = &answer {
            self.evidence.failure_count += 1;
            if self.evidence.hcall_failures.len() < KEPT_FAILURES {
                self.evidence.hcall_failures.push(*error);
            }
        }
        answer
    }
}

impl<H: DdwRtas> DdwRtas for Witness<'_, H> {
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError> {
        let answer = self.hv.query(pe, outputs);
        if let (Ok(offer), None) = (&answer, &self.evidence.offer) {
            self.evidence.offer = Some(*offer);
        }
        self.rtas(answer)
    }

    fn create(
        &mut self,
        pe: PeAddress,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<CreateResponse, RtasError> {
        let answer = self.hv.create(pe, page_shift, window_shift);
        if let Ok(response) = &answer {
            self.live.push(response.liobn);
        }
        self.rtas(answer)
    }

    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        let answer = self.hv.remove(liobn);
        if answer.is_ok() {
            match self.live.iter().position(|l| *l == liobn) {
                Some(i) => {
                    self.live.remove(i);
                    if !self.default_present && self.live.is_empty() && self.default.is_some() {
                        self.removed_last = Some(liobn);
                    }
                }
                None if Some(liobn) == self.default => self.default_present = false,
                None => {}
            }
        }
        self.rtas(answer)
    }

    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        let answer = self.hv.reset(pe);
        if answer.is_ok() {
            self.live.clear();
            self.removed_last = None;
            self.reset_pending = self.default.is_some();
        }
        self.rtas(answer)
    }

    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        let answer = self.hv.enable_limited_addressing(pe);
        self.rtas(answer)
    }
}

impl<H: TceCalls> TceCalls for Witness<'_, H> {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        let answer = self.hv.put_tce(liobn, ioba, tce);
        self.hcall(answer)
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        let largest = &mut self.evidence.largest_indirect;
        *largest = Some(largest.unwrap_or(0).max(tces.len()));
        let answer = self.hv.put_tce_indirect(liobn, ioba, tces);
        self.hcall(answer)
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        let answer = self.hv.stuff_tce(liobn, ioba, tce, count);
        let ok = answer.is_ok();
        self.evidence.largest_stuff = match self.evidence.largest_stuff {
            Some((largest, done)) if largest > count => Some((largest, done)),
            Some((largest, done)) if largest == count => Some((largest, done || ok)),
            _ => Some((count, ok)),
        };
        self.hcall(answer)
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
        let answer = self.hv.get_tce(liobn, ioba);
        if Some(liobn) != self.default || self.live.contains(&liobn) {
            return self.hcall(answer);
        }
        if core::mem::replace(&mut self.reset_pending, false) {
            self.evidence.default_after_reset = Some(answer.is_ok());
            self.default_present = answer.is_ok();
            return answer;
        }
        if let Some(removed) = self.removed_last.take() {
            self.evidence.default_after_remove = Some(match answer.is_ok() {
                true => DefaultAfterRemove::Restored { removed },
                false => DefaultAfterRemove::StayedRemoved { removed },
            });
        }
        if !self.default_present {
            // A probe of a window that is gone: failing is the expected answer.
            self.default_present = answer.is_ok();
            return answer;
        }
        self.hcall(answer)
    }

    fn sync(&mut self) {
        self.hv.sync();
    }
}
