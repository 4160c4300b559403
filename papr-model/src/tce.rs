//! The model's TCE hcalls: QEMU 7.2 `spapr_iommu.c` semantics with KVM's alignment checks.
//!
//! See the parent module for the facts relied on.

use std::vec::Vec;

use super::papr::hcall::{H_P4, H_PARAMETER};
use super::papr::{TCES_PER_CALL, TCE_READ, TCE_WRITE};
use super::{HypervisorModel, ModelCall, ModelWindow, StuffLimit};
use drivers::addr::{BusAddr, Liobn};
use drivers::iommu::hcall::{HcallError, TceCalls, TceHcall};
use drivers::iommu::tce::{ReadTce, Tce};

/// The entry index for `ioba`, or H_PARAMETER if it is outside the window or not page aligned.
fn entry_index(window: &ModelWindow, ioba: BusAddr) -> Result<u64, i64> {
    let page_mask = (1u64 << window.page_shift) - 1;
    if ioba < window.bus_base || ioba.get() >= window.end() || ioba.get() & page_mask != 0 {
        return Err(H_PARAMETER);
    }
    Ok((ioba.get() - window.bus_base.get()) >> window.page_shift)
}

/// H_PARAMETER unless the TCE's address (without permission bits) is page aligned.
fn check_tce(window: &ModelWindow, tce: Tce) -> Result<(), i64> {
    let page_mask = (1u64 << window.page_shift) - 1;
    let permission = TCE_READ | TCE_WRITE;
    if tce.raw() & !permission & page_mask != 0 {
        return Err(H_PARAMETER);
    }
    // KVM: a live TCE must point into guest memory.
    let address = tce.raw() & !page_mask;
    if tce.raw() & permission != 0 && window.guest_ram_end.is_some_and(|end| address >= end) {
        return Err(H_PARAMETER);
    }
    Ok(())
}

fn store(window: &mut ModelWindow, index: u64, tce: Tce) {
    if tce.raw() == 0 {
        window.tces.remove(&index);
    } else {
        window.tces.insert(index, tce.raw());
    }
}

impl HypervisorModel {
    /// Logs the call, applies an injected fault, finds the window, and runs `body` on it.
    fn tce_call<T>(
        &mut self,
        call: TceHcall,
        liobn: Liobn,
        body: impl FnOnce(&mut ModelWindow, Option<usize>) -> Result<T, i64>,
    ) -> Result<T, HcallError> {
        let fault = self.record(ModelCall::Hcall(call));
        let window = self.window_mut(liobn);
        let result = match (fault, window) {
            (Some(fault), Some(window)) => body(window, Some(fault.entries_written)).and(Err(fault.status)),
            (Some(fault), None) => Err(fault.status),
            (None, Some(window)) => body(window, None),
            (None, None) => Err(H_PARAMETER),
        };
        result.map_err(|status| HcallError { call, status })
    }
}

fn put_indirect(
    window: &mut ModelWindow,
    ioba: BusAddr,
    tces: &[Tce],
    limit: Option<usize>,
) -> Result<(), i64> {
    let page = 1u64 << window.page_shift;
    let stop = limit.unwrap_or(tces.len()).min(tces.len());
    for (i, &tce) in tces[..stop].iter().enumerate() {
        let entry_ioba = ioba.checked_add(i as u64 * page).ok_or(H_PARAMETER)?;
        let index = entry_index(window, entry_ioba)?;
        check_tce(window, tce)?;
        store(window, index, tce);
    }
    Ok(())
}

fn stuff_range(window: &mut ModelWindow, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), i64> {
    let first = entry_index(window, ioba)?;
    let end =
        first.checked_add(u64::from(count)).filter(|&end| end <= window.tce_count).ok_or(H_PARAMETER)?;
    check_tce(window, tce)?;
    if tce.raw() == 0 {
        let doomed: Vec<u64> = window.tces.range(first..end).map(|(&index, _)| index).collect();
        for index in doomed {
            window.tces.remove(&index);
        }
    } else {
        for index in first..end {
            window.tces.insert(index, tce.raw());
        }
    }
    Ok(())
}

impl TceCalls for HypervisorModel {
    fn put_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce) -> Result<(), HcallError> {
        self.tce_call(TceHcall::PutTce { liobn, ioba, tce }, liobn, |window, fault| {
            if fault.is_some() {
                return Ok(());
            }
            let index = entry_index(window, ioba)?;
            check_tce(window, tce)?;
            store(window, index, tce);
            Ok(())
        })
    }

    fn put_tce_indirect(&mut self, liobn: Liobn, ioba: BusAddr, tces: &[Tce]) -> Result<(), HcallError> {
        let call = TceHcall::PutTceIndirect { liobn, ioba, count: tces.len() };
        self.tce_call(call, liobn, |window, fault| {
            if tces.len() > TCES_PER_CALL {
                return Err(H_PARAMETER);
            }
            put_indirect(window, ioba, tces, fault)
        })
    }

    fn stuff_tce(&mut self, liobn: Liobn, ioba: BusAddr, tce: Tce, count: u32) -> Result<(), HcallError> {
        let call = TceHcall::StuffTce { liobn, ioba, tce, count };
        let limit = self.config.stuff_limit;
        self.tce_call(call, liobn, |window, fault| {
            if limit == StuffLimit::Papr512 && count as usize > TCES_PER_CALL {
                return Err(H_P4);
            }
            match fault {
                Some(_) => Ok(()),
                None => stuff_range(window, ioba, tce, count),
            }
        })
    }

    fn get_tce(&mut self, liobn: Liobn, ioba: BusAddr) -> Result<ReadTce, HcallError> {
        self.tce_call(TceHcall::GetTce { liobn, ioba }, liobn, |window, _| {
            let index = entry_index(window, ioba)?;
            Ok(ReadTce(window.tces.get(&index).copied().unwrap_or(0)))
        })
    }

    fn sync(&mut self) {
        let _ = self.record(ModelCall::Sync);
    }
}
