//! QEMU's trace log (`-trace PATTERN -D FILE`, "log" trace backend), the hypervisor's side of
//! what the kernel did.
//!
//! Each line is `[PID@SECONDS.MICROS:]EVENT REST`; the prefix appears with
//! `-msg timestamp=on`. Formats used here (QEMU 7.2 `hw/pci/trace-events`):
//! - `pci_cfg_read DEV BB:DD.F @0xOFFSET -> 0xVALUE`
//! - `pci_cfg_write DEV BB:DD.F @0xOFFSET <- 0xVALUE`
//! - `pci_update_mappings_add DEV BB:DD.F BAR,0xADDR+0xSIZE` (and `_del`)
//!
//! and the IOMMU events (QEMU 7.2 `hw/ppc/trace-events`, as the binary prints them):
//! - `spapr_iommu_pci_put liobn=0x… ioba=0x… tce=0x… ret=N` (H_PUT_TCE; `ret` signed decimal)
//! - `spapr_iommu_pci_get liobn=0x… ioba=0x… ret=N tce=0x…` (H_GET_TCE)
//! - `spapr_iommu_pci_indirect liobn=0x… ioba=0x… tcelist=0x… iobaN=0x… tceN=0x… ret=N`
//!   (H_PUT_TCE_INDIRECT: `iobaN` is the *index* of the last entry written, or of the first
//!   that failed, and `tceN` that entry; so a successful call wrote `iobaN + 1` TCEs)
//! - `spapr_iommu_pci_stuff liobn=0x… ioba=0x… tcevalue=0x… npages=N ret=N` (H_STUFF_TCE)
//! - `spapr_iommu_xlate liobn=0x… 0xOFFSET -> 0xADDR perm=P mask=0x…` (one DMA translation;
//!   the offset is relative to the window's bus base, `perm=0` is a refused access)
//! - `spapr_iommu_ddw_query buid=0x… addr=0x…, N windows available, max window size=0x…,
//!   mask=0x…`
//! - `spapr_iommu_ddw_create buid=0x… addr=0x…, page size=0x…, requested=0x…, start
//!   addr=0x…, liobn=0x…` (`requested` is the window size in bytes)
//! - `spapr_iommu_ddw_remove liobn=0x…`, `spapr_iommu_ddw_reset buid=0x… addr=0x…`
//!
//! Lines that do not start with an event name (e.g. `-d` log messages) are skipped.

use crate::kv::parse_hex;

/// One trace line.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    /// Event name, e.g. `pci_cfg_read`.
    pub name: String,
    /// Everything after the name and one space.
    pub rest: String,
    /// QEMU's process ID, when the line had the timestamp prefix.
    pub pid: Option<u32>,
    /// Seconds since the epoch, when the line had the timestamp prefix.
    pub timestamp: Option<f64>,
}

/// Splits off `PID@SECONDS.MICROS:` if the line starts with it.
fn strip_prefix(line: &str) -> (Option<u32>, Option<f64>, &str) {
    let Some((head, rest)) = line.split_once(':') else {
        return (None, None, line);
    };
    let Some((pid, time)) = head.split_once('@') else {
        return (None, None, line);
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = time.split_once('.').is_some_and(|(s, us)| digits(s) && digits(us));
    if digits(pid) && time_ok {
        (pid.parse().ok(), time.parse().ok(), rest)
    } else {
        (None, None, line)
    }
}

/// Parses one trace line.
pub fn parse_line(line: &str) -> Option<TraceEvent> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (pid, timestamp, body) = strip_prefix(line);
    let (name, rest) = body.split_once(' ').unwrap_or((body, ""));
    let mut chars = name.chars();
    let shaped = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    shaped.then(|| TraceEvent { name: name.to_string(), rest: rest.to_string(), pid, timestamp })
}

/// A BAR mapping QEMU added or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// QEMU's device name (e.g. `virtio-blk-pci`, `edu`).
    pub device: String,
    /// `BB:DD.F` as QEMU prints it (the kernel's format too).
    pub bdf: String,
    /// BAR index (6 is the expansion ROM).
    pub bar: u32,
    /// Address in the PCI address space (the bus address).
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `true` for `pci_update_mappings_add`, `false` for `_del`.
    pub added: bool,
}

impl Mapping {
    fn parse(rest: &str, added: bool) -> Option<Self> {
        let mut words = rest.rsplitn(3, ' ');
        let bar_addr = words.next()?;
        let bdf = words.next()?;
        let device = words.next()?;
        let (bar, range) = bar_addr.split_once(',')?;
        let (addr, size) = range.split_once('+')?;
        Some(Self {
            device: device.to_string(),
            bdf: bdf.to_string(),
            bar: bar.parse().ok()?,
            addr: parse_hex(addr)?,
            size: parse_hex(size)?,
            added,
        })
    }
}

