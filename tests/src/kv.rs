//! The kernel's machine-readable report: `key=value` lines on the console.
//!
//! A key is `[a-z][a-z0-9_.:,-]*` starting at the very beginning of a line, followed by `=`;
//! the value is the rest of the line (a trailing `\r` from the serial console is dropped).
//! Anything else on the console (SLOF's banner and escape sequences, the kernel's human lines
//! that start with spaces or `==`, QEMU's own messages) is ignored. Keys may repeat; [`Kv`]
//! keeps every line in console order and [`Kv::get`] returns the last value.

/// Whether `key` has the shape of a report key.
pub fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | ',' | '-'))
}

/// Parses one console line into `(key, value)`, if it is a report line.
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    is_key(key).then_some((key, value))
}

/// Parses `0x…` (or bare hex digits) into a number.
pub fn parse_hex(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// An ordered multimap of the report's `key=value` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    entries: Vec<(String, String)>,
}

impl Kv {
    /// Collects every report line of a console log.
    pub fn parse(console: &str) -> Self {
        let entries =
            console.lines().filter_map(parse_line).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { entries }
    }

    /// Every `(key, value)` in console order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// Number of report lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the console held no report line at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last value printed for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value printed for `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.entries.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// The distinct keys starting with `prefix`, in order of first appearance.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &self.entries {
            if k.starts_with(prefix) && !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// The last value of `key` read as hexadecimal (`0x…`).
    pub fn get_hex(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(parse_hex)
    }

    /// The last value of `key` read as a decimal number.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// The PHBs the kernel reported (`phb.N.path`, `phb.N.buid`), by index.
    pub fn phbs(&self) -> Vec<PhbReport> {
        let mut phbs = Vec::new();
        for index in 0.. {
            let Some(path) = self.get(&format!("phb.{index}.path")) else {
                break;
            };
            phbs.push(PhbReport {
                index,
                path: path.to_string(),
                buid: self.get_hex(&format!("phb.{index}.buid")),
            });
        }
        phbs
    }

    /// Every PCI function the kernel reported (`pci.N.BB:DD.F.*`), in report order.
    pub fn pci_functions(&self) -> Vec<PciFunctionReport> {
        let mut functions: Vec<PciFunctionReport> = Vec::new();
        for (key, value) in &self.entries {
            let Some((phb, bdf, field)) = split_pci_key(key) else {
                continue;
            };
            let index = match functions.iter().position(|f| f.phb == phb && f.bdf == bdf) {
                Some(i) => i,
                None => {
                    functions.push(PciFunctionReport {
                        phb,
                        bdf: bdf.to_string(),
                        ..PciFunctionReport::default()
                    });
                    functions.len() - 1
                }
            };
            let function = &mut functions[index];
            match field {
                "id" => function.id = Some(value.clone()),
                "class" => function.class = Some(value.clone()),
                "caps" => function.caps = Some(value.clone()),
                "dt" => function.dt = Some(value.clone()),
                "problem" => function.problems.push(value.clone()),
                _ => {
                    if let Some(bar) = field.strip_prefix("bar.") {
                        let index = bar.parse().ok();
                        let report = BarReport::parse(value);
                        function.bars.push((index, report, value.clone()));
                    }
                }
            }
        }
        functions
    }
}

/// Splits `pci.N.BB:DD.F.FIELD` into `(N, "BB:DD.F", FIELD)`.
pub fn split_pci_key(key: &str) -> Option<(usize, &str, &str)> {
    let rest = key.strip_prefix("pci.")?;
    let (phb, rest) = rest.split_once('.')?;
    let phb = phb.parse().ok()?;
    let bdf = rest.get(..7)?;
    let field = rest.get(7..)?.strip_prefix('.')?;
    let b = bdf.as_bytes();
    let shape = b[2] == b':' && b[5] == b'.' && [0, 1, 3, 4, 6].iter().all(|&i| b[i].is_ascii_hexdigit());
    (shape && !field.is_empty()).then_some((phb, bdf, field))
}

/// One PHB of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhbReport {
    /// `N` in `phb.N.*`.
    pub index: usize,
    /// Device-tree path.
    pub path: String,
    /// BUID, if it parsed.
    pub buid: Option<u64>,
}

/// One PCI function of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciFunctionReport {
    /// PHB index.
    pub phb: usize,
    /// `BB:DD.F`.
    pub bdf: String,
    /// `vvvv:dddd`.
    pub id: Option<String>,
    /// `0x…` class code.
    pub class: Option<String>,
    /// Capability names.
    pub caps: Option<String>,
    /// Device-tree cross-check verdict (`match`, `missing`, `mismatch`).
    pub dt: Option<String>,
    /// `(BAR index, parsed value, raw value)` per `bar.K` line.
    pub bars: Vec<(Option<u32>, Option<BarReport>, String)>,
    /// `problem` lines.
    pub problems: Vec<String>,
}

/// A `pci.….bar.K` value: `KIND,bus=0x…,cpu=0x…|none,size=0x…,by=ORIGIN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarReport {
    /// `io`, `mem32` or `mem64`.
    pub kind: String,
    /// PCI bus address.
    pub bus: u64,
    /// CPU address, `None` when the kernel printed `none`.
    pub cpu: Option<u64>,
    /// Size in bytes.
    pub size: u64,
    /// `firmware`, `kernel` or `unassigned`.
    pub by: String,
}

