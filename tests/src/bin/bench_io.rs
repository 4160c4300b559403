//! `bench_io [--runs N] [--quick]`: sequential I/O through the DMA windows, this kernel
//! against Debian's ppc64el Linux on the same QEMU (a benchmark that prints figures, not a
//! test).
//!
//! For virtio-blk (`iommu_platform=on`) and NVMe (QEMU's `nvme`), each with (a) the direct
//! DDW and (b) the default window (`ddw=off` here, `disable_ddw` for Linux), it boots (VOF,
//! 2 GiB, one CPU) this kernel with `bench=io` and Linux with a small initramfs (busybox, GNU
//! `dd` with its libc, the virtio/NVMe modules, an `/init` that runs the same phases with
//! `dd … iflag=direct` / `oflag=direct`), both over a copy of the same 256 MiB scratch image. The phases come from
//! `drivers::selftest::bench` (reads from offset 0, writes in the second half, 4 KiB, 128 KiB
//! and 1 MiB requests, queue depth 1 and the deepest the kernel's driver keeps: 64 for NVMe,
//! 16 for virtio-blk; Linux reaches that depth with as many `dd` processes on consecutive
//! ranges). Every phase is timed on the host, for both kernels alike, from the console line
//! that starts it to the one that ends it (lines are time-stamped as they arrive), and QEMU's
//! trace (`spapr_iommu_pci_*` with `-msg timestamp=on`) gives the TCE hypercalls (H_PUT_TCE,
//! H_PUT_TCE_INDIRECT, H_STUFF_TCE) made inside each phase, per MiB moved. N runs (default 3,
//! `--quick` 1) of every boot; the table shows medians, with the ratios this kernel / Linux
//! and direct / default window. Also written to `out/bench-io.csv`.
//!
//! Linux and its modules come from the KVM lane's cache (`tests/kvm/setup.sh`, fetched once).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use drivers::selftest::bench::{phases, Phase, BLK_DEEPEST, NVME_DEEPEST};
use tests::bench::median;
use tests::build::{kernel_artifacts, target_dir, workspace_root};
use tests::disk;
use tests::kvm::{lane, Cpio, Nesting};
use tests::qemu::{Scenario, MACHINE};

const DISK_BYTES: usize = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(600);
/// The modules Linux needs for virtio-blk and NVMe, in load order (their `depends=`).
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "crypto/crct10dif_common",
    "crypto/crct10dif_generic",
    "lib/crc-t10dif",
    "lib/crc64",
    "lib/crc64-rocksoft",
    "crypto/crc64_rocksoft_generic",
    "block/t10-pi",
    "drivers/nvme/host/nvme-core",
    "drivers/nvme/host/nvme",
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Device {
    Blk,
    Nvme,
}

