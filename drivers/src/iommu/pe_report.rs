//! One PE's set-up as report lines: the `pe.<n>.*` machine facts (documented in README.md)
//! and the sentences a person reads, produced here so that the host tests see exactly what the
//! kernel prints.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::ddw::{Addressing, DdwError, DdwFacts};
use super::handover::TakeOver;
use super::pe::{DefaultWindowDesc, PeSetUp, SetUpOutcome, SetUpReport, TakeOverSummary};
use super::plan::{WindowLimit, WindowMode};

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `key=value`.
    Kv(String, String),
    /// A sentence for a person (printed indented).
    Say(String),
}

/// Collects lines for PE `index`.
struct Lines {
    index: usize,
    lines: Vec<Line>,
}

impl Lines {
    fn kv(&mut self, name: &str, value: impl Into<String>) {
        self.lines.push(Line::Kv(format!("pe.{}.{name}", self.index), value.into()));
    }

    fn say(&mut self, text: String) {
        self.lines.push(Line::Say(text));
    }
}

/// The report's name for what decided a window's size.
pub const fn limit_name(limit: WindowLimit) -> &'static str {
    match limit {
        WindowLimit::Ram => "ram",
        WindowLimit::LargestBlock => "largest-block",
        WindowLimit::DeviceMask => "device-mask",
        WindowLimit::TceCount => "tce-count",
        WindowLimit::AddressSpace => "address-space",
        WindowLimit::Policy => "ddw-max",
    }
}

/// The lines for PE `index` set up from `setup` with outcome `report`; the set-up took
/// `ticks` of a timebase running at `hz`.
pub fn pe_lines(index: usize, setup: &PeSetUp<'_>, report: &SetUpReport, ticks: u64, hz: u64) -> Vec<Line> {
    let mut out = Lines { index, lines: Vec::new() };
    out.kv("node", setup.node.clone());
    match setup.default {
        DefaultWindowDesc::Usable(window) => {
            out.kv("default_liobn", format!("{}", window.liobn()));
            out.kv("default_window", format!("{}+{:#x}", window.bus_base(), window.size()));
            out.kv("default_page_shift", format!("{}", window.page_shift()));
        }
        DefaultWindowDesc::Unusable(error) => {
            out.kv("default_error", format!("the PHB's ibm,dma-window is unusable: {error}"));
        }
        DefaultWindowDesc::Missing => out.kv("default_error", "the PHB has no ibm,dma-window"),
    }
    if let Addressing::Limited { mask_bits } = setup.addressing {
        out.kv("ddw.addressing", "limited");
        out.kv("ddw.mask_bits", format!("{mask_bits}"));
    }
    let time = (ticks, hz);
    match &report.inherited_default {
        Some(Ok(())) => out.kv("warm.default_cleared", "yes"),
        Some(Err(error)) => {
            out.kv("warm.default_clear_error", format!("{error}"));
            out.say(format!(
                "PE {}: the default window the previous kernel left would not clear ({error}); it is not used",
                out.index
            ));
        }
        None => {}
    }
    match &report.outcome {
        SetUpOutcome::NoDdw(why) => {
            out.kv("ddw", "none");
            out.kv("ddw.why", format!("{why}"));
        }
        SetUpOutcome::Fresh(result) => result_lines(&mut out, result, time),
        SetUpOutcome::WarmNoWindow(outcome) => {
            out.kv("warm", "no-window");
            match outcome {
                Ok((restore, result)) => {
                    if restore.is_some() {
                        out.kv("warm.reset", "the described default window was gone; reset restored it");
                    }
                    result_lines(&mut out, result, time);
                }
                Err(error) => {
                    out.kv("warm", "failed");
                    out.kv("warm.error", format!("{error}"));
                }
            }
        }
        SetUpOutcome::WarmTakeOver { found, result } => {
            let window = found.window;
            out.kv("warm.found", format!("{} at {} slot {}", window.liobn(), window.bus_base(), found.slot));
            take_over_lines(&mut out, result, time);
        }
    }
    out.lines
}

