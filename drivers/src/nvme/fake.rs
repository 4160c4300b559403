//! A model NVMe controller for host tests, written from the specification (not from the
//! driver): registers, the admin and I/O queues in a shared bus-address arena, Identify,
//! Number of Queues, queue creation, and Read/Write/Flush that walk PRP entries themselves.
//! Every address it is given is looked up in the arena, whose base is far from 0 (as a DDW's
//! 2^59 is), so a driver handing out physical instead of bus addresses fails.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use super::spec::{Command, Completion, Status, PAGE};
use super::{DeviceMemory, NvmeEnv, NvmeRegs};
use crate::addr::BusAddr;

/// Bus memory: `bytes` at bus addresses `[base, base + len)`.
pub struct Arena {
    pub base: u64,
    pub bytes: Vec<u8>,
    next: usize,
    /// Allocations handed out and not freed, by bus address.
    pub live: BTreeMap<u64, usize>,
}

#[derive(Clone)]
pub struct Bus(pub Rc<RefCell<Arena>>);

impl Bus {
    pub fn new(base: u64, size: usize) -> Self {
        Bus(Rc::new(RefCell::new(Arena { base, bytes: vec![0; size], next: 0, live: BTreeMap::new() })))
    }

    /// `bytes` zeroed at a page boundary.
    pub fn alloc(&self, bytes: usize) -> Option<u64> {
        let mut a = self.0.borrow_mut();
        let at = a.next.next_multiple_of(PAGE as usize);
        if at + bytes > a.bytes.len() {
            return None;
        }
        a.next = at + bytes;
        a.bytes[at..at + bytes].fill(0);
        let bus = a.base + at as u64;
        a.live.insert(bus, bytes);
        Some(bus)
    }

    fn offset(&self, bus: u64, len: usize) -> Option<usize> {
        let a = self.0.borrow();
        let off = bus.checked_sub(a.base)? as usize;
        (off + len <= a.bytes.len()).then_some(off)
    }

    pub fn read(&self, bus: u64, out: &mut [u8]) -> bool {
        let Some(off) = self.offset(bus, out.len()) else { return false };
        out.copy_from_slice(&self.0.borrow().bytes[off..off + out.len()]);
        true
    }

    pub fn write(&self, bus: u64, data: &[u8]) -> bool {
        let Some(off) = self.offset(bus, data.len()) else { return false };
        self.0.borrow_mut().bytes[off..off + data.len()].copy_from_slice(data);
        true
    }

    fn read_u32(&self, bus: u64) -> Option<u32> {
        let mut b = [0; 4];
        self.read(bus, &mut b).then_some(u32::from_le_bytes(b))
    }
}

pub struct FakeMemory {
    bus: Bus,
    at: u64,
    len: usize,
}

