//! One PE's section: what it got, the map, each window with its devices, the RAM mapped, the
//! room left for hot-plugged memory and what setting up the DDW cost.

use super::facts::{Ddw, Device, Facts, Pe, Region, RegionKind};
use super::map;
use super::style::{wrap, Line, Paint};
use super::units;

/// Widest line of the summary.
pub const COLUMNS: usize = 100;

/// The PE's lines.
pub fn section(facts: &Facts, pe: &Pe) -> Vec<Line> {
    let mut lines = vec![heading(pe)];
    if let Some(query) = &pe.query {
        let mut text = match query.windows {
            Some(n) => format!("  query: {} free", units::count(n, "window")),
            None => "  query:".to_string(),
        };
        if let Some(block) = query.largest_block {
            text.push_str(&format!(", largest block {}", units::size(block)));
        }
        if let Some(mask) = query.page_sizes {
            text.push_str(&format!(", page sizes {}", units::page_sizes(mask).join(" ")));
        }
        lines.push(Line::plain(text));
    }
    lines.extend(map::draw(facts, pe));
    lines.extend(details(facts, pe));
    lines
}

/// The lines under the map: each region, the RAM mapped, the headroom, the cost and the
/// devices that use no window.
pub fn details(facts: &Facts, pe: &Pe) -> Vec<Line> {
    let mut lines = legend(facts, pe);
    if let Some(ddw) = &pe.ddw {
        lines.push(Line::plain(format!("  {}", ram_mapped(facts, ddw))));
    }
    for text in wrap(&headroom(facts, pe), COLUMNS, "  ", "    ") {
        lines.push(Line::plain(text));
    }
    if let Some(ddw) = &pe.ddw {
        lines.push(Line::plain(format!("  {}", cost(ddw))));
    }
    for device in facts.devices_of(pe.index).filter(|d| d.window(pe).is_none()) {
        let why = match device.dma.as_deref() {
            Some("bypass") => "bypass: DMA to physical addresses, no IOMMU".to_string(),
            Some(mode) => format!("{mode}, but no such window is reported"),
            None => "no DMA set up (the device failed first, see failures)".to_string(),
        };
        lines.push(Line::plain(format!("  {}{}: {why}", device.name, bdf(device))));
    }
    lines
}

/// `PE 0  /pci@…  DDW direct in slot 1, size limited by ram`.
pub fn heading(pe: &Pe) -> Line {
    let node = pe.node.as_deref().unwrap_or("(node not reported)");
    let line = Line::plain(format!("PE {}  ", pe.index)).paint(node, Paint::Heading).text("  ");
    match (&pe.ddw, pe.ddw_state.as_deref()) {
        (Some(ddw), _) => {
            let mut text = format!("DDW {}", ddw.mode);
            if let Some(slot) = ddw.slot {
                text.push_str(&format!(" in slot {slot}"));
            }
            if let Some(limit) = &ddw.limit {
                text.push_str(&format!(", size limited by {limit}"));
            }
            if pe.default_removed {
                text.push_str(", default window removed");
            }
            line.paint(text, Paint::Good)
        }
        (None, Some(state)) => match (&pe.ddw_why, &pe.ddw_error) {
            (Some(why), _) => line.paint(format!("DDW {state}"), Paint::Notice).text(format!(": {why}")),
            (None, Some(_)) => line.paint(format!("DDW {state}"), Paint::Bad).text(": failed (see failures)"),
            (None, None) => line.paint(format!("DDW {state}"), Paint::Notice),
        },
        (None, None) => line.paint("no DDW reported", Paint::Notice),
    }
}

fn bdf(device: &Device) -> String {
    device.bdf.as_deref().map(|b| format!(" ({b})")).unwrap_or_default()
}

