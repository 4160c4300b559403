//! QEMU's trace log (`-trace PATTERN -D FILE`, "log" trace backend), the hypervisor's side of
//! what the kernel did.
//!
//! Each line is `[PID@SECONDS.MICROS:]EVENT REST`; the prefix appears with
//! `-msg timestamp=on`. Formats used here (QEMU 7.2 `hw/pci/trace-events`):
//! - `pci_cfg_read DEV BB:DD.F @0xOFFSET -> 0xVALUE`
//! - `pci_cfg_write DEV BB:DD.F @0xOFFSET <- 0xVALUE`
//! - `pci_update_mappings_add DEV BB:DD.F BAR,0xADDR+0xSIZE` (and `_del`)
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
}