impl Device {
    fn name(self) -> &'static str {
        match self {
            Device::Blk => "virtio-blk",
            Device::Nvme => "nvme",
        }
    }
    /// The report's device prefix (`bench.<dev>.…`), the same for both kernels.
    fn dev(self) -> &'static str {
        match self {
            Device::Blk => "blk.0",
            Device::Nvme => "nvme.0",
        }
    }
    fn qemu_device(self) -> &'static str {
        match self {
            Device::Blk => "virtio-blk-pci,drive=d0,disable-legacy=on,iommu_platform=on",
            Device::Nvme => "nvme,serial=bench-io,drive=d0",
        }
    }
    fn deepest(self) -> u64 {
        match self {
            Device::Blk => BLK_DEEPEST,
            Device::Nvme => NVME_DEEPEST,
        }
    }
    fn linux_node(self) -> &'static str {
        match self {
            Device::Blk => "/dev/vda",
            Device::Nvme => "/dev/nvme0n1",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Os {
    This,
    Linux,
}

/// One phase's figures from one boot.
#[derive(Clone, Copy, Debug)]
struct Figure {
    mbps: f64,
    reqs: f64,
    tce_per_mib: f64,
}

/// The Linux kernel and an initramfs base (busybox, GNU `dd` with the C library it links, and
/// the modules), from the KVM lane's cache.
struct Linux {
    vmlinux: PathBuf,
    busybox: Vec<u8>,
    /// `(path in the initramfs, contents)`: GNU coreutils' `dd`, `ld64.so.2`, `libc.so.6`.
    /// With busybox 1.35's `dd … iflag=direct` Linux read the "4 KiB" phase as 128 KiB
    /// read-ahead requests through the page cache (QEMU's `virtio_blk_handle_read` trace: 256
    /// requests of 256 sectors for 32 MiB), so O_DIRECT was not in effect — busybox reads into
    /// a buffer that is not page-aligned, which O_DIRECT needs. GNU `dd` aligns its buffer
    /// (coreutils src/dd.c, `alignalloc`): each `dd` request is one device request of the
    /// phase's size (8192 of 8 sectors), as this kernel's are.
    dd: Vec<(String, Vec<u8>)>,
    modules: Vec<(String, Vec<u8>)>,
}

/// Unpacks the package of `archives` whose file name starts with `prefix` into `into` (once).
fn unpack(archives: &Path, prefix: &str, into: &Path) -> Result<(), String> {
    if into.is_dir() {
        return Ok(());
    }
    let deb = fs::read_dir(archives)
        .map_err(|e| format!("{}: {e}", archives.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .ok_or_else(|| format!("no {prefix}* package in {}", archives.display()))?;
    fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(into)
        .status()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed: {status}", deb.display()));
    }
    Ok(())
}

fn linux() -> Result<Linux, String> {
    let lane = lane(Nesting::Kvm)?;
    let cache = lane.vmlinux.parent().ok_or("the lane's vmlinux has no directory")?;
    let version = fs::read_to_string(cache.join("kernel-version"))
        .map_err(|e| format!("{}: {e}", cache.join("kernel-version").display()))?;
    let version = version.trim();
    let busybox = fs::read(cache.join("l1root/bin/busybox")).map_err(|e| format!("busybox: {e}"))?;
    // The modules: unpacked once from the linux-image package apt left in the lane's cache.
    let unpacked = target_dir().join("bench-io/linux-image");
    let kernel_dir = unpacked.join("lib/modules").join(version).join("kernel");
    let archives = cache.join("apt/archives");
    unpack(&archives, &format!("linux-image-{version}_"), &unpacked)?;
    let coreutils = target_dir().join("bench-io/coreutils");
    unpack(&archives, "coreutils_", &coreutils)?;
    let read = |path: PathBuf| fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
    let dd = vec![
        (String::from("bin/dd"), read(coreutils.join("bin/dd"))?),
        (String::from("lib64/ld64.so.2"), read(cache.join("l1root/lib64/ld64.so.2"))?),
        (
            String::from("lib/powerpc64le-linux-gnu/libc.so.6"),
            read(cache.join("l1root/lib/powerpc64le-linux-gnu/libc.so.6"))?,
        ),
    ];
    let mut modules = Vec::new();
    for m in MODULES {
        let path = kernel_dir.join(format!("{m}.ko"));
        let name = m.rsplit('/').next().unwrap_or(m).to_string();
        modules.push((name, fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?));
    }
    Ok(Linux { vmlinux: lane.vmlinux.clone(), busybox, dd, modules })
}

/// `/init` for Linux: load the modules, wait for the disk, run every phase with `dd`.
fn linux_init(device: Device, plan: &[Phase]) -> String {
    let dev = device.dev();
    let node = device.linux_node();
    let mut s = String::from(
        "#!/bin/busybox sh\nbb=/bin/busybox\n$bb mkdir -p /proc /sys /dev\n$bb mount -t proc proc /proc\n\
         $bb mount -t sysfs sysfs /sys\n$bb mount -t devtmpfs devtmpfs /dev\n",
    );
    let names: Vec<&str> = MODULES.iter().map(|m| m.rsplit('/').next().unwrap_or(m)).collect();
    let _ = writeln!(
        s,
        "for m in {}; do $bb insmod /lib/modules/$m.ko || echo \"bench.{dev}.status=insmod $m failed\"; done",
        names.join(" ")
    );
    let _ =
        writeln!(s, "n=0; while [ ! -b {node} ] && [ $n -lt 100 ]; do $bb usleep 100000; n=$((n+1)); done");
    let _ = writeln!(s, "[ -b {node} ] || echo \"bench.{dev}.status=no {node}\"");
    for phase in plan {
        let label = phase.label();
        let streams = phase.depth.min(phase.requests()).max(1);
        let per = phase.requests() / streams;
        let (dir, flag) = if phase.write {
            ("if=/dev/zero of", "oflag=direct conv=notrunc")
        } else {
            ("of=/dev/null if", "iflag=direct")
        };
        let skip = if phase.write { "seek" } else { "skip" };
        let _ = writeln!(s, "echo bench.{dev}.begin={label}");
        for k in 0..streams {
            let first = phase.offset / phase.size + k * per;
            let count = if k + 1 == streams { phase.requests() - k * per } else { per };
            let background = if streams > 1 { " &" } else { "" };
            let _ = writeln!(
                s,
                "( /bin/dd {dir}={node} bs={} count={count} {skip}={first} {flag} 2>/dev/null || echo \"bench.{dev}.status=dd failed in {label}\" ){background}",
                phase.size
            );
        }
        if streams > 1 {
            s.push_str("wait\n");
        }
        let _ = writeln!(s, "echo bench.{dev}.{label}=bytes={},requests={}", phase.bytes, phase.requests());
        s.push_str("$bb usleep 30000\n");
    }
    let _ = writeln!(s, "echo bench.{dev}.done=1\n$bb poweroff -f");
    s
}

/// One boot's console lines, each with the host time it arrived (seconds since the epoch).
fn boot(args: &[String], dir: &Path) -> Result<Vec<(f64, String)>, String> {
    let qemu = Scenario::qemu_binary();
    tests::qemu::record_command(&qemu, args, dir);
    let mut child = Command::new(&qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let now =
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            lines.push((now, String::from_utf8_lossy(&line).trim_end_matches('\r').to_string()));
        }
        lines
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "QEMU did not finish within {} s (logs in {})",
                TIMEOUT.as_secs(),
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = reader.join().map_err(|_| "the console reader panicked")?;
    let console: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let _ = fs::write(dir.join("console.log"), &console);
    if !status.success() {
        return Err(format!("QEMU exited with {status}; console in {}", dir.join("console.log").display()));
    }
    Ok(lines)
}

/// Timestamps of the TCE-writing hcalls in QEMU's trace (`pid@sec.usec:event …`).
fn tce_times(trace: &str) -> Vec<f64> {
    trace
        .lines()
        .filter_map(|line| {
            let (stamp, event) = line.split_once(':')?;
            let name = event.split_whitespace().next()?;
            matches!(name, "spapr_iommu_pci_put" | "spapr_iommu_pci_indirect" | "spapr_iommu_pci_stuff")
                .then(|| stamp.split_once('@')?.1.parse::<f64>().ok())
                .flatten()
        })
        .collect()
}

/// The figures of every phase of one boot, from its console and trace.
fn figures(device: Device, lines: &[(f64, String)], trace: &str) -> Result<BTreeMap<String, Figure>, String> {
    let dev = device.dev();
    let tce = tce_times(trace);
    let mut begins: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (at, line) in lines {
        let Some((key, value)) = line.split_once('=') else { continue };
        let Some(rest) = key.strip_prefix(&format!("bench.{dev}.")) else { continue };
        if rest == "begin" {
            begins.insert(value.to_string(), *at);
        } else if rest == "status" && value != "ok" {
            return Err(format!("{key}={value}"));
        } else if let Some(&begin) = begins.get(rest) {
            let field = |name: &str| {
                value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let (Some(bytes), Some(requests)) = (field("bytes"), field("requests")) else { continue };
            let seconds = (at - begin).max(1e-6);
            let hcalls = tce.iter().filter(|&&t| t >= begin && t <= *at).count() as f64;
            out.insert(
                rest.to_string(),
                Figure {
                    mbps: bytes / seconds / 1e6,
                    reqs: requests / seconds,
                    tce_per_mib: hcalls / (bytes / (1 << 20) as f64),
                },
            );
        }
    }
    Ok(out)
}

fn run_one(
    device: Device,
    os: Os,
    direct: bool,
    run: usize,
    image: &[u8],
    linux: &Linux,
    plan: &[Phase],
) -> Result<BTreeMap<String, Figure>, String> {
    let name = format!(
        "{}-{}-{}-{run}",
        device.name(),
        if os == Os::This { "this" } else { "linux" },
        if direct { "direct" } else { "default" }
    );
    let dir = target_dir().join("bench-io").join(&name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let disk = dir.join("disk.img");
    fs::write(&disk, image).map_err(|e| format!("{}: {e}", disk.display()))?;
    let trace = dir.join("trace.log");
    let mut args: Vec<String> = [
        "-M",
        &format!("{MACHINE},x-vof=on"),
        "-m",
        "2G",
        "-nodefaults",
        "-nographic",
        "-serial",
        "mon:stdio",
        "-no-reboot",
        "-msg",
        "timestamp=on",
        "-trace",
        "spapr_iommu_pci_*",
        "-D",
        &trace.display().to_string(),
        "-drive",
        &format!("file={},if=none,id=d0,format=raw", disk.display()),
        "-device",
        device.qemu_device(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match os {
        Os::This => {
            args.extend(["-kernel".into(), kernel_artifacts().elf.display().to_string()]);
            args.extend(["-append".into(), if direct { "bench=io" } else { "bench=io ddw=off" }.into()]);
        }
        Os::Linux => {
            let mut cpio = Cpio::default();
            cpio.dir("bin");
            cpio.file("bin/busybox", &linux.busybox, true);
            cpio.dir("lib");
            cpio.dir("lib64");
            cpio.dir("lib/powerpc64le-linux-gnu");
            for (path, bytes) in &linux.dd {
                cpio.file(path, bytes, true);
            }
            cpio.dir("lib/modules");
            for (module, bytes) in &linux.modules {
                cpio.file(&format!("lib/modules/{module}.ko"), bytes, false);
            }
            cpio.file("init", linux_init(device, plan).as_bytes(), true);
            let initrd = dir.join("initrd.cpio");
            fs::write(&initrd, cpio.finish()).map_err(|e| format!("{}: {e}", initrd.display()))?;
            args.extend(["-kernel".into(), linux.vmlinux.display().to_string()]);
            args.extend(["-initrd".into(), initrd.display().to_string()]);
            let append = if direct {
                "console=hvc0 quiet rdinit=/init"
            } else {
                "console=hvc0 quiet rdinit=/init disable_ddw"
            };
            args.extend(["-append".into(), append.into()]);
        }
    }
    eprintln!("bench io: {name}");
    let lines = boot(&args, &dir)?;
    let trace = fs::read_to_string(&trace).unwrap_or_default();
    let figures = figures(device, &lines, &trace)?;
    if figures.len() != plan.len() {
        return Err(format!(
            "{name}: {} of {} phases reported (console in {})",
            figures.len(),
            plan.len(),
            dir.join("console.log").display()
        ));
    }
    Ok(figures)
}

fn main() -> ExitCode {
    let options = match tests::bench::parse_options("bench_io", 3, std::env::args().skip(1)) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("bench_io: {why}");
            return ExitCode::from(2);
        }
    };
    // --quick: one run of each boot.
    let runs = if options.quick { 1 } else { options.runs };
    let linux = match linux() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("bench_io: Linux for the comparison could not be set up: {why}");
            return ExitCode::FAILURE;
        }
    };
    let image = disk::scratch_image(DISK_BYTES, 0xbe7c_0001);
    // (device, os, direct) → phase → figures of each run.
    let mut all: BTreeMap<(Device, Os, bool), BTreeMap<String, Vec<Figure>>> = BTreeMap::new();
    let mut plans = BTreeMap::new();
    let started = Instant::now();
    for device in [Device::Blk, Device::Nvme] {
        let plan = phases(DISK_BYTES as u64, true, device.deepest());
        for run in 1..=runs {
            for os in [Os::This, Os::Linux] {
                for direct in [true, false] {
                    match run_one(device, os, direct, run, &image, &linux, &plan) {
                        Ok(figures) => {
                            let slot = all.entry((device, os, direct)).or_default();
                            for (label, figure) in figures {
                                slot.entry(label).or_default().push(figure);
                            }
                        }
                        Err(why) => {
                            eprintln!("bench_io: {why}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
        }
        plans.insert(device, plan);
    }
    let med = |device, os, direct, label: &str, pick: fn(&Figure) -> f64| -> f64 {
        let mut values: Vec<f64> = all
            .get(&(device, os, direct))
            .and_then(|m| m.get(label))
            .map(|v| v.iter().map(pick).collect())
            .unwrap_or_default();
        median(&mut values)
    };
    println!(
        "bench io: sequential I/O, medians of {} run(s) per boot; MB/s = 10^6 bytes/s timed on the host; TCE/MiB = \
         TCE hcalls QEMU traced inside the phase per MiB moved",
        runs
    );
    println!(
        "| device | phase | this direct MB/s | req/s | TCE/MiB | this ddw=off MB/s | TCE/MiB | Linux direct MB/s | \
         req/s | TCE/MiB | Linux disable_ddw MB/s | TCE/MiB | this/Linux direct | this/Linux default | direct/default this \
         | direct/default Linux |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut csv = String::from("device,phase,os,window,run,mbps,requests_per_s,tce_per_mib\n");
    for ((device, os, direct), phases) in &all {
        for (label, figures) in phases {
            for (run, f) in figures.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "{},{label},{},{},{},{:.1},{:.0},{:.3}",
                    device.name(),
                    if *os == Os::This { "this" } else { "linux" },
                    if *direct { "direct" } else { "default" },
                    run + 1,
                    f.mbps,
                    f.reqs,
                    f.tce_per_mib
                );
            }
        }
    }
    for (device, plan) in &plans {
        for phase in plan {
            let label = phase.label();
            let mb = |os, direct| med(*device, os, direct, &label, |f| f.mbps);
            let rq = |os, direct| med(*device, os, direct, &label, |f| f.reqs);
            let tce = |os, direct| med(*device, os, direct, &label, |f| f.tce_per_mib);
            println!(
                "| {} | {label} | {:.1} | {:.0} | {:.2} | {:.1} | {:.2} | {:.1} | {:.0} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                device.name(),
                mb(Os::This, true),
                rq(Os::This, true),
                tce(Os::This, true),
                mb(Os::This, false),
                tce(Os::This, false),
                mb(Os::Linux, true),
                rq(Os::Linux, true),
                tce(Os::Linux, true),
                mb(Os::Linux, false),
                tce(Os::Linux, false),
                mb(Os::This, true) / mb(Os::Linux, true),
                mb(Os::This, false) / mb(Os::Linux, false),
                mb(Os::This, true) / mb(Os::This, false),
                mb(Os::Linux, true) / mb(Os::Linux, false),
            );
        }
    }
    let reads: Vec<f64> = plans
        .iter()
        .flat_map(|(device, plan)| {
            plan.iter()
                .filter(|p| !p.write)
                .map(|p| {
                    med(*device, Os::This, true, &p.label(), |f| f.mbps)
                        / med(*device, Os::Linux, true, &p.label(), |f| f.mbps)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let worst = reads.iter().copied().fold(f64::INFINITY, f64::min);
    let direct_tce: f64 = plans
        .iter()
        .flat_map(|(device, plan)| {
            plan.iter()
                .map(|p| med(*device, Os::This, true, &p.label(), |f| f.tce_per_mib))
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max);
    println!(
        "this kernel / Linux, sequential reads through the direct DDW: lowest ratio {worst:.2} over {} phases; most TCE \
         hcalls per MiB in a direct phase of this kernel: {direct_tce:.2}",
        reads.len()
    );
    println!("({} boots in {:.0} s)", all.len() * runs, started.elapsed().as_secs_f64());
    let out = workspace_root().join("out");
    let _ = fs::create_dir_all(&out);
    match fs::write(out.join("bench-io.csv"), csv) {
        Ok(()) => println!("per-run figures: {}", out.join("bench-io.csv").display()),
        Err(e) => eprintln!("bench_io: cannot write out/bench-io.csv: {e}"),
    }
    ExitCode::SUCCESS
}
