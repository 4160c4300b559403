//! The hypervisor's conformance facts (`hv.*`), whatever their names: short facts packed onto
//! a few lines, each deviation on a line of its own.

use super::style::{wrap, Line, Paint};
use crate::kv::Kv;

/// The section's lines (none when the kernel printed no `hv.*` line).
pub fn section(kv: &Kv, columns: usize) -> Vec<Line> {
    let facts: Vec<(&str, &str)> =
        kv.entries().iter().filter_map(|(k, v)| Some((k.strip_prefix("hv.")?, v.trim()))).collect();
    if facts.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![Line::plain("").paint("hypervisor", Paint::Heading)];
    let (deviations, plain): (Vec<_>, Vec<_>) = facts.into_iter().partition(|(k, _)| k.contains("deviation"));
    let mut current = String::new();
    for (key, value) in plain {
        let fact = format!("{key}={value}");
        if !current.is_empty() && 2 + current.chars().count() + 2 + fact.chars().count() > columns {
            lines.push(Line::plain(format!("  {}", std::mem::take(&mut current))));
        }
        if 2 + fact.chars().count() > columns {
            lines.extend(wrap(&fact, columns, "  ", "    ").into_iter().map(Line::plain));
            continue;
        }
        if !current.is_empty() {
            current.push_str("  ");
        }
        current.push_str(&fact);
    }
    if !current.is_empty() {
        lines.push(Line::plain(format!("  {current}")));
    }
    for (key, value) in deviations {
        for (i, text) in wrap(&format!("{key}: {value}"), columns, "  ! ", "    ").into_iter().enumerate() {
            let line = if i == 0 { Line::plain("").paint(text, Paint::Notice) } else { Line::plain(text) };
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::style::Style;

    #[test]
    fn any_hv_lines_are_shown() {
        assert!(section(&Kv::parse("boot.firmware=slof\n"), 100).is_empty());
        let kv = Kv::parse("hv.platform=qemu\nhv.windows=2\nhv.deviation.0=reset does not clear TCEs\n");
        let text: Vec<String> = section(&kv, 100).iter().map(|l| l.render(Style::Plain)).collect();
        assert_eq!(
            text,
            vec!["hypervisor", "  platform=qemu  windows=2", "  ! deviation.0: reset does not clear TCEs"]
        );
    }
}