/// One config-space access QEMU performed for the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigAccess {
    /// QEMU's device name.
    pub device: String,
    /// `BB:DD.F`.
    pub bdf: String,
    /// Register offset.
    pub offset: u32,
    /// Value read or written.
    pub value: u32,
    /// `true` for `pci_cfg_write`.
    pub write: bool,
}

impl ConfigAccess {
    fn parse(rest: &str, write: bool) -> Option<Self> {
        let arrow = if write { " <- " } else { " -> " };
        let (head, value) = rest.rsplit_once(arrow)?;
        let (head, offset) = head.rsplit_once(" @")?;
        let (device, bdf) = head.rsplit_once(' ')?;
        Some(Self {
            device: device.to_string(),
            bdf: bdf.to_string(),
            offset: u32::try_from(parse_hex(offset)?).ok()?,
            value: u32::try_from(parse_hex(value)?).ok()?,
            write,
        })
    }
}

/// Matches `text` against `pattern`, where each `{}` captures up to the next literal part
/// (or the end); the literal parts must match exactly. Returns the captures.
fn scan<'a>(text: &'a str, pattern: &str) -> Option<Vec<&'a str>> {
    let mut parts = pattern.split("{}");
    let first = parts.next()?;
    let mut rest = text.strip_prefix(first)?;
    let mut captures = Vec::new();
    let literals: Vec<&str> = parts.collect();
    for (i, literal) in literals.iter().enumerate() {
        let last = i + 1 == literals.len();
        let end = if literal.is_empty() {
            if last {
                rest.len()
            } else {
                return None;
            }
        } else {
            rest.find(literal)?
        };
        captures.push(&rest[..end]);
        rest = &rest[end + literal.len()..];
    }
    rest.is_empty().then_some(captures)
}

/// A `0x…` field (QEMU prints every hex field of these events with the prefix).
fn hex(text: &str) -> Option<u64> {
    text.starts_with("0x").then(|| parse_hex(text)).flatten()
}

/// A signed decimal field (`ret=%ld`).
fn signed(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// A decimal field (`%u`).
fn unsigned(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// `spapr_iommu_pci_put`: one H_PUT_TCE on a PCI LIOBN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcePut {
    /// The window's LIOBN.
    pub liobn: u64,
    /// The I/O bus address the guest passed.
    pub ioba: u64,
    /// The TCE (real page number and permission bits).
    pub tce: u64,
    /// The hcall status (0 is H_SUCCESS).
    pub ret: i64,
}

impl TcePut {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={} ioba={} tce={} ret={}")?;
        Some(Self { liobn: hex(f[0])?, ioba: hex(f[1])?, tce: hex(f[2])?, ret: signed(f[3])? })
    }
}

/// `spapr_iommu_pci_get`: one H_GET_TCE on a PCI LIOBN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TceGet {
    /// The window's LIOBN.
    pub liobn: u64,
    /// The I/O bus address the guest passed.
    pub ioba: u64,
    /// The hcall status.
    pub ret: i64,
    /// The TCE returned.
    pub tce: u64,
}

impl TceGet {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={} ioba={} ret={} tce={}")?;
        Some(Self { liobn: hex(f[0])?, ioba: hex(f[1])?, ret: signed(f[2])?, tce: hex(f[3])? })
    }
}

/// `spapr_iommu_pci_indirect`: one H_PUT_TCE_INDIRECT on a PCI LIOBN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TceIndirect {
    /// The window's LIOBN.
    pub liobn: u64,
    /// The I/O bus address of the first entry.
    pub ioba: u64,
    /// Guest-physical address of the TCE list.
    pub tce_list: u64,
    /// Index of the last entry written (or of the first that failed), QEMU's `iobaN`.
    pub last_index: u64,
    /// That entry's TCE, QEMU's `tceN`.
    pub last_tce: u64,
    /// The hcall status.
    pub ret: i64,
}

impl TceIndirect {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={} ioba={} tcelist={} iobaN={} tceN={} ret={}")?;
        Some(Self {
            liobn: hex(f[0])?,
            ioba: hex(f[1])?,
            tce_list: hex(f[2])?,
            last_index: hex(f[3])?,
            last_tce: hex(f[4])?,
            ret: signed(f[5])?,
        })
    }

    /// TCEs this call wrote when it succeeded (`last_index + 1`); `None` after a failure
    /// (the trace does not tell how many entries preceded the failing one).
    pub fn entries(&self) -> Option<u64> {
        (self.ret == 0).then_some(self.last_index + 1)
    }
}