impl DeviceMemory for FakeMemory {
    fn bus(&self) -> BusAddr {
        BusAddr(self.at)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read_u32(&self, offset: usize) -> u32 {
        if offset + 4 > self.len {
            return u32::MAX;
        }
        self.bus.read_u32(self.at + offset as u64).unwrap_or(u32::MAX)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        if offset + 4 <= self.len {
            self.bus.write(self.at + offset as u64, &value.to_le_bytes());
        }
    }
}

/// Memory from the arena and a clock that advances 100 µs per reading.
pub struct FakeEnv {
    pub bus: Bus,
    pub clock: u64,
    pub freed: Vec<u64>,
    /// Allocations left before `alloc` fails (None: never fails).
    pub allocs_left: Option<usize>,
}

impl FakeEnv {
    pub fn new(bus: &Bus) -> Self {
        Self { bus: bus.clone(), clock: 0, freed: Vec::new(), allocs_left: None }
    }
}

impl NvmeEnv for FakeEnv {
    type Memory = FakeMemory;
    fn alloc(&mut self, bytes: usize) -> Result<FakeMemory, String> {
        if let Some(left) = self.allocs_left.as_mut() {
            if *left == 0 {
                return Err("out of memory (test)".into());
            }
            *left -= 1;
        }
        let at = self.bus.alloc(bytes).ok_or("the arena is full")?;
        Ok(FakeMemory { bus: self.bus.clone(), at, len: bytes })
    }
    fn free(&mut self, memory: FakeMemory) -> Result<(), String> {
        self.bus.0.borrow_mut().live.remove(&memory.at);
        self.freed.push(memory.at);
        Ok(())
    }
    fn now_us(&mut self) -> u64 {
        self.clock += 100;
        self.clock
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Queue {
    pub base: u64,
    pub size: u16,
    pub head_or_tail: u16,
    pub cqid: u16,
    pub phase: bool,
}

/// The model's state, shared with the test for inspection.
pub struct Model {
    pub bus: Bus,
    pub cap: u64,
    pub cc: u32,
    pub csts: u32,
    pub aqa: u32,
    pub asq: u64,
    pub acq: u64,
    /// CSTS.RDY follows CC.EN only when true (a controller that never becomes ready).
    pub becomes_ready: bool,
    pub sqs: BTreeMap<u16, Queue>,
    pub cqs: BTreeMap<u16, Queue>,
    pub disk: Vec<u8>,
    pub lba_shift: u32,
    pub mdts: u8,
    pub max_queues: u16,
    /// Every command processed, with its queue.
    pub log: Vec<(u16, Command)>,
    /// PRP list pages read.
    pub list_reads: usize,
    /// Fail this opcode on I/O queues with this status.
    pub fail_io: Option<(u8, Status)>,
    /// Fail this admin opcode with this status.
    pub fail_admin: Option<(u8, Status)>,
    /// Never complete I/O commands.
    pub hang_io: bool,
    /// Data transfers (bus address, bytes, write-to-memory).
    pub transfers: Vec<(u64, usize, bool)>,
    /// CC values written.
    pub cc_writes: Vec<u32>,
}

#[derive(Clone)]
pub struct FakeNvme(pub Rc<RefCell<Model>>);

impl FakeNvme {
    /// QEMU 7.2's shape: MQES 2047, TO 15, NVM, doorbell stride 4, MDTS 7, 64 queue pairs.
    pub fn new(bus: &Bus, disk: Vec<u8>) -> Self {
        let cap = 0x7ff | 1 << 16 | 0xf << 24 | 1u64 << 37;
        FakeNvme(Rc::new(RefCell::new(Model {
            bus: bus.clone(),
            cap,
            cc: 0,
            csts: 0,
            aqa: 0,
            asq: 0,
            acq: 0,
            becomes_ready: true,
            sqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            disk,
            lba_shift: 9,
            mdts: 7,
            max_queues: 64,
            log: Vec::new(),
            list_reads: 0,
            fail_io: None,
            fail_admin: None,
            hang_io: false,
            transfers: Vec::new(),
            cc_writes: Vec::new(),
        })))
    }

    pub fn model(&self) -> std::cell::RefMut<'_, Model> {
        self.0.borrow_mut()
    }
}

impl NvmeRegs for FakeNvme {
    fn read32(&mut self, offset: usize) -> u32 {
        let m = self.0.borrow();
        match offset {
            0x00 => m.cap as u32,
            0x04 => (m.cap >> 32) as u32,
            0x08 => 0x0001_0400,
            0x14 => m.cc,
            0x1c => m.csts,
            0x24 => m.aqa,
            _ => 0,
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        let mut m = self.0.borrow_mut();
        match offset {
            0x14 => {
                m.cc_writes.push(value);
                let was = m.cc & 1;
                m.cc = value;
                if value & 1 == 0 {
                    // Controller reset: queues deleted, not ready.
                    m.csts = 0;
                    m.sqs.clear();
                    m.cqs.clear();
                } else if was == 0 && m.becomes_ready {
                    let (asq, acq, aqa) = (m.asq, m.acq, m.aqa);
                    m.sqs.insert(
                        0,
                        Queue {
                            base: asq,
                            size: (aqa & 0xfff) as u16 + 1,
                            head_or_tail: 0,
                            cqid: 0,
                            phase: true,
                        },
                    );
                    m.cqs.insert(
                        0,
                        Queue {
                            base: acq,
                            size: ((aqa >> 16) & 0xfff) as u16 + 1,
                            head_or_tail: 0,
                            cqid: 0,
                            phase: true,
                        },
                    );
                    m.csts = 1;
                }
                if (value >> 14) & 3 != 0 && m.csts & 1 == 1 {
                    m.csts |= 2 << 2; // shutdown complete
                }
            }
            0x24 => m.aqa = value,
            0x28 => m.asq = (m.asq & !0xffff_ffff) | u64::from(value),
            0x2c => m.asq = (m.asq & 0xffff_ffff) | (u64::from(value) << 32),
            0x30 => m.acq = (m.acq & !0xffff_ffff) | u64::from(value),
            0x34 => m.acq = (m.acq & 0xffff_ffff) | (u64::from(value) << 32),
            o if o >= 0x1000 => {
                let slot = (o - 0x1000) / 4;
                let qid = (slot / 2) as u16;
                if slot % 2 == 0 {
                    m.process(qid, value as u16);
                }
            }
            _ => {}
        }
    }
}

impl Model {
    fn process(&mut self, qid: u16, tail: u16) {
        if self.csts & 1 == 0 {
            return;
        }
        loop {
            let Some(sq) = self.sqs.get(&qid).copied() else { return };
            if sq.head_or_tail == tail {
                return;
            }
            let mut raw = [0u8; 64];
            assert!(
                self.bus.read(sq.base + u64::from(sq.head_or_tail) * 64, &mut raw),
                "SQ {qid} outside the arena"
            );
            let mut d = [0u32; 16];
            for (k, w) in d.iter_mut().enumerate() {
                *w = u32::from_le_bytes(raw[4 * k..4 * k + 4].try_into().unwrap());
            }
            let command = Command::from_dwords(&d);
            self.sqs.get_mut(&qid).unwrap().head_or_tail = (sq.head_or_tail + 1) % sq.size;
            self.log.push((qid, command));
            let outcome = if qid == 0 { self.admin(&command) } else { self.io(&command) };
            let Some((status, result)) = outcome else { continue };
            let head = self.sqs.get(&qid).map_or(0, |q| q.head_or_tail);
            self.post(sq.cqid, qid, head, command.cid, status, result);
        }
    }

