//! The facts the summary shows, read from the kernel's `key=value` lines: RAM, each PE's
//! windows and the PHB memory windows around them, and each device's DMA mode and self-test.
//! A fact the kernel did not print is `None` (or absent from a list), never a made-up zero.

use crate::kv::{parse_hex, Kv};

/// A range of addresses, `start+size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Range {
    /// Parses the kernel's `0x…+0x…`.
    pub fn parse(text: &str) -> Option<Self> {
        let (start, size) = text.trim().split_once('+')?;
        Some(Self { start: parse_hex(start)?, size: parse_hex(size)? })
    }

    /// One past the last address (saturating at 2^64 - 1).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// What a region of a PE's bus-address space is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// The PE's default DMA window (TCEs per buffer).
    Default,
    /// The Dynamic DMA Window.
    Ddw,
    /// A PHB memory window below 4 GiB (MMIO: no DMA).
    Mmio32,
    /// A PHB memory window above 4 GiB (MMIO: no DMA).
    Mmio64,
}

impl RegionKind {
    /// The name on the map.
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Default => "default",
            RegionKind::Ddw => "DDW",
            RegionKind::Mmio32 => "mmio32",
            RegionKind::Mmio64 => "mmio64",
        }
    }

    /// Whether devices DMA through it.
    pub fn is_dma_window(self) -> bool {
        matches!(self, RegionKind::Default | RegionKind::Ddw)
    }
}

/// One region of a PE's bus-address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// What it is.
    pub kind: RegionKind,
    /// Where it lies.
    pub range: Range,
    /// The window's LIOBN (DMA windows only).
    pub liobn: Option<u64>,
    /// The IOMMU page size (DMA windows only).
    pub page_shift: Option<u32>,
}

/// The Dynamic DMA Window a PE got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ddw {
    /// `direct` (all RAM mapped, devices DMA without hypercalls) or `dynamic`.
    pub mode: String,
    /// The window.
    pub region: Region,
    /// Table slot.
    pub slot: Option<u64>,
    /// What capped its size (`ram`, `largest-block`, `device-mask`, `tce-count`).
    pub limit: Option<String>,
    /// RAM ranges mapped into it.
    pub ranges: Option<u64>,
    /// TCEs written.
    pub tces: Option<u64>,
    /// `H_PUT_TCE_INDIRECT` calls.
    pub indirect_calls: Option<u64>,
    /// `H_PUT_TCE` calls.
    pub put_calls: Option<u64>,
    /// Microseconds from the query to the last TCE.
    pub us: Option<u64>,
}

/// The `ibm,query-pe-dma-window` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Free windows.
    pub windows: Option<u64>,
    /// Largest block of TCEs, in bytes of RAM it can map at the largest page size.
    pub largest_block: Option<u64>,
    /// Page-size mask.
    pub page_sizes: Option<u64>,
}

/// One PE and its DMA windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pe {
    /// `N` in `pe.N.*`.
    pub index: usize,
    /// The PE's device-tree node.
    pub node: Option<String>,
    /// The PHB it sits under (`phb.M.path` a prefix of the node).
    pub phb: Option<usize>,
    /// The default window as the tree described it.
    pub default: Option<Region>,
    /// The single-window path removed the default window for the DDW.
    pub default_removed: bool,
    /// `pe.N.ddw`: `direct`, `dynamic` or `none`.
    pub ddw_state: Option<String>,
    /// The DDW, when one was created.
    pub ddw: Option<Ddw>,
    /// `pe.N.ddw.why`: why none was attempted.
    pub ddw_why: Option<String>,
    /// `pe.N.ddw.error`: the failing call and status.
    pub ddw_error: Option<String>,
    /// The query answer.
    pub query: Option<Query>,
    /// The PHB's memory windows (bus addresses no DMA window may use).
    pub mmio: Vec<Region>,
}

impl Pe {
    /// The regions of the PE's bus-address space that are in use, by address: the live DMA
    /// windows and the PHB's memory windows.
    pub fn regions(&self) -> Vec<Region> {
        let mut regions: Vec<Region> = Vec::new();
        if let Some(default) = self.default.as_ref().filter(|_| !self.default_removed) {
            regions.push(default.clone());
        }
        if let Some(ddw) = &self.ddw {
            regions.push(ddw.region.clone());
        }
        regions.extend(self.mmio.iter().cloned());
        regions.sort_by_key(|r| (r.range.start, r.range.size));
        regions
    }
}

