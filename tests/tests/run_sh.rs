//! `run.sh` as a person uses it, without building anything: argument errors are reported
//! before any set-up or build, `help` prints a written usage, and a boot (with a stand-in QEMU
//! replaying a recorded console, `--kernel` naming a kernel so nothing is built) shows the
//! console's readable lines, then the summary, and leaves `report.kv`, `summary.txt` and
//! `dma-map.svg`. Stand-ins for `cargo`, `rustup` and `qemu-system-ppc64` on `PATH` record
//! every call, so a test can tell that none was made.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tests::kv::{parse_line, Kv};
use tests::summary::{self, Style};

/// A private directory with the stand-in tools and an output directory.
struct Sandbox {
    dir: PathBuf,
}

const RECORDER: &str =
    "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$FAKE_CALLS\"\nexit \"${FAKE_TOOL_EXIT:-0}\"\n";

/// Records its arguments, prints `$FAKE_CONSOLE` (the first `$FAKE_LINES` lines of it, if
/// set, then sleeps as a hung guest would) and exits with `$FAKE_EXIT`.
const QEMU: &str = "#!/bin/sh\necho \"qemu-system-ppc64 $*\" >> \"$FAKE_CALLS\"\n\
    printf '%s\\n' \"$@\" > \"$FAKE_QEMU_ARGS\"\n\
    if [ -n \"${FAKE_LINES:-}\" ]; then head -n \"$FAKE_LINES\" \"$FAKE_CONSOLE\"; exec sleep 30; fi\n\
    cat \"$FAKE_CONSOLE\"\nexit \"${FAKE_EXIT:-0}\"\n";