impl BarReport {
    /// Parses a BAR value; `None` if any field is missing or malformed.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(',');
        let kind = parts.next()?.to_string();
        let (mut bus, mut cpu, mut size, mut by) = (None, None, None, None);
        for part in parts {
            let (name, v) = part.split_once('=')?;
            match name {
                "bus" => bus = Some(parse_hex(v)?),
                "cpu" => cpu = Some(if v == "none" { None } else { Some(parse_hex(v)?) }),
                "size" => size = Some(parse_hex(v)?),
                "by" => by = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Self { kind, bus: bus?, cpu: cpu?, size: size?, by: by? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\r\n\u{1b}[0mSLOF noise=not a key\r\n\
        boot.firmware=slof\r\n  human line=ignored\r\n== boot\r\nBad=upper\r\n\
        cpu.count=2\r\nrtas.token.ibm,os-term=0x201f\r\nmem.total=0x20000000\r\n\
        note=first\nnote=second\nempty=\nphb.0.path=/pci@800000020000000\n\
        phb.0.buid=0x800000020000000\n\
        pci.0.00:01.0.id=1234:11e8\n\
        pci.0.00:01.0.bar.0=mem32,bus=0x80000000,cpu=0x200080000000,size=0x100000,by=kernel\n\
        pci.0.00:01.0.dt=match\n\
        pci.1.1f:1a.7.bar.2=mem64,bus=0x0,cpu=none,size=0x4000,by=unassigned\n";

    #[test]
    fn only_lines_starting_with_a_key_count() {
        let kv = Kv::parse(CONSOLE);
        assert_eq!(kv.get("boot.firmware"), Some("slof"));
        assert_eq!(kv.get("cpu.count"), Some("2"), "the \\r is stripped");
        assert_eq!(kv.get("rtas.token.ibm,os-term"), Some("0x201f"));
        assert_eq!(kv.get("human line"), None);
        assert_eq!(kv.get("  human line"), None);
        assert_eq!(kv.get("Bad"), None);
        assert!(kv.entries().iter().all(|(k, _)| is_key(k)));
        assert_eq!(kv.get("empty"), Some(""));
        assert_eq!(kv.len(), 13);
    }

    #[test]
    fn multimap_accessors() {
        let kv = Kv::parse(CONSOLE);
        assert_eq!(kv.get("note"), Some("second"));
        assert_eq!(kv.all("note"), vec!["first", "second"]);
        assert!(kv.all("missing").is_empty());
        assert_eq!(kv.keys_with_prefix("phb.0."), vec!["phb.0.path", "phb.0.buid"]);
        assert_eq!(kv.keys_with_prefix("note"), vec!["note"]);
        assert_eq!(kv.get_hex("mem.total"), Some(0x2000_0000));
        assert_eq!(kv.get_hex("boot.firmware"), None);
        assert_eq!(kv.get_u64("cpu.count"), Some(2));
        assert_eq!(kv.get_u64("mem.total"), None);
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0x0"), Some(0));
        assert_eq!(parse_hex("0xbad0000dead0000"), Some(0x0bad_0000_dead_0000));
        assert_eq!(parse_hex("ff"), Some(255));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("none"), None);
        assert_eq!(parse_hex("0x1_0"), None);
    }

    #[test]
    fn report_structures() {
        let kv = Kv::parse(CONSOLE);
        let phbs = kv.phbs();
        assert_eq!(phbs.len(), 1);
        assert_eq!(phbs[0].buid, Some(0x0800_0000_2000_0000));
        let functions = kv.pci_functions();
        assert_eq!(functions.len(), 2);
        assert_eq!(functions[0].bdf, "00:01.0");
        assert_eq!(functions[0].id.as_deref(), Some("1234:11e8"));
        assert_eq!(functions[0].dt.as_deref(), Some("match"));
        let (index, bar, _) = &functions[0].bars[0];
        assert_eq!(*index, Some(0));
        let bar = bar.as_ref().unwrap();
        assert_eq!((bar.bus, bar.cpu, bar.size), (0x8000_0000, Some(0x2000_8000_0000), 0x10_0000));
        assert_eq!(bar.by, "kernel");
        assert_eq!(functions[1].phb, 1);
        assert_eq!(functions[1].bdf, "1f:1a.7");
        assert_eq!(functions[1].bars[0].1.as_ref().unwrap().cpu, None);
    }

    #[test]
    fn pci_keys_and_bars_reject_malformed_input() {
        assert_eq!(split_pci_key("pci.0.00:01.0.id"), Some((0, "00:01.0", "id")));
        assert_eq!(split_pci_key("pci.count"), None);
        assert_eq!(split_pci_key("pci.0.00:01.0"), None);
        assert_eq!(split_pci_key("pci.0.0001.0.id"), None);
        assert_eq!(BarReport::parse("mem32,bus=0x1,size=0x10,by=kernel"), None, "no cpu");
        assert_eq!(BarReport::parse("mem32,bus=zz,cpu=none,size=0x10,by=kernel"), None);
    }
}
