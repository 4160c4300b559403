//! The hypervisor conformance report (`hv.*`): the platform and its evidence, what it offered
//! (per PE), and each deviation with its evidence and what was expected. `hv.*` keys this
//! section does not know are still shown, packed as `key=value`.

use std::collections::BTreeSet;

use super::style::{wrap, Line, Paint};
use crate::kv::Kv;

/// The section's lines (none when the kernel printed no `hv.*` line).
pub fn section(kv: &Kv, columns: usize) -> Vec<Line> {
    let facts: Vec<(&str, &str)> =
        kv.entries().iter().filter_map(|(k, v)| Some((k.strip_prefix("hv.")?, v.trim()))).collect();
    if facts.is_empty() {
        return Vec::new();
    }
    let mut used = BTreeSet::new();
    let mut get = |key: &str| -> Option<&str> {
        let value = facts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)?;
        used.insert(key.to_string());
        Some(value)
    };
    let mut lines = Vec::new();
    let platform = get("platform").unwrap_or("unknown");
    let heading = match get("platform.evidence") {
        Some(evidence) => format!("hypervisor: {platform} ({evidence})"),
        None => format!("hypervisor: {platform}"),
    };
    push_wrapped(&mut lines, &heading, columns, "", "  ", Some(Paint::Heading));
    if let Some(model) = get("model") {
        push_wrapped(&mut lines, &format!("model: {model}"), columns, "  ", "    ", None);
    }
    let mut offered = Vec::new();
    if let Some(multi) = get("multi_tce") {
        offered.push(format!("multi-TCE {multi}"));
    }
    if let Some(phbs) = get("ddw_phbs") {
        offered.push(format!("DDW on {phbs} PHBs"));
    }
    if let Some(extensions) = get("extensions") {
        offered.push(format!("extensions {}", extensions.replace(',', ", ")));
    }
    if !offered.is_empty() {
        push_wrapped(&mut lines, &format!("offered: {}", offered.join("; ")), columns, "  ", "    ", None);
    }
    for pe in pe_prefixes(&facts) {
        let mut parts = Vec::new();
        let mut offer = Vec::new();
        if let Some(w) = get(&format!("{pe}.windows")) {
            offer.push(format!("{w} window(s) free"));
        }
        if let Some(p) = get(&format!("{pe}.page_sizes")) {
            offer.push(format!("pages {}", p.replace(',', " ")));
        }
        if let Some(b) = get(&format!("{pe}.largest_block")) {
            offer.push(format!("largest block {b} TCEs"));
        }
        if !offer.is_empty() {
            parts.push(offer.join(", "));
        }
        if let Some(offer) = get(&format!("{pe}.offer")) {
            parts.push(offer.to_string());
        }
        if let Some(n) = get(&format!("{pe}.largest_indirect")) {
            parts.push(format!("largest H_PUT_TCE_INDIRECT {n}"));
        }
        if let Some(n) = get(&format!("{pe}.largest_stuff")) {
            parts.push(format!("largest H_STUFF_TCE {n}"));
        }
        if let Some(restores) = get(&format!("{pe}.remove_restores_default")) {
            parts.push(format!("last DDW removed, default window back by itself: {restores}"));
        }
        let name = pe.replacen("pe.", "PE ", 1).replace(".warm", " (warm restart)");
        push_wrapped(&mut lines, &format!("{name}: {}", parts.join("; ")), columns, "  ", "    ", None);
    }
    let busy = get("busy");
    let count = get("deviations");
    let mut index = 0;
    while let Some(code) = get(&format!("deviation.{index}")) {
        let pe = get(&format!("deviation.{index}.pe")).map(|p| format!(" (PE {p})")).unwrap_or_default();
        push_wrapped(
            &mut lines,
            &format!("deviation {index}{pe}: {code}"),
            columns,
            "  ! ",
            "    ",
            Some(Paint::Notice),
        );
        if let Some(evidence) = get(&format!("deviation.{index}.evidence")) {
            push_wrapped(&mut lines, &format!("evidence: {evidence}"), columns, "      ", "        ", None);
        }
        if let Some(expected) = get(&format!("deviation.{index}.expected")) {
            push_wrapped(&mut lines, &format!("expected: {expected}"), columns, "      ", "        ", None);
        }
        index += 1;
    }
    let mut tail = Vec::new();
    if let Some(busy) = busy {
        tail.push(format!("busy answers {busy}"));
    }
    match count {
        Some("0") => tail.push(String::from("no deviation observed")),
        Some(n) => tail.push(format!("{n} deviation(s)")),
        None => {}
    }
    if !tail.is_empty() {
        push_wrapped(&mut lines, &tail.join("; "), columns, "  ", "    ", None);
    }
    let rest: Vec<String> =
        facts.iter().filter(|(k, _)| !used.contains(*k)).map(|(k, v)| format!("{k}={v}")).collect();
    if !rest.is_empty() {
        push_wrapped(&mut lines, &rest.join("  "), columns, "  ", "    ", None);
    }
    lines
}

