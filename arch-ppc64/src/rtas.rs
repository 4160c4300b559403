//! Run-Time Abstraction Services calls.
//!
//! The argument buffer is big-endian 32-bit cells `{token, nargs, nret, args…, rets…}`, 8-byte
//! aligned, below 4 GiB; rets[0] is the status (LoPAR "RTAS Argument Call Buffer"). Under Open
//! Firmware RTAS is instantiated and entered in big-endian real mode with r3 = buffer,
//! r4 = RTAS base. On the FDT-direct path there is no firmware to instantiate it, so calls go
//! through QEMU's private `H_RTAS` hypercall (0xF000, r4 = buffer) — QEMU-only, not PAPR
//! (QEMU hw/ppc/spapr_hcall.c `h_rtas`).
//!
//! A call is `unsafe`: what RTAS does is the token's business, and some calls read or write
//! memory named by their arguments (`ibm,os-term`'s message, `ibm,configure-connector`'s work
//! area) or change what devices may reach (the DMA-window calls). The kernel wraps each call
//! it makes in a typed, safe function that states why that call is sound.

use crate::hcall::{hcall_values, opcode, HcallStatus};
pub use papr_abi::rtas::RtasStatus;

/// Most arguments plus returns of any call this kernel makes.
pub const MAX_CELLS: usize = 16;

/// How RTAS is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtasMethod {
    /// Instantiated by Open Firmware's `instantiate-rtas`.
    Instantiated {
        /// RTAS private data area (r4).
        base: u64,
        /// Entry point.
        entry: u64,
    },
    /// QEMU's `H_RTAS` hypercall (FDT-direct boots).
    QemuHcall,
}

/// Why an RTAS call could not be made at all (as opposed to returning a status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtasCallError {
    /// Too many argument or return cells for the buffer.
    TooManyCells,
    /// The `H_RTAS` hypercall itself failed.
    Hcall(HcallStatus),
}

/// A way to call RTAS.
#[derive(Clone, Copy, Debug)]
pub struct Rtas {
    method: RtasMethod,
}

#[repr(C, align(8))]
struct ArgBuffer([u32; 3 + MAX_CELLS]);

impl Rtas {
    /// Wraps an RTAS entry method.
    ///
    /// # Safety
    /// For `Instantiated`, `base`/`entry` must come from a successful `instantiate-rtas`
    /// whose memory stays reserved; `QemuHcall` must only be used under QEMU.
    pub unsafe fn new(method: RtasMethod) -> Self {
        Self { method }
    }

    /// How calls are made.
    pub fn method(&self) -> RtasMethod {
        self.method
    }

    /// Calls `token` with `args`; fills `rets` with the return cells after the status and
    /// returns the status word.
    ///
    /// # Safety
    /// `token` must be a call of this RTAS, and what it does with `args` must be sound for the
    /// kernel: any argument that is an address must name memory valid for what the call does
    /// with it (reads, writes) for the whole call, and a call that changes which memory
    /// devices may reach must leave them reaching only memory their drivers own.
    pub unsafe fn call(
        &self,
        token: u32,
        args: &[u32],
        rets: &mut [u32],
    ) -> Result<RtasStatus, RtasCallError> {
        let nret = rets.len() + 1;
        if args.len() + nret > MAX_CELLS {
            return Err(RtasCallError::TooManyCells);
        }
        let mut buffer = ArgBuffer([0; 3 + MAX_CELLS]);
        let cells = &mut buffer.0;
        cells[0] = token.to_be();
        cells[1] = (args.len() as u32).to_be();
        cells[2] = (nret as u32).to_be();
        for (cell, arg) in cells[3..].iter_mut().zip(args) {
            *cell = arg.to_be();
        }
        let addr = cells.as_mut_ptr() as u64;
        match self.method {
            RtasMethod::Instantiated { base, entry } => {
                // SAFETY: base/entry come from instantiate-rtas (constructor contract); the
                // buffer is on our stack below 4 GiB, 8-byte aligned, and outlives the call;
                // the call's own effects are the caller's contract.
                unsafe { crate::firmware::call(addr, base, entry) };
            }
            RtasMethod::QemuHcall => {
                // SAFETY: QEMU's H_RTAS reads and writes only the argument buffer (on our stack,
                // valid for the call); the call's own effects are the caller's contract.
                unsafe { hcall_values(opcode::KVMPPC_H_RTAS, &[addr]) }
                    .status
                    .to_result()
                    .map_err(RtasCallError::Hcall)?;
            }
        }
        let out = &buffer.0[3 + args.len()..3 + args.len() + nret];
        for (ret, cell) in rets.iter_mut().zip(&out[1..]) {
            *ret = u32::from_be(*cell);
        }
        Ok(RtasStatus(u32::from_be(out[0]) as i32))
    }
}
