//! RTAS calls over typed arguments.
//!
//! `arch_ppc64::rtas::Rtas::call` is `unsafe` because a call may read or write memory named
//! by its arguments. The calls this kernel makes with plain values — `power-off`,
//! `ibm,read-pci-config`, `ibm,write-pci-config` and the four DMA-window calls — go through
//! [`Firmware::value_call`]; `ibm,os-term`, which reads a message, through
//! [`Firmware::os_term`]. Layouts: LoPAR "RTAS Call Interface" and each call's definition.

use arch_ppc64::rtas::{Rtas, RtasCallError, RtasMethod, RtasStatus};

use super::memory::HeapPages;

/// Bytes an RTAS event log may take (`/rtas/rtas-error-log-max` under QEMU; LoPAR
/// `RTAS_ERROR_LOG_MAX`). QEMU ignores `check-exception`'s length and always writes a whole log.
pub const EVENT_LOG_BYTES: usize = 2048;
/// `ibm,configure-connector`'s work area: one 4 KiB page (QEMU `configure_connector_st` clamps
/// its writes to it).
pub const WORK_AREA_BYTES: usize = 4096;

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
    /// `get-sensor-state` (sensor token, index → state).
    GetSensorState,
    /// `set-indicator` (indicator token, index, value): for DRCs, isolation and allocation —
    /// memory or a device becomes the partition's or stops being it; the kernel maps hot-added
    /// memory for DMA only after this, and clears its TCEs before giving it back.
    SetIndicator,
    /// `ibm,set-xive` (source, server, priority): routes an interrupt source of the XICS.
    SetXive,
    /// `ibm,int-on` (source): unmasks a source.
    IntOn,
    /// `ibm,int-off` (source): masks a source.
    IntOff,
}

/// Heap memory below 4 GiB handed to an RTAS call that writes it (RTAS arguments are 32-bit
/// addresses): `check-exception`'s event buffer, `ibm,configure-connector`'s work area.
pub struct RtasBuffer {
    pages: HeapPages,
    len: usize,
}

impl RtasBuffer {
    /// `len` zeroed bytes, page-aligned, below 4 GiB; `None` if the heap cannot give them.
    pub fn new(len: usize) -> Option<Self> {
        let pages = HeapPages::zeroed(len, 4096)?;
        let end = pages.ptr().as_ptr() as usize + len;
        u32::try_from(end).ok()?;
        Some(Self { pages, len })
    }

    fn addr(&self) -> u32 {
        // Checked in `new`.
        self.pages.ptr().as_ptr() as usize as u32
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the pages are this buffer's own (`HeapPages`), `len` bytes long, initialised
        // (zeroed, then written only by RTAS calls or through `bytes_mut`).
        unsafe { core::slice::from_raw_parts(self.pages.ptr().as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the borrow exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.pages.ptr().as_ptr(), self.len) }
    }
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

    /// `check-exception(0x500, 0, mask, 0, buffer, len)` (LoPAR "check-exception"; QEMU
    /// hw/ppc/spapr_events.c `check_exception`): writes at most one event log matching `mask`
    /// into `buffer`. Status 0 means a log was written, 1 none was pending.
    pub fn check_exception(
        &self,
        token: u32,
        mask: u32,
        buffer: &mut RtasBuffer,
    ) -> Result<RtasStatus, RtasCallError> {
        if buffer.len < EVENT_LOG_BYTES {
            return Err(RtasCallError::TooManyCells);
        }
        let args = [0x500, 0, mask, 0, buffer.addr(), EVENT_LOG_BYTES as u32];
        // SAFETY: RTAS writes one event log (at most `rtas-error-log-max` = 2048 bytes) into
        // the buffer, which is this call's exclusive borrow of heap memory below 4 GiB of at
        // least that length; nothing else is written.
        unsafe { self.rtas.call(token, &args, &mut []) }
    }

    /// One `ibm,configure-connector` call on `work` (LoPAR "ibm,configure-connector"; QEMU
    /// hw/ppc/spapr_drc.c `rtas_ibm_configure_connector`): the caller puts the DRC index in
    /// word 0 before the first call and passes the area back unchanged after.
    pub fn configure_connector(
        &self,
        token: u32,
        work: &mut RtasBuffer,
    ) -> Result<RtasStatus, RtasCallError> {
        if work.len < WORK_AREA_BYTES {
            return Err(RtasCallError::TooManyCells);
        }
        // SAFETY: RTAS writes at most the 4 KiB work area, this call's exclusive borrow of
        // heap memory below 4 GiB (arg 1, the high half of the address, is 0).
        unsafe { self.rtas.call(token, &[work.addr(), 0], &mut []) }
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
