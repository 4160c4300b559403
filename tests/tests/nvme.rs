//! NVMe controllers (QEMU's `nvme`) through the PE's DMA windows, judged by QEMU's own trace
//! and by the disk images on the host: the controller is given its queues at bus addresses of
//! the window (`pci_nvme_create_sq`/`_cq`), every DMA it makes is translated through the DDW
//! (`spapr_iommu_xlate`) with no TCE hypercall after the up-front mapping of RAM in direct
//! mode, or through TCEs per request in the default window with `ddw=off`; the per-MiB CRCs
//! match the host's and a scratch namespace holds exactly the copy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tests::disk;
use tests::kv::parse_hex;
use tests::qemu::{Firmware, Outcome, Scenario};
use tests::trace::Trace;

const MIB: usize = 1 << 20;
/// TCG, up to two QEMUs at once, every DMA translation traced.
const TIMEOUT: Duration = Duration::from_secs(240);
const TRACE: &[&str] =
    &["spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_iommu_xlate", "pci_nvme_create_*", "pci_nvme_io_cmd"];
/// QEMU's default window: LIOBN 0x80000000 on PHB 0.
const DEFAULT_LIOBN: u64 = 0x8000_0000;

/// An NVMe namespace to attach and verify.
struct NvmeDisk {
    id: &'static str,
    serial: &'static str,
    image: Arc<Vec<u8>>,
}

impl NvmeDisk {
    fn scratch(id: &'static str, serial: &'static str, seed: u64) -> Self {
        Self { id, serial, image: Arc::new(disk::scratch_image(16 * MIB, seed)) }
    }

    fn read_only(id: &'static str, serial: &'static str, seed: u64) -> Self {
        Self { id, serial, image: Arc::new(disk::random_image(8 * MIB, seed)) }
    }
}

fn scenario(name: &str, firmware: Firmware, disks: &[&NvmeDisk]) -> Scenario {
    let mut scenario =
        Scenario::new(name, firmware).memory("1G").timeout(TIMEOUT).trace(TRACE.iter().copied());
    for d in disks {
        scenario = scenario.nvme_image(d.id, None, d.serial, Arc::clone(&d.image));
    }
    scenario
}

#[track_caller]
fn traced<T>(outcome: &Outcome, parsed: Result<Vec<T>, String>) -> Vec<T> {
    parsed.unwrap_or_else(|why| outcome.fail(&format!("QEMU's trace: {why}")))
}

/// The `nvme.N` that reports this disk's serial number.
fn find_nvme(outcome: &Outcome, disk: &NvmeDisk) -> usize {
    (0..8)
        .find(|n| outcome.kv.get(&format!("nvme.{n}.serial")) == Some(disk.serial))
        .unwrap_or_else(|| outcome.fail(&format!("no nvme.N.serial={} (disk {})", disk.serial, disk.id)))
}

