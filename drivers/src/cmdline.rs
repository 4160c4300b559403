//! The kernel command line (`/chosen/bootargs`): space-separated `key=value` words.
//!
//! Known keys:
//! - `test=panic` (panic on purpose), `test=segment` (load with data translation on and no
//!   segment: a data segment interrupt), `test=program` (execute an illegal instruction),
//!   `test=unmapped` (with translation on, load from an address nothing maps);
//! - `ddw=auto` (the default: a Dynamic DMA Window where the platform offers one), `ddw=off`
//!   (none: every device uses its PE's default window), `ddw=single` (treat every PE as a
//!   single-window PE: replace the default window), `ddw=single-fail` (the same, with the
//!   create after the removal failing on purpose, to exercise the reset), `ddw=single-fail-map`
//!   (the same, with the first TCE write into the new window failing: it is removed again);
//! - `ddw-max=SIZE` (`K`, `M`, `G` suffixes): cap every DDW at the largest power of two not
//!   above SIZE, as a small TCE budget would — below RAM the window is used dynamically, per
//!   buffer, instead of directly;
//! - `warm-restart=reuse` / `warm-restart=remove` (run the whole DMA set-up a second time, as
//!   a kexec'd kernel would find things, reusing or removing the window the first run left);
//! - `mmu=on` (the default) / `mmu=off` (stay in real mode);
//! - `serve` (keep running after the self-test: handle memory hot-plug and EPOW events until a
//!   power-off is asked for).
//! - `bench=io` (instead of the self-test, time sequential reads and scratch writes on every
//!   disk-like device: `./run.sh bench io`).
//!
//! Unknown words are reported, not fatal. A key given twice with different values is a
//! contradiction, reported in [`Args::conflicts`]; the kernel refuses to guess.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::iommu::handover::WarmPolicy;

/// A test mode selected with `test=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestMode {
    /// Panic after the report.
    Panic,
    /// Load with data translation on and no segment (expects a data segment interrupt).
    DataSegment,
    /// Execute an illegal instruction (expects a program interrupt report).
    Program,
    /// With translation on, load from an address no translation maps (expects a data
    /// storage interrupt report).
    Unmapped,
}

/// What the DMA set-up does about Dynamic DMA Windows (`ddw=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DdwPolicy {
    /// A DDW wherever the PE offers one; single-window PEs replace their default window.
    #[default]
    Auto,
    /// No DDW: every PE keeps its default window.
    Off,
    /// Every PE takes the single-window path (the DDW replaces the default window).
    SingleWindow,
    /// As [`DdwPolicy::SingleWindow`], with the create after the removal failing on purpose.
    SingleWindowFailingCreate,
    /// As [`DdwPolicy::SingleWindow`], with the first TCE write into the new window failing on
    /// purpose (the window must be removed again and the default window brought back).
    SingleWindowFailingMap,
}

impl DdwPolicy {
    /// The command-line word.
    pub const fn word(self) -> &'static str {
        match self {
            DdwPolicy::Auto => "ddw=auto",
            DdwPolicy::Off => "ddw=off",
            DdwPolicy::SingleWindow => "ddw=single",
            DdwPolicy::SingleWindowFailingCreate => "ddw=single-fail",
            DdwPolicy::SingleWindowFailingMap => "ddw=single-fail-map",
        }
    }

    /// Whether every PE takes the single-window path.
    pub const fn forces_single_window(self) -> bool {
        matches!(
            self,
            DdwPolicy::SingleWindow
                | DdwPolicy::SingleWindowFailingCreate
                | DdwPolicy::SingleWindowFailingMap
        )
    }
}

/// Whether the kernel turns translation on (`mmu=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MmuPolicy {
    /// Radix or hash translation, whichever the CPU has.
    #[default]
    On,
    /// Stay in real mode.
    Off,
}

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    /// `test=` mode.
    pub test: Option<TestMode>,
    /// `ddw=`.
    pub ddw: DdwPolicy,
    /// `mmu=`.
    pub mmu: MmuPolicy,
    /// `warm-restart=`: run the DMA set-up twice, treating the first run's windows so.
    pub warm_restart: Option<WarmPolicy>,
    /// `ddw-max=`: the largest DDW to create, in bytes.
    pub ddw_max: Option<u64>,
    /// `serve`: keep running after the self-test, handling hot-plug and power events.
    pub serve: ServeMode,
    /// `bench=io`: the I/O benchmark instead of the self-test.
    pub bench_io: bool,
    /// Words that were not understood.
    pub unknown: Vec<String>,
    /// Keys given more than once with different values, as sentences.
    pub conflicts: Vec<String>,
}

