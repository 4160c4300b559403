//! The DMA self-tests against QEMU's own account of them: the kernel creates a Dynamic DMA
//! Window per PE, maps all of RAM into it, reads virtio-blk disks (and copies half of a scratch
//! disk) and drives the `edu` device through the default window; QEMU's trace
//! (`spapr_iommu_*`) shows the RTAS calls, TCE hcalls and DMA translations, and the disk images
//! on the host show what the device really read and wrote.
//!
//! Every disk is pseudo-random (`tests::disk`), so the per-MiB CRCs the kernel prints prove the
//! bytes arrived through the window intact, and a scratch disk's copy proves writes did too.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tests::disk;
use tests::kv::parse_hex;
use tests::qemu::{Firmware, Outcome, Scenario};
use tests::trace::{TceWrites, Trace, Xlate};

const MIB: usize = 1 << 20;
const GIB: u64 = 1 << 30;
/// BUIDs of the PHBs with index 0 and 1.
const PHB_BUID: [u64; 2] = [0x0800_0000_2000_0000, 0x0800_0000_2000_0001];
/// QEMU 7.2's default window: bus 0, 1 GiB, 4 KiB pages.
const DEFAULT_WINDOW: &str = "0x0+0x40000000";
const DEFAULT_WINDOW_SIZE: u64 = 1 << 30;
/// Where QEMU puts a DDW while the default window exists (`dma64_win_addr`, 2^59).
const DDW_BUS_BASE: u64 = 1 << 59;
/// The query's page-size mask per `pgsz` (QEMU 7.2 default: 4K, 64K, 16M, 2M).
const PAGE_SIZES_DEFAULT: u64 = 0x107;
/// Largest block with the 6-output query (2^37 TCEs).
const LARGEST_BLOCK: u64 = 0x20_0000_0000;
/// TCEs per H_PUT_TCE_INDIRECT.
const TCES_PER_CALL: u64 = 512;
/// The edu device's default DMA mask.
const EDU_MASK_BITS: u32 = 28;
/// Generous: TCG, up to two QEMUs at once, 64 MiB read through the IOMMU, xlate tracing.
const TIMEOUT: Duration = Duration::from_secs(240);
/// The DDW RTAS calls and the TCE hcalls; DMA translations only where asked (large logs).
const TRACE: &[&str] = &["spapr_iommu_pci_*", "spapr_iommu_ddw_*"];
const TRACE_XLATE: &[&str] = &["spapr_iommu_pci_*", "spapr_iommu_ddw_*", "spapr_iommu_xlate"];

/// The default window's LIOBN of PHB `pe`.
fn default_liobn(pe: usize) -> u64 {
    0x8000_0000 | (pe as u64) << 8
}

/// A disk to attach and verify.
struct TestDisk {
    id: &'static str,
    bus: Option<&'static str>,
    image: Arc<Vec<u8>>,
    /// `iommu_platform=on` (and `disable-legacy=on`), else a plain `virtio-blk-pci`.
    iommu: bool,
    /// The PE (PHB index) it sits behind.
    pe: usize,
}

impl TestDisk {
    /// A scratch disk (the kernel copies half of it) behind the IOMMU.
    fn scratch(id: &'static str, bus: Option<&'static str>, bytes: usize, seed: u64, pe: usize) -> Self {
        Self { id, bus, image: Arc::new(disk::scratch_image(bytes, seed)), iommu: true, pe }
    }

    /// A disk the kernel must only read.
    fn read_only(id: &'static str, bus: Option<&'static str>, bytes: usize, seed: u64, iommu: bool) -> Self {
        Self { id, bus, image: Arc::new(disk::random_image(bytes, seed)), iommu, pe: 0 }
    }

    fn on_pe(mut self, pe: usize) -> Self {
        self.pe = pe;
        self
    }

    fn sectors(&self) -> u64 {
        (self.image.len() / disk::SECTOR) as u64
    }
}

/// A boot with the IOMMU trace (with `xlate`: every DMA translation too) and the long timeout.
fn base(name: &str, firmware: Firmware, memory: &str, xlate: bool) -> Scenario {
    Scenario::new(name, firmware)
        .memory(memory)
        .timeout(TIMEOUT)
        .trace(if xlate { TRACE_XLATE } else { TRACE }.iter().copied())
}

/// `scenario` with a virtio-blk per disk (after any bus those name was created).
fn attach(mut scenario: Scenario, disks: &[&TestDisk]) -> Scenario {
    for d in disks {
        scenario = scenario.virtio_blk_image(d.id, d.bus, Arc::clone(&d.image), d.iommu);
    }
    scenario
}

/// [`base`] with `disks` attached.
fn scenario(name: &str, firmware: Firmware, memory: &str, disks: &[&TestDisk], xlate: bool) -> Scenario {
    attach(base(name, firmware, memory, xlate), disks)
}

/// A parsed trace list, or a failure naming the unparsable line.
#[track_caller]
fn traced<T>(outcome: &Outcome, parsed: Result<Vec<T>, String>) -> Vec<T> {
    parsed.unwrap_or_else(|why| outcome.fail(&format!("QEMU's trace: {why}")))
}

#[track_caller]
fn writes_on(outcome: &Outcome, trace: &Trace, liobn: u64) -> TceWrites {
    trace.tce_writes(liobn).unwrap_or_else(|why| outcome.fail(&format!("QEMU's trace: {why}")))
}

/// `mem.range.K=0xBASE+0xSIZE` for K < `mem.ranges`.
fn ram_ranges(outcome: &Outcome) -> Vec<(u64, u64)> {
    let count = outcome.require_u64("mem.ranges");
    let ranges: Vec<(u64, u64)> = (0..count)
        .map(|k| {
            let key = format!("mem.range.{k}");
            let value = outcome.require(&key);
            let parsed = value.split_once('+').and_then(|(b, s)| Some((parse_hex(b)?, parse_hex(s)?)));
            parsed.unwrap_or_else(|| outcome.fail(&format!("{key}={value} is not 0xBASE+0xSIZE")))
        })
        .collect();
    if ranges.is_empty() {
        outcome.fail("the kernel reported no RAM range");
    }
    ranges
}

fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

/// One TCE hcall the direct mapping must make: `(ioba, entries, last TCE)`, `put` for a lone
/// page (H_PUT_TCE), else H_PUT_TCE_INDIRECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MapCall {
    put: bool,
    ioba: u64,
    entries: u64,
    last_tce: u64,
}