    fn post(&mut self, cqid: u16, sqid: u16, sq_head: u16, cid: u16, status: Status, result: u32) {
        let cq = self.cqs.get_mut(&cqid).expect("a completion queue");
        let at = cq.base + u64::from(cq.head_or_tail) * 16;
        let mut entry = [0u8; 16];
        entry[0..4].copy_from_slice(&result.to_le_bytes());
        entry[8..12].copy_from_slice(&(u32::from(sq_head) | (u32::from(sqid) << 16)).to_le_bytes());
        entry[12..16].copy_from_slice(&Completion::dw3(cid, cq.phase, status).to_le_bytes());
        let bus = self.bus.clone();
        assert!(bus.write(at, &entry), "CQ {cqid} outside the arena");
        cq.head_or_tail += 1;
        if cq.head_or_tail == cq.size {
            cq.head_or_tail = 0;
            cq.phase = !cq.phase;
        }
    }

    fn admin(&mut self, c: &Command) -> Option<(Status, u32)> {
        if let Some((op, status)) = self.fail_admin {
            if op == c.opcode {
                return Some((status, 0));
            }
        }
        let ok = Some((Status::SUCCESS, 0));
        match c.opcode {
            0x06 => {
                let mut data = vec![0u8; 4096];
                match c.cdw[0] & 0xff {
                    1 => {
                        data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
                        data[4..24].copy_from_slice(b"fake-serial-0001    ");
                        let model = b"Fake NVMe Ctrl";
                        data[24..24 + model.len()].copy_from_slice(model);
                        data[24 + model.len()..64].fill(b' ');
                        data[64..72].copy_from_slice(b"1.0     ");
                        data[77] = self.mdts;
                        data[516..520].copy_from_slice(&1u32.to_le_bytes());
                    }
                    0 if c.nsid == 1 => {
                        let blocks = (self.disk.len() >> self.lba_shift) as u64;
                        data[0..8].copy_from_slice(&blocks.to_le_bytes());
                        data[8..16].copy_from_slice(&blocks.to_le_bytes());
                        data[26] = 0;
                        data[128..132].copy_from_slice(&(self.lba_shift << 16).to_le_bytes());
                    }
                    0 => {}
                    _ => return Some((Status(0x02), 0)),
                }
                assert_eq!(c.prp1 % PAGE, 0, "Identify data must be a page");
                assert!(self.bus.write(c.prp1, &data), "Identify buffer outside the arena");
                ok
            }
            0x09 if c.cdw[0] == 7 => {
                let grant = |n: u32| n.min(u32::from(self.max_queues) - 1);
                Some((Status::SUCCESS, grant(c.cdw[1] & 0xffff) | (grant(c.cdw[1] >> 16) << 16)))
            }
            0x05 => {
                let (qid, size) = (c.cdw[0] as u16, (c.cdw[0] >> 16) as u16 + 1);
                assert_eq!(c.cdw[1] & 3, 1, "physically contiguous, no interrupts");
                if qid == 0 || qid > self.max_queues || self.cqs.contains_key(&qid) {
                    return Some((Status(0x0101), 0));
                }
                self.cqs.insert(qid, Queue { base: c.prp1, size, head_or_tail: 0, cqid: 0, phase: true });
                ok
            }
            0x01 => {
                let (qid, size, cqid) =
                    (c.cdw[0] as u16, (c.cdw[0] >> 16) as u16 + 1, (c.cdw[1] >> 16) as u16);
                if !self.cqs.contains_key(&cqid) {
                    return Some((Status(0x0100), 0));
                }
                self.sqs.insert(qid, Queue { base: c.prp1, size, head_or_tail: 0, cqid, phase: true });
                ok
            }
            _ => Some((Status(0x01), 0)),
        }
    }