/// A device the kernel drove (`blk.N`, `edu.N`, any `KIND.N.bdf`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// `blk.0`.
    pub name: String,
    /// The PE it belongs to.
    pub pe: Option<usize>,
    /// `BB:DD.F`.
    pub bdf: Option<String>,
    /// DMA mode: `direct`, `ddw-iommu`, `default-iommu`, `bypass`.
    pub dma: Option<String>,
    /// Bus address of physical 0 in direct mode.
    pub dma_offset: Option<u64>,
    /// The window it maps through in an IOMMU mode.
    pub dma_liobn: Option<u64>,
    /// DMA mask width.
    pub mask_bits: Option<u64>,
    /// `ok` or the error sentence.
    pub status: Option<String>,
    /// Disk bytes read and checksummed.
    pub read_bytes: Option<u64>,
    /// Time the read took.
    pub read_us: Option<u64>,
    /// Read rate as printed.
    pub read_mbps: Option<String>,
    /// Buffers handed to the device.
    pub maps: Option<u64>,
    /// `edu` round-trip bytes.
    pub bytes: Option<u64>,
}

impl Device {
    /// Which region of `pe` the device DMAs through, if any (bypass and failed devices use
    /// none): the window with its LIOBN, else the DDW at its direct offset, else by mode.
    pub fn window(&self, pe: &Pe) -> Option<RegionKind> {
        let dma = self.dma.as_deref()?;
        let default_liobn = pe.default.as_ref().filter(|_| !pe.default_removed).and_then(|d| d.liobn);
        let ddw = pe.ddw.as_ref().map(|d| &d.region);
        if let Some(liobn) = self.dma_liobn {
            if ddw.is_some_and(|d| d.liobn == Some(liobn)) {
                return Some(RegionKind::Ddw);
            }
            if default_liobn == Some(liobn) {
                return Some(RegionKind::Default);
            }
        }
        match dma {
            "direct" => ddw
                .filter(|d| self.dma_offset.is_none_or(|offset| offset == d.range.start))
                .map(|_| RegionKind::Ddw),
            "ddw-iommu" => ddw.map(|_| RegionKind::Ddw),
            "default-iommu" => default_liobn.map(|_| RegionKind::Default),
            _ => None,
        }
    }
}

/// Everything the summary draws from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `boot.firmware`.
    pub firmware: Option<String>,
    /// `cpu.pvr`.
    pub pvr: Option<u64>,
    /// `cpu.count`.
    pub cpus: Option<u64>,
    /// `mmu.mode`.
    pub mmu: Option<String>,
    /// `boot.bootargs` when not empty.
    pub bootargs: Option<String>,
    /// `exit.status`.
    pub exit: Option<String>,
    /// `mem.range.N`.
    pub ram: Vec<Range>,
    /// `mem.total`.
    pub ram_total: Option<u64>,
    /// `mem.max_addr`.
    pub max_addr: Option<u64>,
    /// `mem.hotplug_max` (`None` for `none` or when not printed).
    pub hotplug_max: Option<u64>,
    /// Every PE, by index.
    pub pes: Vec<Pe>,
    /// Every device, in report order.
    pub devices: Vec<Device>,
}

impl Facts {
    /// Reads the facts from a report.
    pub fn from_kv(kv: &Kv) -> Self {
        let ram = (0..).map_while(|i| kv.get(&format!("mem.range.{i}"))).filter_map(Range::parse).collect();
        Self {
            firmware: kv.get("boot.firmware").map(str::to_string),
            pvr: kv.get_hex("cpu.pvr"),
            cpus: kv.get_u64("cpu.count"),
            mmu: kv.get("mmu.mode").map(str::to_string),
            bootargs: kv.get("boot.bootargs").filter(|a| !a.trim().is_empty()).map(str::to_string),
            exit: kv.get("exit.status").map(str::to_string),
            ram,
            ram_total: kv.get_hex("mem.total"),
            max_addr: kv.get_hex("mem.max_addr"),
            hotplug_max: kv.get_hex("mem.hotplug_max"),
            pes: pes(kv),
            devices: devices(kv),
        }
    }