/// What `nvme.N.*` must say about `disk`, and the image QEMU left; returns `N`, the data
/// buffers' physical addresses and the queues' bus addresses.
fn check_nvme(outcome: &Outcome, disk: &NvmeDisk, dma: &str) -> (usize, Vec<u64>, Vec<u64>) {
    let n = find_nvme(outcome, disk);
    let key = |k: &str| format!("nvme.{n}.{k}");
    let sectors = (disk.image.len() / disk::SECTOR).to_string();
    outcome
        .expect_kv(&key("status"), "ok")
        .expect_kv(&key("dma"), dma)
        .expect_kv(&key("dma_mask_bits"), "64")
        .expect_kv(&key("model"), "QEMU NVMe Ctrl")
        .expect_kv(&key("lba_bytes"), "512")
        .expect_kv(&key("sectors"), &sectors)
        .expect_kv(&key("io_queues"), "2")
        .expect_kv(&key("scratch"), if disk::is_scratch(&disk.image) { "yes" } else { "no" });
    let bdf = outcome.require(&key("bdf"));
    let id = outcome.kv.get(&format!("pci.0.{bdf}.id"));
    if id != Some("1b36:0010") {
        outcome.fail(&format!("{}={bdf}, but pci.0.{bdf}.id is {id:?}, not QEMU's NVMe", key("bdf")));
    }
    let read = outcome.require_u64(&key("read_bytes"));
    if read != disk.image.len().min(disk::READ_LIMIT) as u64 {
        outcome.fail(&format!("{}={read}, the namespace has {} bytes", key("read_bytes"), disk.image.len()));
    }
    if disk::is_scratch(&disk.image) {
        outcome.expect_scratch_image(&format!("nvme.{n}"), disk.id, &disk.image);
        outcome.expect_kv(
            &key("copied_sectors"),
            &disk::copied_sectors(disk.image.len() as u64 / 512).to_string(),
        );
    } else {
        for (k, crc) in disk::mib_crcs(&disk.image).iter().enumerate() {
            outcome.expect_kv(&key(&format!("crc.{k}")), &disk::crc_text(*crc));
        }
        outcome.expect_kv(&key("copy"), "skipped");
        let path = outcome.disk_path(disk.id);
        let after =
            std::fs::read(&path).unwrap_or_else(|e| outcome.fail(&format!("{}: {e}", path.display())));
        if let Err(why) = disk::check_unchanged(&disk.image, &after) {
            outcome.fail(&format!("disk {}: {why}", disk.id));
        }
    }
    let buffers = outcome.require(&key("buffers"));
    let buffers: Vec<u64> = buffers
        .split(',')
        .map(|b| parse_hex(b).unwrap_or_else(|| outcome.fail(&format!("{}={buffers}", key("buffers")))))
        .collect();
    let mut queues = Vec::new();
    for q in 1..=2 {
        let value = outcome.require(&key(&format!("queue.{q}")));
        let parsed = value
            .strip_prefix("sq=")
            .and_then(|v| v.split_once(",cq="))
            .and_then(|(sq, cq)| Some((parse_hex(sq)?, parse_hex(cq)?)));
        let (sq, cq) =
            parsed.unwrap_or_else(|| outcome.fail(&format!("{}={value}", key(&format!("queue.{q}")))));
        queues.extend([sq, cq]);
    }
    (n, buffers, queues)
}

/// QEMU created each reported I/O queue at the bus address the kernel reports (bus =
/// physical + `offset` inside RAM), and fetched I/O commands from both queues of every
/// controller.
fn check_queues(outcome: &Outcome, trace: &Trace, queues: &[u64], offset: Option<u64>) {
    let created: BTreeSet<u64> = traced(outcome, trace.nvme_queues()).iter().map(|q| q.addr).collect();
    let max_addr = outcome.require_hex("mem.max_addr");
    for &bus in queues {
        if !created.contains(&bus) {
            outcome.fail(&format!("the kernel reports a queue at bus {bus:#x}; QEMU created {created:x?}"));
        }
        if let Some(offset) = offset {
            if bus.checked_sub(offset).is_none_or(|phys| phys >= max_addr) {
                outcome.fail(&format!("queue at bus {bus:#x} is not RAM at the DDW's base {offset:#x}"));
            }
        }
    }
    let sqs: BTreeSet<u64> = traced(outcome, trace.nvme_io_cmds()).iter().map(|c| c.sqid).collect();
    if !sqs.contains(&1) || !sqs.contains(&2) {
        outcome.fail(&format!("I/O commands came from submission queues {sqs:?}, expected 1 and 2"));
    }
}