/// `spapr_iommu_pci_stuff`: one H_STUFF_TCE on a PCI LIOBN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TceStuff {
    /// The window's LIOBN.
    pub liobn: u64,
    /// The I/O bus address of the first entry.
    pub ioba: u64,
    /// The value stored in every entry.
    pub tce_value: u64,
    /// Number of entries.
    pub npages: u64,
    /// The hcall status.
    pub ret: i64,
}

impl TceStuff {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={} ioba={} tcevalue={} npages={} ret={}")?;
        Some(Self {
            liobn: hex(f[0])?,
            ioba: hex(f[1])?,
            tce_value: hex(f[2])?,
            npages: unsigned(f[3])?,
            ret: signed(f[4])?,
        })
    }
}

/// `spapr_iommu_xlate`: one DMA translation through a TCE table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xlate {
    /// The window's LIOBN.
    pub liobn: u64,
    /// The DMA address relative to the window's bus base (QEMU's IOMMU region offset).
    pub offset: u64,
    /// The translated guest-physical page (0 when refused).
    pub translated: u64,
    /// Permission: 0 none (refused), 1 read-only, 2 write-only, 3 read-write.
    pub perm: u32,
    /// The page mask (page size − 1) of the window, or all ones when out of range.
    pub mask: u64,
}

impl Xlate {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={} {} -> {} perm={} mask={}")?;
        Some(Self {
            liobn: hex(f[0])?,
            offset: hex(f[1])?,
            translated: hex(f[2])?,
            perm: u32::try_from(unsigned(f[3])?).ok()?,
            mask: hex(f[4])?,
        })
    }
}

/// `pci_nvme_create_sq` / `pci_nvme_create_cq`: an NVMe I/O queue created (QEMU
/// hw/nvme/trace-events), with the bus address the controller was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvmeQueue {
    /// A submission queue (else a completion queue).
    pub submission: bool,
    /// The queue's bus address.
    pub addr: u64,
    /// Its identifier.
    pub qid: u64,
    /// Entries, 0-based (QEMU's `qsize`).
    pub qsize: u64,
}

impl NvmeQueue {
    /// Parses the text after `pci_nvme_create_sq`.
    pub fn parse_sq(rest: &str) -> Option<Self> {
        let f = scan(rest, "create submission queue, addr={}, sqid={}, cqid={}, qsize={}, qflags={}")?;
        Some(Self { submission: true, addr: hex(f[0])?, qid: unsigned(f[1])?, qsize: unsigned(f[3])? })
    }

    /// Parses the text after `pci_nvme_create_cq`.
    pub fn parse_cq(rest: &str) -> Option<Self> {
        let f =
            scan(rest, "create completion queue, addr={}, cqid={}, vector={}, qsize={}, qflags={}, ien={}")?;
        Some(Self { submission: false, addr: hex(f[0])?, qid: unsigned(f[1])?, qsize: unsigned(f[3])? })
    }
}

/// `pci_nvme_io_cmd`: one NVMe I/O command the controller fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeIoCmd {
    /// Command identifier.
    pub cid: u64,
    /// Namespace.
    pub nsid: u64,
    /// The submission queue it came from.
    pub sqid: u64,
    /// Opcode (0x1 write, 0x2 read, 0x0 flush).
    pub opcode: u64,
}

impl NvmeIoCmd {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "cid {} nsid {} sqid {} opc {} opname {}")?;
        Some(Self { cid: unsigned(f[0])?, nsid: hex(f[1])?, sqid: unsigned(f[2])?, opcode: hex(f[3])? })
    }
}

/// `spapr_iommu_ddw_query`: one `ibm,query-pe-dma-window` RTAS call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwQuery {
    /// The PHB's BUID.
    pub buid: u64,
    /// The PE configuration address the guest passed.
    pub config_addr: u32,
    /// Windows still available.
    pub windows_available: u32,
    /// What QEMU logs as the maximum window size (always 0x80000000 in QEMU 7.2, whatever
    /// the query returned).
    pub max_window_size: u64,
    /// The page-size mask returned (0x107 by default).
    pub page_mask: u32,
}

impl DdwQuery {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "buid={} addr={}, {} windows available, max window size={}, mask={}")?;
        Some(Self {
            buid: hex(f[0])?,
            config_addr: u32::try_from(hex(f[1])?).ok()?,
            windows_available: u32::try_from(unsigned(f[2])?).ok()?,
            max_window_size: hex(f[3])?,
            page_mask: u32::try_from(hex(f[4])?).ok()?,
        })
    }
}

