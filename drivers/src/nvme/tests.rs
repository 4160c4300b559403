//! The driver against the model controller (`fake.rs`).

use super::fake::{Bus, FakeEnv, FakeNvme};
use super::spec::Status;
use super::{Config, Controller, IoOp, NvmeError};
use crate::addr::BusAddr;

/// Where the arena sits: a DDW's base, as QEMU places it (2^59).
const BASE: u64 = 1 << 59;

fn disk(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i * 7 + i / 4096) as u8).collect()
}

fn setup(disk_bytes: usize) -> (Bus, FakeNvme) {
    let bus = Bus::new(BASE, 16 << 20);
    let nvme = FakeNvme::new(&bus, disk(disk_bytes));
    (bus, nvme)
}

fn start(bus: &Bus, nvme: &FakeNvme, config: Config) -> Result<Controller<FakeNvme, FakeEnv>, NvmeError> {
    Controller::start(nvme.clone(), FakeEnv::new(bus), config)
}

#[test]
fn bring_up_identifies_and_creates_the_io_queues_at_bus_addresses() {
    let (bus, nvme) = setup(4 << 20);
    let c = start(&bus, &nvme, Config::default()).expect("starts");
    assert_eq!(c.identity().serial, "fake-serial-0001");
    assert_eq!(c.identity().model, "Fake NVMe Ctrl");
    assert_eq!(c.identity().version, 0x0001_0400);
    assert_eq!(c.namespace().blocks, 8192);
    assert_eq!(c.namespace().block_bytes, 512);
    assert_eq!(c.max_transfer(), 512 << 10, "MDTS 7 of 4 KiB pages");
    assert_eq!((c.io_queues(), c.io_depth()), (2, 64));
    let m = nvme.model();
    // Disabled first, then enabled with 64/16-byte entries.
    assert_eq!(m.cc_writes, [0, (6 << 16) | (4 << 20) | 1]);
    assert!(m.asq >= BASE && m.acq >= BASE && m.asq % 4096 == 0, "admin queues at bus addresses");
    assert_eq!(m.aqa, (15 << 16) | 15);
    let opcodes: Vec<u8> = m.log.iter().map(|(_, c)| c.opcode).collect();
    assert_eq!(opcodes, [0x06, 0x06, 0x09, 0x05, 0x01, 0x05, 0x01]);
    assert_eq!(m.sqs.len(), 3);
    for qid in [1, 2] {
        assert_eq!(m.sqs[&qid].cqid, qid);
        assert_eq!(m.sqs[&qid].size, 64);
        assert!(m.sqs[&qid].base >= BASE && m.cqs[&qid].base >= BASE);
    }
}

#[test]
fn reads_and_writes_split_at_mdts_over_both_queues_with_prp_lists() {
    let (bus, nvme) = setup(4 << 20);
    let mut c = start(&bus, &nvme, Config::default()).unwrap();
    let buffer = bus.alloc(1 << 20).unwrap();
    c.transfer(IoOp::Read, 2048, 2048, BusAddr(buffer)).expect("1 MiB read");
    let mut got = vec![0; 1 << 20];
    assert!(bus.read(buffer, &mut got));
    assert_eq!(got, disk(4 << 20)[1 << 20..2 << 20], "the data arrived in order");
    {
        let m = nvme.model();
        let reads: Vec<(u16, u64, u32)> =
            m.log.iter().filter(|(_, c)| c.opcode == 2).map(|(q, c)| (*q, c.prp1, c.cdw[2])).collect();
        assert_eq!(
            reads,
            [(1, buffer, 1023), (2, buffer + (512 << 10), 1023)],
            "two 512 KiB commands, one per queue"
        );
        assert_eq!(m.list_reads, 2);
    }
    // Write it back elsewhere (unaligned start inside the page: dword aligned is enough).
    let small = bus.alloc(8192).unwrap();
    assert!(bus.write(small + 0x200, &[0xab; 1024]));
    c.transfer(IoOp::Write, 5, 2, BusAddr(small + 0x200)).unwrap();
    c.flush().unwrap();
    assert_eq!(&nvme.model().disk[5 * 512..7 * 512], &[0xab; 1024][..]);
    assert_eq!(c.commands(), 3);
}

#[test]
fn queues_wrap_and_the_phase_flips() {
    let (bus, nvme) = setup(1 << 20);
    let config = Config { io_queues: 1, io_depth: 4, ..Config::default() };
    let mut c = start(&bus, &nvme, config).unwrap();
    let buffer = bus.alloc(4096).unwrap();
    for lba in 0..20 {
        c.transfer(IoOp::Read, lba, 8, BusAddr(buffer)).unwrap();
        let mut got = vec![0; 4096];
        bus.read(buffer, &mut got);
        assert_eq!(got, disk(1 << 20)[lba as usize * 512..lba as usize * 512 + 4096]);
    }
    // At most depth - 1 outstanding: submitting without polling fills at 3.
    for k in 0..3 {
        assert!(c.submit(0, IoOp::Read, k, 1, BusAddr(buffer)).unwrap().is_some());
    }
    assert_eq!(c.submit(0, IoOp::Read, 3, 1, BusAddr(buffer)).unwrap(), None);
    let mut done = Vec::new();
    c.poll(0, &mut done);
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|(_, s)| s.is_success()));
    assert_eq!(c.outstanding(0), 0);
}

