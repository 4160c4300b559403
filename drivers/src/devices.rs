//! What each driver declares about the devices it drives: which PCI IDs, and the DMA mask —
//! decided here, once, and used both to plan a PE's windows and to give each device its mode.
//!
//! - virtio-blk (`virtio-drivers`' block driver over PCI): vendor 0x1af4, device 0x1001
//!   (transitional) or 0x1042 (modern, virtio 1.x §4.1.2); virtio devices address all 64 bits.
//! - NVMe (`drivers::nvme`): QEMU's `nvme` is 1b36:0010 (`PCI_DEVICE_ID_REDHAT_NVME`, QEMU
//!   hw/nvme/ctrl.c `nvme_init_pci`); any function of class 01:08:02 (mass storage, NVM
//!   Express, I/O controller interface) is driven too. PRP entries are 64-bit bus addresses
//!   (NVMe Base Specification 2.0 §4.1.1), so the controller addresses all 64 bits.
//! - QEMU's `edu`: 1234:11e8, and it keeps only the low 28 bits of a RAM-side address (its
//!   default `dma_mask`, QEMU hw/misc/edu.c) — [`crate::edu::EDU_DMA_MASK_BITS`].

use alloc::vec::Vec;

use crate::edu::{EDU_DEVICE_ID, EDU_DMA_MASK_BITS, EDU_VENDOR_ID};
use crate::iommu::window::DmaMask;
use crate::pci::{Bdf, Function};

/// The devices this kernel has drivers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A virtio block device.
    VirtioBlk,
    /// An NVMe controller.
    Nvme,
    /// QEMU's `edu` teaching device.
    Edu,
}

/// One driver's declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverDecl {
    /// Which driver.
    pub kind: DeviceKind,
    /// Its name in the report.
    pub name: &'static str,
    /// Address bits the device drives.
    pub dma_mask_bits: u32,
}

impl DriverDecl {
    /// The device's DMA mask.
    pub const fn dma_mask(&self) -> DmaMask {
        DmaMask::from_bits(self.dma_mask_bits)
    }

    /// Whether the device can use a 64-bit window wherever the hypervisor places it.
    pub const fn is_64bit(&self) -> bool {
        self.dma_mask_bits >= 64
    }
}

/// Virtio's PCI vendor ID.
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;

/// The virtio-blk driver.
pub const VIRTIO_BLK: DriverDecl =
    DriverDecl { kind: DeviceKind::VirtioBlk, name: "virtio-blk", dma_mask_bits: 64 };

/// QEMU's NVMe controller's PCI IDs (Red Hat's vendor ID).
pub const QEMU_NVME_ID: (u16, u16) = (0x1b36, 0x0010);
/// The PCI class code of an NVMe I/O controller (class 01, subclass 08, interface 02).
pub const NVME_CLASS: u32 = 0x01_08_02;

/// The NVMe driver.
pub const NVME: DriverDecl = DriverDecl { kind: DeviceKind::Nvme, name: "nvme", dma_mask_bits: 64 };

/// The edu driver.
pub const EDU: DriverDecl =
    DriverDecl { kind: DeviceKind::Edu, name: "edu", dma_mask_bits: EDU_DMA_MASK_BITS };

/// The driver for a function with these IDs, if there is one.
pub fn driver_for(vendor_id: u16, device_id: u16) -> Option<&'static DriverDecl> {
    match (vendor_id, device_id) {
        (VIRTIO_VENDOR_ID, 0x1001 | 0x1042) => Some(&VIRTIO_BLK),
        (EDU_VENDOR_ID, EDU_DEVICE_ID) => Some(&EDU),
        QEMU_NVME_ID => Some(&NVME),
        _ => None,
    }
}

/// The driver for `function`: by its IDs, else an NVMe controller by its class code.
pub fn driver_for_function(function: &Function) -> Option<&'static DriverDecl> {
    driver_for(function.vendor_id, function.device_id)
        .or_else(|| (function.class_code == NVME_CLASS).then_some(&NVME))
}

/// A function some driver will make DMA with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaDevice {
    /// Where it is.
    pub bdf: Bdf,
    /// Its driver's declaration.
    pub driver: &'static DriverDecl,
}

/// The functions of `functions` that have a driver, in order.
pub fn dma_devices(functions: &[Function]) -> Vec<DmaDevice> {
    functions
        .iter()
        .filter_map(|f| driver_for_function(f).map(|driver| DmaDevice { bdf: f.bdf, driver }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_declares_each_mask_once() {
        assert_eq!(driver_for(0x1af4, 0x1001), Some(&VIRTIO_BLK));
        assert_eq!(driver_for(0x1af4, 0x1042), Some(&VIRTIO_BLK));
        assert_eq!(driver_for(0x1af4, 0x1000), None); // virtio-net: no driver here
        assert_eq!(driver_for(0x1234, 0x11e8).map(|d| d.dma_mask()), Some(DmaMask((1 << 28) - 1)));
        assert!(VIRTIO_BLK.is_64bit() && NVME.is_64bit() && !EDU.is_64bit());
        assert_eq!(driver_for(0x1b36, 0x0010), Some(&NVME));
        let mut other_nvme = Function::new(Bdf { bus: 0, device: 4, function: 0 }, 0x144d, 0xa808);
        assert_eq!(driver_for_function(&other_nvme), None);
        other_nvme.class_code = NVME_CLASS;
        assert_eq!(driver_for_function(&other_nvme), Some(&NVME), "an NVMe controller by its class");
        let functions = [
            Function::new(Bdf { bus: 0, device: 1, function: 0 }, 0x1af4, 0x1042),
            Function::new(Bdf { bus: 0, device: 2, function: 0 }, 0x8086, 0x100e),
            Function::new(Bdf { bus: 0, device: 3, function: 0 }, 0x1234, 0x11e8),
        ];
        let devices = dma_devices(&functions);
        assert_eq!(devices.len(), 2);
        assert_eq!(
            (devices[0].driver.kind, devices[1].driver.kind),
            (DeviceKind::VirtioBlk, DeviceKind::Edu)
        );
    }
}