/// `pe.N` and `pe.N.warm` prefixes in order of first appearance.
fn pe_prefixes(facts: &[(&str, &str)]) -> Vec<String> {
    let mut prefixes: Vec<String> = Vec::new();
    for (key, _) in facts {
        let Some(rest) = key.strip_prefix("pe.") else { continue };
        let mut parts = rest.split('.');
        let Some(index) = parts.next().filter(|i| i.parse::<u32>().is_ok()) else { continue };
        let prefix = match parts.next() {
            Some("warm") => format!("pe.{index}.warm"),
            _ => format!("pe.{index}"),
        };
        if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

fn push_wrapped(
    lines: &mut Vec<Line>,
    text: &str,
    columns: usize,
    first: &str,
    rest: &str,
    paint: Option<Paint>,
) {
    for (i, piece) in wrap(text, columns, first, rest).into_iter().enumerate() {
        match (i, paint) {
            (0, Some(paint)) => lines.push(Line::plain("").paint(piece, paint)),
            _ => lines.push(Line::plain(piece)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::style::Style;

    fn text(kv: &str) -> Vec<String> {
        section(&Kv::parse(kv), 100).iter().map(|l| l.render(Style::Plain)).collect()
    }

    #[test]
    fn the_report_reads_as_sentences() {
        assert!(section(&Kv::parse("boot.firmware=slof\n"), 100).is_empty());
        let lines = text(
            "hv.platform=qemu-tcg\nhv.platform.evidence=root compatible \"qemu,pseries\", no /hypervisor node\n\
             hv.multi_tce=yes\nhv.ddw_phbs=1/1\nhv.extensions=reset,64-bit-query\nhv.pe.0.windows=1\n\
             hv.pe.0.page_sizes=4K,64K,2M,16M\nhv.pe.0.largest_block=0x2000000000\nhv.pe.0.largest_indirect=128\n\
             hv.pe.0.remove_restores_default=no (H_GET_TCE failed)\n\
             hv.deviation.0=default-not-restored-on-remove\nhv.deviation.0.pe=0\n\
             hv.deviation.0.evidence=H_GET_TCE on the default window failed\nhv.deviation.0.expected=LoPAR says so\n\
             hv.busy=0\nhv.deviations=1\nhv.novel=42\n",
        );
        assert_eq!(
            lines,
            vec![
                "hypervisor: qemu-tcg (root compatible \"qemu,pseries\", no /hypervisor node)",
                "  offered: multi-TCE yes; DDW on 1/1 PHBs; extensions reset, 64-bit-query",
                "  PE 0: 1 window(s) free, pages 4K 64K 2M 16M, largest block 0x2000000000 TCEs; largest",
                "    H_PUT_TCE_INDIRECT 128; last DDW removed, default window back by itself: no (H_GET_TCE failed)",
                "  ! deviation 0 (PE 0): default-not-restored-on-remove",
                "      evidence: H_GET_TCE on the default window failed",
                "      expected: LoPAR says so",
                "  busy answers 0; 1 deviation(s)",
                "  novel=42",
            ]
        );
    }

    #[test]
    fn warm_restart_offers_are_their_own_line() {
        let lines = text("hv.platform=qemu-kvm\nhv.pe.0.windows=1\nhv.pe.0.warm.offer=not asked: ddw=off\n");
        assert_eq!(lines[1], "  PE 0: 1 window(s) free");
        assert_eq!(lines[2], "  PE 0 (warm restart): not asked: ddw=off");
    }
}
