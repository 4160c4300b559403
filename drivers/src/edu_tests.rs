//! The edu driver against a model of QEMU 7.2's device: registers, buffer, mask, timer, RAM.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;

/// One register access, as the model saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read32(usize),
    Write32(usize, u32),
    Read64(usize),
    Write64(usize, u64),
}

/// How the liveness register behaves.
#[derive(Clone, Copy)]
enum Liveness {
    /// As QEMU: reads back the complement.
    Inverting,
    /// A dead device: always reads all ones.
    AllOnes,
    /// Reads back exactly what was written.
    Echo,
}

/// QEMU 7.2's edu as far as this driver can observe it.
struct FakeEdu {
    identification: u32,
    liveness: Liveness,
    liveness_value: u32,
    source: u64,
    destination: u64,
    count: u64,
    command: u64,
    dma_mask: u64,
    buffer: [u8; EDU_BUFFER_LEN as usize],
    /// RAM by bus address; DMA to or from an absent byte is a test failure.
    ram: BTreeMap<u64, u8>,
    /// Polls of the command register a started transfer takes; `None` never completes.
    polls_to_complete: Option<u32>,
    polls_left: u32,
    accesses: Vec<Access>,
}

impl FakeEdu {
    fn new() -> FakeEdu {
        FakeEdu {
            identification: 0x0100_00ed,
            liveness: Liveness::Inverting,
            liveness_value: 0,
            source: 0,
            destination: 0,
            count: 0,
            command: 0,
            dma_mask: (1 << 28) - 1,
            buffer: [0; EDU_BUFFER_LEN as usize],
            ram: BTreeMap::new(),
            polls_to_complete: Some(3),
            polls_left: 0,
            accesses: Vec::new(),
        }
    }

    fn fill_ram(&mut self, bus: u64, bytes: &[u8]) {
        for (i, byte) in bytes.iter().enumerate() {
            self.ram.insert(bus + i as u64, *byte);
        }
    }

    fn ram_bytes(&self, bus: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| self.ram[&(bus + i)]).collect()
    }

    fn writes(&self) -> Vec<Access> {
        self.accesses
            .iter()
            .copied()
            .filter(|a| matches!(a, Access::Write32(..) | Access::Write64(..)))
            .collect()
    }

    fn running(&self) -> bool {
        self.command & 1 != 0
    }

    /// `edu_check_range` of QEMU 7.2: `hw_error` unless start <= addr < end2, end1 > addr and
    /// end1 < end2 (the strict last comparison is the pre-8.2.1 off-by-one).
    fn check_range(addr: u64, len: u64) {
        let (start, end2) = (0x40000u64, 0x41000u64);
        let end1 = addr.wrapping_add(len);
        let within = |a: u64| start <= a && a < end2;
        assert!(
            within(addr) && end1 > addr && within(end1),
            "qemu: hardware error: EDU: DMA range {addr:#x}-{:#x} out of bounds",
            end1.wrapping_sub(1)
        );
    }

    /// `edu_dma_timer`: the copy, with the RAM side masked.
    fn complete(&mut self) {
        let len = self.count;
        if self.command & 2 == 0 {
            Self::check_range(self.destination, len);
            let ram = self.source & self.dma_mask;
            for i in 0..len {
                let byte = *self.ram.get(&(ram + i)).expect("device read unbacked RAM");
                self.buffer[(self.destination - 0x40000 + i) as usize] = byte;
            }
        } else {
            Self::check_range(self.source, len);
            let ram = self.destination & self.dma_mask;
            for i in 0..len {
                let byte = self.buffer[(self.source - 0x40000 + i) as usize];
                assert!(self.ram.contains_key(&(ram + i)), "device wrote unbacked RAM at {:#x}", ram + i);
                self.ram.insert(ram + i, byte);
            }
        }
        self.command &= !1;
    }
}

