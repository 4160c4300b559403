//! The kernel command line (`/chosen/bootargs`): space-separated `key=value` words.
//!
//! Known keys: `test=panic` (panic on purpose), `test=dsi` (touch an invalid address),
//! `test=program` (execute an illegal instruction), `test=unmapped` (with translation on, load
//! from an address nothing maps), `ddw=off` (create no Dynamic DMA Window:
//! every device uses its PE's default window), `ddw=single` (treat every PE as a single-window
//! PE: replace the default window), `ddw=single-fail` (the same, with the create after the
//! removal failing on purpose, to exercise the reset), `warm-restart=reuse` /
//! `warm-restart=remove` (run the whole DMA set-up a second time, as a kexec'd kernel would
//! find things, reusing or removing the window the first run left), `mmu=off` (stay in real
//! mode). Unknown words are reported, not fatal.

use alloc::string::String;
use alloc::vec::Vec;

use crate::iommu::handover::WarmPolicy;

/// A test mode selected with `test=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestMode {
    /// Panic after the report.
    Panic,
    /// Read from an address outside RAM (expects a storage interrupt report).
    DataStorage,
    /// Execute an illegal instruction (expects a program interrupt report).
    Program,
    /// With translation on, load from an address no translation maps (expects a data
    /// storage interrupt report).
    Unmapped,
}

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    /// `test=` mode.
    pub test: Option<TestMode>,
    /// `ddw=off`: keep every PE on its default window.
    pub ddw_off: bool,
    /// `ddw=single` / `ddw=single-fail`: take the single-window path.
    pub ddw_single: bool,
    /// `ddw=single-fail`: fail the create after the default window's removal.
    pub ddw_fail_after_remove: bool,
    /// `mmu=off`: stay in real mode (no translation).
    pub mmu_off: bool,
    /// `warm-restart=`: run the DMA set-up twice, treating the first run's windows so.
    pub warm_restart: Option<WarmPolicy>,
    /// Words that were not understood.
    pub unknown: Vec<String>,
}

impl Args {
    /// Parses a command line; never fails.
    pub fn parse(line: &str) -> Self {
        let mut args = Args::default();
        for word in line.split_ascii_whitespace() {
            match word {
                "test=panic" => args.test = Some(TestMode::Panic),
                "test=dsi" => args.test = Some(TestMode::DataStorage),
                "test=program" => args.test = Some(TestMode::Program),
                "test=unmapped" => args.test = Some(TestMode::Unmapped),
                "ddw=off" => args.ddw_off = true,
                "ddw=on" => args.ddw_off = false,
                "ddw=single" => args.ddw_single = true,
                "ddw=single-fail" => (args.ddw_single, args.ddw_fail_after_remove) = (true, true),
                "mmu=off" => args.mmu_off = true,
                "mmu=on" => args.mmu_off = false,
                "warm-restart=reuse" => args.warm_restart = Some(WarmPolicy::Reuse),
                "warm-restart=remove" => args.warm_restart = Some(WarmPolicy::Remove),
                other => args.unknown.push(String::from(other)),
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_modes_and_keeps_unknown_words() {
        let args = Args::parse("  foo test=panic bar=1 ");
        assert_eq!(args.test, Some(TestMode::Panic));
        assert_eq!(args.unknown, ["foo", "bar=1"]);
        assert_eq!(Args::parse("test=dsi").test, Some(TestMode::DataStorage));
        assert_eq!(Args::parse("test=program").test, Some(TestMode::Program));
        assert_eq!(Args::parse("test=unmapped").test, Some(TestMode::Unmapped));
        assert_eq!(Args::parse("").test, None);
        assert!(!Args::parse("").ddw_off);
        assert!(Args::parse("ddw=off").ddw_off);
        assert!(!Args::parse("ddw=off ddw=on").ddw_off);
        let single = Args::parse("ddw=single");
        assert!(single.ddw_single && !single.ddw_fail_after_remove);
        let fail = Args::parse("ddw=single-fail");
        assert!(fail.ddw_single && fail.ddw_fail_after_remove);
        assert_eq!(Args::parse("warm-restart=reuse").warm_restart, Some(WarmPolicy::Reuse));
        assert_eq!(Args::parse("warm-restart=remove").warm_restart, Some(WarmPolicy::Remove));
        assert_eq!(Args::parse("").warm_restart, None);
        assert!(Args::parse("mmu=off").mmu_off && !Args::parse("mmu=off mmu=on").mmu_off);
        assert_eq!(Args::parse("warm-restart=maybe").unknown, ["warm-restart=maybe"]);
    }
}