/// The calls mapping all RAM READ|WRITE at bus base + physical: each range rounded out to the
/// page size (base down, end up), ranges that touch or share a page joined into one span,
/// ⌈TCEs / 512⌉ indirect calls per span, or one H_PUT_TCE for a span of a single page.
fn expected_map_calls(ranges: &[(u64, u64)], page_shift: u32, bus_base: u64) -> Vec<MapCall> {
    let page = 1u64 << page_shift;
    let mut rounded: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|r| r.1 > 0)
        .map(|&(base, size)| (base & !(page - 1), (base + size).next_multiple_of(page)))
        .collect();
    rounded.sort_unstable();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (start, end) in rounded {
        match spans.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => spans.push((start, end)),
        }
    }
    let mut calls = Vec::new();
    for (start, end) in spans {
        let tces = (end - start) >> page_shift;
        let mut done = 0;
        while done < tces {
            let entries = if tces == 1 { 1 } else { (tces - done).min(TCES_PER_CALL) };
            let last_tce = (start + (done + entries - 1) * page) | 3;
            calls.push(MapCall { put: tces == 1, ioba: bus_base + start + done * page, entries, last_tce });
            done += entries;
        }
    }
    calls
}

/// What a DDW the kernel created looks like.
#[derive(Clone, Copy, Debug)]
struct Ddw {
    liobn: u64,
    bus_base: u64,
    page_shift: u32,
    window_shift: u32,
}

/// `pe.<pe>.*` for the default window.
fn check_pe_default(outcome: &Outcome, pe: usize) {
    let path = outcome.require(&format!("phb.{pe}.path")).to_string();
    outcome
        .expect_kv(&format!("pe.{pe}.node"), &path)
        .expect_kv(&format!("pe.{pe}.default_window"), DEFAULT_WINDOW)
        .expect_kv(&format!("pe.{pe}.default_page_shift"), "12");
    let liobn = outcome.require_hex(&format!("pe.{pe}.default_liobn"));
    if liobn != default_liobn(pe) {
        outcome.fail(&format!("pe.{pe}.default_liobn={liobn:#x}, QEMU's is {:#x}", default_liobn(pe)));
    }
}

/// A direct DDW on PE `pe` (PHB index) with `page_shift` pages: the report against the trace's
/// query, create and TCE hcalls, and against the RAM ranges.
fn check_direct_ddw(outcome: &Outcome, trace: &Trace, pe: usize, page_shift: u32, page_sizes: u64) -> Ddw {
    let key = |k: &str| format!("pe.{pe}.{k}");
    check_pe_default(outcome, pe);
    outcome.expect_kv(&key("ddw"), "direct").expect_kv(&key("ddw.limit"), "ram");
    let buid = outcome.require_hex(&format!("phb.{pe}.buid"));
    if buid != PHB_BUID[pe] {
        outcome.fail(&format!("phb.{pe}.buid={buid:#x}, expected {:#x}", PHB_BUID[pe]));
    }

    // The query: one, and what the kernel read back is what QEMU answered.
    let queries: Vec<_> =
        traced(outcome, trace.ddw_queries()).into_iter().filter(|q| q.buid == buid).collect();
    let [query] = queries.as_slice() else {
        outcome.fail(&format!("expected exactly one ddw_query for BUID {buid:#x}, QEMU traced {queries:x?}"));
    };
    outcome.expect_kv(&key("query.windows"), "1").expect_kv(&key("query.outputs"), "6");
    let reported_sizes = outcome.require_hex(&key("query.page_sizes"));
    if query.windows_available != 1
        || u64::from(query.page_mask) != page_sizes
        || reported_sizes != page_sizes
    {
        outcome.fail(&format!(
            "query: QEMU traced {query:x?}, the kernel reports page_sizes={reported_sizes:#x}; expected \
             1 window available and mask {page_sizes:#x}"
        ));
    }
    let block = outcome.require_hex(&key("query.largest_block"));
    if block != LARGEST_BLOCK {
        outcome.fail(&format!(
            "{}={block:#x}, QEMU 7.2's 6-output query returns {LARGEST_BLOCK:#x}",
            key("query.largest_block")
        ));
    }

    // The create: one, with the page size and window the kernel reports.
    let creates: Vec<_> =
        traced(outcome, trace.ddw_creates()).into_iter().filter(|c| c.buid == buid).collect();
    let [create] = creates.as_slice() else {
        outcome
            .fail(&format!("expected exactly one ddw_create for BUID {buid:#x}, QEMU traced {creates:x?}"));
    };
    let reported_page_shift = outcome.require_u64(&key("ddw.page_shift"));
    let window_shift = outcome.require_u64(&key("ddw.window_shift")) as u32;
    let liobn = outcome.require_hex(&key("ddw.liobn"));
    let bus_base = outcome.require_hex(&key("ddw.bus_base"));
    let max_addr = outcome.require_hex("mem.max_addr");
    let wanted_shift = ceil_log2(max_addr).max(page_shift);
    let consistent = reported_page_shift == u64::from(page_shift)
        && create.page_size == 1 << page_shift
        && create.window_size == 1 << window_shift
        && window_shift == wanted_shift
        && create.liobn == liobn
        && create.start == bus_base
        && bus_base == DDW_BUS_BASE
        && liobn != default_liobn(pe)
        && liobn & !0xff == default_liobn(pe);
    if !consistent {
        outcome.fail(&format!(
            "ddw_create {create:x?} vs report page_shift={reported_page_shift} window_shift={window_shift} \
             liobn={liobn:#x} bus_base={bus_base:#x}; expected page shift {page_shift}, window shift \
             {wanted_shift} (RAM ends at {max_addr:#x}), bus base {DDW_BUS_BASE:#x}, a LIOBN of PHB {pe} \
             other than the default's"
        ));
    }
    // The window sits next to the default one (QEMU put it at 2^59), so in table slot 1.
    let slot = outcome.require_u64(&key("ddw.slot"));
    if slot != 1 {
        outcome.fail(&format!(
            "{}={slot}: the default window is still there, so the DDW is slot 1",
            key("ddw.slot")
        ));
    }
    let removed = traced(outcome, trace.ddw_removes());
    if removed.iter().any(|r| r.liobn == liobn) {
        outcome.fail(&format!("the DDW {liobn:#x} was removed again: {removed:x?}"));
    }

    // The mapping: exactly the calls the RAM ranges need, in order, and nothing else on the
    // DDW's LIOBN (so no TCE hcall during disk I/O).
    let ranges = ram_ranges(outcome);
    let expected = expected_map_calls(&ranges, page_shift, bus_base);
    let expected_puts = expected.iter().filter(|c| c.put).count() as u64;
    let expected_indirect = expected.len() as u64 - expected_puts;
    let expected_tces: u64 = expected.iter().map(|c| c.entries).sum();
    let reported = (
        outcome.require_u64(&key("ddw.tces")),
        outcome.require_u64(&key("ddw.indirect_calls")),
        outcome.require_u64(&key("ddw.put_calls")),
    );
    if reported != (expected_tces, expected_indirect, expected_puts) {
        outcome.fail(&format!(
            "pe.{pe}.ddw (tces, indirect_calls, put_calls) = {reported:?}; RAM {ranges:x?} at {}-byte \
             pages needs {:?}",
            1u64 << page_shift,
            (expected_tces, expected_indirect, expected_puts)
        ));
    }
    if let Some(count) = outcome.kv.get_u64(&key("ddw.ranges")) {
        if count != ranges.len() as u64 {
            outcome.fail(&format!(
                "{}={count}, the kernel reported {} RAM ranges",
                key("ddw.ranges"),
                ranges.len()
            ));
        }
    }
    let writes = writes_on(outcome, trace, liobn);
    let wanted = TceWrites {
        puts: expected_puts,
        indirect_calls: expected_indirect,
        indirect_tces: expected_tces - expected_puts,
        stuff_calls: 0,
        failed: 0,
    };
    if writes != wanted {
        outcome
            .fail(&format!("TCE hcalls QEMU traced on the DDW {liobn:#x}: {writes:?}; expected {wanted:?}"));
    }
    let traced_calls: Vec<MapCall> = traced(outcome, trace.pci_indirects())
        .into_iter()
        .filter(|c| c.liobn == liobn)
        .map(|c| MapCall { put: false, ioba: c.ioba, entries: c.last_index + 1, last_tce: c.last_tce })
        .chain(traced(outcome, trace.pci_puts()).into_iter().filter(|p| p.liobn == liobn).map(|p| MapCall {
            put: true,
            ioba: p.ioba,
            entries: 1,
            last_tce: p.tce,
        }))
        .collect();
    let sorted = |calls: &[MapCall]| {
        calls.iter().copied().map(|c| (c.ioba, c.put, c.entries, c.last_tce)).collect::<BTreeSet<_>>()
    };
    if sorted(&traced_calls) != sorted(&expected) {
        let missing: Vec<_> = sorted(&expected).difference(&sorted(&traced_calls)).take(4).copied().collect();
        let extra: Vec<_> = sorted(&traced_calls).difference(&sorted(&expected)).take(4).copied().collect();
        outcome.fail(&format!(
            "the DDW's TCE writes (ioba, put, entries, last TCE) differ from a READ|WRITE map of RAM at \
             bus base + physical: missing e.g. {missing:x?}, unexpected e.g. {extra:x?}"
        ));
    }

    // The time it took, in ticks and microseconds.
    let ticks = outcome.require_u64(&key("ddw.ticks"));
    let us = outcome.require_u64(&key("ddw.us"));
    let hz = outcome.require_u64("cpu.timebase_hz");
    let from_ticks = ticks as f64 * 1e6 / hz as f64;
    if ticks == 0 || us as f64 > from_ticks * 1.01 + 1.0 || (us as f64) < from_ticks * 0.99 - 1.0 {
        outcome.fail(&format!(
            "pe.{pe}.ddw.ticks={ticks} at {hz} Hz is {from_ticks:.1} µs, the report says {us}"
        ));
    }
    Ddw { liobn, bus_base, page_shift, window_shift }
}

