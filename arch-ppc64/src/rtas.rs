//! Run-Time Abstraction Services calls.
//!
//! The argument buffer is big-endian 32-bit cells `{token, nargs, nret, args…, rets…}`, 8-byte
//! aligned, below 4 GiB; rets[0] is the status (LoPAR "RTAS Argument Call Buffer"). Under Open
//! Firmware RTAS is instantiated and entered in big-endian real mode with r3 = buffer,
//! r4 = RTAS base. On the FDT-direct path there is no firmware to instantiate it, so calls go
//! through QEMU's private `H_RTAS` hypercall (0xF000, r4 = buffer) — QEMU-only, not PAPR
//! (../shared/docs/boot-facts.md, "RTAS"; QEMU hw/ppc/spapr_hcall.c h_rtas).

use crate::hcall::{hcall, opcode, HcallStatus};
use core::fmt;

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

/// An RTAS status word (rets[0]); an open set, so a newtype with named values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RtasStatus(pub i32);

impl RtasStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0);
    /// Hardware error.
    pub const HARDWARE_ERROR: Self = Self(-1);
    /// Busy: retry.
    pub const BUSY: Self = Self(-2);
    /// Parameter error.
    pub const PARAMETER_ERROR: Self = Self(-3);

    /// True for the extended-delay hints 9900..=9905 (wait 10^(x-9900) ms, then retry).
    pub const fn is_extended_delay(self) -> bool {
        self.0 >= 9900 && self.0 <= 9905
    }
}

impl fmt::Debug for RtasStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "success",
            -1 => "hardware error",
            -2 => "busy",
            -3 => "parameter error",
            -7 => "unexpected state change",
            9900..=9905 => "extended delay",
            _ => "unknown",
        };
        write!(f, "{} ({})", self.0, name)
    }
}

impl fmt::Display for RtasStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
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
    pub fn call(&self, token: u32, args: &[u32], rets: &mut [u32]) -> Result<RtasStatus, RtasCallError> {
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
                // buffer is on our stack below 4 GiB, 8-byte aligned, and outlives the call.
                unsafe { crate::firmware::call(addr, base, entry) };
            }
            RtasMethod::QemuHcall => {
                let mut hargs = [0u64; 9];
                hargs[0] = addr;
                hcall(opcode::KVMPPC_H_RTAS, hargs).status.to_result().map_err(RtasCallError::Hcall)?;
            }
        }
        let out = &buffer.0[3 + args.len()..3 + args.len() + nret];
        for (ret, cell) in rets.iter_mut().zip(&out[1..]) {
            *ret = u32::from_be(*cell);
        }
        Ok(RtasStatus(u32::from_be(out[0]) as i32))
    }
}
