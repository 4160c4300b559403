//! The self-test's results per device: status, what was read or round-tripped, the rate.

use super::facts::{Device, Facts};
use super::style::{Line, Paint};
use super::units;
use crate::kv::Kv;

/// The self-test's lines (none when the kernel reported no self-test at all).
pub fn section(kv: &Kv, facts: &Facts) -> Vec<Line> {
    let status = kv.get("selftest.status");
    if status.is_none() && facts.devices.is_empty() {
        return Vec::new();
    }
    let count = |key: &str, noun: &str| {
        kv.get_u64(key).map_or_else(|| format!("? {noun}s"), |n| units::count(n, noun))
    };
    let mut heading = Line::plain("self-test: ");
    heading = match status {
        Some("ok") => heading.paint("ok", Paint::Good),
        Some(other) => heading.paint(other, Paint::Bad),
        None => heading.paint("no result (the kernel stopped before the end)", Paint::Bad),
    };
    // NVMe controllers are named only where there are some (older reports have no key).
    let nvmes =
        kv.get_u64("selftest.nvmes").filter(|&n| n > 0).map(|n| format!("{}, ", units::count(n, "NVMe")));
    let heading = heading.text(format!(
        " ({}, {}{}, {})",
        count("selftest.disks", "disk"),
        nvmes.unwrap_or_default(),
        count("selftest.edus", "edu"),
        count("selftest.failures", "failure")
    ));
    let mut lines = vec![heading];
    let name_width = facts.devices.iter().map(|d| d.name.len()).max().unwrap_or(0);
    let several_pes = facts.pes.len() > 1;
    let place = |device: &Device| {
        let bdf = device.bdf.as_deref().unwrap_or("?");
        match (several_pes, device.pe) {
            (true, Some(pe)) => format!("PE {pe} {bdf}"),
            (true, None) => format!("PE ? {bdf}"),
            (false, _) => bdf.to_string(),
        }
    };
    let place_width = facts.devices.iter().map(|d| place(d).len()).max().unwrap_or(0);
    for device in &facts.devices {
        let line = Line::plain(format!("  {:<name_width$}  {:<place_width$}  ", device.name, place(device)));
        let line = match device.status.as_deref() {
            Some("ok") => line.paint("ok  ", Paint::Good),
            Some(_) => line.paint("FAIL", Paint::Bad),
            None => line.paint("----", Paint::Notice),
        };
        lines.push(line.text(format!("  {}", result(device))));
    }
    lines
}

fn result(device: &Device) -> String {
    let mut parts = Vec::new();
    if let Some(bytes) = device.read_bytes {
        let mut read = format!("{} read", units::size(bytes));
        if let Some(us) = device.read_us {
            read.push_str(&format!(" in {:.1} ms", us as f64 / 1e3));
        }
        if let Some(rate) = &device.read_mbps {
            read.push_str(&format!(", {rate} MB/s"));
        }
        parts.push(read);
        if let Some(maps) = device.maps {
            parts.push(format!("{maps} buffers handed to the device"));
        }
    }
    if let Some(bytes) = device.bytes {
        parts.push(format!("{bytes} bytes RAM → device → RAM"));
    }
    match device.status.as_deref() {
        Some("ok") | None if parts.is_empty() => "nothing measured".to_string(),
        Some("ok") | None => parts.join(", "),
        Some(_) => "see failures".to_string(),
    }
}