/// What the kernel does after the self-test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServeMode {
    /// Power off (the default).
    #[default]
    PowerOff,
    /// Keep running: poll for hot-plug and EPOW events and handle each until a power-off is
    /// asked for (`serve`).
    Serve,
    /// As `Serve`, keeping the buffer each memory add's disk read used alive in the new
    /// memory, so that removing that memory is refused (`serve=hold`).
    ServeHolding,
}

/// Keeps the first value of a key and records a contradiction for a different second one.
fn set<T: PartialEq + Copy>(
    slot: &mut Option<(T, &str)>,
    value: T,
    word: &'static str,
    conflicts: &mut Vec<String>,
) {
    match *slot {
        Some((old, old_word)) if old != value => {
            conflicts.push(format!("{word} contradicts {old_word} given before it"));
        }
        Some(_) => {}
        None => *slot = Some((value, word)),
    }
}

impl Args {
    /// Parses a command line; never fails (contradictions land in [`Args::conflicts`]).
    pub fn parse(line: &str) -> Self {
        let mut unknown = Vec::new();
        let mut conflicts = Vec::new();
        let mut test = None;
        let mut ddw = None;
        let mut mmu = None;
        let mut warm = None;
        let mut ddw_max = None;
        let mut serve = ServeMode::PowerOff;
        let mut bench_io = false;
        for word in line.split_ascii_whitespace() {
            if let Some(size) = word.strip_prefix("ddw-max=") {
                match parse_size(size) {
                    Some(bytes) => set(&mut ddw_max, bytes, "ddw-max=…", &mut conflicts),
                    None => {
                        conflicts.push(format!("{word}: not a size (a number with K, M or G, at least 4K)"))
                    }
                }
                continue;
            }
            match word {
                "test=panic" => set(&mut test, TestMode::Panic, "test=panic", &mut conflicts),
                "test=segment" => set(&mut test, TestMode::DataSegment, "test=segment", &mut conflicts),
                "test=program" => set(&mut test, TestMode::Program, "test=program", &mut conflicts),
                "test=unmapped" => set(&mut test, TestMode::Unmapped, "test=unmapped", &mut conflicts),
                "ddw=auto" | "ddw=on" => set(&mut ddw, DdwPolicy::Auto, "ddw=auto", &mut conflicts),
                "ddw=off" => set(&mut ddw, DdwPolicy::Off, "ddw=off", &mut conflicts),
                "ddw=single" => set(&mut ddw, DdwPolicy::SingleWindow, "ddw=single", &mut conflicts),
                "ddw=single-fail" => {
                    set(&mut ddw, DdwPolicy::SingleWindowFailingCreate, "ddw=single-fail", &mut conflicts)
                }
                "ddw=single-fail-map" => {
                    set(&mut ddw, DdwPolicy::SingleWindowFailingMap, "ddw=single-fail-map", &mut conflicts)
                }
                "serve" => serve = ServeMode::Serve,
                "serve=hold" => serve = ServeMode::ServeHolding,
                "bench=io" => bench_io = true,
                "mmu=on" => set(&mut mmu, MmuPolicy::On, "mmu=on", &mut conflicts),
                "mmu=off" => set(&mut mmu, MmuPolicy::Off, "mmu=off", &mut conflicts),
                "warm-restart=reuse" => {
                    set(&mut warm, WarmPolicy::Reuse, "warm-restart=reuse", &mut conflicts)
                }
                "warm-restart=remove" => {
                    set(&mut warm, WarmPolicy::Remove, "warm-restart=remove", &mut conflicts)
                }
                other => unknown.push(String::from(other)),
            }
        }
        Args {
            test: test.map(|(t, _)| t),
            ddw: ddw.map_or(DdwPolicy::Auto, |(d, _)| d),
            mmu: mmu.map_or(MmuPolicy::On, |(m, _)| m),
            warm_restart: warm.map(|(w, _)| w),
            ddw_max: ddw_max.map(|(b, _)| b),
            serve,
            bench_io,
            unknown,
            conflicts,
        }
    }
}

