//! The summary a person reads, rendered from the recorded consoles in `tests/fixtures/`: the
//! map's windows, positions and devices, the fit in 50 lines of 100 columns, the failures of a
//! failing boot in words, the SVG (parsed by Python's XML parser, not ours), colour only on a
//! terminal, and `report.kv`. Host only, no QEMU.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tests::kv::Kv;
use tests::summary::facts::{Facts, RegionKind};
use tests::summary::{self, Style};

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

fn default_console() -> String {
    fixture("console-default-slof.txt").1
}

fn failing_console() -> String {
    fixture("console-bridge-vof-failing.txt").1
}

fn plain(console: &str) -> Vec<String> {
    summary::render(console, Style::Plain).lines().map(str::to_string).collect()
}

/// The one line starting with `prefix`.
fn line_starting<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "exactly one line should start with {prefix:?}:\n{}", lines.join("\n"));
    found[0]
}

/// The text of a window's legend line and the device line after it (when the devices did not
/// fit on the window's line).
fn legend_of(lines: &[String], name: &str) -> String {
    let prefix = format!("    {name:<8} ");
    let at = lines.iter().position(|l| l.starts_with(&prefix) && l.contains("+0x")).unwrap_or_else(|| {
        panic!("no legend line for {name}:\n{}", lines.join("\n"));
    });
    let mut text = lines[at].clone();
    if let Some(next) = lines.get(at + 1).filter(|l| l.trim_start().starts_with('→')) {
        text.push_str(next);
    }
    text
}

fn char_column(line: &str, needle: &str) -> Option<usize> {
    line.find(needle).map(|byte| line[..byte].chars().count())
}

#[test]
fn the_windows_their_devices_and_modes_come_from_the_report() {
    let facts = Facts::from_kv(&Kv::parse(&default_console()));
    let pe = facts.pe(0).expect("PE 0");
    let default = pe.default.as_ref().expect("a default window");
    assert_eq!((default.range.start, default.range.size), (0, 0x4000_0000));
    assert_eq!((default.liobn, default.page_shift), (Some(0x8000_0000), Some(12)));
    let ddw = pe.ddw.as_ref().expect("a DDW");
    assert_eq!(ddw.mode, "direct");
    assert_eq!((ddw.region.range.start, ddw.region.range.size), (0x0800_0000_0000_0000, 1 << 31));
    assert_eq!((ddw.region.liobn, ddw.region.page_shift), (Some(0x8000_0001), Some(24)));
    let device = |name: &str| facts.devices.iter().find(|d| d.name == name).expect(name);
    assert_eq!(device("blk.0").window(pe), Some(RegionKind::Ddw));
    assert_eq!(device("blk.0").dma.as_deref(), Some("direct"));
    assert_eq!(device("edu.0").window(pe), Some(RegionKind::Default));
    assert_eq!(device("edu.0").dma.as_deref(), Some("default-iommu"));
}

#[test]
fn the_map_shows_each_window_with_its_range_pages_liobn_and_devices() {
    let lines = plain(&default_console());
    let default = legend_of(&lines, "default");
    for needle in ["0x0+0x40000000", "1 GiB (2^30)", "4K pages", "liobn 0x80000000", "→ edu.0 default-iommu"]
    {
        assert!(default.contains(needle), "{needle:?} missing from the default window's legend: {default}");
    }
    let ddw = legend_of(&lines, "DDW");
    for needle in
        ["0x800000000000000+0x80000000", "2 GiB (2^31)", "16M pages", "liobn 0x80000001", "→ blk.0 direct"]
    {
        assert!(ddw.contains(needle), "{needle:?} missing from the DDW's legend: {ddw}");
    }
    assert!(!ddw.contains("edu.0") && !default.contains("blk.0"), "each device is under its own window");
    let mmio32 = legend_of(&lines, "mmio32");
    assert!(mmio32.contains("0x80000000+0x80000000") && mmio32.contains("no DMA"), "{mmio32}");
    let page_sizes = line_starting(&lines, "  query:");
    assert!(page_sizes.contains("page sizes 4K 64K 2M 16M"), "{page_sizes}");
    let mapped = line_starting(&lines, "  RAM mapped:");
    assert!(mapped.contains("0x0+0x80000000 at bus 0x800000000000000"), "{mapped}");
    let cost = line_starting(&lines, "  cost:");
    assert!(
        cost.contains("128 TCEs in 1 H_PUT_TCE_INDIRECT + 0 H_PUT_TCE") && cost.contains("2556 µs"),
        "{cost}"
    );
    let headroom = line_starting(&lines, "  headroom:");
    assert!(
        headroom.contains("no hot-plug memory declared") && headroom.contains("no room beyond RAM"),
        "{headroom}"
    );
}

