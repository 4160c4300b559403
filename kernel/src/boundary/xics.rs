//! Interrupt sources of the platform's XICS routed to the boot processor, so that a wait for a
//! device ends on the device's own interrupt (as Linux's does) rather than on a timer: RTAS
//! `ibm,set-xive` (source, server, priority) and `ibm,int-on` route and unmask a source,
//! `ibm,int-off` and priority 0xff put it back (LoPAR "Interrupt Support"; QEMU
//! hw/intc/xics_spapr.c `rtas_set_xive`, `rtas_int_on`, `rtas_int_off`). The kernel takes
//! interrupts only inside `hcall::cede_for`; [`IntxLine::take`] then accepts the one that
//! ended the cede, lets the driver quieten the device and ends it.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use arch_ppc64::xics;
use drivers::devtree::platform::Platform;
use spin::Mutex;

use super::rtas::{Firmware, ValueCall};

/// The priority a routed source gets: any below 0xff is taken; Linux's XICS driver uses 5
/// (arch/powerpc/sysdev/xics `DEFAULT_PRIORITY`).
const PRIORITY: u32 = 5;
/// Priority 0xff: the source is never presented.
const MASKED: u32 = 0xff;

#[derive(Clone, Copy, Debug)]
struct Xics {
    firmware: Firmware,
    set_xive: u32,
    int_on: u32,
    int_off: u32,
    server: u32,
}

static XICS: Mutex<Option<Xics>> = Mutex::new(None);

/// Makes sources routable to the boot processor if the platform describes how (the RTAS
/// tokens and the processor's interrupt server number) and lets the processor take every
/// priority (`H_CPPR` 0xff); says what it found.
pub fn init(platform: &Platform, firmware: Firmware) -> Result<String, String> {
    let token = |name: &str| {
        platform.rtas.as_ref().and_then(|r| r.token(name)).ok_or_else(|| format!("/rtas has no {name}"))
    };
    let (set_xive, int_on, int_off) = (token("ibm,set-xive")?, token("ibm,int-on")?, token("ibm,int-off")?);
    let server = platform.cpus.interrupt_server.ok_or("the CPU node has no ibm,ppc-interrupt-server#s")?;
    xics::set_priority(0xff).map_err(|status| format!("H_CPPR(0xff) failed with status {status}"))?;
    *XICS.lock() = Some(Xics { firmware, set_xive, int_on, int_off, server });
    Ok(format!("XICS: sources routed to server {server} at priority {PRIORITY}"))
}

impl Xics {
    fn call(&self, call: ValueCall, name: &str, token: u32, args: &[u32]) -> Result<(), String> {
        match self.firmware.value_call(call, token, args, &mut []) {
            Ok(status) if status.0 == 0 => Ok(()),
            Ok(status) => Err(format!("{name}({:#x}) failed with status {status}", args[0])),
            Err(error) => Err(format!("{name}({:#x}) could not be called: {error:?}", args[0])),
        }
    }
}

/// One source routed to the boot processor while its device is driven; masked again when
/// dropped.
#[derive(Debug)]
pub struct IntxLine {
    xics: Xics,
    source: u32,
    wakes: AtomicU64,
}

impl IntxLine {
    /// Routes and unmasks `source`.
    pub fn route(source: u32) -> Result<Self, String> {
        let xics = (*XICS.lock()).ok_or("no interrupt controller to route through")?;
        xics.call(ValueCall::SetXive, "ibm,set-xive", xics.set_xive, &[source, xics.server, PRIORITY])?;
        if let Err(why) = xics.call(ValueCall::IntOn, "ibm,int-on", xics.int_on, &[source]) {
            let _ =
                xics.call(ValueCall::SetXive, "ibm,set-xive", xics.set_xive, &[source, xics.server, MASKED]);
            return Err(why);
        }
        Ok(Self { xics, source, wakes: AtomicU64::new(0) })
    }

    /// The source number.
    pub fn source(&self) -> u32 {
        self.source
    }

    /// How many waits this source ended.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// After a cede an external interrupt ended: accepts it (`H_XIRR`), lets `quieten`
    /// deassert the device's line (virtio: reading its ISR), then ends it (`H_EOI`). Another
    /// source, which no device the kernel drives should raise, is masked.
    pub fn take(&self, quieten: impl FnOnce()) {
        let Ok(xirr) = xics::accept() else { return };
        match xirr.source() {
            0 => return,
            source if source == self.source => {
                self.wakes.fetch_add(1, Ordering::Relaxed);
                quieten();
            }
            other => {
                let _ = self.xics.call(ValueCall::IntOff, "ibm,int-off", self.xics.int_off, &[other]);
            }
        }
        let _ = xics::end(xirr);
    }
}

impl Drop for IntxLine {
    fn drop(&mut self) {
        let xics = self.xics;
        let _ = xics.call(ValueCall::IntOff, "ibm,int-off", xics.int_off, &[self.source]);
        let _ =
            xics.call(ValueCall::SetXive, "ibm,set-xive", xics.set_xive, &[self.source, xics.server, MASKED]);
    }
}
