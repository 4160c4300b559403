//! `bench_ddw [--runs N] [--quick]`: what a Dynamic DMA Window costs and buys (a benchmark,
//! not a test).
//!
//! 1. For each guest RAM size (1G … 64G; a size beyond the host's commit limit is retried with
//!    a `reserve=off` memory backend, whose pages the host allocates only when touched) and
//!    each IOMMU page size the PHB offers (QEMU's default mask → 16M pages, `pgsz=0x11000` →
//!    64K, `pgsz=0x1000` → 4K), boots the kernel under VOF with a 64 MiB virtio-blk
//!    (`iommu_platform=on`) and QEMU tracing `spapr_iommu_pci_indirect` and
//!    `spapr_iommu_ddw_*` (not the per-DMA `xlate`), and tabulates the window the kernel
//!    created, the TCEs and hcalls it took (the kernel's count and QEMU's), the time for
//!    query + create + map (`pe.0.ddw.us`) and the disk's read rate (`blk.0.read_mbps`).
//! 2. At 2G, N runs each (default 5) without tracing: the read rate through the direct DDW
//!    against the kernel told `ddw=off` (every buffer mapped in the 4K default window), as
//!    median, min and max.
//!
//! `--quick` limits part 1 to 1G, 2G and 4G. Results also go to `out/bench-ddw.csv` and
//! `out/bench-ddw-compare.csv`. Uses the kernel from `PSERIES_KERNEL_ELF`/`PSERIES_KERNEL_BIOS`,
//! or builds it.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tests::bench::{median, Options};
use tests::build::workspace_root;
use tests::disk;
use tests::qemu::{Firmware, Outcome, Scenario};

const RAM: [&str; 7] = ["1G", "2G", "4G", "8G", "16G", "32G", "64G"];
const RAM_QUICK: [&str; 3] = ["1G", "2G", "4G"];
/// `(label, -global value)`; `None` is QEMU's default mask.
const PAGE_SIZES: [(&str, Option<&str>); 3] =
    [("16M", None), ("64K", Some("0x11000")), ("4K", Some("0x1000"))];
const DISK_BYTES: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(300);

fn parse_options() -> Result<Options, String> {
    tests::bench::parse_options("bench_ddw", 5, std::env::args().skip(1))
}

/// One row of the grid.
struct Row {
    ram: String,
    page: &'static str,
    mode: String,
    page_shift: String,
    window_shift: String,
    tces: String,
    indirect_kernel: String,
    indirect_trace: String,
    put_calls: String,
    ddw_us: String,
    read_mbps: String,
    wall_s: f64,
    note: String,
}

/// How guest RAM is backed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backing {
    /// QEMU's default: the host must be able to commit all of it.
    Default,
    /// `memory-backend-ram,reserve=off` (MAP_NORESERVE): for sizes beyond the host's commit
    /// limit; the host allocates pages as the guest touches them.
    NoReserve,
}

/// One benchmark boot.
struct Boot<'a> {
    memory: &'a str,
    backing: Backing,
    /// `spapr-pci-host-bridge.pgsz`, `None` for QEMU's default.
    pgsz: Option<&'a str>,
    /// Trace the indirect hcalls and the DDW RTAS calls.
    trace: bool,
    /// Kernel command line.
    append: Option<&'a str>,
}

impl Boot<'_> {
    fn run(&self, name: &str, image: &Arc<Vec<u8>>) -> Outcome {
        let events =
            if self.trace { vec!["spapr_iommu_pci_indirect", "spapr_iommu_ddw_*"] } else { Vec::new() };
        let mut scenario = Scenario::new(name, Firmware::Vof)
            .memory(self.memory)
            .timeout(TIMEOUT)
            .virtio_blk_image("disk0", None, Arc::clone(image), true)
            .trace(events);
        if let Some(pgsz) = self.pgsz {
            scenario = scenario.args(["-global".to_string(), format!("spapr-pci-host-bridge.pgsz={pgsz}")]);
        }
        if let Some(append) = self.append {
            scenario = scenario.append(append);
        }
        if self.backing == Backing::NoReserve {
            scenario = scenario.args([
                "-object".to_string(),
                format!("memory-backend-ram,id=bench-ram,size={},reserve=off", self.memory),
                "-machine".to_string(),
                "memory-backend=bench-ram".to_string(),
            ]);
        }
        scenario.run()
    }
}