#[test]
fn errors_name_the_command_and_status() {
    let (bus, nvme) = setup(1 << 20);
    nvme.model().fail_io = Some((0x02, Status(0x0281)));
    let mut c = start(&bus, &nvme, Config::default()).unwrap();
    let buffer = bus.alloc(4096).unwrap();
    let err = c.transfer(IoOp::Read, 8, 8, BusAddr(buffer)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "NVMe Read of 8 blocks at LBA 8 failed: status type 0x2 code 0x81 (Unrecovered Read Error)"
    );
    let outside = c.transfer(IoOp::Write, 2047, 2, BusAddr(buffer)).unwrap_err();
    assert!(outside.to_string().contains("the namespace has 2048 blocks"), "{outside}");

    let (bus, nvme) = setup(1 << 20);
    nvme.model().fail_admin = Some((0x05, Status(0x0102)));
    let err = start(&bus, &nvme, Config::default()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "NVMe Create I/O Completion Queue 1 failed: status type 0x1 code 0x02 (Invalid Queue Size)"
    );
    // The controller was disabled, then every allocation freed.
    assert_eq!(nvme.model().cc_writes.last(), Some(&0));
    assert!(bus.0.borrow().live.is_empty(), "memory given back after the disable");
}

#[test]
fn a_controller_that_never_becomes_ready_is_a_clear_error() {
    let (bus, nvme) = setup(1 << 20);
    nvme.model().becomes_ready = false;
    let err = start(&bus, &nvme, Config::default()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "the NVMe controller did not become ready within 7500 ms after CC.EN=1 (CSTS 0x0)"
    );
}

#[test]
fn a_command_that_never_completes_times_out() {
    let (bus, nvme) = setup(1 << 20);
    let mut c = start(&bus, &nvme, Config { command_timeout_us: 50_000, ..Config::default() }).unwrap();
    nvme.model().hang_io = true;
    let buffer = bus.alloc(4096).unwrap();
    let err = c.transfer(IoOp::Read, 0, 8, BusAddr(buffer)).unwrap_err();
    assert_eq!(err.to_string(), "NVMe Read of 8 blocks at LBA 0 on queue 1 did not complete within 50 ms");
}

#[test]
fn a_fatal_status_stops_the_wait() {
    let (bus, nvme) = setup(1 << 20);
    let mut c = start(&bus, &nvme, Config::default()).unwrap();
    nvme.model().hang_io = true;
    nvme.model().csts |= 2;
    let buffer = bus.alloc(4096).unwrap();
    let err = c.transfer(IoOp::Read, 0, 8, BusAddr(buffer)).unwrap_err();
    assert!(err.to_string().contains("fatal error (CSTS.CFS, CSTS 0x3) during Read of 8 blocks"), "{err}");
}

#[test]
fn shutdown_disables_before_freeing() {
    let (bus, nvme) = setup(1 << 20);
    let c = start(&bus, &nvme, Config::default()).unwrap();
    assert!(!bus.0.borrow().live.is_empty());
    let env = c.shutdown().expect("shuts down");
    let m = nvme.model();
    assert_eq!(m.cc_writes[m.cc_writes.len() - 2] >> 14 & 3, 1, "CC.SHN normal first");
    assert_eq!(m.cc_writes.last(), Some(&0));
    assert!(m.sqs.is_empty());
    assert!(bus.0.borrow().live.is_empty());
    assert_eq!(env.freed.len(), 2 + 1 + 2 * 3, "admin pair, identify page, two I/O pairs with lists");
}

#[test]
fn out_of_memory_is_reported() {
    let (bus, nvme) = setup(1 << 20);
    let mut env = FakeEnv::new(&bus);
    env.allocs_left = Some(3);
    let err = Controller::start(nvme.clone(), env, Config::default()).err().unwrap();
    assert_eq!(err.to_string(), "NVMe queue memory: out of memory (test)");
}

#[test]
fn a_shutdown_that_never_completes_is_named() {
    let err = NvmeError::NotReady { what: "shutdown", waited_ms: 7500, csts: 1 };
    assert_eq!(
        err.to_string(),
        "the NVMe controller did not report its shutdown complete (CSTS.SHST) within 7500 ms after CC.SHN (CSTS 0x1)"
    );
    let disabled = NvmeError::NotReady { what: "disable", waited_ms: 500, csts: 1 };
    assert!(disabled
        .to_string()
        .starts_with("the NVMe controller did not become disabled within 500 ms after CC.EN=0"));
}