#[test]
fn the_bar_places_the_windows_by_address_and_labels_where_they_start() {
    let lines = plain(&default_console());
    let bar_at = lines.iter().position(|l| l.trim_start().starts_with("[▒")).expect("the map's bar");
    let (names, bar, labels) = (&lines[bar_at - 1], &lines[bar_at], &lines[bar_at + 1]);
    let bar: Vec<char> = bar.chars().collect();
    let starts: Vec<usize> = (0..bar.len()).filter(|&i| bar[i] == '[').collect();
    assert_eq!(starts.len(), 4, "default, mmio32, mmio64, DDW: {}", lines[bar_at]);
    let order: Vec<usize> =
        ["default", "mmio32", "mmio64", "DDW"].iter().map(|n| char_column(names, n).expect(n)).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "names in address order: {names}");
    for (label, &start) in ["0", "2G", "33T", "2^59"].iter().zip(&starts) {
        let label_at = labels.chars().skip(start).collect::<String>();
        assert!(label_at.starts_with(label), "{label} should start under column {start}: {labels}");
    }
    let inner = |i: usize| -> String {
        let end = (starts[i]..bar.len()).find(|&c| bar[c] == ']').expect("a closing bracket");
        bar[starts[i] + 1..end].iter().collect()
    };
    assert!(inner(0).chars().all(|c| c == '▒'), "the default window holds TCEs per buffer: {}", inner(0));
    assert!(inner(3).chars().all(|c| c == '█'), "RAM fills the 2 GiB direct DDW: {}", inner(3));
    assert!(inner(1).chars().all(|c| c == '·'), "MMIO: {}", inner(1));
    let between = |a: usize, b: usize| bar[a..b].iter().collect::<String>();
    assert!(between(starts[0], starts[1]).contains('≈'), "1 GiB unused between the default window and MMIO");
    assert!(between(starts[2], starts[3]).contains('≈'), "the gap below 2^59 is broken, not drawn");
    let key = &lines[bar_at + 2];
    assert!(key.contains("log scale"), "1 GiB next to 1 TiB: log scale: {key}");
}