/// `spapr_iommu_ddw_create`: one successful `ibm,create-pe-dma-window` (QEMU traces only
/// calls that created a window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwCreate {
    /// The PHB's BUID.
    pub buid: u64,
    /// The PE configuration address the guest passed.
    pub config_addr: u32,
    /// IOMMU page size in bytes.
    pub page_size: u64,
    /// Window size in bytes (2^window_shift).
    pub window_size: u64,
    /// The window's bus base address.
    pub start: u64,
    /// The new window's LIOBN.
    pub liobn: u64,
}

impl DdwCreate {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "buid={} addr={}, page size={}, requested={}, start addr={}, liobn={}")?;
        Some(Self {
            buid: hex(f[0])?,
            config_addr: u32::try_from(hex(f[1])?).ok()?,
            page_size: hex(f[2])?,
            window_size: hex(f[3])?,
            start: hex(f[4])?,
            liobn: hex(f[5])?,
        })
    }
}

/// `spapr_iommu_ddw_remove`: one successful `ibm,remove-pe-dma-window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwRemove {
    /// The removed window's LIOBN.
    pub liobn: u64,
}

impl DdwRemove {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "liobn={}")?;
        Some(Self { liobn: hex(f[0])? })
    }
}

/// `spapr_iommu_ddw_reset`: one `ibm,reset-pe-dma-window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdwReset {
    /// The PHB's BUID.
    pub buid: u64,
    /// The PE configuration address the guest passed.
    pub config_addr: u32,
}

impl DdwReset {
    /// Parses the text after the event name.
    pub fn parse(rest: &str) -> Option<Self> {
        let f = scan(rest, "buid={} addr={}")?;
        Some(Self { buid: hex(f[0])?, config_addr: u32::try_from(hex(f[1])?).ok()? })
    }
}

/// A parsed trace log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    events: Vec<TraceEvent>,
}

impl Trace {
    /// Parses a whole trace log.
    pub fn parse(text: &str) -> Self {
        Self { events: text.lines().filter_map(parse_line).collect() }
    }

    /// The events stamped (`-msg timestamp=on`) within `[from, to]`, seconds since the epoch;
    /// unstamped events are left out.
    pub fn between(&self, from: f64, to: f64) -> Trace {
        let within = |e: &&TraceEvent| e.timestamp.is_some_and(|t| from <= t && t <= to);
        Trace { events: self.events.iter().filter(within).cloned().collect() }
    }

    /// The Dynamic DMA Windows still in place at the end of the log, with the time of their
    /// create (when stamped): every create replayed against the removes of its LIOBN and the resets of its PHB (`ibm,reset-pe-dma-window`
    /// removes every DDW of the PE and restores the default window: LoPAR 2.13 "DDW Option";
    /// QEMU `hw/ppc/spapr_rtas_ddw.c`, `rtas_ibm_reset_pe_dma_window`).
    pub fn ddw_windows_left(&self) -> Result<Vec<(Option<f64>, DdwCreate)>, String> {
        let mut live: Vec<(Option<f64>, DdwCreate)> = Vec::new();
        for event in &self.events {
            let unparsable = || format!("unparsable {} line: {:?}", event.name, event.rest);
            match event.name.as_str() {
                "spapr_iommu_ddw_create" => {
                    live.push((event.timestamp, DdwCreate::parse(&event.rest).ok_or_else(unparsable)?));
                }
                "spapr_iommu_ddw_remove" => {
                    let removed = DdwRemove::parse(&event.rest).ok_or_else(unparsable)?;
                    live.retain(|(_, w)| w.liobn != removed.liobn);
                }
                "spapr_iommu_ddw_reset" => {
                    let reset = DdwReset::parse(&event.rest).ok_or_else(unparsable)?;
                    live.retain(|(_, w)| w.buid != reset.buid);
                }
                _ => {}
            }
        }
        Ok(live)
    }

