//! The model's DDW RTAS calls: QEMU 7.2 `spapr_rtas_ddw.c` semantics.
//!
//! See the parent module for the facts relied on.

use super::papr::rtas::{HARDWARE_ERROR as RTAS_HARDWARE_ERROR, PARAMETER_ERROR as RTAS_PARAMETER_ERROR};
use super::papr::{query_bit, MAX_TCE_COUNT_SHIFT};
use super::{HypervisorModel, ModelCall, ModelWindow, WindowBase, DMA64_WINDOW_BASE};
use drivers::addr::{BusAddr, Liobn};
use drivers::iommu::rtas::{
    CreateResponse, DdwCall, DdwRtas, PeAddress, QueryOutputs, QueryResponse, RtasError,
};

/// Where a window created in limited-addressing mode starts (LoPAR 2.13; Linux 67dfc11982f7).
pub const LIMITED_WINDOW_BASE: u64 = 1 << 32;

/// Largest block answered with 5 outputs (2^31 TCEs) and with 6 (2^37, "1<<(58−21)").
const LARGEST_BLOCK_32: u64 = 0x8000_0000;
const LARGEST_BLOCK_64: u64 = 1 << 37;

impl HypervisorModel {
    /// Logs the call, applies an injected fault, then runs `body`.
    fn rtas_call<T>(
        &mut self,
        call: DdwCall,
        body: impl FnOnce(&mut Self) -> Result<T, i32>,
    ) -> Result<T, RtasError> {
        let result = match self.record(ModelCall::Rtas(call)) {
            Some(fault) => Err(i32::try_from(fault.status).unwrap_or(RTAS_HARDWARE_ERROR)),
            None => body(self),
        };
        result.map_err(|status| RtasError { call, status })
    }

    fn check_pe(&self, pe: PeAddress) -> Result<(), i32> {
        if pe.buid == self.config.buid {
            Ok(())
        } else {
            Err(RTAS_PARAMETER_ERROR)
        }
    }

    fn active_windows(&self) -> usize {
        self.windows().count()
    }

    fn create_in_model(&mut self, page_shift: u32, window_shift: u32) -> Result<CreateResponse, i32> {
        let offered = query_bit(page_shift).is_some_and(|bit| self.config.page_size_mask & bit != 0);
        if !offered || window_shift < page_shift || window_shift > 63 {
            return Err(RTAS_PARAMETER_ERROR);
        }
        // QEMU computes the TCE count as a uint32: 2^32 and more truncate and fail.
        if window_shift - page_shift > MAX_TCE_COUNT_SHIFT {
            return Err(RTAS_HARDWARE_ERROR);
        }
        if self.active_windows() >= self.config.max_windows {
            return Err(RTAS_HARDWARE_ERROR);
        }
        let tce_count = 1u64 << (window_shift - page_shift);
        if self.config.tce_budget.is_some_and(|budget| tce_count > budget) {
            return Err(RTAS_HARDWARE_ERROR);
        }
        let bus_base = match self.config.window_base {
            _ if self.limited_mode => LIMITED_WINDOW_BASE,
            WindowBase::Qemu if self.active_windows() == 0 => 0,
            WindowBase::Qemu => DMA64_WINDOW_BASE,
            WindowBase::Fixed(base) => base,
        };
        let slot = match self.config.create_slot {
            super::SlotChoice::FirstFree => self.windows.iter().position(Option::is_none),
            super::SlotChoice::LastFree => self.windows.iter().rposition(Option::is_none),
        };
        let slot = slot.ok_or(RTAS_HARDWARE_ERROR)?;
        let window = ModelWindow::new(slot as u32, bus_base, page_shift, tce_count, &self.config);
        let liobn = window.liobn;
        self.windows[slot] = Some(window);
        Ok(CreateResponse { liobn, bus_base: BusAddr(bus_base) })
    }
}

impl DdwRtas for HypervisorModel {
    fn query(&mut self, pe: PeAddress, outputs: QueryOutputs) -> Result<QueryResponse, RtasError> {
        self.rtas_call(DdwCall::Query { pe, outputs }, |model| {
            model.check_pe(pe)?;
            let largest_block = match outputs {
                QueryOutputs::Five => LARGEST_BLOCK_32,
                QueryOutputs::Six => LARGEST_BLOCK_64,
            };
            let largest_block = model.config.tce_budget.map_or(largest_block, |b| b.min(largest_block));
            Ok(QueryResponse {
                windows_available: model.config.max_windows.saturating_sub(model.active_windows()) as u32,
                largest_block,
                page_size_mask: model.config.page_size_mask,
                migration_capable: 0,
            })
        })
    }

    fn create(
        &mut self,
        pe: PeAddress,
        page_shift: u32,
        window_shift: u32,
    ) -> Result<CreateResponse, RtasError> {
        self.rtas_call(DdwCall::Create { pe, page_shift, window_shift }, |model| {
            model.check_pe(pe)?;
            model.create_in_model(page_shift, window_shift)
        })
    }

    fn remove(&mut self, liobn: Liobn) -> Result<(), RtasError> {
        self.rtas_call(DdwCall::Remove { liobn }, |model| {
            let slot = model.windows.iter_mut().find(|slot| slot.as_ref().is_some_and(|w| w.liobn == liobn));
            let removed = match slot {
                Some(slot) => slot.take(),
                None => return Err(RTAS_PARAMETER_ERROR),
            };
            let was_default_slot = removed.as_ref().is_some_and(|w| w.liobn == super::model_liobn(0));
            if let Some(window) = removed.filter(|_| was_default_slot) {
                model.retained = window.tces;
            }
            if model.config.restores_default_on_last_remove
                && !was_default_slot
                && model.active_windows() == 0
            {
                model.windows[0] = Some(ModelWindow::default_window(&model.config));
            }
            Ok(())
        })
    }

    fn reset(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        self.rtas_call(DdwCall::Reset { pe }, |model| {
            model.check_pe(pe)?;
            let mut default = ModelWindow::default_window(&model.config);
            if model.config.reset_keeps_entries {
                // Whatever slot 0 held last: the live window's entries, else the removed one's.
                let mut kept = match model.windows[0].take() {
                    Some(window) => window.tces,
                    None => core::mem::take(&mut model.retained),
                };
                // The restored table has room for its own entries only.
                kept.retain(|&index, _| index < default.tce_count);
                default.tces = kept;
            }
            model.windows = [Some(default), None];
            model.limited_mode = false;
            Ok(())
        })
    }

    fn enable_limited_addressing(&mut self, pe: PeAddress) -> Result<(), RtasError> {
        self.rtas_call(DdwCall::LimitedAddressing { pe }, |model| {
            model.check_pe(pe)?;
            if !model.config.limited_addressing {
                return Err(RTAS_PARAMETER_ERROR);
            }
            model.limited_mode = true;
            Ok(())
        })
    }
}