/// `pe.<pe>.ddw=none` with a `why` naming `reason`.
fn check_no_ddw(outcome: &Outcome, pe: usize, reason: &str) {
    check_pe_default(outcome, pe);
    outcome.expect_kv(&format!("pe.{pe}.ddw"), "none");
    let why = outcome.require(&format!("pe.{pe}.ddw.why"));
    if !why.contains(reason) {
        outcome.fail(&format!("pe.{pe}.ddw.why={why:?} does not name {reason:?}"));
    }
    if let Some(liobn) = outcome.kv.get(&format!("pe.{pe}.ddw.liobn")) {
        outcome.fail(&format!("pe.{pe}.ddw=none but pe.{pe}.ddw.liobn={liobn}"));
    }
}

/// How a disk's DMA must have been set up.
#[derive(Clone, Copy, Debug)]
enum Dma {
    /// Through a direct DDW: bus address = physical + offset.
    Direct { offset: u64 },
    /// Through the default window's IOMMU.
    DefaultIommu { liobn: u64 },
    /// Through a dynamic DDW's IOMMU (TCEs per buffer).
    DdwIommu { liobn: u64 },
    /// No `VIRTIO_F_ACCESS_PLATFORM`: the device uses physical addresses.
    Bypass,
}

/// The `blk.N` whose first CRC is this disk's (disks are told apart by content).
fn find_blk(outcome: &Outcome, disk: &TestDisk) -> usize {
    let first = disk::crc_text(disk::mib_crcs(&disk.image)[0]);
    let mut reported = Vec::new();
    for n in 0.. {
        let crc = outcome.kv.get(&format!("blk.{n}.crc.0"));
        let status = outcome.kv.get(&format!("blk.{n}.status"));
        if crc.is_none() && status.is_none() && outcome.kv.get(&format!("blk.{n}.sectors")).is_none() {
            break;
        }
        if crc == Some(first.as_str()) {
            return n;
        }
        reported.push((n, crc, status));
    }
    outcome.fail(&format!(
        "no blk.N.crc.0 is {first}, the CRC of the first MiB of disk {} (blk.N (crc.0, status) reported: \
         {reported:?})",
        disk.id
    ))
}

