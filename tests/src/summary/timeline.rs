//! The boot timeline: each `boot.t.STEP` (timebase ticks since the kernel's entry) in
//! milliseconds, with a bar over the whole boot for the time the step took.

use super::style::{Line, Paint};
use super::units;
use crate::kv::Kv;

/// Columns of the timeline's bars.
pub const BAR: usize = 50;

/// One step of the boot.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// `fdt`, `mmu`, `pci`, `pe.0`, `dma`, `selftest`.
    pub name: String,
    /// Timebase ticks since the kernel's entry when the step ended.
    pub ticks: u64,
}

/// The boot's steps in console order, and the total (`boot.ticks`) if printed.
pub fn steps(kv: &Kv) -> (Vec<Step>, Option<u64>) {
    let steps = kv
        .entries()
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("boot.t.")?;
            Some(Step { name: name.to_string(), ticks: value.trim().parse().ok()? })
        })
        .collect();
    (steps, kv.get_u64("boot.ticks"))
}

/// Milliseconds from the kernel's entry to the end of step `name` (e.g. `dma`: DMA ready).
pub fn step_ms(kv: &Kv, name: &str) -> Option<f64> {
    let hz = kv.get_u64("cpu.timebase_hz").filter(|&hz| hz > 0)?;
    let ticks = kv.get_u64(&format!("boot.t.{name}"))?;
    Some(units::ticks_ms(ticks, hz))
}

/// The timeline's lines (none without any step).
pub fn section(kv: &Kv) -> Vec<Line> {
    let (steps, total) = steps(kv);
    if steps.is_empty() && total.is_none() {
        return Vec::new();
    }
    let Some(hz) = kv.get_u64("cpu.timebase_hz").filter(|&hz| hz > 0) else {
        return vec![Line::plain("boot timeline: cpu.timebase_hz was not reported, ticks cannot be timed")];
    };
    let ms = |ticks: u64| units::ticks_ms(ticks, hz);
    let end = total.or(steps.iter().map(|s| s.ticks).max()).unwrap_or(0).max(1);
    let mut heading = format!("boot timeline: ms since the kernel's entry (timebase {})", units::mhz(hz));
    if let Some(dma) = steps.iter().find(|s| s.name == "dma") {
        heading.push_str(&format!("; entry → DMA ready {:.1} ms", ms(dma.ticks)));
    }
    let mut lines = vec![Line::plain("").paint(heading, Paint::Heading)];
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0).max(5);
    let mut previous = 0;
    for step in &steps {
        let from = column(previous, end);
        let to = column(step.ticks, end).max(from);
        let bar = if to > from { "█".repeat(to - from) } else { "▏".to_string() };
        lines.push(
            Line::plain(format!(
                "  {:<width$} {:>8.1} {:>+9.1}  {}",
                step.name,
                ms(step.ticks),
                ms(step.ticks.saturating_sub(previous)),
                " ".repeat(from)
            ))
            .paint(bar, Paint::Ddw),
        );
        previous = previous.max(step.ticks);
    }
    if let Some(total) = total {
        lines.push(Line::plain(format!(
            "  {:<width$} {:>8.1}  (boot.ticks: entry to power-off)",
            "total",
            ms(total)
        )));
    }
    lines
}

fn column(ticks: u64, end: u64) -> usize {
    ((ticks.min(end) as f64 / end as f64) * BAR as f64).round() as usize
}