    /// The PE with index `index`.
    pub fn pe(&self, index: usize) -> Option<&Pe> {
        self.pes.iter().find(|pe| pe.index == index)
    }

    /// The devices of PE `index`.
    pub fn devices_of(&self, index: usize) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.pe == Some(index))
    }
}

/// The CPU's name from its PVR's version field.
pub fn cpu_name(pvr: u64) -> Option<&'static str> {
    match pvr >> 16 {
        0x4b..=0x4d => Some("POWER8"),
        0x4e => Some("POWER9"),
        0x80 => Some("POWER10"),
        0x82 => Some("POWER11"),
        _ => None,
    }
}

fn pes(kv: &Kv) -> Vec<Pe> {
    let phbs = kv.phbs();
    let mut indices: Vec<usize> = kv
        .entries()
        .iter()
        .filter_map(|(key, _)| key.strip_prefix("pe.")?.split('.').next()?.parse().ok())
        .collect();
    indices.sort_unstable();
    indices.dedup();
    indices
        .into_iter()
        .map(|index| {
            let get = |field: &str| kv.get(&format!("pe.{index}.{field}"));
            let hex = |field: &str| get(field).and_then(parse_hex);
            let num = |field: &str| get(field).and_then(|v| v.trim().parse::<u64>().ok());
            let node = get("node").map(str::to_string);
            let phb = match &node {
                Some(node) => phbs
                    .iter()
                    .filter(|p| node == &p.path || node.starts_with(&format!("{}/", p.path)))
                    .max_by_key(|p| p.path.len())
                    .map(|p| p.index),
                None => phbs.iter().find(|p| p.index == index).map(|p| p.index),
            };
            let default = get("default_window").and_then(Range::parse).map(|range| Region {
                kind: RegionKind::Default,
                range,
                liobn: hex("default_liobn"),
                page_shift: num("default_page_shift").map(|s| s as u32),
            });
            let ddw_state = get("ddw").map(str::to_string);
            let ddw = match (ddw_state.as_deref(), hex("ddw.bus_base"), num("ddw.window_shift")) {
                (Some(mode @ ("direct" | "dynamic")), Some(base), Some(shift)) if shift < 64 => Some(Ddw {
                    mode: mode.to_string(),
                    region: Region {
                        kind: RegionKind::Ddw,
                        range: Range { start: base, size: 1 << shift },
                        liobn: hex("ddw.liobn"),
                        page_shift: num("ddw.page_shift").map(|s| s as u32),
                    },
                    slot: num("ddw.slot"),
                    limit: get("ddw.limit").map(str::to_string),
                    ranges: num("ddw.ranges"),
                    tces: num("ddw.tces"),
                    indirect_calls: num("ddw.indirect_calls"),
                    put_calls: num("ddw.put_calls"),
                    us: num("ddw.us"),
                }),
                _ => None,
            };
            let query = get("query.windows").map(|_| Query {
                windows: num("query.windows"),
                largest_block: hex("query.largest_block"),
                page_sizes: hex("query.page_sizes"),
            });
            let mmio = phb.map(|phb| phb_windows(kv, phb)).unwrap_or_default();
            Pe {
                index,
                node,
                phb,
                default,
                default_removed: get("default_removed") == Some("yes"),
                ddw_state,
                ddw,
                ddw_why: get("ddw.why").map(str::to_string),
                ddw_error: get("ddw.error").map(str::to_string),
                query,
                mmio,
            }
        })
        .collect()
}

/// `phb.N.range.J` memory windows (`mem32`/`mem64`, bus addresses); I/O space is another
/// address space and is left out.
fn phb_windows(kv: &Kv, phb: usize) -> Vec<Region> {
    (0..)
        .map_while(|j| kv.get(&format!("phb.{phb}.range.{j}")))
        .filter_map(|value| {
            let mut parts = value.split(',');
            let kind = match parts.next()? {
                "mem32" => RegionKind::Mmio32,
                "mem64" => RegionKind::Mmio64,
                _ => return None,
            };
            let field = |name: &str| {
                value.split(',').find_map(|p| p.strip_prefix(name)?.strip_prefix('=')).and_then(parse_hex)
            };
            let range = Range { start: field("bus")?, size: field("size")? };
            Some(Region { kind, range, liobn: None, page_shift: None })
        })
        .collect()
}