/// Everything `blk.N.*` must say about `disk`; returns `N` and the buffer addresses.
fn check_blk(outcome: &Outcome, disk: &TestDisk, dma: Dma) -> (usize, Vec<u64>) {
    let n = find_blk(outcome, disk);
    let key = |k: &str| format!("blk.{n}.{k}");
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    outcome
        .expect_kv(&key("status"), "ok")
        .expect_kv(&key("pe"), &disk.pe.to_string())
        .expect_kv(&key("access_platform"), yes_no(disk.iommu))
        .expect_kv(&key("dma_mask_bits"), "64")
        .expect_kv(&key("sectors"), &disk.sectors().to_string())
        .expect_kv(&key("scratch"), yes_no(disk::is_scratch(&disk.image)));
    let bdf = outcome.require(&key("bdf"));
    let id = outcome.kv.get(&format!("pci.{}.{bdf}.id", disk.pe));
    if !id.is_some_and(|id| id.starts_with("1af4:")) {
        outcome.fail(&format!(
            "{}={bdf}, but pci.{}.{bdf}.id is {id:?}, not a virtio device",
            key("bdf"),
            disk.pe
        ));
    }
    match dma {
        Dma::Direct { offset } => {
            outcome.expect_kv(&key("dma"), "direct");
            let reported = outcome.require_hex(&key("dma_offset"));
            if reported != offset {
                outcome
                    .fail(&format!("{}={reported:#x}, the DDW's bus base is {offset:#x}", key("dma_offset")));
            }
        }
        Dma::DefaultIommu { liobn } => {
            outcome.expect_kv(&key("dma"), "default-iommu");
            let reported = outcome.require_hex(&key("dma_liobn"));
            if reported != liobn {
                outcome
                    .fail(&format!("{}={reported:#x}, the default window is {liobn:#x}", key("dma_liobn")));
            }
        }
        Dma::DdwIommu { liobn } => {
            outcome.expect_kv(&key("dma"), "ddw-iommu");
            let reported = outcome.require_hex(&key("dma_liobn"));
            if reported != liobn {
                outcome.fail(&format!("{}={reported:#x}, the DDW is {liobn:#x}", key("dma_liobn")));
            }
        }
        Dma::Bypass => {
            outcome.expect_kv(&key("dma"), "bypass");
        }
    }

    // The data: each MiB's CRC as computed here, and nothing beyond.
    let crcs = disk::mib_crcs(&disk.image);
    for (k, crc) in crcs.iter().enumerate() {
        let reported = outcome.kv.get(&key(&format!("crc.{k}")));
        if reported != Some(disk::crc_text(*crc).as_str()) {
            outcome.fail(&format!(
                "{}={reported:?}, the host computed {} over MiB {k} of disk {}",
                key(&format!("crc.{k}")),
                disk::crc_text(*crc),
                disk.id
            ));
        }
    }
    if let Some(extra) = outcome.kv.get(&key(&format!("crc.{}", crcs.len()))) {
        outcome.fail(&format!(
            "{}={extra}: the disk has only {} (partial) MiB to check",
            key(&format!("crc.{}", crcs.len())),
            crcs.len()
        ));
    }
    let read = outcome.require_u64(&key("read_bytes"));
    let expected_read = disk.image.len().min(disk::READ_LIMIT) as u64;
    if read != expected_read {
        outcome.fail(&format!("{}={read}, expected {expected_read}", key("read_bytes")));
    }
    let us = outcome.require_u64(&key("read_us"));
    let mbps = outcome.require(&key("read_mbps"));
    if us == 0 || !mbps.parse::<f64>().is_ok_and(|v| v > 0.0) {
        outcome.fail(&format!("{}={us}, {}={mbps}", key("read_us"), key("read_mbps")));
    }

    // The copy.
    if disk::is_scratch(&disk.image) {
        outcome
            .expect_kv(&key("copy"), "done")
            .expect_kv(&key("copied_sectors"), &disk::copied_sectors(disk.sectors()).to_string());
    } else {
        outcome.expect_kv(&key("copy"), "skipped");
    }

    let buffers = outcome.require(&key("buffers"));
    let addresses: Option<Vec<u64>> = buffers.split(',').map(parse_hex).collect();
    let max_addr = outcome.require_hex("mem.max_addr");
    match addresses {
        Some(list) if !list.is_empty() && list.iter().all(|&a| a > 0 && a < max_addr) => (n, list),
        _ => outcome
            .fail(&format!("{}={buffers}: expected physical addresses below {max_addr:#x}", key("buffers"))),
    }
}

/// The disk image after QEMU exited: the scratch copy done, any other disk untouched.
fn check_disk_after(outcome: &Outcome, disk: &TestDisk) {
    let path = outcome.disk_path(disk.id);
    let after = std::fs::read(&path)
        .unwrap_or_else(|e| outcome.fail(&format!("cannot read {}: {e}", path.display())));
    let verdict = if disk::is_scratch(&disk.image) {
        disk::check_scratch_copy(&disk.image, &after)
    } else {
        disk::check_unchanged(&disk.image, &after)
    };
    if let Err(why) = verdict {
        outcome.fail(&format!("disk {} ({}): {why}", disk.id, path.display()));
    }
}

/// The DMA translations of a disk behind a direct DDW: many, none refused, each the identity
/// (offset in the window = physical address) with the window's page size and READ|WRITE, and
/// one starting at each read buffer. With `only_ddw` no other LIOBN translated anything.
fn check_ddw_xlates(outcome: &Outcome, trace: &Trace, ddw: &Ddw, buffers: &[u64], only_ddw: bool) {
    let xlates = traced(outcome, trace.xlates());
    let refused: Vec<&Xlate> = xlates.iter().filter(|x| x.perm == 0).take(5).collect();
    if !refused.is_empty() {
        outcome.fail(&format!("QEMU refused DMA (perm=0): {refused:x?}"));
    }
    let on_ddw: Vec<&Xlate> = xlates.iter().filter(|x| x.liobn == ddw.liobn).collect();
    if on_ddw.len() < 64 {
        outcome.fail(&format!("only {} DMA translations on the DDW {:#x}", on_ddw.len(), ddw.liobn));
    }
    let mask = (1u64 << ddw.page_shift) - 1;
    let odd: Vec<&&Xlate> = on_ddw
        .iter()
        .filter(|x| {
            x.mask != mask
                || x.perm != 3
                || x.translated != x.offset & !mask
                || x.offset >> ddw.window_shift != 0
        })
        .take(5)
        .collect();
    if !odd.is_empty() {
        outcome.fail(&format!(
            "DDW translations that are not the READ|WRITE identity with {}-byte pages: {odd:x?}",
            mask + 1
        ));
    }
    let offsets: BTreeSet<u64> = on_ddw.iter().map(|x| x.offset).collect();
    let missing: Vec<String> =
        buffers.iter().filter(|b| !offsets.contains(b)).map(|b| format!("{b:#x}")).collect();
    if !missing.is_empty() {
        outcome.fail(&format!("no DMA through the DDW started at read buffers {missing:?}"));
    }
    if only_ddw {
        let elsewhere: Vec<&Xlate> = xlates.iter().filter(|x| x.liobn != ddw.liobn).take(5).collect();
        if !elsewhere.is_empty() {
            outcome
                .fail(&format!("translations outside the DDW although every device uses it: {elsewhere:x?}"));
        }
    }
}

