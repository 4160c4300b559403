//! `bench_boot [--runs N]`: boot time per firmware path (a benchmark, not a test).
//!
//! Boots the kernel with the default devices (virtio-blk + edu, 512M, no trace) under VOF,
//! SLOF and `-bios`, N times each (default 5), and prints min/median/max of the wall time from
//! spawning QEMU to its exit, the median ratio VOF/SLOF, and the kernel's own `boot.ticks`
//! (entry to power-off, in timebase ticks) converted with `cpu.timebase_hz`. Uses the kernel
//! from `PSERIES_KERNEL_ELF`/`PSERIES_KERNEL_BIOS`, or builds it.

use std::process::ExitCode;
use std::time::Duration;
use tests::qemu::{Firmware, Scenario};

const ORDER: [Firmware; 3] = [Firmware::Vof, Firmware::Slof, Firmware::Bios];

struct Samples {
    firmware: Firmware,
    wall: Vec<Duration>,
    kernel: Vec<Duration>,
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

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn run_one(firmware: Firmware, run: usize) -> Result<(Duration, Duration), String> {
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
    let hz = outcome.kv.get_u64("cpu.timebase_hz").filter(|&hz| hz > 0);
    let (Some(ticks), Some(hz)) = (ticks, hz) else {
        return Err(format!(
            "{} run {run}: boot.ticks={:?} cpu.timebase_hz={:?}",
            firmware.name(),
            outcome.kv.get("boot.ticks"),
            outcome.kv.get("cpu.timebase_hz")
        ));
    };
    Ok((outcome.wall, Duration::from_secs_f64(ticks as f64 / hz as f64)))
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
        let mut samples = Samples { firmware, wall: Vec::new(), kernel: Vec::new() };
        for run in 1..=runs {
            match run_one(firmware, run) {
                Ok((wall, kernel)) => {
                    samples.wall.push(wall);
                    samples.kernel.push(kernel);
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
    println!("wall time, QEMU spawn to exit (ms)        kernel entry to power-off (boot.ticks, ms)");
    println!(
        "{:<9}{:>10}{:>10}{:>10}     {:>10}{:>10}{:>10}",
        "firmware", "min", "median", "max", "min", "median", "max"
    );
    for s in &all {
        let min_max = |v: &[Duration]| {
            (*v.iter().min().unwrap_or(&Duration::ZERO), *v.iter().max().unwrap_or(&Duration::ZERO))
        };
        let (wmin, wmax) = min_max(&s.wall);
        let (kmin, kmax) = min_max(&s.kernel);
        println!(
            "{:<9}{:>10}{:>10}{:>10}     {:>10}{:>10}{:>10}",
            s.firmware.name(),
            ms(wmin),
            ms(median(&s.wall)),
            ms(wmax),
            ms(kmin),
            ms(median(&s.kernel)),
            ms(kmax)
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
