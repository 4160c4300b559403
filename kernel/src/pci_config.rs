//! PCI configuration space through RTAS `ibm,read-pci-config` / `ibm,write-pci-config`.
//!
//! In: (config_addr, BUID hi, BUID lo, size[, value]); out: (status[, value]). Size is 1, 2
//! or 4; the value is a plain number (RTAS swaps the little-endian config bytes). QEMU returns
//! status −1 for an absent device where LoPAR says "success with all ones": both mean "no
//! device". The legacy `read-pci-config` looks up BUID 0 on QEMU and always fails, so only the
//! `ibm,` variants are used (QEMU hw/ppc/spapr_pci.c `rtas_ibm_read_pci_config`,
//! `rtas_read_pci_config`).
//!
//! One [`RtasConfigSpace`] per PHB serves the scan and every driver on it; its clones share
//! one call counter.

use alloc::sync::Arc;
use arch_ppc64::rtas::RtasStatus;
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::pci::{Bdf, ConfigAccess, ConfigError, Width};

use crate::boundary::rtas::{Firmware, ValueCall};

/// Config-space access to one PHB.
#[derive(Clone)]
pub struct RtasConfigSpace {
    firmware: Firmware,
    read_token: u32,
    write_token: u32,
    buid: u64,
    calls: Arc<AtomicU64>,
}

impl RtasConfigSpace {
    /// Accesses the PHB with unit ID `buid` through the given tokens.
    pub fn new(firmware: Firmware, read_token: u32, write_token: u32, buid: u64) -> Self {
        Self { firmware, read_token, write_token, buid, calls: Arc::new(AtomicU64::new(0)) }
    }

    /// RTAS calls made through this PHB's accessors so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn size(width: Width) -> u32 {
        match width {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }

    fn status_to_result(status: RtasStatus) -> Result<(), ConfigError> {
        match status {
            RtasStatus::SUCCESS => Ok(()),
            RtasStatus::HARDWARE_ERROR => Err(ConfigError::NoDevice),
            other => Err(ConfigError::Failed { status: other.0 }),
        }
    }

    fn call(&self, call: ValueCall, token: u32, args: &[u32], rets: &mut [u32]) -> Result<(), ConfigError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let status = self
            .firmware
            .value_call(call, token, args, rets)
            .map_err(|_| ConfigError::Failed { status: i32::MIN })?;
        Self::status_to_result(status)
    }
}

impl ConfigAccess for RtasConfigSpace {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, ConfigError> {
        let args = [bdf.config_addr(offset), (self.buid >> 32) as u32, self.buid as u32, Self::size(width)];
        let mut rets = [0u32; 1];
        self.call(ValueCall::ReadPciConfig, self.read_token, &args, &mut rets)?;
        Ok(rets[0])
    }

    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), ConfigError> {
        let args =
            [bdf.config_addr(offset), (self.buid >> 32) as u32, self.buid as u32, Self::size(width), value];
        self.call(ValueCall::WritePciConfig, self.write_token, &args, &mut [])
    }
}