    /// Every event in order.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// Events called `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TraceEvent> + 'a {
        self.events.iter().filter(move |e| e.name == name)
    }

    /// How many `name` events were logged.
    pub fn count(&self, name: &str) -> usize {
        self.named(name).count()
    }

    /// How many events whose name starts with `prefix` were logged.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.events.iter().filter(|e| e.name.starts_with(prefix)).count()
    }

    /// Every `pci_update_mappings_add`/`_del`, in order (unparsable lines are skipped).
    pub fn mapping_changes(&self) -> Vec<Mapping> {
        self.events
            .iter()
            .filter_map(|e| match e.name.as_str() {
                "pci_update_mappings_add" => Mapping::parse(&e.rest, true),
                "pci_update_mappings_del" => Mapping::parse(&e.rest, false),
                _ => None,
            })
            .collect()
    }

    /// Every `pci_update_mappings_add`, in order.
    pub fn mappings_added(&self) -> Vec<Mapping> {
        self.mapping_changes().into_iter().filter(|m| m.added).collect()
    }

    /// The mappings still in place at the end: adds replayed against dels.
    pub fn live_mappings(&self) -> Vec<Mapping> {
        let mut live: Vec<Mapping> = Vec::new();
        for change in self.mapping_changes() {
            let same = |m: &Mapping| m.device == change.device && m.bdf == change.bdf && m.bar == change.bar;
            live.retain(|m| !same(m));
            if change.added {
                live.push(change);
            }
        }
        live
    }

    /// Every `pci_cfg_read` and `pci_cfg_write`, in order.
    pub fn config_accesses(&self) -> Vec<ConfigAccess> {
        self.events
            .iter()
            .filter_map(|e| match e.name.as_str() {
                "pci_cfg_read" => ConfigAccess::parse(&e.rest, false),
                "pci_cfg_write" => ConfigAccess::parse(&e.rest, true),
                _ => None,
            })
            .collect()
    }

    /// Every `pci_cfg_read`.
    pub fn config_reads(&self) -> Vec<ConfigAccess> {
        self.config_accesses().into_iter().filter(|a| !a.write).collect()
    }

    /// Every `pci_cfg_write`.
    pub fn config_writes(&self) -> Vec<ConfigAccess> {
        self.config_accesses().into_iter().filter(|a| a.write).collect()
    }

    /// Every `name` event parsed with `parse`, in order; a line that does not parse is an
    /// error naming it (a format change must not silently shrink a count).
    pub fn parsed<T>(&self, name: &str, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
        self.named(name)
            .map(|e| parse(&e.rest).ok_or_else(|| format!("unparsable {name} line: {:?}", e.rest)))
            .collect()
    }

    /// Every `spapr_iommu_pci_put`.
    pub fn pci_puts(&self) -> Result<Vec<TcePut>, String> {
        self.parsed("spapr_iommu_pci_put", TcePut::parse)
    }

    /// Every `spapr_iommu_pci_get`.
    pub fn pci_gets(&self) -> Result<Vec<TceGet>, String> {
        self.parsed("spapr_iommu_pci_get", TceGet::parse)
    }

    /// Every `spapr_iommu_pci_indirect`.
    pub fn pci_indirects(&self) -> Result<Vec<TceIndirect>, String> {
        self.parsed("spapr_iommu_pci_indirect", TceIndirect::parse)
    }

    /// Every `spapr_iommu_pci_stuff`.
    pub fn pci_stuffs(&self) -> Result<Vec<TceStuff>, String> {
        self.parsed("spapr_iommu_pci_stuff", TceStuff::parse)
    }

    /// Every `spapr_iommu_xlate`.
    pub fn xlates(&self) -> Result<Vec<Xlate>, String> {
        self.parsed("spapr_iommu_xlate", Xlate::parse)
    }

    /// Every `spapr_iommu_ddw_query`.
    pub fn ddw_queries(&self) -> Result<Vec<DdwQuery>, String> {
        self.parsed("spapr_iommu_ddw_query", DdwQuery::parse)
    }

    /// Every `spapr_iommu_ddw_create`.
    pub fn ddw_creates(&self) -> Result<Vec<DdwCreate>, String> {
        self.parsed("spapr_iommu_ddw_create", DdwCreate::parse)
    }

    /// Every `spapr_iommu_ddw_remove`.
    pub fn ddw_removes(&self) -> Result<Vec<DdwRemove>, String> {
        self.parsed("spapr_iommu_ddw_remove", DdwRemove::parse)
    }

    /// Every `spapr_iommu_ddw_reset`.
    pub fn ddw_resets(&self) -> Result<Vec<DdwReset>, String> {
        self.parsed("spapr_iommu_ddw_reset", DdwReset::parse)
    }

    /// Every NVMe queue creation, submission and completion queues.
    pub fn nvme_queues(&self) -> Result<Vec<NvmeQueue>, String> {
        let mut queues = self.parsed("pci_nvme_create_sq", NvmeQueue::parse_sq)?;
        queues.extend(self.parsed("pci_nvme_create_cq", NvmeQueue::parse_cq)?);
        Ok(queues)
    }

    /// Every `pci_nvme_io_cmd`.
    pub fn nvme_io_cmds(&self) -> Result<Vec<NvmeIoCmd>, String> {
        self.parsed("pci_nvme_io_cmd", NvmeIoCmd::parse)
    }

    /// Per LIOBN: the TCE-writing hcalls QEMU traced (put, indirect, stuff).
    pub fn tce_writes(&self, liobn: u64) -> Result<TceWrites, String> {
        let mut writes = TceWrites::default();
        for put in self.pci_puts()?.into_iter().filter(|p| p.liobn == liobn) {
            writes.puts += 1;
            writes.failed += u64::from(put.ret != 0);
        }
        for call in self.pci_indirects()?.into_iter().filter(|c| c.liobn == liobn) {
            writes.indirect_calls += 1;
            match call.entries() {
                Some(n) => writes.indirect_tces += n,
                None => writes.failed += 1,
            }
        }
        for call in self.pci_stuffs()?.into_iter().filter(|c| c.liobn == liobn) {
            writes.stuff_calls += 1;
            writes.failed += u64::from(call.ret != 0);
        }
        Ok(writes)
    }
}