/// Every translation on `liobn` granted; some start at each data buffer (offset in the
/// window = physical address for a direct DDW, or any IOVA translating into the buffer).
fn check_xlates(outcome: &Outcome, trace: &Trace, liobn: u64, buffers: &[u64], direct: bool) {
    let xlates = traced(outcome, trace.xlates());
    let refused: Vec<_> = xlates.iter().filter(|x| x.perm == 0).take(5).collect();
    if !refused.is_empty() {
        outcome.fail(&format!("QEMU refused DMA (perm=0): {refused:x?}"));
    }
    let on: Vec<_> = xlates.iter().filter(|x| x.liobn == liobn).collect();
    if on.len() < 64 {
        outcome.fail(&format!("only {} DMA translations on LIOBN {liobn:#x}", on.len()));
    }
    if direct {
        let odd: Vec<_> =
            on.iter().filter(|x| x.perm != 3 || x.translated != x.offset & !x.mask).take(5).collect();
        if !odd.is_empty() {
            outcome.fail(&format!("DDW translations that are not the READ|WRITE identity: {odd:x?}"));
        }
    }
    for &buffer in buffers {
        let reached = on.iter().any(|x| {
            let page = x.translated;
            if direct {
                x.offset == buffer
            } else {
                buffer <= page && page < buffer + MIB as u64
            }
        });
        if !reached {
            outcome.fail(&format!("no DMA on LIOBN {liobn:#x} reached the buffer at {buffer:#x}"));
        }
    }
}

/// A direct DDW on PE 0 and no TCE hypercall beyond its up-front mapping of RAM (so none per
/// I/O, and none on the default window); returns the DDW's bus base and LIOBN.
fn check_direct(outcome: &Outcome, trace: &Trace) -> (u64, u64) {
    outcome.expect_kv("pe.0.ddw", "direct");
    let (liobn, base) = (outcome.require_hex("pe.0.ddw.liobn"), outcome.require_hex("pe.0.ddw.bus_base"));
    let writes = trace.tce_writes(liobn).unwrap_or_else(|why| outcome.fail(&why));
    let reported =
        (outcome.require_u64("pe.0.ddw.put_calls"), outcome.require_u64("pe.0.ddw.indirect_calls"));
    if (writes.puts, writes.indirect_calls, writes.stuff_calls, writes.failed)
        != (reported.0, reported.1, 0, 0)
    {
        outcome.fail(&format!(
            "TCE hcalls on the DDW {liobn:#x}: {writes:?}; the up-front mapping alone is {reported:?} \
             (puts, indirect calls)"
        ));
    }
    let default = trace.tce_writes(DEFAULT_LIOBN).unwrap_or_else(|why| outcome.fail(&why));
    if default.puts + default.indirect_calls + default.stuff_calls != 0 {
        outcome
            .fail(&format!("TCE hcalls on the default window although every device is direct: {default:?}"));
    }
    let io = traced(outcome, trace.nvme_io_cmds()).len();
    if io < 16 {
        outcome.fail(&format!("QEMU traced only {io} NVMe I/O commands"));
    }
    (base, liobn)
}

fn nvme_direct(firmware: Firmware) {
    let scratch = NvmeDisk::scratch("nvme0", "ddw-scratch-0", 0x0e0e_0001 + firmware as u64);
    let outcome = scenario(&format!("nvme-direct-{}", firmware.name()), firmware, &[&scratch]).run();
    outcome.expect_ok().expect_kv("selftest.status", "ok").expect_kv("selftest.nvmes", "1");
    if outcome.require("mmu.mode") == "real" {
        outcome.fail("translation is off (mmu.mode=real)");
    }
    let trace = outcome.parsed_trace();
    let (base, liobn) = check_direct(&outcome, &trace);
    let (n, buffers, queues) = check_nvme(&outcome, &scratch, "direct");
    let offset = outcome.require_hex(&format!("nvme.{n}.dma_offset"));
    if offset != base {
        outcome.fail(&format!("nvme.{n}.dma_offset={offset:#x}, the DDW's bus base is {base:#x}"));
    }
    check_queues(&outcome, &trace, &queues, Some(base));
    check_xlates(&outcome, &trace, liobn, &buffers, true);
}

#[test]
fn nvme_through_the_ddw_slof() {
    nvme_direct(Firmware::Slof);
}

