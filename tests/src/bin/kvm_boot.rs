//! `./run.sh --kvm`: boots the default scenario (the disk given, `edu`) as L2 under KVM-HV
//! nested under TCG (the KVM lane, `tests::kvm`), prints L2's console and what L1 saw, and
//! exits with L2's QEMU status (2 when KVM-HV was unavailable or L2 never finished).
//!
//! Usage: `kvm_boot --disk FILE [--append "ARGS"] [--memory SIZE] [--timeout SECONDS]`

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tests::kvm::KvmScenario;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut disk, mut append, mut memory, mut timeout) = (None, String::new(), "2G".to_string(), 300u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--disk" => disk = Some(value()),
            "--append" => append = value(),
            "--memory" => memory = value(),
            "--timeout" => timeout = value().parse().unwrap_or_else(|_| usage("--timeout takes seconds")),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let disk = disk.unwrap_or_else(|| usage("--disk is required"));
    let image = std::fs::read(&disk).unwrap_or_else(|e| usage(&format!("cannot read {disk}: {e}")));
    eprintln!(
        "kvm lane: L0 TCG (nested HV) -> L1 Debian Linux with kvm_hv -> L2 this kernel under -accel kvm"
    );
    let outcome = KvmScenario::new("kvm-run")
        .memory(&memory)
        .append(&append)
        .edu()
        .scratch_disk(Arc::new(image))
        .trace(["spapr_iommu_ddw_*"])
        .timeout(Duration::from_secs(timeout))
        .run();
    print!("{}", outcome.l2.console);
    eprintln!();
    match outcome.kvm_available {
        Some(true) => eprintln!("kvm lane: kvm_hv loaded in L1"),
        Some(false) => {
            eprintln!("kvm lane: KVM-HV is unavailable in L1 (nested HV off?); L2 was not run");
            return ExitCode::from(2);
        }
        None => eprintln!("kvm lane: L1 never reported on KVM; L0 console in {}", outcome.l2.dir.display()),
    }
    for line in outcome.l2.trace.lines() {
        eprintln!("kvm lane: L1 QEMU trace: {line}");
    }
    eprintln!(
        "kvm lane: L0 wall time {:.1} s; files in {}",
        outcome.wall.as_secs_f64(),
        outcome.l2.dir.display()
    );
    match (outcome.l2.timed_out, outcome.l2.exit_code) {
        (true, _) => {
            eprintln!("kvm lane: killed after {timeout} s");
            ExitCode::from(124)
        }
        (false, Some(0)) => {
            eprintln!("kvm lane: L2's QEMU exited 0: the kernel powered off cleanly");
            ExitCode::SUCCESS
        }
        (false, Some(code)) => {
            eprintln!("kvm lane: L2's QEMU exited {code}: the kernel reported a failure");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        (false, None) => ExitCode::from(2),
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "kvm_boot: {why}\nusage: kvm_boot --disk FILE [--append ARGS] [--memory SIZE] [--timeout SECONDS]"
    );
    std::process::exit(64)
}