    /// The data's pages from PRP1 and PRP2 (§4.1.1), read here independently of the driver.
    fn pages(&mut self, c: &Command, len: usize) -> Option<Vec<(u64, usize)>> {
        let page = PAGE as usize;
        let first = (page - (c.prp1 as usize % page)).min(len);
        let mut out = vec![(c.prp1, first)];
        let mut left = len - first;
        if left == 0 {
            return Some(out);
        }
        if left <= page {
            if !c.prp2.is_multiple_of(PAGE) {
                return None;
            }
            out.push((c.prp2, left));
            return Some(out);
        }
        self.list_reads += 1;
        let mut k = 0;
        while left > 0 {
            let mut e = [0u8; 8];
            if !self.bus.read(c.prp2 + 8 * k, &mut e) {
                return None;
            }
            let entry = u64::from_le_bytes(e);
            if entry % PAGE != 0 {
                return None;
            }
            let n = left.min(page);
            out.push((entry, n));
            left -= n;
            k += 1;
        }
        Some(out)
    }

    fn io(&mut self, c: &Command) -> Option<(Status, u32)> {
        if self.hang_io {
            return None;
        }
        if let Some((op, status)) = self.fail_io {
            if op == c.opcode {
                return Some((status, 0));
            }
        }
        if c.opcode == 0x00 {
            return Some((Status::SUCCESS, 0));
        }
        if c.nsid != 1 {
            return Some((Status(0x0b), 0));
        }
        let lba = u64::from(c.cdw[0]) | (u64::from(c.cdw[1]) << 32);
        let blocks = u64::from(c.cdw[2] & 0xffff) + 1;
        let len = (blocks << self.lba_shift) as usize;
        if len > (PAGE as usize) << self.mdts {
            return Some((Status(0x02), 0));
        }
        let start = (lba << self.lba_shift) as usize;
        if start + len > self.disk.len() {
            return Some((Status(0x80), 0));
        }
        let Some(pages) = self.pages(c, len) else { return Some((Status(0x13), 0)) };
        let mut at = start;
        for (bus, n) in pages {
            let ok = match c.opcode {
                0x02 => {
                    let data = self.disk[at..at + n].to_vec();
                    self.bus.write(bus, &data)
                }
                0x01 => {
                    let mut data = vec![0; n];
                    let ok = self.bus.read(bus, &mut data);
                    self.disk[at..at + n].copy_from_slice(&data);
                    ok
                }
                _ => return Some((Status(0x01), 0)),
            };
            if !ok {
                return Some((Status(0x04), 0));
            }
            self.transfers.push((bus, n, c.opcode == 0x02));
            at += n;
        }
        Some((Status::SUCCESS, 0))
    }
}