/// Counts of the TCE-writing hcalls on one LIOBN ([`Trace::tce_writes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TceWrites {
    /// `H_PUT_TCE` calls.
    pub puts: u64,
    /// `H_PUT_TCE_INDIRECT` calls.
    pub indirect_calls: u64,
    /// TCEs written by successful indirect calls.
    pub indirect_tces: u64,
    /// `H_STUFF_TCE` calls.
    pub stuff_calls: u64,
    /// Calls of any kind that returned an error.
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
spapr_iommu_new_table liobn=0x80000000 table=0x7f86dc339010 fd=-1
pci_cfg_read virtio-blk-pci 00:00.0 @0x0 -> 0x10421af4
16535@1795320203.151768:pci_cfg_write edu 00:01.0 @0x10 <- 0xffffffff
Guest crashed
16535@1795320203.153271:pci_update_mappings_add edu 00:01.0 0,0x80000000+0x100000
pci_update_mappings_add virtio-blk-pci 00:00.0 4,0x210000000000+0x4000
pci_update_mappings_del edu 00:01.0 0,0x80000000+0x100000
pci_update_mappings_add edu 00:01.0 0,0x80100000+0x100000
pci_update_mappings_add broken line
";

    #[test]
    fn prefix_is_optional_and_noise_is_skipped() {
        let trace = Trace::parse(LOG);
        assert_eq!(trace.events().len(), 8, "`Guest crashed` is not an event");
        let write = &trace.events()[2];
        assert_eq!(write.name, "pci_cfg_write");
        assert_eq!(write.pid, Some(16535));
        assert!(write.timestamp.is_some_and(|t| t > 1.7e9));
        assert_eq!(write.rest, "edu 00:01.0 @0x10 <- 0xffffffff");
        assert_eq!(trace.events()[1].pid, None);
        assert_eq!(trace.count("pci_update_mappings_add"), 4);
        assert_eq!(trace.count_prefix("pci_cfg_"), 2);
        assert_eq!(trace.count("pci_cfg"), 0);
    }

    #[test]
    fn nvme_events_in_qemu_7_2_formats() {
        let log = "pci_nvme_create_cq create completion queue, addr=0x800000000520000, cqid=1, vector=0, qsize=63, qflags=1, ien=0\n\
                   pci_nvme_create_sq create submission queue, addr=0x80000000050f000, sqid=1, cqid=1, qsize=63, qflags=1\n\
                   pci_nvme_io_cmd cid 3 nsid 0x1 sqid 2 opc 0x2 opname 'NVME_NVM_CMD_READ'\n";
        let trace = Trace::parse(log);
        let queues = trace.nvme_queues().unwrap();
        assert_eq!(queues[0], NvmeQueue { submission: true, addr: 0x0800_0000_0050_f000, qid: 1, qsize: 63 });
        assert_eq!(
            queues[1],
            NvmeQueue { submission: false, addr: 0x0800_0000_0052_0000, qid: 1, qsize: 63 }
        );
        assert_eq!(trace.nvme_io_cmds().unwrap(), [NvmeIoCmd { cid: 3, nsid: 1, sqid: 2, opcode: 2 }]);
    }

    #[test]
    fn a_colon_in_the_body_is_not_a_prefix() {
        let event = parse_line("pci_cfg_read edu 00:01.0 @0x0 -> 0x11e81234").unwrap();
        assert_eq!(event.name, "pci_cfg_read");
        assert_eq!(event.pid, None);
        assert!(parse_line("12@x.1:pci_cfg_read edu").is_none());
    }

    #[test]
    fn config_accesses() {
        let trace = Trace::parse(LOG);
        let reads = trace.config_reads();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].device, "virtio-blk-pci");
        assert_eq!(reads[0].bdf, "00:00.0");
        assert_eq!((reads[0].offset, reads[0].value), (0, 0x1042_1af4));
        let writes = trace.config_writes();
        assert_eq!(writes.len(), 1);
        assert_eq!((writes[0].offset, writes[0].value, writes[0].write), (0x10, u32::MAX, true));
    }

    #[test]
    fn mappings() {
        let trace = Trace::parse(LOG);
        let added = trace.mappings_added();
        assert_eq!(added.len(), 3, "the broken line is skipped");
        assert_eq!(
            added[1],
            Mapping {
                device: "virtio-blk-pci".into(),
                bdf: "00:00.0".into(),
                bar: 4,
                addr: 0x2100_0000_0000,
                size: 0x4000,
                added: true
            }
        );
        let live = trace.live_mappings();
        assert_eq!(live.len(), 2);
        let edu = live.iter().find(|m| m.device == "edu").unwrap();
        assert_eq!(edu.addr, 0x8010_0000, "the del removed the first edu mapping");
    }

    /// Lines in QEMU 7.2's formats (`strings qemu-system-ppc64`), with the values a guest
    /// creating a 16M-page DDW at 2G RAM and mapping one edu buffer would produce.
    const IOMMU_LOG: &str = "\
spapr_iommu_new_table liobn=0x80000000 table=0x7f042c3fd010 fd=-1
spapr_iommu_ddw_query buid=0x800000020000000 addr=0x0, 1 windows available, max window size=0x80000000, mask=0x107
spapr_iommu_new_table liobn=0x80000001 table=0x7f0400000010 fd=-1
spapr_iommu_ddw_create buid=0x800000020000000 addr=0x0, page size=0x1000000, requested=0x80000000, start addr=0x800000000000000, liobn=0x80000001
spapr_iommu_pci_indirect liobn=0x80000001 ioba=0x800000000000000 tcelist=0x2580000 iobaN=0x7f tceN=0x7f000003 ret=0
12@1795320203.151768:spapr_iommu_pci_put liobn=0x80000000 ioba=0x1000 tce=0x2584003 ret=0
spapr_iommu_pci_put liobn=0x80000000 ioba=0x40000000 tce=0x2585003 ret=-4
spapr_iommu_pci_get liobn=0x80000000 ioba=0x1000 ret=0 tce=0x2584003
spapr_iommu_pci_stuff liobn=0x80000000 ioba=0x0 tcevalue=0x0 npages=512 ret=0
spapr_iommu_pci_indirect liobn=0x80000000 ioba=0x2000 tcelist=0x2581000 iobaN=0x0 tceN=0x0 ret=-4
spapr_iommu_xlate liobn=0x80000001 0x2590000 -> 0x2000000 perm=3 mask=0xffffff
spapr_iommu_xlate liobn=0x80000000 0x1000 -> 0x2584000 perm=1 mask=0xfff
spapr_iommu_xlate liobn=0x80000000 0x9000 -> 0x0 perm=0 mask=0xfff
spapr_iommu_ddw_remove liobn=0x80000001
spapr_iommu_ddw_reset buid=0x800000020000001 addr=0x800
spapr_iommu_ddw_create buid=0x800000020000000 addr=0x0, page size=0x1000000, truncated
";

    #[test]
    fn scan_matches_literals_and_captures() {
        assert_eq!(scan("a=1 b=2", "a={} b={}"), Some(vec!["1", "2"]));
        assert_eq!(scan("a=1 b=2 c", "a={} b={}"), Some(vec!["1", "2 c"]), "the last capture takes the rest");
        assert_eq!(scan("a=1, b=2", "a={}, b={}!"), None);
        assert_eq!(scan("x=1", "a={}"), None);
        assert_eq!(scan("start addr=0x5", "start addr={}"), Some(vec!["0x5"]));
        assert_eq!(scan("a=1 b=2", "a={} b=2"), Some(vec!["1"]));
        assert_eq!(scan("a=1 b=23", "a={} b=2"), None, "trailing text fails");
    }

    #[test]
    fn ddw_rtas_events() {
        let trace = Trace::parse(IOMMU_LOG);
        let queries = trace.ddw_queries().unwrap();
        assert_eq!(
            queries,
            vec![DdwQuery {
                buid: 0x0800_0000_2000_0000,
                config_addr: 0,
                windows_available: 1,
                max_window_size: 0x8000_0000,
                page_mask: 0x107
            }]
        );
        let err = trace.ddw_creates().expect_err("the truncated create line is reported");
        assert!(err.contains("truncated"), "{err}");
        let creates: Vec<DdwCreate> =
            trace.named("spapr_iommu_ddw_create").filter_map(|e| DdwCreate::parse(&e.rest)).collect();
        assert_eq!(
            creates,
            vec![DdwCreate {
                buid: 0x0800_0000_2000_0000,
                config_addr: 0,
                page_size: 1 << 24,
                window_size: 1 << 31,
                start: 1 << 59,
                liobn: 0x8000_0001
            }]
        );
        assert_eq!(trace.ddw_removes().unwrap(), vec![DdwRemove { liobn: 0x8000_0001 }]);
        assert_eq!(
            trace.ddw_resets().unwrap(),
            vec![DdwReset { buid: 0x0800_0000_2000_0001, config_addr: 0x800 }]
        );
    }

    #[test]
    fn windows_left_and_time_spans() {
        let log = "\
10@100.000001:spapr_iommu_ddw_create buid=0x800000020000000 addr=0x0, page size=0x10000, requested=0x80000000, start addr=0x800000000000000, liobn=0x80000001
10@100.500000:spapr_iommu_ddw_remove liobn=0x80000001
10@101.000000:spapr_iommu_ddw_create buid=0x800000020000000 addr=0x0, page size=0x10000, requested=0x80000000, start addr=0x800000000000000, liobn=0x80000001
10@102.000000:spapr_iommu_ddw_create buid=0x800000020000001 addr=0x0, page size=0x10000, requested=0x80000000, start addr=0x800000000000000, liobn=0x80010001
spapr_iommu_ddw_remove liobn=0x80000009
";
        let trace = Trace::parse(log);
        let left = trace.ddw_windows_left().unwrap();
        assert_eq!(left.iter().map(|(_, w)| w.liobn).collect::<Vec<_>>(), vec![0x8000_0001, 0x8001_0001]);
        assert_eq!(left[0].0, Some(101.0), "the second create of the slot is the one left");
        let reset = Trace::parse(&format!("{log}spapr_iommu_ddw_reset buid=0x800000020000000 addr=0x0\n"));
        assert_eq!(reset.ddw_windows_left().unwrap().len(), 1, "the reset removed the first PHB's window");
        let span = trace.between(100.4, 101.5);
        assert_eq!(span.count("spapr_iommu_ddw_create"), 1);
        assert_eq!(span.count("spapr_iommu_ddw_remove"), 1, "the unstamped remove is outside every span");
    }

    #[test]
    fn tce_hcall_events() {
        let trace = Trace::parse(IOMMU_LOG);
        let puts = trace.pci_puts().unwrap();
        assert_eq!(puts.len(), 2);
        assert_eq!(puts[0], TcePut { liobn: 0x8000_0000, ioba: 0x1000, tce: 0x258_4003, ret: 0 });
        assert_eq!(puts[1].ret, -4, "H_PARAMETER is printed signed");
        assert_eq!(
            trace.pci_gets().unwrap(),
            vec![TceGet { liobn: 0x8000_0000, ioba: 0x1000, ret: 0, tce: 0x258_4003 }]
        );
        assert_eq!(
            trace.pci_stuffs().unwrap(),
            vec![TceStuff { liobn: 0x8000_0000, ioba: 0, tce_value: 0, npages: 512, ret: 0 }]
        );
        let indirect = trace.pci_indirects().unwrap();
        assert_eq!(indirect.len(), 2);
        assert_eq!(
            indirect[0],
            TceIndirect {
                liobn: 0x8000_0001,
                ioba: 1 << 59,
                tce_list: 0x258_0000,
                last_index: 0x7f,
                last_tce: 0x7f00_0003,
                ret: 0
            }
        );
        assert_eq!(indirect[0].entries(), Some(128));
        assert_eq!(indirect[1].entries(), None, "a failed call's count is unknown");
        let ddw = trace.tce_writes(0x8000_0001).unwrap();
        assert_eq!(ddw, TceWrites { indirect_calls: 1, indirect_tces: 128, ..TceWrites::default() });
        let default = trace.tce_writes(0x8000_0000).unwrap();
        assert_eq!(
            default,
            TceWrites { puts: 2, indirect_calls: 1, indirect_tces: 0, stuff_calls: 1, failed: 2 }
        );
    }

    #[test]
    fn xlate_events() {
        let xlates = Trace::parse(IOMMU_LOG).xlates().unwrap();
        assert_eq!(xlates.len(), 3);
        assert_eq!(
            xlates[0],
            Xlate {
                liobn: 0x8000_0001,
                offset: 0x259_0000,
                translated: 0x200_0000,
                perm: 3,
                mask: 0xff_ffff
            }
        );
        assert_eq!((xlates[1].perm, xlates[1].mask), (1, 0xfff));
        assert_eq!((xlates[2].perm, xlates[2].translated), (0, 0), "a refused access");
        assert_eq!(Xlate::parse("liobn=0x1 0x2 -> 0x3 perm=x mask=0x4"), None);
        assert_eq!(Xlate::parse("liobn=0x1 2 -> 0x3 perm=1 mask=0x4"), None, "hex fields need 0x");
    }
}