impl Sandbox {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("run-sh-{name}"));
        let _ = fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("sandbox directory");
        for (tool, script) in [("cargo", RECORDER), ("rustup", RECORDER), ("qemu-system-ppc64", QEMU)] {
            let path = bin.join(tool);
            fs::write(&path, script).expect("stand-in tool");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("executable");
        }
        fs::write(dir.join("kernel"), b"a stand-in ELF").expect("stand-in kernel");
        Self { dir }
    }

    fn elf(&self) -> String {
        self.dir.join("kernel").display().to_string()
    }

    fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    /// Every call made to a stand-in tool.
    fn calls(&self) -> String {
        fs::read_to_string(self.dir.join("calls")).unwrap_or_default()
    }

    /// QEMU's arguments, one per line.
    fn qemu_args(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("qemu-args"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
        let script = tests::build::workspace_root().join("run.sh");
        let path =
            format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(args)
            .env("PATH", path)
            .env("FAKE_CALLS", self.dir.join("calls"))
            .env("FAKE_QEMU_ARGS", self.dir.join("qemu-args"))
            .env("PSERIES_OUT", self.out())
            .env("PSERIES_REPORT_BIN", env!("CARGO_BIN_EXE_report"))
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let start = Instant::now();
        let output = command.output().expect("bash runs run.sh");
        (output, start.elapsed())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The 64 MiB generated disk is the only large file; the rest stays for diagnosis.
        let _ = fs::remove_file(self.out().join("disk.img"));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

#[test]
fn argument_errors_are_reported_before_any_set_up_or_build() {
    let sandbox = Sandbox::new("errors");
    let elf = sandbox.elf();
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown option '--bogus'"),
        (&["run", "--bogus"], "unknown option '--bogus'"),
        (&["--firmware", "nope"], "unknown firmware 'nope' (slof, vof or bios)"),
        (&["--firmware", "bios", "--append", "ddw=off"], "--append needs -kernel (slof or vof)"),
        (&["--memory"], "--memory needs a value"),
        (&["--memory", "lots"], "--memory takes a size"),
        (&["--smp", "two"], "--smp takes a number of CPUs, not 'two'"),
        (&["--timeout", "1.5"], "--timeout takes whole seconds"),
        (&["--kernel", "/nonexistent/kernel"], "--kernel /nonexistent/kernel: no such file"),
        (&["--kvm", "--cpu", "POWER9"], "--kvm takes only --append, --memory and --timeout, not --cpu"),
        (&["--vfio", "--gdb"], "--vfio takes only --append, --memory and --timeout, not --gdb"),
        (&["--vfio", "--kv"], "--vfio prints the L2 console as it is; --kv does not apply"),
        (&["--kernel", &elf, "--kv", "--bogus"], "unknown option '--bogus'"),
        (&["bench", "--bogus"], "unknown bench option '--bogus'"),
        (&["bench", "--runs", "0"], "--runs takes a positive number, not '0'"),
        (&["bench", "--runs"], "--runs needs a number"),
        (&["fuzz", "many"], "fuzz takes a number of executions, not 'many'"),
        (&["build", "now"], "build takes no arguments"),
        (&["frobnicate"], "unknown command 'frobnicate'"),
    ];
    for (args, expected) in cases {
        let (output, elapsed) = sandbox.run(args, &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "./run.sh {args:?} must fail with status 2: {stderr}");
        assert!(stderr.contains(&format!("run.sh: error: {expected}")), "./run.sh {args:?} said: {stderr}");
        assert!(stderr.contains("./run.sh help"), "the error points at the usage: {stderr}");
        assert!(output.stdout.is_empty(), "./run.sh {args:?} printed: {}", text(&output.stdout));
        assert_eq!(sandbox.calls(), "", "./run.sh {args:?} set up or built before checking its arguments");
        assert!(elapsed < Duration::from_secs(20), "./run.sh {args:?} took {elapsed:?}");
    }
}

#[test]
fn help_is_a_written_usage() {
    let sandbox = Sandbox::new("help");
    for args in [&["help"][..], &["-h"], &["--help"], &["--firmware", "vof", "--help"]] {
        let (output, _) = sandbox.run(args, &[]);
        assert!(output.status.success(), "./run.sh {args:?}: {}", text(&output.stderr));
        let usage = text(&output.stdout);
        assert!(usage.starts_with("Usage:\n"), "{usage}");
        for needle in
            ["./run.sh test", "./run.sh build", "--firmware slof|vof|bios", "--kv", "--gdb", "report.kv"]
        {
            assert!(usage.contains(needle), "{needle:?} missing from the usage:\n{usage}");
        }
        assert!(!usage.contains("set -euo pipefail") && !usage.contains("\n#"), "not the script's header");
        assert_eq!(sandbox.calls(), "", "help needs no set-up");
    }
}

#[test]
fn a_boot_shows_readable_lines_then_the_summary_and_leaves_its_files() {
    let sandbox = Sandbox::new("boot");
    let console = fixture("console-default-slof.txt");
    let (output, _) =
        sandbox.run(&["--kernel", &sandbox.elf()], &[("FAKE_CONSOLE", console.to_str().unwrap())]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(stdout.contains("== dma windows\r\n"), "the console's readable lines are shown:\n{stdout}");
    let report_line = stdout.lines().find(|l| parse_line(l).is_some());
    assert_eq!(report_line, None, "key=value lines are left to report.kv and the summary");
    let recorded = fs::read_to_string(&console).unwrap();
    let expected = summary::render(&recorded, Style::Plain);
    assert!(stdout.ends_with(&expected), "the summary comes last:\n{stdout}");
    assert!(stderr.contains("QEMU exited 0"), "{stderr}");
    let kv = fs::read_to_string(sandbox.out().join("report.kv")).expect("out/report.kv");
    assert_eq!(Kv::parse(&kv), Kv::parse(&recorded), "report.kv holds every key=value line");
    assert_eq!(fs::read_to_string(sandbox.out().join("summary.txt")).expect("summary.txt"), expected);
    let svg = fs::read_to_string(sandbox.out().join("dma-map.svg")).expect("dma-map.svg");
    assert!(svg.starts_with("<?xml") && svg.contains("data-kind=\"DDW\""), "{svg}");
    let args = sandbox.qemu_args();
    let after = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    assert_eq!(after("-kernel"), Some(sandbox.elf()), "{args:?}");
    assert_eq!(after("-m").as_deref(), Some("2G"));
    assert!(args.iter().any(|a| a == "edu"), "the default devices: {args:?}");
    assert!(!sandbox.calls().lines().any(|l| l.starts_with("cargo ")), "nothing built: {}", sandbox.calls());
}

#[test]
fn a_failing_boot_exits_with_qemus_status_and_says_why() {
    let sandbox = Sandbox::new("failing");
    let console = fixture("console-bridge-vof-failing.txt");
    let env = [("FAKE_CONSOLE", console.to_str().unwrap()), ("FAKE_EXIT", "1")];
    let (output, _) = sandbox.run(&["--firmware", "vof", "--kernel", &sandbox.elf()], &env);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("blk.1.status: BAR 1 at bus address 0x0+0x1000 is outside the PHB's memory windows")
    );
    assert!(stdout.contains("  - selftest.status=fail"), "{stdout}");
    assert!(stderr.contains("QEMU exited 1"), "{stderr}");
    assert!(sandbox.qemu_args().iter().any(|a| a.ends_with(",x-vof=on")));
}

#[test]
fn kv_prints_the_console_whole() {
    let sandbox = Sandbox::new("kv");
    let console = fixture("console-default-slof.txt");
    let (output, _) =
        sandbox.run(&["--kv", "--kernel", &sandbox.elf()], &[("FAKE_CONSOLE", console.to_str().unwrap())]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let recorded = fs::read_to_string(&console).unwrap();
    assert_eq!(Kv::parse(&stdout), Kv::parse(&recorded), "every key=value line, in order");
    assert!(!stdout.contains("failures: none"), "no summary with --kv");
    assert!(sandbox.out().join("summary.txt").is_file(), "the summary is still written");
}

#[test]
fn gdb_prints_the_command_to_attach_with_the_elf() {
    let sandbox = Sandbox::new("gdb");
    let console = fixture("console-default-slof.txt");
    let (output, _) =
        sandbox.run(&["--gdb", "--kernel", &sandbox.elf()], &[("FAKE_CONSOLE", console.to_str().unwrap())]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let command = format!("gdb-multiarch -ex 'target remote :1234' {}", sandbox.elf());
    assert!(stderr.contains(&command), "{command:?} missing: {stderr}");
    let args = sandbox.qemu_args();
    assert!(args.iter().any(|a| a == "-s") && args.iter().any(|a| a == "-S"), "{args:?}");
}

#[test]
fn a_hung_guest_is_killed_and_the_summary_says_the_report_was_cut() {
    let sandbox = Sandbox::new("hung");
    let console = fixture("console-default-slof.txt");
    let env = [("FAKE_CONSOLE", console.to_str().unwrap()), ("FAKE_LINES", "120")];
    let (output, elapsed) = sandbox.run(&["--timeout", "2", "--kernel", &sandbox.elf()], &env);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(elapsed < Duration::from_secs(25), "killed after the timeout, not after the stand-in's sleep");
    assert!(stdout.contains("exit.status: never printed"), "{stdout}");
    assert!(stderr.contains("the guest hung: killed after 2s"), "{stderr}");
}
