//! The processor's side of the XICS interrupt controller, as a PAPR guest reaches it through
//! hypercalls (LoPAR "Interrupt Support"; QEMU hw/intc/xics_spapr.c `h_cppr`, `h_xirr`,
//! `h_eoi`). The kernel takes no interrupt outside `hcall::cede_for`: an external interrupt
//! that ends a cede is left pending there, then accepted here, its source quietened by the
//! device's driver, and ended.

use crate::hcall::{hcall_values, opcode, HcallStatus};

/// An accepted interrupt: the XIRR `H_XIRR` returned (the priority the processor had in the
/// top byte, the source number in the low 24 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xirr(pub u64);

impl Xirr {
    /// The interrupt source (0: none was pending; 2: an inter-processor interrupt).
    pub fn source(self) -> u32 {
        (self.0 & 0xff_ffff) as u32
    }
}

/// `H_CPPR`: the processor takes interrupts of a priority numerically below `priority`
/// (0xff: every priority; 0: none).
pub fn set_priority(priority: u8) -> Result<(), HcallStatus> {
    // SAFETY: a value; interrupts still reach the kernel only inside `hcall::cede_for`.
    unsafe { hcall_values(opcode::H_CPPR, &[u64::from(priority)]) }.status.to_result()
}

/// `H_XIRR`: accepts the most favoured pending interrupt.
pub fn accept() -> Result<Xirr, HcallStatus> {
    // SAFETY: no arguments, no memory; it changes only the presentation controller's state.
    let r = unsafe { hcall_values(opcode::H_XIRR, &[]) };
    r.status.to_result().map(|()| Xirr(r.outputs[0]))
}

/// `H_EOI`: ends an accepted interrupt (the processor's priority back to what it was).
pub fn end(xirr: Xirr) -> Result<(), HcallStatus> {
    // SAFETY: a value, as `accept` returned it.
    unsafe { hcall_values(opcode::H_EOI, &[xirr.0]) }.status.to_result()
}
