//! `bench_boot [--runs N]`: boot time per firmware path (a benchmark, not a test).
//!
//! Boots the kernel with the default devices (virtio-blk + edu, 512M, no trace) under VOF,
//! SLOF and `-bios`, N times each (default 5), and prints min/median/max of the wall time from
//! spawning QEMU to its exit, the median ratio VOF/SLOF, and the kernel's own timeline in
//! timebase ticks converted with `cpu.timebase_hz`: entry → DMA ready (`boot.t.dma`: every
//! PE's windows set up) next to entry → power-off (`boot.ticks`). Uses the kernel from
//! `PSERIES_KERNEL_ELF`/`PSERIES_KERNEL_BIOS`, or builds it.

use std::process::ExitCode;
use std::time::Duration;
use tests::qemu::{Firmware, Scenario};

const ORDER: [Firmware; 3] = [Firmware::Vof, Firmware::Slof, Firmware::Bios];

struct Samples {
    firmware: Firmware,
    wall: Vec<Duration>,
    dma_ready: Vec<Duration>,
    kernel: Vec<Duration>,
}

/// One boot's times: wall, entry → DMA ready, entry → power-off.
struct Times {
    wall: Duration,
    dma_ready: Duration,
    kernel: Duration,
}

fn parse_runs() -> Result<usize, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(5),
        [flag, n] if flag == "--runs" => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--runs needs a positive number, got {n:?}")),
        },
        _ => Err("usage: bench_boot [--runs N]".to_string()),
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn min_median_max(values: &[Duration]) -> String {
    let min = values.iter().min().copied().unwrap_or_default();
    let max = values.iter().max().copied().unwrap_or_default();
    format!("{} / {} / {}", ms(min), ms(median(values)), ms(max))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn run_one(firmware: Firmware, run: usize) -> Result<Times, String> {
    let outcome = Scenario::new(&format!("bench-{}", firmware.name()), firmware)
        .default_devices()
        .trace(Vec::<String>::new())
        .run();
    let ok =
        !outcome.timed_out && outcome.exit_code == Some(0) && outcome.kv.get("exit.status") == Some("ok");
    if !ok {
        return Err(format!("{} run {run} failed\n{}", firmware.name(), outcome.context()));
    }
    let ticks = outcome.kv.get_u64("boot.ticks");
    let dma = outcome.kv.get_u64("boot.t.dma");
    let hz = outcome.kv.get_u64("cpu.timebase_hz").filter(|&hz| hz > 0);
    let (Some(ticks), Some(dma), Some(hz)) = (ticks, dma, hz) else {
        return Err(format!(
            "{} run {run}: the kernel did not report its timeline: boot.ticks={:?} boot.t.dma={:?} \
             cpu.timebase_hz={:?}",
            firmware.name(),
            outcome.kv.get("boot.ticks"),
            outcome.kv.get("boot.t.dma"),
            outcome.kv.get("cpu.timebase_hz")
        ));
    };
    let seconds = |ticks: u64| Duration::from_secs_f64(ticks as f64 / hz as f64);
    Ok(Times { wall: outcome.wall, dma_ready: seconds(dma), kernel: seconds(ticks) })
}

fn main() -> ExitCode {
    let runs = match parse_runs() {
        Ok(runs) => runs,
        Err(why) => {
            eprintln!("bench_boot: {why}");
            return ExitCode::from(2);
        }
    };
    let kernel = tests::build::kernel_artifacts();
    println!("kernel: {}", kernel.elf.display());
    println!("bios image: {}", kernel.bios.display());
    println!("runs per firmware: {runs} (default devices, 512M, no trace)");
    let mut all = Vec::new();
    for firmware in ORDER {
        let mut samples = Samples { firmware, wall: Vec::new(), dma_ready: Vec::new(), kernel: Vec::new() };
        for run in 1..=runs {
            match run_one(firmware, run) {
                Ok(times) => {
                    samples.wall.push(times.wall);
                    samples.dma_ready.push(times.dma_ready);
                    samples.kernel.push(times.kernel);
                }
                Err(why) => {
                    eprintln!("bench_boot: {why}");
                    return ExitCode::FAILURE;
                }
            }
        }
        all.push(samples);
    }

    println!();
    println!("times in ms: min / median / max");
    println!(
        "{:<9}{:>27}{:>27}{:>27}",
        "firmware", "wall: QEMU spawn to exit", "entry → DMA ready", "entry → power-off"
    );
    println!("{:<9}{:>27}{:>27}{:>27}", "", "", "(boot.t.dma)", "(boot.ticks)");
    for s in &all {
        println!(
            "{:<9}{:>27}{:>27}{:>27}",
            s.firmware.name(),
            min_median_max(&s.wall),
            min_median_max(&s.dma_ready),
            min_median_max(&s.kernel)
        );
    }
    let med =
        |f: Firmware| all.iter().find(|s| s.firmware == f).map(|s| median(&s.wall)).unwrap_or(Duration::ZERO);
    let (vof, slof, bios) = (med(Firmware::Vof), med(Firmware::Slof), med(Firmware::Bios));
    println!();
    println!(
        "median wall ratio VOF/SLOF: {:.3} (SLOF takes {:.1}x as long)",
        vof.as_secs_f64() / slof.as_secs_f64(),
        slof.as_secs_f64() / vof.as_secs_f64()
    );
    println!("median wall ratio bios/SLOF: {:.3}", bios.as_secs_f64() / slof.as_secs_f64());
    ExitCode::SUCCESS
}