#[test]
fn the_default_summary_fits_fifty_lines_of_a_hundred_columns() {
    let lines = plain(&default_console());
    assert!(lines.len() <= 50, "{} lines:\n{}", lines.len(), lines.join("\n"));
    for line in &lines {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
    assert!(lines.len() >= 20, "the summary has its sections: {}", lines.join("\n"));
}

#[test]
fn the_self_test_and_the_timeline_are_summarised() {
    let lines = plain(&default_console());
    let heading = line_starting(&lines, "self-test:");
    assert_eq!(heading, "self-test: ok (1 disk, 1 edu, 0 failures)");
    let blk = line_starting(&lines, "  blk.0 ");
    for needle in ["00:00.0", " ok ", "64 MiB read in 62.8 ms", "1068.2 MB/s"] {
        assert!(blk.contains(needle), "{needle:?} missing: {blk}");
    }
    let edu = line_starting(&lines, "  edu.0 ");
    assert!(edu.contains(" ok ") && edu.contains("4095 bytes"), "{edu}");
    let timeline = line_starting(&lines, "boot timeline:");
    // boot.t.dma=143512337 at 512 MHz.
    assert!(timeline.contains("entry → DMA ready 280.3 ms"), "{timeline}");
    for (step, ms) in
        [("fdt", "258.7"), ("mmu", "264.4"), ("pci", "275.7"), ("pe.0", "280.2"), ("selftest", "694.1")]
    {
        let line = line_starting(&lines, &format!("  {step:<8} "));
        assert!(line.contains(ms), "{step} at {ms} ms: {line}");
    }
    assert!(line_starting(&lines, "  total ").contains("694.2"));
    assert_eq!(line_starting(&lines, "failures:"), "failures: none");
}

#[test]
fn a_failing_boot_says_what_failed_in_words() {
    let lines = plain(&failing_console());
    let at = lines.iter().position(|l| l.starts_with("failures (")).expect("a failures section");
    let section = &lines[at + 1..];
    let said = |needle: &str| section.iter().any(|l| l.contains(needle));
    assert!(
        said("blk.1.status: BAR 1 at bus address 0x0+0x1000 is outside the PHB's memory windows"),
        "the BAR outside the PHB's windows:\n{}",
        section.join("\n")
    );
    assert!(section.iter().any(|l| l.starts_with("  - selftest.status=fail")), "{}", section.join("\n"));
    assert!(said("exit.status=fail"));
    assert!(said("error: the DMA self-test failed on 1 device(s)"));
    assert!(said("pci.0.01:01.0.problem: behind a bridge: BARs not assigned"));
    assert!(line_starting(&lines, "pseries-ddw:").ends_with("exit fail"));
    let blk1 = line_starting(&lines, "  blk.1  01:01.0");
    assert!(blk1.contains("FAIL"), "{blk1}");
    let no_dma = line_starting(&lines, "  blk.1 (01:01.0):");
    assert!(no_dma.contains("no DMA set up"), "the failed disk uses no window: {no_dma}");
}

/// Runs the `report` binary on `args` with standard output piped (not a terminal).
fn report(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_report"))
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("the report binary runs");
    assert!(output.status.success(), "report {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn colour_only_on_a_terminal() {
    for name in ["console-default-slof.txt", "console-bridge-vof-failing.txt"] {
        let (path, console) = fixture(name);
        let piped = report(&[path.to_str().unwrap()]);
        assert!(!piped.contains('\x1b'), "escape sequences in plain output of {name}:\n{piped}");
        assert_eq!(piped, summary::render(&console, Style::Plain));
        let forced = report(&["--color", "always", path.to_str().unwrap()]);
        assert!(forced.contains("\x1b["), "--color always paints");
    }
    // A pseudo-terminal (util-linux's script): colour by default, none with NO_COLOR.
    let (path, _) = fixture("console-default-slof.txt");
    let command = format!("{} {}", env!("CARGO_BIN_EXE_report"), path.display());
    let on_terminal = |no_color: bool| {
        let mut script = Command::new("script");
        script.args(["-qec", &command, "/dev/null"]).stdin(Stdio::null()).env_remove("NO_COLOR");
        if no_color {
            script.env("NO_COLOR", "1");
        }
        let output = script.output().expect("util-linux's script runs (bsdutils)");
        assert!(output.status.success(), "script: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(on_terminal(false).contains("\x1b[32mok\x1b[0m"), "colour on a terminal");
    assert!(!on_terminal(true).contains('\x1b'), "NO_COLOR turns it off");
}

#[test]
fn report_kv_holds_every_key_value_line_and_nothing_else() {
    let (path, console) = fixture("console-default-slof.txt");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("summary-report.kv");
    let _ = report(&["--kv-out", out.to_str().unwrap(), path.to_str().unwrap()]);
    let written = std::fs::read_to_string(&out).expect("report.kv written");
    let expected = Kv::parse(&console);
    assert_eq!(written.lines().count(), expected.len());
    assert_eq!(Kv::parse(&written), expected, "the same lines in the same order");
    assert!(written.lines().all(|l| tests::kv::parse_line(l).is_some()), "only report lines");
    assert!(!written.contains('\r') && !written.contains("SLOF"));
    assert_eq!(report(&["--kv", path.to_str().unwrap()]), written, "--kv prints the same lines");
}

#[test]
fn the_svg_is_well_formed_and_holds_the_windows() {
    let (path, _) = fixture("console-default-slof.txt");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("summary-dma-map.svg");
    let _ = report(&["--svg", out.to_str().unwrap(), path.to_str().unwrap()]);
    // Python's XML parser: a parser that is not ours judges the file.
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
for rect in root.iter(ns + "rect"):
    if rect.get("class") == "region":
        print(rect.get("data-kind"), rect.get("data-start"), rect.get("data-size"),
              rect.get("data-liobn", "-"), rect.get("data-page", "-"), rect.get("x"), rect.get("width"))
texts = " ".join("".join(t.itertext()) for t in root.iter(ns + "text"))
print("TEXT", texts)
"#;
    let output = Command::new("python3").arg("-c").arg(script).arg(&out).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the SVG does not parse: {}", String::from_utf8_lossy(&output.stderr));
    let regions: Vec<Vec<&str>> =
        stdout.lines().filter(|l| !l.starts_with("TEXT")).map(|l| l.split(' ').collect()).collect();
    let summary: Vec<&[&str]> = regions.iter().map(|r| &r[..5]).collect();
    assert_eq!(
        summary,
        vec![
            &["default", "0x0", "0x40000000", "0x80000000", "4K"][..],
            &["mmio32", "0x80000000", "0x80000000", "-", "-"][..],
            &["mmio64", "0x210000000000", "0x10000000000", "-", "-"][..],
            &["DDW", "0x800000000000000", "0x80000000", "0x80000001", "16M"][..],
        ]
    );
    let x: Vec<u64> = regions.iter().map(|r| r[5].parse().unwrap()).collect();
    assert!(x.windows(2).all(|w| w[0] < w[1]), "drawn in address order: {x:?}");
    let text = stdout.lines().find(|l| l.starts_with("TEXT")).unwrap_or_default();
    for needle in ["PE 0", "→ blk.0 direct", "→ edu.0 default-iommu", "2^59"] {
        assert!(text.contains(needle), "{needle:?} missing from the SVG's text");
    }
}

#[test]
fn the_hypervisor_report_names_the_platform_its_offer_and_each_deviation() {
    // The hv.* lines of a `ddw=single-fail-map` boot under QEMU 7.2, and one key the renderer
    // does not know.
    let console = format!(
        "{}hv.platform=qemu-tcg\nhv.platform.evidence=root compatible \"qemu,pseries\", no /hypervisor node\n\
         hv.multi_tce=yes\nhv.ddw_phbs=1/1\nhv.extensions=reset,64-bit-query\nhv.pe.0.windows=1\n\
         hv.pe.0.page_sizes=4K,64K,2M,16M\nhv.pe.0.largest_block=0x2000000000\n\
         hv.pe.0.remove_restores_default=no (H_GET_TCE on the default window failed after liobn 0x80000000 went)\n\
         hv.deviation.0=default-not-restored-on-remove\nhv.deviation.0.pe=0\n\
         hv.deviation.0.evidence=after ibm,remove-pe-dma-window(liobn 0x80000000) left no window, H_GET_TCE on \
         the default window 0x80000000 failed\nhv.deviation.0.expected=LoPAR: removing the last non-default \
         window restores the default window\nhv.busy=0\nhv.deviations=1\nhv.windows_total=2\n",
        default_console()
    );
    let lines = plain(&console);
    let at = lines.iter().position(|l| l.starts_with("hypervisor: qemu-tcg")).expect("a hypervisor section");
    let section = &lines[at..];
    assert!(section[1].starts_with("  offered: multi-TCE yes; DDW on 1/1 PHBs"), "{section:?}");
    assert!(section[2].starts_with("  PE 0: 1 window(s) free, pages 4K 64K 2M 16M"), "{section:?}");
    let deviation =
        section.iter().position(|l| l == "  ! deviation 0 (PE 0): default-not-restored-on-remove");
    let deviation = deviation.unwrap_or_else(|| panic!("no deviation line in {section:?}"));
    assert!(
        section[deviation + 1].starts_with("      evidence: after ibm,remove-pe-dma-window"),
        "{section:?}"
    );
    assert!(section.iter().any(|l| l.starts_with("      expected: LoPAR")), "{section:?}");
    assert!(section.iter().any(|l| l == "  busy answers 0; 1 deviation(s)"), "{section:?}");
    assert!(section.iter().any(|l| l == "  windows_total=2"), "an unknown key is still shown: {section:?}");
    assert!(section.iter().all(|l| l.chars().count() <= 100), "{section:?}");
    assert!(
        !plain(&default_console()).iter().any(|l| l.starts_with("hypervisor")),
        "no section without hv.*"
    );
}
