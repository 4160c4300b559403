//! `./run.sh --kvm` / `./run.sh --vfio`: boots the default scenario (the disk given, `edu`) as
//! L2 under KVM-HV nested under TCG (`tests::kvm`), prints L2's console and what L1 (and, in
//! the VFIO lane, L0) saw, and exits with L2's QEMU status (2 when KVM-HV was unavailable or L2
//! never finished).
//!
//! - `--kvm` (the default): the KVM-HV lane, L2's devices emulated by L1's QEMU.
//! - `--vfio`: the VFIO lane, the disk and `edu` on L0's PHB, passed through L1 with VFIO; the
//!   disk is a copy (L2 writes scratch disks) checked on the host after L0 exits.
//!
//! Usage: `kvm_boot [--kvm|--vfio] --disk FILE [--append "ARGS"] [--memory SIZE] [--timeout SECONDS]`

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tests::kvm::{KvmScenario, Nesting, L0_DEFAULT_LIOBN};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut disk, mut append, mut memory, mut timeout) = (None, String::new(), None, 300u64);
    let mut nesting = Nesting::Kvm;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--kvm" => nesting = Nesting::Kvm,
            "--vfio" => nesting = Nesting::Vfio,
            "--disk" => disk = Some(value()),
            "--append" => append = value(),
            "--memory" => memory = Some(value()),
            "--timeout" => timeout = value().parse().unwrap_or_else(|_| usage("--timeout takes seconds")),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let disk = disk.unwrap_or_else(|| usage("--disk is required"));
    let image = Arc::new(std::fs::read(&disk).unwrap_or_else(|e| usage(&format!("cannot read {disk}: {e}"))));
    let lane = nesting.name();
    let scenario = match nesting {
        Nesting::Kvm => {
            eprintln!("kvm lane: L0 TCG (nested HV) -> L1 Debian Linux with kvm_hv -> L2 this kernel under -accel kvm");
            KvmScenario::new("kvm-run").memory("2G")
        }
        Nesting::Vfio => {
            eprintln!(
                "vfio lane: L0 TCG (nested HV) with the disk and edu on its PHB -> L1 Debian Linux 6.12 \
                 binding them to vfio-pci -> L2 this kernel under -accel kvm with -device vfio-pci"
            );
            KvmScenario::vfio("vfio-run")
        }
    };
    let mut scenario = scenario
        .append(&append)
        .edu()
        .scratch_disk(Arc::clone(&image))
        .trace(["spapr_iommu_ddw_*"])
        .timeout(Duration::from_secs(timeout));
    if let Some(memory) = &memory {
        scenario = scenario.memory(memory);
    }
    let outcome = scenario.run();
    print!("{}", outcome.l2.console);
    eprintln!();
    match outcome.kvm_available {
        Some(true) => eprintln!("{lane} lane: kvm_hv loaded in L1"),
        Some(false) => {
            eprintln!("{lane} lane: KVM-HV is unavailable in L1 (nested HV off?); L2 was not run");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{lane} lane: L1 never reported on KVM; L0 console in {}", outcome.l2.dir.display())
        }
    }
    for (key, value) in outcome.facts.iter().filter(|(k, _)| k.starts_with("vfio.")) {
        eprintln!("{lane} lane: L1: {key}={value}");
    }
    for line in outcome.l2.trace.lines() {
        eprintln!("{lane} lane: L1 QEMU trace: {line}");
    }
    if nesting == Nesting::Vfio {
        l0_summary(&outcome);
    }
    eprintln!(
        "{lane} lane: L0 wall time {:.1} s; files in {}",
        outcome.wall.as_secs_f64(),
        outcome.l2.dir.display()
    );
    match (outcome.l2.timed_out, outcome.l2.exit_code) {
        (true, _) => {
            eprintln!("{lane} lane: killed after {timeout} s");
            ExitCode::from(124)
        }
        (false, Some(0)) => {
            eprintln!("{lane} lane: L2's QEMU exited 0: the kernel powered off cleanly");
            ExitCode::SUCCESS
        }
        (false, Some(code)) => {
            eprintln!("{lane} lane: L2's QEMU exited {code}: the kernel reported a failure");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        (false, None) => ExitCode::from(2),
    }
}

/// What L0's own trace shows while L2 ran: DDW calls and TCE writes per window, and what
/// was left at the end.
fn l0_summary(outcome: &tests::kvm::KvmOutcome) {
    let Some((from, to)) = outcome.l2_span else {
        eprintln!("vfio lane: L2's QEMU never started");
        return;
    };
    let during = outcome.l0_trace().between(from, to);
    eprintln!("vfio lane: L0's trace while L2 ran ({:.1} s):", to - from);
    for event in during.events().iter().filter(|e| e.name.starts_with("spapr_iommu_ddw_")) {
        eprintln!("vfio lane:   {} {}", event.name, event.rest);
    }
    let mut liobns: Vec<u64> = during.pci_puts().unwrap_or_default().iter().map(|p| p.liobn).collect();
    liobns.sort_unstable();
    liobns.dedup();
    for liobn in liobns {
        let puts = during.pci_puts().unwrap_or_default();
        let on: Vec<_> = puts.iter().filter(|p| p.liobn == liobn).collect();
        let set = on.iter().filter(|p| p.tce != 0).count();
        let what = if liobn == L0_DEFAULT_LIOBN { " (L0's default window)" } else { "" };
        eprintln!(
            "vfio lane:   LIOBN {liobn:#x}{what}: {} H_PUT_TCE ({set} mapping, {} clearing)",
            on.len(),
            on.len() - set
        );
    }
    match outcome.l0_trace().ddw_windows_left() {
        Ok(left) if left.is_empty() => eprintln!("vfio lane: no DDW left on L0 when it stopped"),
        Ok(left) => eprintln!("vfio lane: DDWs left on L0 when it stopped: {:x?}", left),
        Err(e) => eprintln!("vfio lane: L0's trace: {e}"),
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "kvm_boot: {why}\nusage: kvm_boot [--kvm|--vfio] --disk FILE [--append ARGS] [--memory SIZE] [--timeout SECONDS]"
    );
    std::process::exit(64)
}