fn devices(kv: &Kv) -> Vec<Device> {
    let mut names: Vec<&str> = Vec::new();
    for (key, _) in kv.entries() {
        let Some(name) = key.strip_suffix(".bdf") else { continue };
        let Some((kind, index)) = name.split_once('.') else { continue };
        let device_like = !kind.is_empty()
            && kind.chars().all(|c| c.is_ascii_lowercase())
            && !index.is_empty()
            && index.chars().all(|c| c.is_ascii_digit());
        if device_like && !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let get = |field: &str| kv.get(&format!("{name}.{field}"));
            let num = |field: &str| get(field).and_then(|v| v.trim().parse::<u64>().ok());
            Device {
                name: name.to_string(),
                pe: num("pe").map(|p| p as usize),
                bdf: get("bdf").map(str::to_string),
                dma: get("dma").map(str::to_string),
                dma_offset: get("dma_offset").and_then(parse_hex),
                dma_liobn: get("dma_liobn").and_then(parse_hex),
                mask_bits: num("dma_mask_bits"),
                status: get("status").map(str::to_string),
                read_bytes: num("read_bytes"),
                read_us: num("read_us"),
                read_mbps: get("read_mbps").map(str::to_string),
                maps: num("maps"),
                bytes: num("bytes"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "phb.0.path=/pci@800000020000000\n\
        phb.0.range.0=io,bus=0x0,cpu=0x200000000000,size=0x10000\n\
        phb.0.range.1=mem32,bus=0x80000000,cpu=0x200080000000,size=0x80000000\n\
        pe.0.node=/pci@800000020000000\npe.0.default_liobn=0x80000000\n\
        pe.0.default_window=0x0+0x40000000\npe.0.default_page_shift=12\n\
        pe.0.ddw=direct\npe.0.ddw.liobn=0x80000001\npe.0.ddw.bus_base=0x800000000000000\n\
        pe.0.ddw.page_shift=24\npe.0.ddw.window_shift=31\n\
        blk.0.pe=0\nblk.0.bdf=00:00.0\nblk.0.dma=direct\nblk.0.dma_offset=0x800000000000000\n\
        edu.0.pe=0\nedu.0.bdf=00:01.0\nedu.0.dma=default-iommu\nedu.0.dma_liobn=0x80000000\n\
        blk.1.pe=0\nblk.1.bdf=01:01.0\nblk.1.status=BAR 1 is outside\n";

    #[test]
    fn windows_and_devices() {
        let facts = Facts::from_kv(&Kv::parse(REPORT));
        let pe = facts.pe(0).expect("PE 0");
        assert_eq!(pe.phb, Some(0));
        let kinds: Vec<RegionKind> = pe.regions().iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![RegionKind::Default, RegionKind::Mmio32, RegionKind::Ddw]);
        let ddw = pe.ddw.as_ref().expect("a DDW");
        assert_eq!(ddw.region.range, Range { start: 1 << 59, size: 1 << 31 });
        assert_eq!(ddw.region.page_shift, Some(24));
        let window = |name: &str| facts.devices.iter().find(|d| d.name == name).unwrap().window(pe);
        assert_eq!(window("blk.0"), Some(RegionKind::Ddw));
        assert_eq!(window("edu.0"), Some(RegionKind::Default));
        assert_eq!(window("blk.1"), None, "a device that failed before its DMA set-up has no window");
    }

    #[test]
    fn a_removed_default_window_is_not_in_use() {
        let kv = Kv::parse(&format!(
            "{REPORT}pe.0.default_removed=yes\npe.0.ddw.bus_base=0x0\nedu.0.dma_liobn=0x80000000\n"
        ));
        let facts = Facts::from_kv(&kv);
        let pe = facts.pe(0).unwrap();
        let kinds: Vec<RegionKind> = pe.regions().iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![RegionKind::Ddw, RegionKind::Mmio32]);
        let edu = facts.devices.iter().find(|d| d.name == "edu.0").unwrap();
        assert_eq!(edu.window(pe), None);
    }

    #[test]
    fn cpu_names() {
        assert_eq!(cpu_name(0x4e1200), Some("POWER9"));
        assert_eq!(cpu_name(0x4d0200), Some("POWER8"));
        assert_eq!(cpu_name(0x800200), Some("POWER10"));
        assert_eq!(cpu_name(0x123), None);
    }
}
