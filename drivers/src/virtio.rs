//! Virtio over PCI through the pseries IOMMU: a transport wrapper for `virtio-drivers`.
//!
//! QEMU lets a virtio device that does not offer `VIRTIO_F_ACCESS_PLATFORM` (feature bit 33)
//! DMA straight to guest-physical memory; one that offers it translates every DMA through the
//! PHB's TCE tables and refuses FEATURES_OK unless the driver accepts the bit
//! (QEMU hw/virtio/virtio.c `virtio_validate_features`, hw/virtio/virtio-pci.c).
//! `virtio-drivers` 0.13 does not accept the bit in its block driver and does not check the
//! status after FEATURES_OK, so [`PlatformTransport`] adds the bit when offered and records
//! whether the device kept FEATURES_OK.

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `VIRTIO_F_ACCESS_PLATFORM`: the device's DMA goes through the platform's IOMMU.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// A transport that accepts `VIRTIO_F_ACCESS_PLATFORM` whenever the device offers it.
#[derive(Debug)]
pub struct PlatformTransport<T> {
    inner: T,
    offered: Option<bool>,
    features_rejected: bool,
}

impl<T: Transport> PlatformTransport<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner, offered: None, features_rejected: false }
    }

    /// Whether the device offers `VIRTIO_F_ACCESS_PLATFORM` (reads the feature bits once).
    pub fn access_platform(&mut self) -> bool {
        match self.offered {
            Some(offered) => offered,
            None => {
                let features = self.read_device_features();
                features & ACCESS_PLATFORM != 0
            }
        }
    }

    /// True when the device cleared FEATURES_OK after the driver set it (it refused the
    /// negotiated features, so it will not work).
    pub fn features_rejected(&self) -> bool {
        self.features_rejected
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for PlatformTransport<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }

    fn read_device_features(&mut self) -> u64 {
        let features = self.inner.read_device_features();
        self.offered = Some(features & ACCESS_PLATFORM != 0);
        features
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let extra = if self.access_platform() { ACCESS_PLATFORM } else { 0 };
        self.inner.write_driver_features(driver_features | extra);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }

    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue);
    }

    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status);
        if status.contains(DeviceStatus::FEATURES_OK)
            && !self.inner.get_status().contains(DeviceStatus::FEATURES_OK)
        {
            self.features_rejected = true;
        }
    }

    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size);
    }

    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner.queue_set(queue, size, descriptors, driver_area, device_area);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }

    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }

    fn read_config_space<V: FromBytes + IntoBytes>(&self, offset: usize) -> Result<V> {
        self.inner.read_config_space(offset)
    }

    fn write_config_space<V: IntoBytes + Immutable>(&mut self, offset: usize, value: V) -> Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

#[cfg(test)]
#[path = "virtio_tests.rs"]
mod tests;