/// Test 1: one disk, default QEMU, a direct 16M-page DDW over all of RAM.
fn check_direct_boot(name: &str, firmware: Firmware, memory: &str, ram: u64, xlate: bool) {
    let scratch = TestDisk::scratch("disk0", None, 64 * MIB, 0x5eed_0001 ^ ram, 0);
    let outcome = scenario(name, firmware, memory, &[&scratch], xlate).run();
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    let total = outcome.require_hex("mem.total");
    if total != ram {
        outcome.fail(&format!("mem.total={total:#x}, QEMU was given {memory}"));
    }
    let trace = outcome.parsed_trace();
    if traced(&outcome, trace.ddw_queries()).len() != 1 || traced(&outcome, trace.ddw_creates()).len() != 1 {
        outcome.fail("expected exactly one ddw_query and one ddw_create in the whole trace");
    }
    let ddw = check_direct_ddw(&outcome, &trace, 0, 24, PAGE_SIZES_DEFAULT);
    let (_, buffers) = check_blk(&outcome, &scratch, Dma::Direct { offset: ddw.bus_base });
    if xlate {
        check_ddw_xlates(&outcome, &trace, &ddw, &buffers, true);
    }
    check_disk_after(&outcome, &scratch);
}

#[test]
fn direct_ddw_2g_vof_with_xlate_trace() {
    check_direct_boot("ddw-direct-2g-vof", Firmware::Vof, "2G", 2 * GIB, true);
}

#[test]
fn direct_ddw_4g_slof() {
    check_direct_boot("ddw-direct-4g-slof", Firmware::Slof, "4G", 4 * GIB, false);
}

#[test]
fn direct_ddw_8g_bios() {
    check_direct_boot("ddw-direct-8g-bios", Firmware::Bios, "8G", 8 * GIB, false);
}

/// Test 2: a plain virtio-blk (no `iommu_platform`) DMAs to physical addresses.
#[test]
fn plain_virtio_blk_bypasses_the_iommu() {
    // 8 MiB and 3 sectors: the last CRC covers a partial MiB.
    let plain = TestDisk::read_only("disk0", None, 8 * MIB + 3 * disk::SECTOR, 0x5eed_0002, false);
    let outcome = scenario("ddw-plain-virtio", Firmware::Vof, "2G", &[&plain], false).run();
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    check_blk(&outcome, &plain, Dma::Bypass);
    let writes = writes_on(&outcome, &outcome.parsed_trace(), default_liobn(0));
    if writes.puts + writes.indirect_calls != 0 {
        outcome
            .fail(&format!("a bypassing device needs no TCE in the default window, QEMU traced {writes:?}"));
    }
    check_disk_after(&outcome, &plain);
}

/// Test 3: the PHB's page-size mask decides the DDW's page size and so the number of calls.
fn check_page_size(name: &str, pgsz: &str, page_shift: u32, page_sizes: u64, indirect_calls: u64) {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_0003 + u64::from(page_shift), 0);
    let outcome = scenario(name, Firmware::Vof, "2G", &[&scratch], false)
        .args(["-global", &format!("spapr-pci-host-bridge.pgsz={pgsz}")])
        .run();
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    let trace = outcome.parsed_trace();
    let ddw = check_direct_ddw(&outcome, &trace, 0, page_shift, page_sizes);
    outcome.expect_kv("pe.0.ddw.page_shift", &page_shift.to_string());
    let calls = outcome.require_u64("pe.0.ddw.indirect_calls");
    if calls != indirect_calls {
        outcome.fail(&format!(
            "pe.0.ddw.indirect_calls={calls}, 2 GiB in {}-byte pages needs {indirect_calls}",
            1u64 << page_shift
        ));
    }
    check_blk(&outcome, &scratch, Dma::Direct { offset: ddw.bus_base });
    check_disk_after(&outcome, &scratch);
}

#[test]
fn pgsz_64k_gives_64k_ddw_pages() {
    // 2^31 / 2^16 = 32768 TCEs = 64 calls.
    check_page_size("ddw-pgsz-64k", "0x11000", 16, 0x3, 64);
}

#[test]
fn pgsz_4k_gives_4k_ddw_pages() {
    // 2^31 / 2^12 = 524288 TCEs = 1024 calls.
    check_page_size("ddw-pgsz-4k", "0x1000", 12, 0x1, 1024);
}

/// RAM in two adjacent NUMA nodes (two memory nodes of 2 GiB) is one span for the IOMMU:
/// 4 GiB of 16 MiB pages is 256 TCEs, one H_PUT_TCE_INDIRECT (⌈TCEs/512⌉), not one per node.
#[test]
fn ram_in_two_memory_nodes_is_mapped_in_one_call() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_000b, 0);
    let outcome = scenario("ddw-numa-vof", Firmware::Vof, "4G", &[&scratch], false)
        .args(["-object", "memory-backend-ram,id=m0,size=2G", "-object", "memory-backend-ram,id=m1,size=2G"])
        .args(["-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1"])
        .run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("mem.ranges", "2")
        .expect_kv("mem.range.0", "0x0+0x80000000")
        .expect_kv("mem.range.1", "0x80000000+0x80000000")
        .expect_kv("pe.0.ddw.ranges", "2")
        .expect_kv("pe.0.ddw.tces", "256")
        .expect_kv("pe.0.ddw.indirect_calls", "1");
    let trace = outcome.parsed_trace();
    let ddw = check_direct_ddw(&outcome, &trace, 0, 24, PAGE_SIZES_DEFAULT);
    let indirect = traced(&outcome, trace.pci_indirects());
    let on_ddw: Vec<_> = indirect.iter().filter(|c| c.liobn == ddw.liobn).collect();
    if on_ddw.len() != 1 || on_ddw[0].entries() != Some(256) {
        outcome.fail(&format!("expected one 256-TCE call on the DDW for 4 GiB, got {on_ddw:x?}"));
    }
    check_blk(&outcome, &scratch, Dma::Direct { offset: ddw.bus_base });
    check_disk_after(&outcome, &scratch);
}