impl EduRegs for FakeEdu {
    fn read32(&mut self, offset: usize) -> u32 {
        self.accesses.push(Access::Read32(offset));
        match offset {
            0x00 => self.identification,
            0x04 => self.liveness_value,
            _ => panic!("unexpected 32-bit read at {offset:#x}"),
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        self.accesses.push(Access::Write32(offset, value));
        match offset {
            0x04 => {
                self.liveness_value = match self.liveness {
                    Liveness::Inverting => !value,
                    Liveness::AllOnes => u32::MAX,
                    Liveness::Echo => value,
                }
            }
            _ => panic!("unexpected 32-bit write at {offset:#x}"),
        }
    }

    fn read64(&mut self, offset: usize) -> u64 {
        self.accesses.push(Access::Read64(offset));
        match offset {
            0x80 => self.source,
            0x88 => self.destination,
            0x90 => self.count,
            0x98 => {
                let value = self.command;
                if self.running() {
                    match self.polls_left.checked_sub(1) {
                        Some(left) => self.polls_left = left,
                        None if self.polls_to_complete.is_some() => self.complete(),
                        None => {}
                    }
                }
                value
            }
            _ => panic!("unexpected 64-bit read at {offset:#x}"),
        }
    }

    fn write64(&mut self, offset: usize, value: u64) {
        self.accesses.push(Access::Write64(offset, value));
        assert!(offset >= 0x80, "QEMU ignores 8-byte accesses below 0x80 (offset {offset:#x})");
        if self.running() {
            return;
        }
        match offset {
            0x80 => self.source = value,
            0x88 => self.destination = value,
            0x90 => self.count = value,
            0x98 if value & 1 != 0 => {
                self.command = value;
                self.polls_left = self.polls_to_complete.unwrap_or(0);
            }
            0x98 => {}
            _ => panic!("unexpected 64-bit write at {offset:#x}"),
        }
    }
}

/// A clock that moves `step` µs every time it is read.
struct FakeClock {
    now: u64,
    step: u64,
    reads: u64,
}

impl FakeClock {
    fn new(step: u64) -> FakeClock {
        FakeClock { now: 1_000, step, reads: 0 }
    }
}

impl Clock for FakeClock {
    fn now_us(&mut self) -> u64 {
        self.reads += 1;
        self.now += self.step;
        self.now
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

const T: u64 = DEFAULT_DMA_TIMEOUT_US;

#[test]
fn probe_reads_the_version_and_checks_liveness() {
    let mut fake = FakeEdu::new();
    let edu = Edu::probe(&mut fake).unwrap();
    assert_eq!(edu.version(), EduVersion { major: 1, minor: 0 });
    assert_eq!(edu.version().to_string(), "1.0");
    // Both patterns were written and each read back inverted.
    assert_eq!(
        fake.writes(),
        [Access::Write32(4, LIVENESS_PATTERNS[0]), Access::Write32(4, LIVENESS_PATTERNS[1])]
    );

    let mut newer = FakeEdu::new();
    newer.identification = 0x0203_00ed;
    assert_eq!(Edu::probe(&mut newer).unwrap().version(), EduVersion { major: 2, minor: 3 });
}

#[test]
fn probe_rejects_a_bad_identification_without_writing() {
    for value in [0xffff_ffff, 0, 0x0100_00ee, 0x0100_01ed] {
        let mut fake = FakeEdu::new();
        fake.identification = value;
        assert_eq!(Edu::probe(&mut fake).err(), Some(EduError::BadIdentification { value }));
        assert_eq!(fake.accesses, [Access::Read32(0)]);
    }
    let swapped = EduError::BadIdentification { value: 0xed00_0001 };
    assert_eq!(
        swapped.to_string(),
        "edu identification register reads 0xed000001, not 0xRRrr00ed (it looks byte-swapped: the device \
         registers are big-endian)"
    );
    assert_eq!(
        EduError::BadIdentification { value: u32::MAX }.to_string(),
        "edu identification register reads 0xffffffff, not 0xRRrr00ed"
    );
}

#[test]
fn probe_rejects_a_dead_liveness_register() {
    let mut all_ones = FakeEdu::new();
    all_ones.liveness = Liveness::AllOnes;
    let error = Edu::probe(&mut all_ones).err().unwrap();
    assert_eq!(error, EduError::LivenessCheckFailed { wrote: LIVENESS_PATTERNS[0], read: u32::MAX });
    assert_eq!(
        error.to_string(),
        "edu liveness check failed: wrote 0x5a0fc396, read back 0xffffffff instead of 0xa5f03c69"
    );

    let mut echo = FakeEdu::new();
    echo.liveness = Liveness::Echo;
    assert_eq!(
        Edu::probe(&mut echo).err(),
        Some(EduError::LivenessCheckFailed { wrote: LIVENESS_PATTERNS[0], read: LIVENESS_PATTERNS[0] })
    );
}

#[test]
fn round_trip_through_the_device_buffer() {
    let (from, to) = (0x10_0000u64, 0x20_0000u64);
    let data = pattern(0x200, 7);
    let mut fake = FakeEdu::new();
    fake.fill_ram(from, &data);
    fake.fill_ram(to, &[0; 0x200]);
    let mut clock = FakeClock::new(10);
    let mut edu = Edu::probe(&mut fake).unwrap();
    edu.dma_to_device(&mut clock, BusAddr(from), 0x123, 0x200, T).unwrap();
    assert!(!edu.dma_busy());
    edu.dma_from_device(&mut clock, BusAddr(to), 0x123, 0x200, T).unwrap();
    assert_eq!(fake.ram_bytes(to, 0x200), data);
    assert_eq!(&fake.buffer[0x123..0x323], &data[..]);
    // Registers as QEMU expects them: source, destination, count, then the command (no interrupt).
    let writes = fake.writes();
    assert_eq!(
        writes[2..],
        [
            Access::Write64(0x80, from),
            Access::Write64(0x88, 0x40123),
            Access::Write64(0x90, 0x200),
            Access::Write64(0x98, 1),
            Access::Write64(0x80, 0x40123),
            Access::Write64(0x88, to),
            Access::Write64(0x90, 0x200),
            Access::Write64(0x98, 3),
        ]
    );
}

#[test]
fn the_whole_usable_buffer_round_trips() {
    let len = EDU_USABLE_BUFFER_LEN;
    let data = pattern(len as usize, 99);
    let mut fake = FakeEdu::new();
    fake.fill_ram(0x1000, &data);
    fake.fill_ram(0x0fff_f000, &[0xaa; 0x1000]);
    let mut clock = FakeClock::new(1);
    let mut edu = Edu::probe(&mut fake).unwrap();
    edu.dma_to_device(&mut clock, BusAddr(0x1000), 0, len, T).unwrap();
    // The highest RAM bytes the mask allows: the last byte is 2^28 - 1.
    edu.dma_from_device(&mut clock, BusAddr(0x1000_0000 - u64::from(len)), 0, len, T).unwrap();
    assert_eq!(fake.ram_bytes(0x1000_0000 - u64::from(len), len as usize), data);
    assert_eq!(fake.ram[&0x0fff_f000], 0xaa);
}

#[test]
fn rejects_device_ranges_qemu_would_abort_on_without_touching_the_device() {
    let cases = [(0, 0x1000), (0xfff, 1), (0x800, 0x800), (0xff0, 0x20), (0x1000, 1), (u32::MAX, 2)];
    for (offset, len) in cases {
        let mut fake = FakeEdu::new();
        let mut clock = FakeClock::new(1);
        let mut edu = Edu::probe(&mut fake).unwrap();
        let ram = BusAddr(0x10_0000);
        let to = edu.dma_to_device(&mut clock, ram, offset, len, T);
        let from = edu.dma_from_device(&mut clock, ram, offset, len, T);
        let transfer = EduTransfer { direction: EduDirection::ToDevice, ram, device_offset: offset, len };
        assert_eq!(to, Err(EduError::OutsideBuffer(transfer)), "offset {offset:#x} len {len:#x}");
        let transfer = EduTransfer { direction: EduDirection::FromDevice, ..transfer };
        assert_eq!(from, Err(EduError::OutsideBuffer(transfer)));
        assert_eq!(fake.accesses.len(), 5, "only the probe's accesses: {:?}", fake.accesses);
        assert_eq!(clock.reads, 0);
    }
    let mut fake = FakeEdu::new();
    let mut edu = Edu::probe(&mut fake).unwrap();
    let empty = edu.dma_to_device(&mut FakeClock::new(1), BusAddr(0x10_0000), 0, 0, T).unwrap_err();
    assert!(matches!(empty, EduError::EmptyTransfer(_)));
    assert_eq!(fake.accesses.len(), 5);
}

#[test]
fn rejects_ram_beyond_the_28_bit_mask() {
    let cases = [(0x0fff_ff00, 0x101), (0x1000_0000, 1), (0x1_0000_1000, 0x10), (u64::MAX - 1, 4)];
    for (ram, len) in cases {
        let mut fake = FakeEdu::new();
        let mut clock = FakeClock::new(1);
        let mut edu = Edu::probe(&mut fake).unwrap();
        let error = edu.dma_from_device(&mut clock, BusAddr(ram), 0, len, T).unwrap_err();
        let transfer =
            EduTransfer { direction: EduDirection::FromDevice, ram: BusAddr(ram), device_offset: 0, len };
        assert_eq!(error, EduError::BeyondDmaMask(transfer), "ram {ram:#x} len {len:#x}");
        assert!(edu.dma_to_device(&mut clock, BusAddr(ram), 0, len, T).is_err());
        assert_eq!(fake.accesses.len(), 5, "only the probe's accesses: {:?}", fake.accesses);
    }
    // Exactly up to the mask is fine.
    let mut fake = FakeEdu::new();
    fake.fill_ram(0x0fff_ff00, &pattern(0x100, 1));
    let mut edu = Edu::probe(&mut fake).unwrap();
    edu.dma_to_device(&mut FakeClock::new(1), BusAddr(0x0fff_ff00), 0, 0x100, T).unwrap();
    assert_eq!(EDU_DMA_MASK, DmaMask(0x0fff_ffff));
}

#[test]
fn a_transfer_that_never_completes_times_out() {
    let mut fake = FakeEdu::new();
    fake.fill_ram(0x10_0000, &[0; 0x10]);
    fake.polls_to_complete = None;
    let mut clock = FakeClock::new(1_000);
    let mut edu = Edu::probe(&mut fake).unwrap();
    let error = edu.dma_from_device(&mut clock, BusAddr(0x10_0000), 0x40, 0x10, T).unwrap_err();
    let transfer = EduTransfer {
        direction: EduDirection::FromDevice,
        ram: BusAddr(0x10_0000),
        device_offset: 0x40,
        len: 0x10,
    };
    assert_eq!(error, EduError::Timeout { transfer, timeout_us: T, command: 3 });
    assert_eq!(
        error.to_string(),
        "edu DMA from device buffer 0x40000+0x40 to bus address 0x100000 (0x10 bytes) did not complete \
         within 5000000 µs (command register 0x3)"
    );
    // 5 s at 1 ms per clock read: the wait gave up just after the deadline, not before.
    assert!((5_001..=5_003).contains(&clock.reads), "{} clock reads", clock.reads);
    assert!(edu.dma_busy());

    // Still running: the next request writes nothing.
    let writes_before = fake_writes(&mut edu);
    let busy = edu.dma_to_device(&mut clock, BusAddr(0x10_0000), 0, 0x10, T).unwrap_err();
    assert!(matches!(busy, EduError::Busy { command: 3, .. }), "{busy:?}");
    assert_eq!(fake_writes(&mut edu), writes_before);
    assert!(busy.to_string().contains("still running (command register 0x3)"), "{busy}");
}

/// Counts writes through the driver's borrow of the model.
fn fake_writes(edu: &mut Edu<&mut FakeEdu>) -> usize {
    edu.regs.writes().len()
}

#[test]
fn a_slow_transfer_completes_within_the_timeout() {
    let mut fake = FakeEdu::new();
    fake.fill_ram(0x10_0000, &pattern(8, 3));
    fake.polls_to_complete = Some(4_000);
    let mut clock = FakeClock::new(1_000);
    let mut edu = Edu::probe(&mut fake).unwrap();
    edu.dma_to_device(&mut clock, BusAddr(0x10_0000), 0, 8, T).unwrap();
    assert_eq!(&fake.buffer[..8], &pattern(8, 3)[..]);
}

#[test]
fn the_model_aborts_where_qemu_7_2_does() {
    // Guards the model the other tests rely on: the last buffer byte is out of reach.
    assert!(std::panic::catch_unwind(|| FakeEdu::check_range(0x40000, 0x1000)).is_err());
    assert!(std::panic::catch_unwind(|| FakeEdu::check_range(0x40fff, 1)).is_err());
    FakeEdu::check_range(0x40000, 0xfff);
    FakeEdu::check_range(0x40ffe, 1);
}

#[test]
fn rejection_sentences_name_the_addresses() {
    let transfer = EduTransfer {
        direction: EduDirection::ToDevice,
        ram: BusAddr(0x1000_0000),
        device_offset: 0xff0,
        len: 0x20,
    };
    assert_eq!(
        EduError::OutsideBuffer(transfer).to_string(),
        "edu DMA from bus address 0x10000000 to device buffer 0x40000+0xff0 (0x20 bytes) rejected: it leaves \
         the usable device buffer 0x40000+[0, 0xfff) (QEMU 7.2 aborts on a transfer that reaches offset 0xfff \
         or beyond)"
    );
    assert_eq!(
        EduError::BeyondDmaMask(transfer).to_string(),
        "edu DMA from bus address 0x10000000 to device buffer 0x40000+0xff0 (0x20 bytes) rejected: its RAM \
         side goes past 0xfffffff, the highest address of the device's 28-bit DMA mask (the device would \
         redirect it to 0x0)"
    );
    assert_eq!(
        EduError::EmptyTransfer(EduTransfer { len: 0, ..transfer }).to_string(),
        "edu DMA from bus address 0x10000000 to device buffer 0x40000+0xff0 (0x0 bytes) rejected: a transfer \
         needs at least one byte"
    );
}

/// The two directions as calls, to keep the tests short.
trait Directions {
    fn dma_to_device(
        &mut self,
        c: &mut FakeClock,
        ram: BusAddr,
        off: u32,
        len: u32,
        t: u64,
    ) -> Result<(), EduError>;
    fn dma_from_device(
        &mut self,
        c: &mut FakeClock,
        ram: BusAddr,
        off: u32,
        len: u32,
        t: u64,
    ) -> Result<(), EduError>;
}

impl<R: EduRegs> Directions for Edu<R> {
    fn dma_to_device(
        &mut self,
        c: &mut FakeClock,
        ram: BusAddr,
        off: u32,
        len: u32,
        t: u64,
    ) -> Result<(), EduError> {
        self.transfer(c, EduTransfer { direction: EduDirection::ToDevice, ram, device_offset: off, len }, t)
    }

    fn dma_from_device(
        &mut self,
        c: &mut FakeClock,
        ram: BusAddr,
        off: u32,
        len: u32,
        t: u64,
    ) -> Result<(), EduError> {
        self.transfer(c, EduTransfer { direction: EduDirection::FromDevice, ram, device_offset: off, len }, t)
    }
}
