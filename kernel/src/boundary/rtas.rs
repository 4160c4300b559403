//! RTAS calls over typed arguments.
//!
//! `arch_ppc64::rtas::Rtas::call` is `unsafe` because a call may read or write memory named
//! by its arguments. The calls this kernel makes with plain values — `power-off`,
//! `ibm,read-pci-config`, `ibm,write-pci-config` and the four DMA-window calls — go through
//! [`Firmware::value_call`]; `ibm,os-term`, which reads a message, through
//! [`Firmware::os_term`]. Layouts: LoPAR "RTAS Call Interface" and each call's definition.

use arch_ppc64::rtas::{Rtas, RtasCallError, RtasMethod, RtasStatus};

/// The RTAS calls that take and return only values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCall {
    /// `power-off` (2 inputs: power-on masks).
    PowerOff,
    /// `ibm,read-pci-config` (config address, BUID hi, lo, size → value).
    ReadPciConfig,
    /// `ibm,write-pci-config` (config address, BUID hi, lo, size, value).
    WritePciConfig,
    /// `ibm,query-pe-dma-window`.
    QueryPeDmaWindow,
    /// `ibm,create-pe-dma-window`: a new, empty window.
    CreatePeDmaWindow,
    /// `ibm,remove-pe-dma-window`.
    RemovePeDmaWindow,
    /// `ibm,reset-pe-dma-windows`: the default window back (its old entries may come with it;
    /// the IOMMU driver clears it before use).
    ResetPeDmaWindows,
}

/// How the kernel reaches RTAS.
#[derive(Clone, Copy, Debug)]
pub struct Firmware {
    rtas: Rtas,
}

impl Firmware {
    /// RTAS as `method` reaches it.
    ///
    /// # Safety
    /// For `Instantiated`, the base and entry must come from a successful `instantiate-rtas`
    /// whose memory stays reserved; `QemuHcall` only under QEMU (FDT-direct boots).
    pub unsafe fn new(method: RtasMethod) -> Self {
        // SAFETY: the caller's contract is `Rtas::new`'s.
        Self { rtas: unsafe { Rtas::new(method) } }
    }

    /// How RTAS is entered.
    pub fn method(&self) -> RtasMethod {
        self.rtas.method()
    }

    /// Calls `token`, which the device tree names as `_call` (the call it is, and so the
    /// reason the call is sound), with `args`.
    pub fn value_call(
        &self,
        _call: ValueCall,
        token: u32,
        args: &[u32],
        rets: &mut [u32],
    ) -> Result<RtasStatus, RtasCallError> {
        // SAFETY: every `ValueCall` takes only values and writes no guest memory (LoPAR); the
        // DMA-window calls only change which windows exist — a created window is empty, and a
        // window brought back by a reset is cleared by the IOMMU driver before it is used —
        // and the token is the one the device tree gives for that call.
        unsafe { self.rtas.call(token, args, rets) }
    }

    /// `ibm,os-term` with `message`, which must end with a NUL byte and lie below 4 GiB (the
    /// argument is a 32-bit address); `Err(TooManyCells)` otherwise.
    pub fn os_term(&self, token: u32, message: &[u8]) -> Result<RtasStatus, RtasCallError> {
        let addr = u32::try_from(message.as_ptr() as usize).ok();
        let below_4g = u32::try_from(message.as_ptr() as usize + message.len()).is_ok();
        let (Some(addr), true, Some(0)) = (addr, below_4g, message.last()) else {
            return Err(RtasCallError::TooManyCells);
        };
        // SAFETY: RTAS reads the NUL-terminated message, which `message` borrows for the call
        // and which lies below 4 GiB (checked above); nothing is written.
        unsafe { self.rtas.call(token, &[addr], &mut []) }
    }
}