/// PowerVM's shapes where QEMU's PHB properties allow them: 2 MiB IOMMU pages (`pgsz` 4K|2M,
/// query mask 0x101) and a 2 GiB default window (`dma_win_size`). 2 GiB of RAM in 2 MiB pages
/// is 1024 TCEs: two indirect calls.
#[test]
fn powervm_shapes_2m_pages_and_a_2g_default_window() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_000a, 0);
    let outcome = scenario("ddw-powervm-shapes", Firmware::Vof, "2G", &[&scratch], false)
        .args(["-global", "spapr-pci-host-bridge.pgsz=0x201000"])
        .args(["-global", "spapr-pci-host-bridge.dma_win_size=0x80000000"])
        .run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("pe.0.default_window", "0x0+0x80000000")
        .expect_kv("pe.0.query.page_sizes", "0x101")
        .expect_kv("pe.0.ddw", "direct")
        .expect_kv("pe.0.ddw.page_shift", "21")
        .expect_kv("pe.0.ddw.window_shift", "31")
        .expect_kv("pe.0.ddw.tces", "1024")
        .expect_kv("pe.0.ddw.indirect_calls", "2");
    let trace = outcome.parsed_trace();
    let creates = traced(&outcome, trace.ddw_creates());
    match creates.as_slice() {
        [c] if c.page_size == 2 << 20 && c.window_size == 2 << 30 && c.start == DDW_BUS_BASE => {}
        other => outcome.fail(&format!("expected one 2 MiB-page create of 2 GiB at 2^59, got {other:x?}")),
    }
    let offset = outcome.require_hex("pe.0.ddw.bus_base");
    check_blk(&outcome, &scratch, Dma::Direct { offset });
    check_disk_after(&outcome, &scratch);
}

/// Checks a run where PE 0 has no DDW and the disk went through the default window: no DDW
/// RTAS call created anything, TCEs were written in the default window (inside it, never at
/// IOVA 0), the data arrived and the scratch copy landed.
fn check_default_window_boot(outcome: &Outcome, scratch: &TestDisk, reason: &str) {
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    let trace = outcome.parsed_trace();
    let creates = traced(outcome, trace.ddw_creates());
    if !creates.is_empty() {
        outcome.fail(&format!("a DDW was created: {creates:x?}"));
    }
    check_no_ddw(outcome, 0, reason);
    let queried = !traced(outcome, trace.ddw_queries()).is_empty();
    if queried != outcome.kv.get("pe.0.query.windows").is_some() {
        outcome.fail(&format!(
            "QEMU traced a ddw_query: {queried}, but pe.0.query.windows is {:?}",
            outcome.kv.get("pe.0.query.windows")
        ));
    }
    let liobn = default_liobn(0);
    let (_, buffers) = check_blk(outcome, scratch, Dma::DefaultIommu { liobn });
    let writes = writes_on(outcome, &trace, liobn);
    if writes.puts + writes.indirect_calls == 0 || writes.failed != 0 {
        outcome.fail(&format!(
            "TCE hcalls on the default window {liobn:#x}: {writes:?}; expected some, none failing"
        ));
    }
    let puts = traced(outcome, trace.pci_puts());
    let indirects = traced(outcome, trace.pci_indirects());
    let bad_put = puts
        .iter()
        .find(|p| p.liobn == liobn && (p.ioba >= DEFAULT_WINDOW_SIZE || (p.ioba == 0 && p.tce != 0)));
    let bad_indirect = indirects.iter().find(|c| {
        c.liobn == liobn && (c.ioba == 0 || c.ioba + (c.last_index + 1) * 4096 > DEFAULT_WINDOW_SIZE)
    });
    if bad_put.is_some() || bad_indirect.is_some() {
        outcome.fail(&format!(
            "a TCE write at IOVA 0 or outside the 1 GiB window: {bad_put:x?} {bad_indirect:x?}"
        ));
    }
    // Each read buffer (1 MiB, `selftest.buffer.*`) was mapped: a TCE QEMU saw (a put's, or
    // an indirect call's last) points into it.
    let pages: Vec<u64> = puts
        .iter()
        .filter(|p| p.liobn == liobn)
        .map(|p| p.tce)
        .chain(indirects.iter().filter(|c| c.liobn == liobn).map(|c| c.last_tce))
        .map(|tce| tce & !0xfff)
        .collect();
    let unmapped: Vec<String> = buffers
        .iter()
        .filter(|&&b| !pages.iter().any(|&page| b <= page && page < b + MIB as u64))
        .map(|b| format!("{b:#x}"))
        .collect();
    if !unmapped.is_empty() {
        outcome.fail(&format!("no TCE in the default window points into read buffers {unmapped:?}"));
    }
    check_disk_after(outcome, scratch);
}

/// Test 4: QEMU without DDW support (`spapr-pci-host-bridge.ddw=off`).
#[test]
fn qemu_without_ddw_uses_the_default_window() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_0004, 0);
    let outcome = scenario("ddw-qemu-off", Firmware::Vof, "2G", &[&scratch], false)
        .args(["-global", "spapr-pci-host-bridge.ddw=off"])
        .run();
    let events = outcome.parsed_trace().count_prefix("spapr_iommu_ddw_");
    if events != 0 {
        outcome.fail(&format!("{events} DDW RTAS calls on a PHB without ibm,ddw-applicable"));
    }
    outcome.expect_kv("phb.0.ddw_applicable", "none");
    check_default_window_boot(&outcome, &scratch, "ddw-applicable");
}

/// Test 7: the guest declines (`ddw=off` on the kernel command line).
#[test]
fn kernel_ddw_off_uses_the_default_window() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_0007, 0);
    let outcome = scenario("ddw-kernel-off", Firmware::Vof, "2G", &[&scratch], false).append("ddw=off").run();
    outcome.expect_kv("boot.bootargs", "ddw=off");
    check_default_window_boot(&outcome, &scratch, "ddw=off");
}