fn passed(outcome: &Outcome) -> bool {
    !outcome.timed_out && outcome.exit_code == Some(0) && outcome.kv.get("exit.status") == Some("ok")
}

/// QEMU could not give the guest that much RAM (host overcommit limits).
fn ram_refused(outcome: &Outcome) -> Option<String> {
    let line = outcome.console.lines().find(|l| {
        l.contains("cannot set up guest memory")
            || l.contains("Cannot allocate memory")
            || l.contains("cannot allocate")
    })?;
    Some(line.trim().to_string())
}

fn value(outcome: &Outcome, key: &str) -> String {
    outcome.kv.get(key).unwrap_or("-").to_string()
}

fn grid_row(ram: &str, page: &'static str, pgsz: Option<&str>, image: &Arc<Vec<u8>>) -> (Row, bool) {
    let name = format!("bench-ddw-{}-{}", ram.to_lowercase(), page.to_lowercase());
    let mut setup = Boot { memory: ram, backing: Backing::Default, pgsz, trace: true, append: None };
    let mut outcome = setup.run(&name, image);
    let mut note = String::new();
    if let Some(why) = ram_refused(&outcome) {
        // Beyond the host's commit limit: retry with RAM the host allocates only when touched.
        setup.backing = Backing::NoReserve;
        outcome = setup.run(&name, image);
        note = format!("reserve=off backing (default: {})", why.rsplit(": ").next().unwrap_or(&why));
    }
    let liobn = outcome.kv.get_hex("pe.0.ddw.liobn");
    let indirect_trace = match (liobn, outcome.parsed_trace().pci_indirects()) {
        (Some(liobn), Ok(calls)) => calls.iter().filter(|c| c.liobn == liobn).count().to_string(),
        (None, _) => "-".to_string(),
        (_, Err(why)) => format!("? ({why})"),
    };
    let mut row = Row {
        ram: ram.to_string(),
        page,
        mode: value(&outcome, "pe.0.ddw"),
        page_shift: value(&outcome, "pe.0.ddw.page_shift"),
        window_shift: value(&outcome, "pe.0.ddw.window_shift"),
        tces: value(&outcome, "pe.0.ddw.tces"),
        indirect_kernel: value(&outcome, "pe.0.ddw.indirect_calls"),
        indirect_trace,
        put_calls: value(&outcome, "pe.0.ddw.put_calls"),
        ddw_us: value(&outcome, "pe.0.ddw.us"),
        read_mbps: value(&outcome, "blk.0.read_mbps"),
        wall_s: outcome.wall.as_secs_f64(),
        note,
    };
    if passed(&outcome) {
        if row.indirect_kernel != row.indirect_trace {
            row.note = format!("kernel and QEMU disagree on the indirect calls; {}", row.note);
        }
        return (row, true);
    }
    if let Some(why) = ram_refused(&outcome) {
        row.note = format!("skipped: QEMU refused {ram}: {why}");
        return (row, true);
    }
    row.note = format!(
        "FAILED (exit {:?}, timed out {}), see {}",
        outcome.exit_code,
        outcome.timed_out,
        outcome.dir.display()
    );
    eprintln!("bench_ddw: {name} failed\n{}", outcome.context());
    (row, false)
}

/// Read MB/s over `runs` boots at 2G, direct DDW or `ddw=off`.
fn compare(label: &str, append: Option<&str>, runs: usize, image: &Arc<Vec<u8>>) -> Result<Vec<f64>, String> {
    let mut rates = Vec::new();
    for run in 1..=runs {
        let setup = Boot { memory: "2G", backing: Backing::Default, pgsz: None, trace: false, append };
        let outcome = setup.run(&format!("bench-ddw-compare-{label}"), image);
        let rate = outcome.kv.get("blk.0.read_mbps").and_then(|v| v.parse::<f64>().ok());
        match rate {
            Some(rate) if passed(&outcome) => rates.push(rate),
            _ => return Err(format!("{label} run {run} failed\n{}", outcome.context())),
        }
        if run == 1 {
            eprintln!("bench_ddw: {label}: blk.0.dma={}", value(&outcome, "blk.0.dma"));
        }
    }
    Ok(rates)
}

