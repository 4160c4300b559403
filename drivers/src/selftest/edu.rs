//! The `edu` round trip: RAM → device buffer → RAM through the device's DMA handle, checked
//! byte for byte.
//!
//! `edu` drives 28 address bits, so its handle maps through the default window at IOVAs
//! below 2^28 whatever the DDW is. The two buffers are handed to the device by value and come
//! back only when it can no longer reach them: after a completed transfer they are unmapped;
//! after a failed one (a transfer still running when the time ran out) they are reclaimed,
//! which revokes a TCE mapping's access and retires memory the device might still reach
//! (bypass or direct), so a later test never reuses memory this device may still write.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::addr::BusAddr;
use crate::dma::{DeviceHandle, DmaMapping, DmaMemory, DmaMode, Retired};
use crate::edu::{
    Clock, Edu, EduDirection, EduRegs, EduTransfer, DEFAULT_DMA_TIMEOUT_US, EDU_USABLE_BUFFER_LEN,
};
use crate::iommu::hcall::TceCalls;
use crate::iommu::tce::DmaDirection;

/// What a successful round trip did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    /// The device's mode.
    pub mode: DmaMode,
    /// The bus address the data was read from.
    pub to_device: BusAddr,
    /// The bus address it was written back to.
    pub from_device: BusAddr,
    /// Bytes sent and received.
    pub bytes: u32,
}

/// The round trip's outcome and the buffers that may be used again.
pub struct RoundTripOutcome<M> {
    /// What happened, or the sentence for `edu.<n>.status`.
    pub result: Result<RoundTrip, String>,
    /// Buffers handed back: the device cannot reach them any more.
    pub returned: Vec<M>,
    /// Buffers kept out of use because the device may still reach them.
    pub retired: Vec<Retired>,
}

/// Sends `len` bytes of a pattern from `out` to the device and back into `back`, through
/// `device`'s DMA, and compares them; `seed` picks the pattern.
pub fn round_trip<R, C, H, M>(
    edu: &mut Edu<R>,
    clock: &mut C,
    device: &DeviceHandle<H>,
    mut out: M,
    mut back: M,
    seed: u64,
) -> RoundTripOutcome<M>
where
    R: EduRegs,
    C: Clock,
    H: TceCalls,
    M: DmaMemory + AsMut<[u8]>,
{
    let len = EDU_USABLE_BUFFER_LEN;
    let finish = |result, returned, retired| RoundTripOutcome { result, returned, retired };
    if out.len() < u64::from(len) || back.len() < u64::from(len) {
        return finish(
            Err(format!("the edu buffers are smaller than {len} bytes")),
            vec![out, back],
            Vec::new(),
        );
    }
    fill_pattern(&mut out.as_mut()[..len as usize], seed);
    back.as_mut()[..len as usize].fill(0);
    let to_device = match device.map(out, DmaDirection::ToDevice) {
        Ok(mapping) => mapping,
        Err(failure) => {
            let returned = failure.memory.into_iter().chain([back]).collect();
            return finish(Err(format!("{}", failure.error)), returned, Vec::new());
        }
    };
    let from_device = match device.map(back, DmaDirection::FromDevice) {
        Ok(mapping) => mapping,
        Err(failure) => {
            // The device was never started, so the first buffer may simply be unmapped.
            let (mut returned, errors) = unmap_all(device, [to_device]);
            returned.extend(failure.memory);
            let why = errors.into_iter().next().unwrap_or_else(|| format!("{}", failure.error));
            return finish(Err(why), returned, Vec::new());
        }
    };
    let step = |direction, ram| EduTransfer { direction, ram, device_offset: 0, len };
    let trip = RoundTrip {
        mode: device.dma().mode,
        to_device: to_device.bus_addr(),
        from_device: from_device.bus_addr(),
        bytes: len,
    };
    let sent = edu
        .transfer(clock, step(EduDirection::ToDevice, trip.to_device), DEFAULT_DMA_TIMEOUT_US)
        .and_then(|()| {
            edu.transfer(clock, step(EduDirection::FromDevice, trip.from_device), DEFAULT_DMA_TIMEOUT_US)
        });
    if let Err(error) = sent {
        // The transfer may still be running: only revoked access gives the memory back.
        let (mut returned, mut retired) = (Vec::new(), Vec::new());
        for mapping in [to_device, from_device] {
            match device.reclaim(mapping) {
                Ok(memory) => returned.push(memory),
                Err(why) => retired.push(why),
            }
        }
        return finish(Err(format!("{error}")), returned, retired);
    }
    let (mut returned, errors) = unmap_all(device, [to_device, from_device]);
    let result = match (errors.into_iter().next(), returned.as_mut_slice()) {
        (Some(error), _) => Err(error),
        (None, [out, back]) => {
            compare(&out.as_mut()[..len as usize], &back.as_mut()[..len as usize]).map(|()| trip)
        }
        (None, _) => Err(String::from("an edu buffer did not come back from its mapping")),
    };
    finish(result, returned, Vec::new())
}

