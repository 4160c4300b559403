//! The wrapper against a fake modern device that validates features as QEMU does.

use super::*;
use virtio_drivers::Error;

/// A device offering VERSION_1 (bit 32) and, optionally, ACCESS_PLATFORM; like QEMU it
/// refuses FEATURES_OK when ACCESS_PLATFORM was offered but not accepted.
struct FakeDevice {
    offered: u64,
    accepted: u64,
    status: DeviceStatus,
}

impl FakeDevice {
    fn new(access_platform: bool) -> Self {
        let offered = (1 << 32) | if access_platform { ACCESS_PLATFORM } else { 0 };
        Self { offered, accepted: 0, status: DeviceStatus::empty() }
    }
}

impl Transport for FakeDevice {
    fn device_type(&self) -> DeviceType {
        DeviceType::Block
    }
    fn read_device_features(&mut self) -> u64 {
        self.offered
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.accepted = driver_features;
    }
    fn max_queue_size(&mut self, _: u16) -> u32 {
        16
    }
    fn notify(&mut self, _: u16) {}
    fn get_status(&self) -> DeviceStatus {
        self.status
    }
    fn set_status(&mut self, status: DeviceStatus) {
        let refuses = self.offered & ACCESS_PLATFORM != 0 && self.accepted & ACCESS_PLATFORM == 0;
        self.status = if refuses { status - DeviceStatus::FEATURES_OK } else { status };
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _: u16, _: u32, _: PhysAddr, _: PhysAddr, _: PhysAddr) {}
    fn queue_unset(&mut self, _: u16) {}
    fn queue_used(&mut self, _: u16) -> bool {
        false
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, _: usize) -> Result<V> {
        Err(Error::ConfigSpaceMissing)
    }
    fn write_config_space<V: IntoBytes + Immutable>(&mut self, _: usize, _: V) -> Result<()> {
        Err(Error::ConfigSpaceMissing)
    }
}

fn negotiate(transport: &mut impl Transport) {
    // What a driver that knows only VERSION_1 does (virtio-drivers' begin_init).
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let features = transport.read_device_features() & (1 << 32);
    transport.write_driver_features(features);
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
}

#[test]
fn the_bit_is_accepted_when_offered() {
    let mut wrapped = PlatformTransport::new(FakeDevice::new(true));
    assert!(wrapped.access_platform());
    negotiate(&mut wrapped);
    assert_eq!(wrapped.inner().accepted, (1 << 32) | ACCESS_PLATFORM);
    assert!(!wrapped.features_rejected());
    assert!(wrapped.get_status().contains(DeviceStatus::FEATURES_OK));
}

#[test]
fn the_bit_is_not_invented_when_absent() {
    let mut wrapped = PlatformTransport::new(FakeDevice::new(false));
    assert!(!wrapped.access_platform());
    negotiate(&mut wrapped);
    assert_eq!(wrapped.inner().accepted, 1 << 32);
    assert!(!wrapped.features_rejected());
}

#[test]
fn a_refusal_is_recorded() {
    // Without the wrapper the device refuses FEATURES_OK; the wrapper notices that state.
    let mut bare = FakeDevice::new(true);
    negotiate(&mut bare);
    assert!(!bare.get_status().contains(DeviceStatus::FEATURES_OK));
    let mut wrapped = PlatformTransport::new(FakeDevice::new(true));
    wrapped.offered = Some(false); // as if the bit had not been seen
    wrapped.set_status(DeviceStatus::FEATURES_OK);
    assert!(wrapped.features_rejected());
}