fn write_file(name: &str, text: &str) {
    let dir = workspace_root().join("out");
    let path = dir.join(name);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("bench_ddw: cannot write {}: {e}", path.display()),
    }
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("bench_ddw: {why}");
            return ExitCode::from(2);
        }
    };
    let kernel = tests::build::kernel_artifacts();
    println!("kernel: {}", kernel.elf.display());
    let image = Arc::new(disk::random_image(DISK_BYTES, 0xbe0c_0001));
    let rams: &[&str] = if options.quick { &RAM_QUICK } else { &RAM };
    println!(
        "part 1: VOF, 64 MiB virtio-blk (iommu_platform), RAM {} x IOMMU page {}, tracing indirect + ddw_*",
        rams.join("/"),
        PAGE_SIZES.map(|p| p.0).join("/")
    );

    let mut rows = Vec::new();
    let mut ok = true;
    for ram in rams {
        for (page, pgsz) in PAGE_SIZES {
            let (row, fine) = grid_row(ram, page, pgsz, &image);
            ok &= fine;
            eprintln!("bench_ddw: {ram} {page}: {} {:.1}s {}", row.mode, row.wall_s, row.note);
            rows.push(row);
        }
    }

    println!();
    println!(
        "{:>5} {:>5} {:>8} {:>5} {:>6} {:>9} {:>9} {:>9} {:>5} {:>9} {:>9} {:>7}  note",
        "ram",
        "page",
        "mode",
        "shift",
        "window",
        "TCEs",
        "indir(k)",
        "indir(q)",
        "puts",
        "ddw µs",
        "read MB/s",
        "wall s"
    );
    let mut csv = String::from(
        "ram,page_size,mode,page_shift,window_shift,tces,indirect_calls_kernel,indirect_calls_trace,\
         put_calls,ddw_us,read_mbps,wall_s,note\n",
    );
    for r in &rows {
        println!(
            "{:>5} {:>5} {:>8} {:>5} {:>6} {:>9} {:>9} {:>9} {:>5} {:>9} {:>9} {:>7.1}  {}",
            r.ram,
            r.page,
            r.mode,
            r.page_shift,
            r.window_shift,
            r.tces,
            r.indirect_kernel,
            r.indirect_trace,
            r.put_calls,
            r.ddw_us,
            r.read_mbps,
            r.wall_s,
            r.note
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{:.2},\"{}\"",
            r.ram,
            r.page,
            r.mode,
            r.page_shift,
            r.window_shift,
            r.tces,
            r.indirect_kernel,
            r.indirect_trace,
            r.put_calls,
            r.ddw_us,
            r.read_mbps,
            r.wall_s,
            r.note.replace('"', "'")
        );
    }
    write_file("bench-ddw.csv", &csv);

    println!();
    println!("part 2: virtio-blk read rate at 2G, {} runs each, no trace", options.runs);
    let mut results = Vec::new();
    for (label, append) in [("direct-ddw", None), ("ddw-off", Some("ddw=off"))] {
        match compare(label, append, options.runs, &image) {
            Ok(rates) => results.push((label, rates)),
            Err(why) => {
                eprintln!("bench_ddw: {why}");
                ok = false;
            }
        }
    }
    println!("{:<12} {:>10} {:>10} {:>10}", "DMA", "median", "min", "max");
    let mut compare_csv = String::from("dma,run,read_mbps\n");
    let mut medians = Vec::new();
    for (label, rates) in &results {
        for (i, rate) in rates.iter().enumerate() {
            let _ = writeln!(compare_csv, "{label},{},{rate}", i + 1);
        }
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        let med = median(&mut rates.clone());
        medians.push(med);
        println!("{label:<12} {med:>10.1} {min:>10.1} {max:>10.1}   MB/s");
    }
    if let [direct, off] = medians.as_slice() {
        println!("direct DDW / default window (ddw=off): {:.2}x", direct / off);
    }
    write_file("bench-ddw-compare.csv", &compare_csv);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