/// Unmaps every mapping of a device that is done with them; a mapping that will not unmap
/// stays out of use (dropped, its memory leaked) and its error is returned.
fn unmap_all<H: TceCalls, M: DmaMemory, const N: usize>(
    device: &DeviceHandle<H>,
    mappings: [DmaMapping<M>; N],
) -> (Vec<M>, Vec<String>) {
    let (mut returned, mut errors) = (Vec::new(), Vec::new());
    for mapping in mappings {
        match device.unmap(mapping) {
            Ok(memory) => returned.push(memory),
            Err(failure) => errors.push(format!("{failure}")),
        }
    }
    (returned, errors)
}

fn fill_pattern(bytes: &mut [u8], seed: u64) {
    let mut state = seed | 1;
    for byte in bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
}

fn compare(sent: &[u8], got: &[u8]) -> Result<(), String> {
    match sent.iter().zip(got).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(at) => Err(format!(
            "edu round trip corrupted byte {at}: sent {:#04x}, got back {:#04x}",
            sent[at], got[at]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Liobn, PhysAddr};
    use crate::dma::{share, DmaTranslation, PeDma, PeState};
    use crate::iommu::ddw::{Ddw, DdwMapping};
    use crate::iommu::map::{MapStats, MultiTce};
    use crate::iommu::plan::{WindowLimit, WindowMode, WindowPlan};
    use crate::iommu::rtas::QueryOutputs;
    use crate::iommu::window::{DmaMask, DmaWindow};
    use crate::iommu::IovaWindow;
    use crate::test_support::{FakeTce, TestMemory};

    /// An edu whose transfers never finish (the start bit stays set).
    struct StuckEdu {
        liveness: u32,
        command: u64,
    }

    impl EduRegs for StuckEdu {
        fn read32(&mut self, offset: usize) -> u32 {
            if offset == 0 {
                0x0100_00ed
            } else {
                !self.liveness
            }
        }
        fn write32(&mut self, _: usize, value: u32) {
            self.liveness = value;
        }
        fn read64(&mut self, _: usize) -> u64 {
            self.command
        }
        fn write64(&mut self, offset: usize, value: u64) {
            if offset == 0x98 {
                self.command = value;
            }
        }
    }

    struct Ticking(u64);

    impl Clock for Ticking {
        fn now_us(&mut self) -> u64 {
            self.0 += 100_000;
            self.0
        }
    }

    fn default_window() -> IovaWindow {
        let window = DmaWindow::with_size(Liobn(0x8000_0000), BusAddr(0), 12, 1 << 30).unwrap();
        IovaWindow::new(window, MultiTce::Available)
    }

    fn direct_ddw() -> Ddw {
        let window = DmaWindow::new(Liobn(0x8000_0001), BusAddr(0), 24, 31).unwrap();
        Ddw {
            query: None,
            outputs: QueryOutputs::Six,
            plan: WindowPlan {
                page_shift: 24,
                window_shift: 31,
                mode: WindowMode::Direct,
                limit: WindowLimit::Ram,
            },
            window,
            slot: 0,
            stats: MapStats::default(),
            ranges: 1,
            mapping: DdwMapping::Direct,
            mmio_collision: None,
        }
    }

    fn run(dma: PeDma, mask_bits: u32) -> (RoundTripOutcome<TestMemory>, usize, DmaMode) {
        let pe = share(PeState::new(dma, FakeTce::new(1 << 12)));
        let device = DeviceHandle::new(&pe, DmaMask::from_bits(mask_bits), DmaTranslation::Iommu).unwrap();
        let mut edu = Edu::probe(StuckEdu { liveness: 0, command: 0 }).unwrap();
        let (out, back) = (TestMemory::new(0x10_0000, 0x1000), TestMemory::new(0x20_0000, 0x1000));
        let outcome = round_trip(&mut edu, &mut Ticking(0), &device, out, back, 7);
        let live = pe.lock().hypervisor().live();
        (outcome, live, device.dma().mode)
    }

    #[test]
    fn after_a_failed_transfer_tce_mapped_buffers_come_back_cleared() {
        let (outcome, live, mode) = run(PeDma { default: Some(default_window()), ddw: None }, 28);
        assert!(matches!(mode, DmaMode::DefaultIommu { .. }));
        assert!(
            outcome.result.as_ref().is_err_and(|e| e.contains("did not complete")),
            "{:?}",
            outcome.result.err()
        );
        // The device's access was revoked before the buffers were handed back.
        assert_eq!(live, 0);
        let phys: Vec<PhysAddr> = outcome.returned.iter().map(|m| m.phys).collect();
        assert_eq!(phys, [PhysAddr(0x10_0000), PhysAddr(0x20_0000)]);
        assert!(outcome.retired.is_empty());
    }

    #[test]
    fn after_a_failed_transfer_unrevocable_buffers_are_retired() {
        // A (hypothetical) 64-bit edu on a direct window: its DMA cannot be revoked.
        let (outcome, _, mode) = run(PeDma { default: None, ddw: Some(direct_ddw()) }, 64);
        assert!(matches!(mode, DmaMode::Direct { .. }));
        assert!(outcome.result.is_err());
        assert!(outcome.returned.is_empty(), "a buffer the device may still write was handed back");
        assert_eq!(
            outcome.retired,
            [
                Retired::Unrevocable { phys: PhysAddr(0x10_0000), len: 0x1000 },
                Retired::Unrevocable { phys: PhysAddr(0x20_0000), len: 0x1000 }
            ]
        );
    }

    #[test]
    fn a_buffer_that_cannot_be_mapped_comes_back_unused() {
        // The 28-bit device has no window: the direct DDW does not fit its mask.
        let pe = share(PeState::new(PeDma { default: None, ddw: Some(direct_ddw()) }, FakeTce::new(1 << 12)));
        let device = DeviceHandle::new(&pe, DmaMask::from_bits(28), DmaTranslation::Iommu);
        assert!(device.is_err(), "no window serves the device");
        let device = DeviceHandle::new(&pe, DmaMask::from_bits(31), DmaTranslation::Iommu).unwrap();
        let mut edu = Edu::probe(StuckEdu { liveness: 0, command: 0 }).unwrap();
        // Beyond the window's 2 GiB: out of reach, handed back untouched.
        let outcome = round_trip(
            &mut edu,
            &mut Ticking(0),
            &device,
            TestMemory::new(0x10_0000, 0x1000),
            TestMemory::new(1 << 32, 0x1000),
            7,
        );
        assert!(outcome.result.is_err_and(|e| e.contains("out of reach")));
        assert_eq!(outcome.returned.len(), 2);
        assert_eq!(pe.lock().hypervisor().live(), 0);
    }
}
