//! PCI configuration space through RTAS `ibm,read-pci-config` / `ibm,write-pci-config`.
//!
//! In: (config_addr, BUID hi, BUID lo, size[, value]); out: (status[, value]). Size is 1, 2
//! or 4; the value is a plain number (RTAS swaps the little-endian config bytes). QEMU returns
//! status -1 for an absent device where LoPAR says "success with all ones": both mean "no
//! device". The legacy `read-pci-config` looks up BUID 0 on QEMU and always fails, so only the
//! `ibm,` variants are used (../shared/docs/papr-ddw-facts.md §2.7).

use arch_ppc64::rtas::{Rtas, RtasStatus};
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::pci::{Bdf, ConfigAccess, ConfigError, Width};

/// Config-space RTAS calls made by every accessor since boot (the scan's and the drivers').
static TOTAL_CALLS: AtomicU64 = AtomicU64::new(0);

/// Config-space RTAS calls made since boot.
pub fn total_calls() -> u64 {
    TOTAL_CALLS.load(Ordering::Relaxed)
}

/// Config-space access to one PHB.
#[derive(Clone)]
pub struct RtasConfigSpace {
    rtas: Rtas,
    read_token: u32,
    write_token: u32,
    buid: u64,
    /// Number of RTAS calls made (for the report).
    pub calls: u64,
}

impl RtasConfigSpace {
    /// Accesses the PHB with unit ID `buid` through the given tokens.
    pub fn new(rtas: Rtas, read_token: u32, write_token: u32, buid: u64) -> Self {
        Self { rtas, read_token, write_token, buid, calls: 0 }
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
}

impl ConfigAccess for RtasConfigSpace {
    fn read(&mut self, bdf: Bdf, offset: u16, width: Width) -> Result<u32, ConfigError> {
        let args = [bdf.config_addr(offset), (self.buid >> 32) as u32, self.buid as u32, Self::size(width)];
        let mut rets = [0u32; 1];
        self.calls += 1;
        TOTAL_CALLS.fetch_add(1, Ordering::Relaxed);
        let status = self
            .rtas
            .call(self.read_token, &args, &mut rets)
            .map_err(|_| ConfigError::Failed { status: i32::MIN })?;
        Self::status_to_result(status)?;
        Ok(rets[0])
    }

    fn write(&mut self, bdf: Bdf, offset: u16, width: Width, value: u32) -> Result<(), ConfigError> {
        let args =
            [bdf.config_addr(offset), (self.buid >> 32) as u32, self.buid as u32, Self::size(width), value];
        self.calls += 1;
        TOTAL_CALLS.fetch_add(1, Ordering::Relaxed);
        let status = self
            .rtas
            .call(self.write_token, &args, &mut [])
            .map_err(|_| ConfigError::Failed { status: i32::MIN })?;
        Self::status_to_result(status)
    }
}

/// `virtio-drivers`' view of config space (32-bit registers; absent devices read all ones).
impl virtio_drivers::transport::pci::bus::ConfigurationAccess for RtasConfigSpace {
    fn read_word(&self, df: virtio_drivers::transport::pci::bus::DeviceFunction, offset: u8) -> u32 {
        let bdf = Bdf { bus: df.bus, device: df.device, function: df.function };
        self.clone().read(bdf, u16::from(offset), Width::Dword).unwrap_or(u32::MAX)
    }

    fn write_word(&mut self, df: virtio_drivers::transport::pci::bus::DeviceFunction, offset: u8, data: u32) {
        let bdf = Bdf { bus: df.bus, device: df.device, function: df.function };
        // A failed write shows up as the device not working; the read side reports it.
        let _ = self.write(bdf, u16::from(offset), Width::Dword, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        self.clone()
    }
}