/// `ddw-max=2G` with 4 GiB of RAM caps the DDW below RAM, as a small TCE budget would: the
/// window is created (2 GiB beats the 1 GiB default window) but used dynamically, so every
/// buffer the disk is given costs TCE hcalls on the DDW — one to map, one to clear — and
/// nothing maps RAM up front.
#[test]
fn a_ddw_capped_below_ram_is_used_per_buffer() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_0008, 0);
    let outcome =
        scenario("ddw-dynamic-vof", Firmware::Vof, "4G", &[&scratch], false).append("ddw-max=2G").run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("pe.0.ddw", "dynamic")
        .expect_kv("pe.0.ddw.limit", "ddw-max")
        .expect_kv("pe.0.ddw.window_shift", "31")
        .expect_kv("pe.0.ddw.tces", "0");
    let trace = outcome.parsed_trace();
    let creates = traced(&outcome, trace.ddw_creates());
    let [create] = creates.as_slice() else {
        outcome.fail(&format!("expected one ddw_create, got {creates:x?}"))
    };
    if create.window_size != 1 << 31 {
        outcome.fail(&format!("QEMU created a {:#x}-byte window, not 2 GiB", create.window_size));
    }
    let liobn = outcome.require_hex("pe.0.ddw.liobn");
    check_blk(&outcome, &scratch, Dma::DdwIommu { liobn });
    let maps = outcome.require_u64("blk.0.maps");
    let writes = writes_on(&outcome, &trace, liobn);
    if writes.failed != 0 || writes.puts + writes.indirect_calls + writes.stuff_calls != 2 * maps {
        outcome.fail(&format!(
            "TCE hcalls on the DDW {liobn:#x}: {writes:?}; expected one write and one clear for each of the              {maps} buffers, none failing"
        ));
    }
    let window = DDW_BUS_BASE..DDW_BUS_BASE + (1 << 31);
    let puts = traced(&outcome, trace.pci_puts());
    if let Some(bad) = puts.iter().find(|p| p.liobn == liobn && !window.contains(&p.ioba)) {
        outcome.fail(&format!("a TCE put outside the DDW's 2 GiB: {bad:x?}"));
    }
    check_disk_after(&outcome, &scratch);
}

/// A DIMM present at boot (`pc-dimm`, described only by the LMBs `ibm,dynamic-memory-v2`
/// flags as assigned) is RAM: it is mapped into the direct window together with the boot RAM it
/// adjoins (one span, one call), a test buffer is placed in it and read through; the
/// unassigned hot-plug room above it is covered by the window but never mapped.
#[test]
fn a_dimm_present_at_boot_is_mapped_and_hotplug_room_is_not() {
    let scratch = TestDisk::scratch("disk0", None, 16 * MIB, 0x5eed_0009, 0);
    let outcome = scenario("ddw-dimm-vof", Firmware::Vof, "2G,maxmem=4G,slots=2", &[&scratch], false)
        .args(["-object", "memory-backend-ram,id=mem1,size=1G", "-device", "pc-dimm,id=dimm1,memdev=mem1"])
        .run();
    outcome
        .expect_ok()
        .expect_kv("selftest.status", "ok")
        .expect_kv("mem.hotplug_source", "DynamicMemoryV2")
        .expect_kv("mem.range.0", "0x0+0x80000000")
        .expect_kv("mem.range.1", "0x80000000+0x40000000")
        .expect_kv("mem.lmb.0", "0x80000000+0x40000000")
        .expect_kv("pe.0.ddw.tces", "192")
        .expect_kv("pe.0.ddw.indirect_calls", "1");
    let hotplug_max = outcome.require_hex("mem.hotplug_max");
    if hotplug_max != 4 * GIB {
        outcome.fail(&format!("mem.hotplug_max={hotplug_max:#x}, QEMU was given maxmem=4G"));
    }
    let trace = outcome.parsed_trace();
    let ddw = check_direct_ddw(&outcome, &trace, 0, 24, PAGE_SIZES_DEFAULT);
    // Every TCE written on the DDW maps RAM below 3 GiB: none for the hot-plug room.
    let indirect = traced(&outcome, trace.pci_indirects());
    let on_ddw: Vec<_> = indirect.iter().filter(|c| c.liobn == ddw.liobn).collect();
    let covered = on_ddw.iter().map(|c| c.ioba - ddw.bus_base + (c.last_index + 1) * (16 << 20)).max();
    if on_ddw.len() != 1 || covered != Some(3 * GIB) {
        outcome.fail(&format!("expected one call mapping [0, 3 GiB) on the DDW, got {on_ddw:x?}"));
    }
    let (_, buffers) = check_blk(&outcome, &scratch, Dma::Direct { offset: ddw.bus_base });
    if !buffers.iter().any(|&b| (2 * GIB..3 * GIB).contains(&b)) {
        outcome.fail(&format!("no read buffer in the DIMM [2 GiB, 3 GiB): {buffers:x?}"));
    }
    check_disk_after(&outcome, &scratch);
}

/// Test 5: one PE per PHB, each with its own DDW and disk.
#[test]
fn two_phbs_get_a_ddw_each() {
    let disk0 = TestDisk::scratch("disk0", Some("pci.0"), 24 * MIB, 0x5eed_0005, 0);
    // Larger than what the kernel reads: 64 CRCs, 64 MiB read, never written.
    let disk1 =
        TestDisk::read_only("disk1", Some("phb1.0"), 66 * MIB + 6 * disk::SECTOR, 0x5eed_0015, true).on_pe(1);
    let phbs =
        base("ddw-two-phbs", Firmware::Vof, "2G", false).device("spapr-pci-host-bridge,index=1,id=phb1");
    let outcome = attach(phbs, &[&disk0, &disk1]).run();
    outcome.expect_ok().expect_kv("selftest.status", "ok").expect_kv("phb.count", "2");
    let trace = outcome.parsed_trace();
    let creates = traced(&outcome, trace.ddw_creates());
    let buids: BTreeSet<u64> = creates.iter().map(|c| c.buid).collect();
    if creates.len() != 2 || buids != PHB_BUID.into() {
        outcome.fail(&format!("expected one ddw_create per PHB ({PHB_BUID:x?}), QEMU traced {creates:x?}"));
    }
    let ddw0 = check_direct_ddw(&outcome, &trace, 0, 24, PAGE_SIZES_DEFAULT);
    let ddw1 = check_direct_ddw(&outcome, &trace, 1, 24, PAGE_SIZES_DEFAULT);
    if ddw0.liobn == ddw1.liobn {
        outcome.fail(&format!("both PHBs' DDWs have LIOBN {:#x}", ddw0.liobn));
    }
    let (n0, _) = check_blk(&outcome, &disk0, Dma::Direct { offset: ddw0.bus_base });
    let (n1, _) = check_blk(&outcome, &disk1, Dma::Direct { offset: ddw1.bus_base });
    if n0 == n1 {
        outcome.fail("both disks matched the same blk.N");
    }
    check_disk_after(&outcome, &disk0);
    check_disk_after(&outcome, &disk1);
}

