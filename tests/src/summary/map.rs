//! The text map of one PE's bus-address space: a row of names, a bar, a row of start
//! addresses, then one legend line per region with its exact range, page size, LIOBN and the
//! devices that DMA through it.

use super::facts::{Facts, Pe, Range, Region, RegionKind};
use super::layout::{place, Layout};
use super::style::{wrap, Line, Paint};
use super::units;

/// Columns of the bar.
pub const WIDTH: usize = 88;
/// Columns of a gap break (` ≈ `).
pub const GAP: usize = 3;
/// The fewest columns a region gets (`[` fill `]`).
pub const MIN: usize = 5;
/// Indentation of the map under its PE's heading.
pub const INDENT: &str = "    ";

/// How one column of a region is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// RAM mapped in a direct window.
    Mapped,
    /// Part of a direct window with no RAM behind it (room for hot-plugged memory).
    Unmapped,
    /// A window whose TCEs are written per buffer (default window, dynamic DDW).
    PerBuffer,
    /// A PHB memory window.
    Mmio,
}

impl Fill {
    /// The character drawn.
    pub fn glyph(self) -> char {
        match self {
            Fill::Mapped => '█',
            Fill::Unmapped => '░',
            Fill::PerBuffer => '▒',
            Fill::Mmio => '·',
        }
    }

    /// What the legend says about it.
    pub fn meaning(self) -> &'static str {
        match self {
            Fill::Mapped => "RAM mapped",
            Fill::Unmapped => "no RAM yet",
            Fill::PerBuffer => "TCEs per buffer",
            Fill::Mmio => "PHB MMIO",
        }
    }
}

/// The paint of a region kind.
pub fn paint_of(kind: RegionKind) -> Paint {
    match kind {
        RegionKind::Default => Paint::DefaultWindow,
        RegionKind::Ddw => Paint::Ddw,
        RegionKind::Mmio32 | RegionKind::Mmio64 => Paint::Mmio,
    }
}

/// The fill of each of `columns` columns of `region` (a direct DDW shows where RAM lies).
pub fn fills(facts: &Facts, pe: &Pe, region: &Region, columns: usize) -> Vec<Fill> {
    let direct = pe.ddw.as_ref().is_some_and(|d| d.mode == "direct");
    match region.kind {
        RegionKind::Mmio32 | RegionKind::Mmio64 => vec![Fill::Mmio; columns],
        RegionKind::Default => vec![Fill::PerBuffer; columns],
        RegionKind::Ddw if !direct => vec![Fill::PerBuffer; columns],
        RegionKind::Ddw => (0..columns)
            .map(|c| {
                let size = u128::from(region.range.size);
                let (from, to) =
                    (size * c as u128 / columns as u128, size * (c as u128 + 1) / columns as u128);
                let mapped = facts.ram.iter().any(|ram: &Range| {
                    u128::from(ram.start) < to && u128::from(ram.start) + u128::from(ram.size) > from
                });
                if mapped {
                    Fill::Mapped
                } else {
                    Fill::Unmapped
                }
            })
            .collect(),
    }
}

/// The map's three drawn lines and the legend of its symbols.
pub fn draw(facts: &Facts, pe: &Pe) -> Vec<Line> {
    let regions = pe.regions();
    if regions.is_empty() {
        return vec![Line::plain(format!("{INDENT}(no window or PHB memory window reported)"))];
    }
    let ranges: Vec<Range> = regions.iter().map(|r| r.range).collect();
    let layout = place(&ranges, WIDTH, GAP, MIN);
    let mut names = Line::plain(INDENT);
    let mut bar = Line::plain(INDENT);
    let mut used = Vec::new();
    let mut names_end = 0;
    let mut cursor = 0;
    for (region, span) in regions.iter().zip(&layout.spans) {
        if span.after_gap {
            bar = bar.paint(" ≈ ", Paint::Dim);
            cursor += GAP;
        }
        let name = region.kind.name();
        let centre = span.x + span.width / 2;
        let at = centre.saturating_sub(name.len() / 2).max(names_end + usize::from(names_end > 0));
        names = names.text(" ".repeat(at - names_end)).paint(name, paint_of(region.kind));
        names_end = at + name.len();
        let inner = fills(facts, pe, region, span.width.saturating_sub(2));
        for fill in &inner {
            if !used.contains(fill) {
                used.push(*fill);
            }
        }
        let drawn: String = inner.iter().map(|f| f.glyph()).collect();
        bar = bar.paint(format!("[{drawn}]"), paint_of(region.kind));
        cursor += span.width;
    }
    debug_assert_eq!(cursor, layout.width);
    let labels = Line::plain(format!("{INDENT}{}", start_labels(&regions, &layout)));
    let mut key = layout.scale.describe().to_string();
    if !layout.gaps.is_empty() {
        key.push_str("; ≈ unused, not to scale");
    }
    for fill in used {
        key.push_str(&format!("; {} {}", fill.glyph(), fill.meaning()));
    }
    let mut lines = vec![names, bar, labels];
    lines.extend(
        wrap(&key, super::COLUMNS, INDENT, INDENT).into_iter().map(|k| Line::plain("").paint(k, Paint::Dim)),
    );
    lines
}

/// The start address of each region under its first column (shifted right past a label it
/// would overlap), and the end of the last region where it fits.
fn start_labels(regions: &[Region], layout: &Layout) -> String {
    let mut row = String::new();
    let mut end = 0;
    for (region, span) in regions.iter().zip(&layout.spans) {
        let label = units::short_address(region.range.start);
        let at = span.x.max(if end == 0 { 0 } else { end + 1 });
        if at + label.len() > layout.width + 8 {
            continue;
        }
        row.push_str(&" ".repeat(at - end));
        row.push_str(&label);
        end = at + label.len();
    }
    if let Some(last) = regions.last() {
        let label = units::short_address(last.range.end());
        let at = layout.width.saturating_sub(label.len());
        if at > end {
            row.push_str(&" ".repeat(at - end));
            row.push_str(&label);
        }
    }
    row
}
