//! The bus-address maps as an SVG file for sharing: per PE the same regions, placed to the
//! same scale as the text map, each a `<rect class="region">` carrying its kind, range and
//! LIOBN as `data-*` attributes (and a tooltip), RAM mapped in a direct DDW drawn over it,
//! and the text map's legend beneath.

use super::facts::{Facts, Pe, Range, RegionKind};
use super::layout::place;
use super::map::{fills, Fill, INDENT};
use super::{pe, units};
use crate::kv::Kv;

const WIDTH: usize = 1000;
const MARGIN: usize = 20;
const BAR: usize = WIDTH - 2 * MARGIN;
const GAP: usize = 36;
const MIN: usize = 44;
const LINE: usize = 16;
const BAR_HEIGHT: usize = 30;

fn colour(kind: RegionKind, fill: Fill) -> &'static str {
    match (kind, fill) {
        (_, Fill::Mmio) => "#c8c8c8",
        (RegionKind::Default, _) => "#5aa9e6",
        (_, Fill::Mapped) => "#2e9d4f",
        (_, Fill::Unmapped) => "#cdeccf",
        (_, Fill::PerBuffer) => "#8fd19e",
    }
}

/// `text` with XML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn text(x: usize, y: usize, class: &str, content: &str) -> String {
    format!("<text x=\"{x}\" y=\"{y}\" class=\"{class}\">{}</text>\n", escape(content))
}

/// The SVG document of every PE's map in `console` (a console log or `key=value` lines).
pub fn render(console: &str) -> String {
    let kv = Kv::parse(console);
    let facts = Facts::from_kv(&kv);
    let mut body = String::new();
    let mut y = MARGIN + LINE;
    let title = format!(
        "pseries-ddw DMA windows: {} firmware, RAM {}",
        facts.firmware.as_deref().unwrap_or("?"),
        facts.ram_total.map_or_else(|| "?".to_string(), units::size)
    );
    body.push_str(&text(MARGIN, y, "title", &title));
    y += LINE;
    for pe in &facts.pes {
        y += LINE;
        body.push_str(&pe_map(&facts, pe, &mut y));
    }
    if facts.pes.is_empty() {
        y += LINE;
        body.push_str(&text(MARGIN, y, "detail", "no PE reported: no DMA window to draw"));
    }
    let height = y + MARGIN;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" xml:space=\"preserve\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\">\n\
         <style>text {{ font-family: monospace; font-size: 12px; fill: #222 }} \
         .title {{ font-size: 15px; font-weight: bold }} .heading {{ font-weight: bold }} \
         .name {{ text-anchor: middle }} .gap {{ text-anchor: middle; fill: #888 }} \
         .region {{ stroke: #333; stroke-width: 1 }}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

fn pe_map(facts: &Facts, pe: &Pe, y: &mut usize) -> String {
    let mut out = format!("<g class=\"pe\" data-pe=\"{}\">\n", pe.index);
    out.push_str(&text(MARGIN, *y, "heading", &pe::heading(pe).to_plain()));
    let regions = pe.regions();
    let ranges: Vec<Range> = regions.iter().map(|r| r.range).collect();
    let layout = place(&ranges, BAR, GAP, MIN);
    *y += LINE + 4;
    let mut used: Vec<(RegionKind, Fill)> = Vec::new();
    let (names_y, bar_y) = (*y, *y + 6);
    for (region, span) in regions.iter().zip(&layout.spans) {
        let x = MARGIN + span.x;
        if span.after_gap {
            out.push_str(&text(x - GAP / 2, bar_y + BAR_HEIGHT / 2 + 5, "gap", "≈"));
        }
        out.push_str(&text(x + span.width / 2, names_y, "name", region.kind.name()));
        let columns = fills(facts, pe, region, span.width);
        for &fill in &columns {
            let kind = if fill == Fill::Mmio { RegionKind::Mmio32 } else { region.kind };
            if !used.iter().any(|&(k, f)| colour(k, f) == colour(kind, fill)) {
                used.push((kind, fill));
            }
        }
        let base = colour(region.kind, columns.first().copied().unwrap_or(Fill::PerBuffer));
        let liobn = region.liobn.map(|l| format!(" data-liobn=\"{l:#x}\"")).unwrap_or_default();
        let page =
            region.page_shift.map(|s| format!(" data-page=\"{}\"", units::page(s))).unwrap_or_default();
        out.push_str(&format!(
            "<rect class=\"region\" data-kind=\"{}\" data-start=\"{:#x}\" data-size=\"{:#x}\"{liobn}{page} \
             x=\"{x}\" y=\"{bar_y}\" width=\"{}\" height=\"{BAR_HEIGHT}\" fill=\"{base}\">\
             <title>{} {:#x}+{:#x} ({})</title></rect>\n",
            region.kind.name(),
            region.range.start,
            region.range.size,
            span.width,
            region.kind.name(),
            region.range.start,
            region.range.size,
            escape(&units::size(region.range.size)),
        ));
        // Runs of another fill than the first (a direct DDW's RAM and headroom) drawn over it.
        let mut start = 0;
        while start < columns.len() {
            let fill = columns[start];
            let run = columns[start..].iter().take_while(|&&f| f == fill).count();
            if fill != columns[0] {
                out.push_str(&format!(
                    "<rect class=\"fill\" x=\"{}\" y=\"{}\" width=\"{run}\" height=\"{}\" fill=\"{}\"/>\n",
                    x + start,
                    bar_y + 1,
                    BAR_HEIGHT - 2,
                    colour(region.kind, fill)
                ));
            }
            start += run;
        }
        out.push_str(&text(
            x,
            bar_y + BAR_HEIGHT + LINE - 2,
            "label",
            &units::short_address(region.range.start),
        ));
    }
    *y = bar_y + BAR_HEIGHT + LINE + LINE;
    let mut key = layout.scale.describe().to_string();
    if !layout.gaps.is_empty() {
        key.push_str("; ≈ unused addresses, not to scale");
    }
    out.push_str(&text(MARGIN, *y, "key", &key));
    let mut x = MARGIN + 8 * (key.chars().count() + 2);
    for (kind, fill) in used {
        let meaning = match (kind, fill) {
            (RegionKind::Default, _) => "default window",
            _ => fill.meaning(),
        };
        out.push_str(&format!(
            "<rect class=\"swatch\" x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n",
            *y - 10,
            colour(kind, fill)
        ));
        out.push_str(&text(x + 16, *y, "key", meaning));
        x += 16 + 8 * (meaning.len() + 2);
    }
    for line in pe::details(facts, pe) {
        *y += LINE;
        out.push_str(&text(
            MARGIN,
            *y,
            "detail",
            line.to_plain().strip_prefix(INDENT).unwrap_or(&line.to_plain()),
        ));
    }
    out.push_str("</g>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\"\u{1b}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