#[test]
fn nvme_through_the_ddw_vof() {
    nvme_direct(Firmware::Vof);
}

#[test]
fn nvme_through_the_ddw_bios() {
    nvme_direct(Firmware::Bios);
}

/// `ddw=off`: no DDW; the controller's queues, PRP lists and data go through the default
/// window, every request's buffer mapped with TCEs and cleared afterwards.
#[test]
fn nvme_with_ddw_off_uses_the_default_window() {
    let scratch = NvmeDisk::scratch("nvme0", "ddw-off-0", 0x0e0e_0010);
    let outcome = scenario("nvme-ddw-off", Firmware::Vof, &[&scratch]).append("ddw=off").run();
    outcome.expect_ok().expect_kv("selftest.status", "ok").expect_kv("pe.0.ddw", "none");
    let trace = outcome.parsed_trace();
    let creates = traced(&outcome, trace.ddw_creates());
    if !creates.is_empty() {
        outcome.fail(&format!("a DDW was created: {creates:x?}"));
    }
    let (n, buffers, queues) = check_nvme(&outcome, &scratch, "default-iommu");
    outcome.expect_kv(&format!("nvme.{n}.dma_liobn"), &format!("{DEFAULT_LIOBN:#x}"));
    check_queues(&outcome, &trace, &queues, None);
    if queues.iter().any(|&q| q >= 1 << 30) {
        outcome.fail(&format!("queues at {queues:x?}: outside the 1 GiB default window"));
    }
    check_xlates(&outcome, &trace, DEFAULT_LIOBN, &buffers, false);
    // TCEs per request: at least one map and one clear per data transfer (a transfer is at
    // most two commands, one per queue).
    let writes = trace.tce_writes(DEFAULT_LIOBN).unwrap_or_else(|why| outcome.fail(&why));
    let io = traced(&outcome, trace.nvme_io_cmds()).len() as u64;
    let transfers = io.div_ceil(2);
    if writes.failed != 0 || writes.puts + writes.indirect_calls < transfers || writes.stuff_calls < transfers
    {
        outcome.fail(&format!(
            "TCE hcalls on the default window {writes:?} for {io} I/O commands: expected a map and a clear \
             per transfer"
        ));
    }
}

/// Two NVMe controllers and a virtio-blk on one PHB: all three direct through one DDW, no TCE
/// hypercall per I/O, each disk checked on the host.
#[test]
fn two_nvme_controllers_and_a_virtio_blk_on_one_phb() {
    let a = NvmeDisk::scratch("nvme0", "ddw-two-a", 0x0e0e_0020);
    let b = NvmeDisk::read_only("nvme1", "ddw-two-b", 0x0e0e_0021);
    let blk = Arc::new(disk::scratch_image(8 * MIB, 0x0e0e_0022));
    let outcome = scenario("nvme-two-and-blk", Firmware::Vof, &[&a, &b])
        .virtio_blk_image("blk0", None, Arc::clone(&blk), true)
        .run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("selftest.nvmes", "2")
        .expect_kv("selftest.disks", "1")
        .expect_kv("phb.count", "1");
    let trace = outcome.parsed_trace();
    let (base, liobn) = check_direct(&outcome, &trace);
    let mut all_queues = Vec::new();
    let mut nvmes = BTreeSet::new();
    for d in [&a, &b] {
        let (n, buffers, queues) = check_nvme(&outcome, d, "direct");
        nvmes.insert(n);
        check_xlates(&outcome, &trace, liobn, &buffers, true);
        all_queues.extend(queues);
    }
    if nvmes.len() != 2 {
        outcome.fail("the two controllers were not reported apart");
    }
    check_queues(&outcome, &trace, &all_queues, Some(base));
    outcome.expect_kv("blk.0.dma", "direct").expect_kv("blk.0.status", "ok");
    outcome.expect_scratch_disk(0, "blk0", &blk);
}