/// Test 6: edu (28-bit DMA mask) stays in the default window, below 2^28, while a virtio-blk
/// on the same PHB uses the DDW.
#[test]
fn edu_uses_the_default_window_below_its_mask() {
    let scratch = TestDisk::scratch("disk0", None, 8 * MIB, 0x5eed_0006, 0);
    let outcome = scenario("ddw-edu", Firmware::Vof, "2G", &[&scratch], true).device("edu").run();
    outcome.expect_ok().expect_kv("selftest.status", "ok");
    if outcome.console.contains("EDU: clamping") {
        outcome.fail("QEMU's edu clamped a DMA address to its 28-bit mask");
    }
    let trace = outcome.parsed_trace();
    let ddw = check_direct_ddw(&outcome, &trace, 0, 24, PAGE_SIZES_DEFAULT);
    let (_, buffers) = check_blk(&outcome, &scratch, Dma::Direct { offset: ddw.bus_base });
    check_ddw_xlates(&outcome, &trace, &ddw, &buffers, false);
    check_disk_after(&outcome, &scratch);

    let liobn = default_liobn(0);
    outcome
        .expect_kv("edu.0.pe", "0")
        .expect_kv("edu.0.dma", "default-iommu")
        .expect_kv("edu.0.dma_mask_bits", &EDU_MASK_BITS.to_string())
        // 4096 is the contract, but QEMU 7.2's edu aborts on a transfer that ends at its
        // buffer's end (fixed in 8.2.1), so the kernel moves the first 4095 bytes.
        .expect_kv("edu.0.bytes", "4095")
        .expect_kv("edu.0.status", "ok");
    let bdf = outcome.require("edu.0.bdf");
    if outcome.kv.get(&format!("pci.0.{bdf}.id")) != Some("1234:11e8") {
        outcome.fail(&format!("edu.0.bdf={bdf} is not the edu device in the PCI report"));
    }
    if outcome.require_hex("edu.0.dma_liobn") != liobn {
        outcome.fail(&format!("edu.0.dma_liobn is not the default window's {liobn:#x}"));
    }
    let to_device = outcome.require_hex("edu.0.iova_to_device");
    let from_device = outcome.require_hex("edu.0.iova_from_device");
    let limit = 1u64 << EDU_MASK_BITS;
    if to_device == 0 || from_device == 0 || to_device >= limit || from_device >= limit {
        outcome.fail(&format!(
            "edu IOVAs {to_device:#x}, {from_device:#x} must be non-zero and below {limit:#x}"
        ));
    }

    // The TCEs behind those IOVAs were written in the default window, below 2^28.
    let writes = writes_on(&outcome, &trace, liobn);
    if writes.puts + writes.indirect_calls == 0 || writes.failed != 0 {
        outcome.fail(&format!("TCE hcalls on the default window {liobn:#x}: {writes:?}"));
    }
    let mut mapped: Vec<(u64, u64)> = Vec::new();
    for put in traced(&outcome, trace.pci_puts()).into_iter().filter(|p| p.liobn == liobn && p.tce != 0) {
        mapped.push((put.ioba, 1));
    }
    for call in traced(&outcome, trace.pci_indirects()).into_iter().filter(|c| c.liobn == liobn) {
        mapped.push((call.ioba, call.last_index + 1));
    }
    let outside: Vec<&(u64, u64)> = mapped.iter().filter(|(ioba, n)| ioba + n * 4096 > limit).collect();
    if !outside.is_empty() {
        outcome.fail(&format!("TCEs written at or above 2^28 in the default window: {outside:x?}"));
    }
    let covered = |iova: u64| {
        mapped.iter().any(|&(ioba, n)| ioba & !0xfff <= iova && iova < (ioba & !0xfff) + n * 4096)
    };
    if !covered(to_device) || !covered(from_device) {
        outcome.fail(&format!(
            "no traced TCE write covers the edu IOVAs {to_device:#x}/{from_device:#x}: {mapped:x?}"
        ));
    }

    // edu's DMA was translated there, allowed, below 2^28.
    let xlates: Vec<Xlate> =
        traced(&outcome, trace.xlates()).into_iter().filter(|x| x.liobn == liobn).collect();
    let bad: Vec<&Xlate> =
        xlates.iter().filter(|x| x.offset >= limit || x.perm == 0 || x.mask != 0xfff).take(5).collect();
    if xlates.is_empty() || !bad.is_empty() {
        outcome.fail(&format!("default-window translations: {} in all, bad: {bad:x?}", xlates.len()));
    }
    let read_at = |iova: u64| xlates.iter().any(|x| x.offset & !0xfff == iova & !0xfff && x.perm & 1 != 0);
    let written_at = |iova: u64| xlates.iter().any(|x| x.offset & !0xfff == iova & !0xfff && x.perm & 2 != 0);
    if !read_at(to_device) || !written_at(from_device) {
        outcome.fail(&format!(
            "edu's DMA was not translated readable at {to_device:#x} and writable at {from_device:#x}: {:x?}",
            xlates.iter().take(8).collect::<Vec<_>>()
        ));
    }
}

#[test]
fn expected_map_calls_follow_the_ranges() {
    // 2 GiB at 16M: 128 TCEs in one call; the last TCE maps the last page READ|WRITE.
    let calls = expected_map_calls(&[(0, 2 * GIB)], 24, DDW_BUS_BASE);
    assert_eq!(
        calls,
        vec![MapCall { put: false, ioba: DDW_BUS_BASE, entries: 128, last_tce: (2 * GIB - (1 << 24)) | 3 }]
    );
    // 8 GiB at 16M: 512 TCEs, still one call; at 4K, 2 GiB is 1024 calls.
    assert_eq!(expected_map_calls(&[(0, 8 * GIB)], 24, 0).len(), 1);
    assert_eq!(expected_map_calls(&[(0, 2 * GIB)], 12, 0).len(), 1024);
    // A range rounded out on both sides, and a lone page done with H_PUT_TCE.
    let odd = expected_map_calls(&[(0x0100_0000 + 0x1000, 0x0200_0000), (0x1_0000_0000, 0x1000)], 24, 0);
    assert_eq!(odd[0].entries, 3, "[16M+4K, 48M+4K) touches pages 1, 2 and 3");
    assert_eq!(odd[1], MapCall { put: true, ioba: 0x1_0000_0000, entries: 1, last_tce: 0x1_0000_0003 });
    assert_eq!((ceil_log2(2 * GIB), ceil_log2(2 * GIB + 1), ceil_log2(1)), (31, 32, 0));
    // Two adjacent nodes are one span: 4 GiB at 16M in one call of 256.
    let nodes = expected_map_calls(&[(2 * GIB, 2 * GIB), (0, 2 * GIB)], 24, 0);
    assert_eq!(
        nodes,
        vec![MapCall { put: false, ioba: 0, entries: 256, last_tce: (4 * GIB - (1 << 24)) | 3 }]
    );
}
