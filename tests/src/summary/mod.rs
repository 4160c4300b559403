//! The summary a person reads after a boot, rendered on the host from the kernel's
//! `key=value` report (which stays the machine interface): the machine in one line, per PE a
//! map of its bus-address space with the windows, their devices and modes, the RAM mapped, the
//! room for hot-plugged memory and the set-up's cost, then the self-test per device, the boot
//! timeline, the hypervisor's conformance facts and everything that failed, in words.
//!
//! [`render`] gives the text (ANSI colour only in [`Style::Ansi`]); [`svg::render`] the same
//! maps as an SVG file. `facts` reads the report, `layout` places regions to scale, `map`
//! draws a PE's bar, the other modules one section each.

pub mod facts;
pub mod failures;
pub mod hypervisor;
pub mod layout;
pub mod map;
pub mod pe;
pub mod selftest;
pub mod style;
pub mod svg;
pub mod timeline;
pub mod units;

use crate::kv::Kv;
use facts::{cpu_name, Facts};
pub use style::Style;
use style::{wrap, Line, Paint};

/// The widest line the summary writes.
pub const COLUMNS: usize = pe::COLUMNS;

/// The summary of the report in `console` (a console log or a file of `key=value` lines).
pub fn render(console: &str, style: Style) -> String {
    let kv = Kv::parse(console);
    lines(&kv, console).iter().map(|line| line.render(style) + "\n").collect()
}

/// The summary's lines, unpainted pieces with their paint.
pub fn lines(kv: &Kv, console: &str) -> Vec<Line> {
    let facts = Facts::from_kv(kv);
    let mut lines = vec![machine(&facts)];
    lines.push(Line::plain(ram(&facts)));
    for pe in &facts.pes {
        lines.push(Line::default());
        lines.extend(pe::section(&facts, pe));
    }
    for section in [selftest::section(kv, &facts), timeline::section(kv), hypervisor::section(kv, COLUMNS)] {
        if !section.is_empty() {
            lines.push(Line::default());
            lines.extend(section);
        }
    }
    lines.push(Line::default());
    let (skipped, failures): (Vec<_>, Vec<_>) =
        failures::collect(kv, console).into_iter().partition(|f| f.not_attempted);
    if failures.is_empty() {
        lines.push(Line::plain("failures: ").paint("none", Paint::Good));
    } else {
        lines.push(Line::plain("").paint(format!("failures ({})", failures.len()), Paint::Bad));
        lines.extend(listed(&failures, Paint::Bad));
    }
    if !skipped.is_empty() {
        lines.push(Line::plain("").paint(format!("not attempted ({})", skipped.len()), Paint::Notice));
        lines.extend(listed(&skipped, Paint::Notice));
    }
    lines
}

fn listed(failures: &[failures::Failure], paint: Paint) -> Vec<Line> {
    let mut lines = Vec::new();
    for failure in failures {
        for (i, text) in wrap(&failure.sentence(), COLUMNS, "  - ", "    ").into_iter().enumerate() {
            lines.push(if i == 0 { Line::plain("").paint(text, paint) } else { Line::plain(text) });
        }
    }
    lines
}

fn machine(facts: &Facts) -> Line {
    let mut parts = Vec::new();
    if let Some(firmware) = &facts.firmware {
        parts.push(format!("{firmware} firmware"));
    }
    if let Some(pvr) = facts.pvr {
        parts.push(match cpu_name(pvr) {
            Some(name) => format!("{name} (PVR {pvr:#x})"),
            None => format!("PVR {pvr:#x}"),
        });
    }
    if let Some(cpus) = facts.cpus {
        parts.push(format!("{cpus} CPU{}", if cpus == 1 { "" } else { "s" }));
    }
    if let Some(mmu) = &facts.mmu {
        parts.push(format!("{mmu} MMU"));
    }
    if let Some(args) = &facts.bootargs {
        parts.push(format!("bootargs \"{args}\""));
    }
    let line =
        Line::plain("").paint("pseries-ddw", Paint::Heading).text(format!(": {} ── exit ", parts.join(", ")));
    match facts.exit.as_deref() {
        Some("ok") => line.paint("ok", Paint::Good),
        Some(other) => line.paint(other, Paint::Bad),
        None => line.paint("not reported", Paint::Bad),
    }
}

fn ram(facts: &Facts) -> String {
    let total = facts.ram_total.or_else(|| Some(facts.ram.iter().map(|r| r.size).sum()).filter(|&t| t > 0));
    let mut text = match total {
        Some(total) => {
            format!("RAM {} in {}", units::size(total), units::count(facts.ram.len() as u64, "range"))
        }
        None => "RAM not reported".to_string(),
    };
    if !facts.ram.is_empty() && facts.ram.len() <= 3 {
        let ranges: Vec<String> = facts.ram.iter().map(|r| format!("{:#x}+{:#x}", r.start, r.size)).collect();
        text.push_str(&format!(": {}", ranges.join(", ")));
    }
    if let Some(end) = facts.max_addr {
        text.push_str(&format!(", ends at {end:#x}"));
    }
    match facts.hotplug_max {
        Some(max) => text.push_str(&format!("; hot-plug up to {max:#x} ({})", units::size(max))),
        None => text.push_str("; hot-plug: none declared"),
    }
    text
}