/// One line per region: name, exact range, size, page size, LIOBN, devices and their modes.
fn legend(facts: &Facts, pe: &Pe) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut regions = pe.regions();
    if pe.default_removed {
        if let Some(default) = &pe.default {
            regions.insert(0, default.clone());
        }
    }
    let range_width = regions.iter().map(|r| format!("{:#x}+{:#x}", r.range.start, r.range.size).len()).max();
    let range_width = range_width.unwrap_or(0);
    for region in &regions {
        let removed = region.kind == RegionKind::Default && pe.default_removed;
        let range = format!("{:#x}+{:#x}", region.range.start, region.range.size);
        let mut what = units::size(region.range.size);
        if region.range.size.is_power_of_two() {
            what.push_str(&format!(" (2^{})", region.range.size.trailing_zeros()));
        }
        if let Some(shift) = region.page_shift {
            what.push_str(&format!(", {} pages", units::page(shift)));
        }
        if let Some(liobn) = region.liobn {
            what.push_str(&format!(", liobn {liobn:#x}"));
        }
        if !region.kind.is_dma_window() {
            what.push_str(", PHB memory window: no DMA");
        }
        if removed {
            what.push_str(", removed for the DDW");
        }
        let users = users(facts, pe, region);
        let head = format!("    {:<8} {range:<range_width$} ", region.kind.name());
        let width = head.chars().count() + what.chars().count();
        let mut line = Line::plain(head).text(what);
        let mut rest = Vec::new();
        if !users.is_empty() && !removed {
            if width + 3 + users.chars().count() <= COLUMNS {
                line = line.paint(format!(" → {users}"), Paint::Good);
            } else {
                rest = wrap(&users, COLUMNS, "             → ", "               ");
            }
        }
        lines.push(line);
        lines.extend(rest.into_iter().map(|text| Line::plain("").paint(text, Paint::Good)));
    }
    lines
}

/// `blk.0 direct, edu.1 default-iommu`: the devices that DMA through `region`.
fn users(facts: &Facts, pe: &Pe, region: &Region) -> String {
    facts
        .devices_of(pe.index)
        .filter(|d| d.window(pe) == Some(region.kind) && region.kind.is_dma_window())
        .map(|d| {
            let mut text = format!("{} {}", d.name, d.dma.as_deref().unwrap_or("?"));
            if let Some(bits) = d.mask_bits {
                text.push_str(&format!(" ({bits}-bit mask)"));
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ram_mapped(facts: &Facts, ddw: &Ddw) -> String {
    let base = ddw.region.range.start;
    if ddw.mode != "direct" {
        return "RAM mapped up front: none (a dynamic window: TCEs are written per buffer)".to_string();
    }
    let ranges: Vec<String> = facts
        .ram
        .iter()
        .map(|r| format!("{:#x}+{:#x} at bus {:#x}", r.start, r.size, base.wrapping_add(r.start)))
        .collect();
    let count = ddw.ranges.map_or_else(|| "?".to_string(), |n| n.to_string());
    let mut text =
        format!("RAM mapped: {count} of {} (mem.range.*)", units::count(facts.ram.len() as u64, "range"));
    if !ranges.is_empty() && ranges.len() <= 2 {
        text.push_str(&format!(": {}", ranges.join(", ")));
    }
    text
}

fn headroom(facts: &Facts, pe: &Pe) -> String {
    let ram_end = facts.max_addr.or_else(|| facts.ram.iter().map(|r| r.end()).max());
    let end = ram_end.map_or_else(
        || "RAM's end is not reported".to_string(),
        |e| format!("RAM ends at {}", units::size(e)),
    );
    let hotplug = match facts.hotplug_max {
        Some(max) => format!("hot-plug memory may reach {}", units::size(max)),
        None => "no hot-plug memory declared".to_string(),
    };
    let Some(ddw) = &pe.ddw else {
        let default = pe.default.as_ref().map_or("the default window".to_string(), |d| {
            format!("the {} default window", units::size(d.range.size))
        });
        return format!("headroom: {end}; {hotplug}; without a DDW all DMA maps through {default}");
    };
    let window = ddw.region.range.size;
    let reach = facts.hotplug_max.into_iter().chain(ram_end).max();
    let verdict = match (reach, ram_end) {
        _ if ddw.mode != "direct" => {
            format!("the dynamic DDW offers {} of bus addresses for buffers", units::size(window))
        }
        (Some(reach), Some(ram_end)) if window >= reach => match window - ram_end {
            0 => format!("the DDW covers {}: no room beyond RAM", units::size(window)),
            room => format!(
                "the DDW covers {}: {} of room for hot-plugged memory",
                units::size(window),
                units::size(room)
            ),
        },
        (Some(reach), _) if window < reach => format!(
            "the DDW covers only {}: memory up to {} would need the default window{}",
            units::size(window),
            units::size(reach),
            ddw.limit.as_deref().map(|l| format!(" (limited by {l})")).unwrap_or_default()
        ),
        _ => format!("the DDW covers {}", units::size(window)),
    };
    format!("headroom: {end}; {hotplug}; {verdict}")
}

fn cost(ddw: &Ddw) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let mut text = format!(
        "cost: {} TCEs in {} H_PUT_TCE_INDIRECT + {} H_PUT_TCE calls",
        n(ddw.tces),
        n(ddw.indirect_calls),
        n(ddw.put_calls)
    );
    if let Some(us) = ddw.us {
        text.push_str(&format!(", {us} µs from query to last TCE"));
    }
    text
}