fn take_over_lines(
    out: &mut Lines,
    result: &Result<TakeOverSummary, super::handover::TakeOverError>,
    time: (u64, u64),
) {
    match result {
        Ok(TakeOver::Reused { ddw: facts, checked, remapped, instead_of, query_error }) => {
            out.kv("warm", if instead_of.is_some() { "reused-instead-of-removal" } else { "reused" });
            out.kv("warm.checked", format!("{checked}"));
            out.kv("warm.remapped", if *remapped { "yes" } else { "no" });
            if let Some(error) = instead_of {
                out.kv("warm.error", format!("{error}"));
            }
            if let Some(error) = query_error {
                out.kv("warm.query_error", format!("{error}"));
            }
            ddw_lines(out, facts, time);
        }
        Ok(TakeOver::Replaced { reuse_error, clear_error, removal, restore, fresh }) => {
            out.kv("warm", "replaced");
            if let Some(error) = reuse_error {
                out.kv("warm.reuse_error", format!("{error}"));
            }
            if let Some(error) = clear_error {
                out.kv("warm.clear_error", format!("{error}"));
            }
            if let Some(error) = removal {
                out.kv("warm.remove_error", format!("{error}"));
            }
            if restore.is_some() {
                out.kv("warm.reset", "restored");
            }
            result_lines(out, fresh, time);
        }
        Err(error) => {
            out.kv("warm", "failed");
            out.kv("warm.error", format!("{error}"));
            out.say(format!("PE {}: warm restart: {error}", out.index));
        }
    }
}

fn result_lines(out: &mut Lines, result: &Result<DdwFacts, DdwError>, time: (u64, u64)) {
    match result {
        Ok(facts) => ddw_lines(out, facts, time),
        Err(error) => failure_lines(out, error),
    }
}

fn ddw_lines(out: &mut Lines, ddw: &DdwFacts, (ticks, hz): (u64, u64)) {
    if let Some(query) = ddw.query {
        out.kv("query.windows", format!("{}", query.windows_available));
        out.kv("query.largest_block", format!("{:#x}", query.largest_block));
        out.kv("query.page_sizes", format!("{:#x}", query.page_size_mask));
        out.kv("query.outputs", format!("{}", ddw.outputs.count()));
    }
    let mode = match ddw.mode {
        WindowMode::Direct => "direct",
        WindowMode::Dynamic => "dynamic",
        WindowMode::Hybrid { .. } => "hybrid",
    };
    let w = &ddw.window;
    out.say(format!(
        "PE {}: {mode} DDW liobn {} at {} of 2^{} bytes in 2^{}-byte pages ({} TCEs in {} indirect + {} put calls)",
        out.index,
        w.liobn(),
        w.bus_base(),
        ddw.plan.window_shift,
        w.page_shift(),
        ddw.stats.tces,
        ddw.stats.indirect_calls,
        ddw.stats.put_calls
    ));
    out.kv("ddw", mode);
    out.kv("ddw.liobn", format!("{}", w.liobn()));
    out.kv("ddw.bus_base", format!("{}", w.bus_base()));
    out.kv("ddw.page_shift", format!("{}", w.page_shift()));
    out.kv("ddw.window_shift", format!("{}", ddw.plan.window_shift));
    out.kv("ddw.slot", format!("{}", ddw.slot));
    out.kv("ddw.limit", limit_name(ddw.plan.limit));
    out.kv("ddw.ranges", format!("{}", ddw.ranges));
    if let WindowMode::Hybrid { direct_end } = ddw.mode {
        out.kv("ddw.direct_end", format!("{direct_end:#x}"));
    }
    if let Some((bus, len)) = ddw.mmio_collision {
        out.kv("ddw.mmio_collision", format!("{bus}+{len:#x}"));
        out.say(format!(
            "PE {}: RAM's bus addresses in the window would meet MMIO at {bus}+{len:#x}: the window is used \
             per buffer, clear of it",
            out.index
        ));
    }
    out.kv("ddw.tces", format!("{}", ddw.stats.tces));
    out.kv("ddw.indirect_calls", format!("{}", ddw.stats.indirect_calls));
    out.kv("ddw.put_calls", format!("{}", ddw.stats.put_calls));
    out.kv("ddw.ticks", format!("{ticks}"));
    out.kv("ddw.us", format!("{}", ticks.saturating_mul(1_000_000) / hz.max(1)));
    if ddw.slot == 0 {
        out.kv("default_removed", "yes");
    }
}

fn failure_lines(out: &mut Lines, error: &DdwError) {
    out.say(format!("PE {}: no DDW, staying on the default window: {error}", out.index));
    out.kv("ddw", "none");
    out.kv("ddw.error", format!("{error}"));
    if let DdwError::AfterRemoval { restore, .. } = error {
        let state = match (restore.reset, restore.default_back, restore.cleared) {
            (None, true, None) if restore.by_hypervisor => "restored-by-hypervisor",
            (None, true, None) => "restored",
            (None, true, Some(_)) => "restored-not-cleared",
            (None, false, _) => "reset-but-missing",
            (Some(_), ..) => "reset-failed",
        };
        out.kv("default_restore", state);
    }
}