/// `4096`, `64K`, `256M`, `2G`: bytes, at least 4 KiB.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit).filter(|&bytes| bytes >= 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_modes_and_keeps_unknown_words() {
        let args = Args::parse("  foo test=panic bar=1 ");
        assert_eq!(args.test, Some(TestMode::Panic));
        assert_eq!(args.unknown, ["foo", "bar=1"]);
        assert_eq!(Args::parse("test=segment").test, Some(TestMode::DataSegment));
        assert_eq!(Args::parse("test=program").test, Some(TestMode::Program));
        assert_eq!(Args::parse("test=unmapped").test, Some(TestMode::Unmapped));
        assert_eq!(Args::parse("test=dsi").unknown, ["test=dsi"]);
        assert_eq!(Args::parse("").test, None);
    }

    #[test]
    fn ddw_is_one_policy() {
        assert_eq!(Args::parse("").ddw, DdwPolicy::Auto);
        assert_eq!(Args::parse("ddw=off").ddw, DdwPolicy::Off);
        assert_eq!(Args::parse("ddw=on").ddw, DdwPolicy::Auto);
        assert_eq!(Args::parse("ddw=single").ddw, DdwPolicy::SingleWindow);
        assert_eq!(Args::parse("ddw=single-fail").ddw, DdwPolicy::SingleWindowFailingCreate);
        assert!(DdwPolicy::SingleWindowFailingCreate.forces_single_window());
        assert_eq!(Args::parse("ddw=single-fail-map").ddw, DdwPolicy::SingleWindowFailingMap);
        assert!(DdwPolicy::SingleWindowFailingMap.forces_single_window());
        assert_eq!(Args::parse("serve").serve, ServeMode::Serve);
        assert_eq!(Args::parse("").serve, ServeMode::PowerOff);
        assert_eq!(Args::parse("serve=hold").serve, ServeMode::ServeHolding);
        assert!(!DdwPolicy::Off.forces_single_window());
        // The same word twice is no contradiction.
        let twice = Args::parse("ddw=off ddw=off");
        assert!(twice.conflicts.is_empty() && twice.ddw == DdwPolicy::Off);
    }

    #[test]
    fn contradictions_are_reported_not_guessed() {
        let args = Args::parse("ddw=off ddw=single");
        assert_eq!(args.conflicts, ["ddw=single contradicts ddw=off given before it"]);
        assert_eq!(args.ddw, DdwPolicy::Off);
        assert_eq!(Args::parse("ddw=off ddw=on").conflicts.len(), 1);
        assert_eq!(Args::parse("mmu=off mmu=on").conflicts, ["mmu=on contradicts mmu=off given before it"]);
        assert_eq!(Args::parse("warm-restart=reuse warm-restart=remove").conflicts.len(), 1);
        assert_eq!(Args::parse("test=panic test=program").conflicts.len(), 1);
    }

    #[test]
    fn ddw_max_is_a_size() {
        assert_eq!(Args::parse("ddw-max=256M").ddw_max, Some(256 << 20));
        assert_eq!(Args::parse("ddw-max=2G").ddw_max, Some(2 << 30));
        assert_eq!(Args::parse("ddw-max=65536").ddw_max, Some(65536));
        assert_eq!(Args::parse("").ddw_max, None);
        for bad in ["ddw-max=", "ddw-max=12Q", "ddw-max=1K", "ddw-max=-1M", "ddw-max=99999999999999G"] {
            let args = Args::parse(bad);
            assert_eq!((args.ddw_max, args.conflicts.len()), (None, 1), "{bad}");
        }
        assert_eq!(Args::parse("ddw-max=1G ddw-max=2G").conflicts.len(), 1);
    }

    #[test]
    fn mmu_and_warm_restart() {
        assert_eq!(Args::parse("warm-restart=reuse").warm_restart, Some(WarmPolicy::Reuse));
        assert_eq!(Args::parse("warm-restart=remove").warm_restart, Some(WarmPolicy::Remove));
        assert_eq!(Args::parse("").warm_restart, None);
        assert_eq!(Args::parse("mmu=off").mmu, MmuPolicy::Off);
        assert_eq!(Args::parse("").mmu, MmuPolicy::On);
        assert_eq!(Args::parse("warm-restart=maybe").unknown, ["warm-restart=maybe"]);
        assert!(Args::parse("ddw=off bench=io").bench_io && !Args::parse("").bench_io);
        assert_eq!(Args::parse("bench=boot").unknown, ["bench=boot"]);
    }
}
