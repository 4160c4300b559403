//! Booting the kernel under QEMU `pseries`: one [`Scenario`] per boot, one [`Outcome`] back.
//!
//! Every scenario has its own directory `target/qemu-tests/<name>/` holding `console.log`
//! (QEMU's stdout and stderr, in order), `trace.log` (QEMU's `-trace` output), `command.txt`
//! (the command line, for reproducing by hand) and any disk images. Names must be unique among
//! scenarios running at the same time; the harness panics on a clash.

use crate::build::{kernel_artifacts, target_dir, Artifacts};
use crate::kv::Kv;
use crate::trace::Trace;
use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `-M` for every boot: pseries with the speculation capabilities TCG cannot provide, and
/// 16 MiB hash pages allowed (the kernel maps itself with them on POWER8).
pub const MACHINE: &str =
    "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off,cap-hpt-max-page-size=16M";

/// Trace events enabled unless a scenario says otherwise.
pub const DEFAULT_TRACE: &[&str] = &["pci_cfg_*", "pci_update_mappings_*", "spapr_iommu_*"];

/// How the kernel is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Firmware {
    /// QEMU's default firmware, SLOF, loading the ELF given with `-kernel`.
    Slof,
    /// QEMU's Virtual Open Firmware (`x-vof=on`), loading the ELF given with `-kernel`.
    Vof,
    /// No firmware: the raw image as `-bios`, entered with QEMU's FDT in r3.
    Bios,
}

impl Firmware {
    /// All three paths.
    pub const ALL: [Firmware; 3] = [Firmware::Slof, Firmware::Vof, Firmware::Bios];

    /// Short name for directories and tables.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Slof => "slof",
            Firmware::Vof => "vof",
            Firmware::Bios => "bios",
        }
    }

    /// What the kernel prints as `boot.firmware` on this path.
    pub fn reported_name(self) -> &'static str {
        match self {
            Firmware::Slof => "slof",
            Firmware::Vof => "vof",
            Firmware::Bios => "fdt",
        }
    }

    /// What the kernel prints as `boot.rtas` on this path.
    pub fn reported_rtas(self) -> &'static str {
        match self {
            Firmware::Slof | Firmware::Vof => "instantiated",
            Firmware::Bios => "h-rtas",
        }
    }

    /// A generous timeout (TCG on a shared machine; SLOF alone needs ~4 s).
    pub fn default_timeout(self) -> Duration {
        match self {
            Firmware::Slof => Duration::from_secs(60),
            Firmware::Vof | Firmware::Bios => Duration::from_secs(30),
        }
    }
}

/// A raw disk image the harness creates in the scenario directory.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Disk {
    id: String,
    bytes: u64,
    /// The image's contents; `None` for zeros.
    contents: Option<Arc<Vec<u8>>>,
}

/// One QEMU boot to perform.
#[derive(Clone, Debug)]
pub struct Scenario {
    name: String,
    firmware: Firmware,
    memory: String,
    smp: Option<u32>,
    args: Vec<String>,
    append: Option<String>,
    timeout: Duration,
    trace: Vec<String>,
    disks: Vec<Disk>,
    qmp: bool,
}

impl Scenario {
    /// A 512M, single-CPU boot with no devices, the default trace events and the firmware's
    /// default timeout. `name` names the output directory: `[A-Za-z0-9_.-]+`.
    pub fn new(name: &str, firmware: Firmware) -> Self {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        assert!(valid, "scenario name {name:?} must match [A-Za-z0-9_.-]+ (it names a directory)");
        Self {
            name: name.to_string(),
            firmware,
            memory: "512M".to_string(),
            smp: None,
            args: Vec::new(),
            append: None,
            timeout: firmware.default_timeout(),
            trace: DEFAULT_TRACE.iter().map(|s| s.to_string()).collect(),
            disks: Vec::new(),
            qmp: false,
        }
    }

    /// Opens a QMP socket (`qmp.sock` in the scenario's directory) for [`Scenario::run_driven`].
    pub fn qmp(mut self) -> Self {
        self.qmp = true;
        self
    }

    /// `-m` value, e.g. `2G` or `2G,maxmem=8G,slots=2`.
    pub fn memory(mut self, memory: &str) -> Self {
        self.memory = memory.to_string();
        self
    }

    /// `-smp` value.
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = Some(cpus);
        self
    }

    /// Extra QEMU arguments, appended as given.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `-device SPEC`.
    pub fn device(self, spec: &str) -> Self {
        self.args(["-device", spec])
    }

    /// Kernel command line (`-append`); QEMU refuses it with `-bios`.
    pub fn append(mut self, cmdline: &str) -> Self {
        self.append = Some(cmdline.to_string());
        self
    }

    /// Serving mode (`-append serve`) driven over QMP, with the scratch virtio-blk `disk0`
    /// holding `image` (`iommu_platform=on`): what the DLPAR tests boot.
    pub fn serving(self, image: &Arc<Vec<u8>>) -> Self {
        self.append("serve").qmp().virtio_blk_image("disk0", None, Arc::clone(image), true)
    }

    /// How long QEMU may run before it is killed and the outcome marked `timed_out`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the trace event patterns (empty: no `-trace`/`-D`).
    pub fn trace<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trace = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// A zero-filled raw disk `<dir>/<id>.img` of `bytes`, as `-drive …,if=none,id=<id>`.
    pub fn disk(mut self, id: &str, bytes: u64) -> Self {
        self.disks.push(Disk { id: id.to_string(), bytes, contents: None });
        self
    }

    /// A raw disk `<dir>/<id>.img` holding `contents` (written afresh before every run), as
    /// `-drive …,if=none,id=<id>`; read it back after the run from [`Outcome::disk_path`].
    pub fn disk_image(mut self, id: &str, contents: Arc<Vec<u8>>) -> Self {
        let bytes = contents.len() as u64;
        self.disks.push(Disk { id: id.to_string(), bytes, contents: Some(contents) });
        self
    }

    /// A virtio-blk on `bus` (see [`Scenario::virtio_blk`]) backed by a disk holding
    /// `contents`; `iommu_platform` chooses the modern device that offers
    /// `VIRTIO_F_ACCESS_PLATFORM` (DMA through the PHB's IOMMU) or a plain `virtio-blk-pci`
    /// (no such feature: QEMU lets it DMA to guest-physical addresses directly).
    pub fn virtio_blk_image(
        self,
        id: &str,
        bus: Option<&str>,
        contents: Arc<Vec<u8>>,
        iommu_platform: bool,
    ) -> Self {
        let mut spec = format!("virtio-blk-pci,drive={id}");
        if iommu_platform {
            spec.push_str(",disable-legacy=on,iommu_platform=on");
        }
        if let Some(bus) = bus {
            spec.push_str(&format!(",bus={bus}"));
        }
        self.disk_image(id, contents).device(&spec)
    }

    /// A 1 MiB disk `id` behind a modern virtio-blk that translates DMA through the PHB's
    /// IOMMU, on `bus` (QEMU's default bus when `None`; `pci.0` is the default PHB's, `ID.0`
    /// that of `-device spapr-pci-host-bridge,id=ID`).
    pub fn virtio_blk(self, id: &str, bus: Option<&str>) -> Self {
        let mut spec = format!("virtio-blk-pci,drive={id},disable-legacy=on,iommu_platform=on");
        if let Some(bus) = bus {
            spec.push_str(&format!(",bus={bus}"));
        }
        self.disk(id, 1 << 20).device(&spec)
    }

    /// An NVMe controller (QEMU's `nvme`, serial `serial`) on `bus` whose namespace 1 is a
    /// disk holding `contents` (512-byte blocks); its DMA goes through the PHB's IOMMU.
    pub fn nvme_image(self, id: &str, bus: Option<&str>, serial: &str, contents: Arc<Vec<u8>>) -> Self {
        let mut spec = format!("nvme,serial={serial},drive={id}");
        if let Some(bus) = bus {
            spec.push_str(&format!(",bus={bus}"));
        }
        self.disk_image(id, contents).device(&spec)
    }

    /// The default device set: a virtio-blk (1 MiB disk `disk0`) and QEMU's `edu` device.
    pub fn default_devices(self) -> Self {
        self.virtio_blk("disk0", None).device("edu")
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scenario's firmware.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// The output directory, `target/qemu-tests/<name>`.
    pub fn dir(&self) -> PathBuf {
        target_dir().join("qemu-tests").join(&self.name)
    }

    /// The QEMU binary: `$QEMU_SYSTEM_PPC64` or `qemu-system-ppc64` on `PATH`.
    pub fn qemu_binary() -> PathBuf {
        std::env::var_os("QEMU_SYSTEM_PPC64")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("qemu-system-ppc64"))
    }

    /// QEMU's arguments for this scenario with the given kernel.
    pub fn qemu_args(&self, kernel: &Artifacts) -> Vec<String> {
        let dir = self.dir();
        let machine = match self.firmware {
            Firmware::Vof => format!("{MACHINE},x-vof=on"),
            Firmware::Slof | Firmware::Bios => MACHINE.to_string(),
        };
        let mut args: Vec<String> = vec!["-M".into(), machine, "-m".into(), self.memory.clone()];
        if let Some(cpus) = self.smp {
            args.extend(["-smp".into(), cpus.to_string()]);
        }
        args.extend(
            [
                "-nodefaults",
                "-nographic",
                "-serial",
                "mon:stdio",
                "-no-reboot",
                "-action",
                "panic=exit-failure",
            ]
            .map(String::from),
        );
        match self.firmware {
            Firmware::Slof | Firmware::Vof => {
                args.extend(["-kernel".into(), path_arg(&kernel.elf)]);
            }
            Firmware::Bios => args.extend(["-bios".into(), path_arg(&kernel.bios)]),
        }
        if let Some(cmdline) = &self.append {
            args.extend(["-append".into(), cmdline.clone()]);
        }
        for pattern in &self.trace {
            args.extend(["-trace".into(), pattern.clone()]);
        }
        if !self.trace.is_empty() {
            args.extend(["-D".into(), path_arg(&dir.join("trace.log"))]);
        }
        for disk in &self.disks {
            let file = path_arg(&dir.join(format!("{}.img", disk.id))).replace(',', ",,");
            args.extend(["-drive".into(), format!("file={file},if=none,id={},format=raw", disk.id)]);
        }
        if self.qmp {
            args.extend([
                "-qmp".into(),
                format!("unix:{},server=on,wait=off", path_arg(&dir.join("qmp.sock"))),
            ]);
        }
        args.extend(self.args.iter().cloned());
        // PSERIES_TEST_CPU runs the whole matrix on another CPU model (POWER8, POWER10, …),
        // unless the scenario chose one itself.
        if let Some(cpu) = std::env::var("PSERIES_TEST_CPU").ok().filter(|c| !c.is_empty()) {
            if !self.args.iter().any(|a| a == "-cpu") {
                args.extend(["-cpu".into(), cpu]);
            }
        }
        args
    }

    /// Boots with the kernel from [`kernel_artifacts`]; see [`Scenario::run_with`].
    pub fn run(&self) -> Outcome {
        self.run_with(kernel_artifacts())
    }

    /// Boots QEMU, waits for it to exit or for the timeout (then kills it), and collects the
    /// console, the trace and the report. Panics only on harness problems (QEMU missing,
    /// directory not writable, name clash, `-append` with `-bios`).
    pub fn run_with(&self, kernel: &Artifacts) -> Outcome {
        self.run_driven_with(kernel, |_| {}).outcome
    }

    /// Boots QEMU and, while it runs, lets `drive` wait for console lines and send QMP commands
    /// (see [`Session`]); then waits for QEMU to exit or for the timeout, as [`Scenario::run`].
    pub fn run_driven(&self, drive: impl FnOnce(&mut Session)) -> Driven {
        self.run_driven_with(kernel_artifacts(), drive)
    }

    fn run_driven_with(&self, kernel: &Artifacts, drive: impl FnOnce(&mut Session)) -> Driven {
        assert!(
            !(self.firmware == Firmware::Bios && self.append.is_some()),
            "scenario {}: QEMU refuses -append without -kernel, so the bios path takes no \
             kernel arguments",
            self.name
        );
        let _claim = NameClaim::new(&self.name);
        let dir = self.dir();
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot clear {}: {e}", dir.display()));
        }
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        for disk in &self.disks {
            let path = dir.join(format!("{}.img", disk.id));
            if let Some(contents) = &disk.contents {
                fs::write(&path, contents.as_slice())
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                continue;
            }
            let file =
                File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
            file.set_len(disk.bytes).unwrap_or_else(|e| panic!("cannot size {}: {e}", path.display()));
        }
        let qemu = Self::qemu_binary();
        let args = self.qemu_args(kernel);
        let command_line = record_command(&qemu, &args, &dir);
        let console_path = dir.join("console.log");
        let trace_path = dir.join("trace.log");
        let mut session = Session {
            console: console_path.clone(),
            qmp_path: dir.join("qmp.sock"),
            qmp: None,
            deadline: Instant::now() + self.timeout,
            errors: Vec::new(),
        };
        let (status, timed_out, wall) =
            run_logged_driven(&qemu, &args, &console_path, self.timeout, || drive(&mut session));
        let events = session.qmp.as_ref().map(|q| q.events.clone()).unwrap_or_default();

        let console = read_lossy(&console_path);
        let trace = read_lossy(&trace_path);
        let kv = Kv::parse(&console);
        let outcome = Outcome {
            name: self.name.clone(),
            firmware: self.firmware,
            dir,
            command_line,
            exit_code: if timed_out { None } else { status.and_then(|s| s.code()) },
            exit_status: status,
            timed_out,
            timeout: self.timeout,
            console,
            trace,
            wall,
            kv,
        };
        Driven { outcome, errors: session.errors, events }
    }
}

/// A driven boot's results: the boot, what the driver found wrong, the QMP events seen.
pub struct Driven {
    /// The boot.
    pub outcome: Outcome,
    /// Failures the driver recorded (a console line or QMP event that never came, a refused
    /// command), in order.
    pub errors: Vec<String>,
    /// Every QMP event received.
    pub events: Vec<serde_json::Value>,
}

impl Driven {
    /// Fails the test with the console's tail if the driver recorded a failure.
    pub fn expect_driven(&self) -> &Outcome {
        if !self.errors.is_empty() {
            self.outcome.fail(&format!("driving the guest failed: {}", self.errors.join("; ")));
        }
        &self.outcome
    }
}

/// A running guest, as the driver of [`Scenario::run_driven`] sees it.
pub struct Session {
    console: PathBuf,
    qmp_path: PathBuf,
    qmp: Option<crate::qmp::Qmp>,
    deadline: Instant,
    errors: Vec<String>,
}

impl Session {
    /// Waits until the console contains `needle` (the scenario's timeout bounds it); `false`,
    /// with the failure recorded, if it never does.
    pub fn wait_console(&mut self, needle: &str) -> bool {
        while Instant::now() < self.deadline {
            if read_lossy(&self.console).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.errors.push(format!("the console never showed {needle:?}"));
        false
    }

    /// Runs a QMP command (connecting first if needed); `None`, with the failure recorded, if
    /// it failed.
    pub fn execute(&mut self, command: &str, arguments: serde_json::Value) -> Option<serde_json::Value> {
        let result = self.qmp_session().and_then(|q| q.execute(command, arguments));
        result.map_err(|e| self.errors.push(format!("QMP {command}: {e}"))).ok()
    }

    /// Waits for QMP event `name` with `data.device == device` (any device for `None`).
    pub fn wait_event(&mut self, name: &str, device: Option<&str>) -> Option<serde_json::Value> {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        let result = self
            .qmp_session()
            .and_then(|q| q.wait_event(name, |data| device.is_none_or(|d| data["device"] == d), timeout));
        result.map_err(|e| self.errors.push(e)).ok()
    }

    fn qmp_session(&mut self) -> Result<&mut crate::qmp::Qmp, String> {
        if self.qmp.is_none() {
            let timeout = self.deadline.saturating_duration_since(Instant::now());
            self.qmp = Some(crate::qmp::Qmp::connect(&self.qmp_path, timeout)?);
        }
        Ok(self.qmp.as_mut().expect("connected above"))
    }

    /// The scenario's output directory (for files a hot-plug adds).
    pub fn dir(&self) -> PathBuf {
        self.console.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Records a failure found while driving.
    pub fn fail(&mut self, message: String) {
        self.errors.push(message);
    }
}

/// What one boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// The scenario's firmware.
    pub firmware: Firmware,
    /// The scenario's output directory.
    pub dir: PathBuf,
    /// The QEMU command line, shell-quoted.
    pub command_line: String,
    /// QEMU's exit code; `None` after a timeout or a death by signal.
    pub exit_code: Option<i32>,
    /// QEMU's raw exit status (the kill's status after a timeout).
    pub exit_status: Option<ExitStatus>,
    /// QEMU was killed because the timeout expired.
    pub timed_out: bool,
    /// The timeout that applied.
    pub timeout: Duration,
    /// QEMU's stdout and stderr (the guest console and QEMU's messages), lossily decoded.
    pub console: String,
    /// QEMU's trace log (empty when tracing was off or nothing was logged).
    pub trace: String,
    /// From spawning QEMU to its exit (or to the kill).
    pub wall: Duration,
    /// The kernel's `key=value` report.
    pub kv: Kv,
}

impl Outcome {
    /// The last `n` console lines (without `\r`), joined with newlines.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().map(|l| l.trim_end_matches('\r')).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The image of disk `id` in the scenario directory (as the guest left it).
    pub fn disk_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.img"))
    }

    /// The parsed trace log.
    pub fn parsed_trace(&self) -> Trace {
        Trace::parse(&self.trace)
    }

    /// A description for failure messages: status, timeout flag, paths, the console tail.
    pub fn context(&self) -> String {
        format!(
            "scenario {} ({}): exit code {:?}, exit status {}, timed out: {} (timeout {:?}), \
             wall {:.2?}\nlogs: {}\n--- last 40 console lines ---\n{}\n--- end of console ---",
            self.name,
            self.firmware.name(),
            self.exit_code,
            self.exit_status.map_or_else(|| "unknown".to_string(), |s| s.to_string()),
            self.timed_out,
            self.timeout,
            self.wall,
            self.dir.display(),
            self.tail(40)
        )
    }

    /// Panics with `message` and the [`Outcome::context`].
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        panic!("{message}\n{}", self.context())
    }

    /// Asserts QEMU exited by itself with `code`.
    #[track_caller]
    pub fn expect_exit(&self, code: i32) -> &Self {
        if self.timed_out || self.exit_code != Some(code) {
            self.fail(&format!("expected QEMU to exit with status {code}"));
        }
        self
    }

    /// Asserts a clean run: exit status 0 and `exit.status=ok`.
    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        self.expect_exit(0);
        self.expect_kv("exit.status", "ok")
    }

    /// The last value of `key`, or a panic with context.
    #[track_caller]
    pub fn require(&self, key: &str) -> &str {
        match self.kv.get(key) {
            Some(value) => value,
            None => self.fail(&format!("the kernel did not report {key}")),
        }
    }

    /// The last value of `key` as hex, or a panic with context.
    #[track_caller]
    pub fn require_hex(&self, key: &str) -> u64 {
        match self.kv.get_hex(key) {
            Some(value) => value,
            None => self.fail(&format!("{key} missing or not hex: {:?}", self.kv.get(key))),
        }
    }

    /// The last value of `key` as a decimal number, or a panic with context.
    #[track_caller]
    pub fn require_u64(&self, key: &str) -> u64 {
        match self.kv.get_u64(key) {
            Some(value) => value,
            None => self.fail(&format!("{key} missing or not a number: {:?}", self.kv.get(key))),
        }
    }

    /// Asserts `key=expected` (last value).
    #[track_caller]
    pub fn expect_kv(&self, key: &str, expected: &str) -> &Self {
        let actual = self.kv.get(key);
        if actual != Some(expected) {
            self.fail(&format!("expected {key}={expected}, got {actual:?}"));
        }
        self
    }

    /// Asserts every `key=expected` of `pairs` (last values), in order.
    #[track_caller]
    pub fn expect_kvs(&self, pairs: &[(&str, &str)]) -> &Self {
        for (key, expected) in pairs {
            self.expect_kv(key, expected);
        }
        self
    }

    /// Asserts a scratch disk went through the self-test: `blk.<blk>.crc.*` equal the host's
    /// CRCs of `image`, the scratch copy was done, and the image QEMU left (`disk_id`) holds
    /// exactly that copy.
    #[track_caller]
    pub fn expect_scratch_disk(&self, blk: usize, disk_id: &str, image: &[u8]) -> &Self {
        self.expect_scratch_image(&format!("blk.{blk}"), disk_id, image)
    }

    /// [`Outcome::expect_scratch_disk`] for any disk-like device's keys, `device` being its
    /// prefix (`blk.0`, `nvme.1`).
    #[track_caller]
    pub fn expect_scratch_image(&self, device: &str, disk_id: &str, image: &[u8]) -> &Self {
        for (k, crc) in crate::disk::mib_crcs(image).iter().enumerate() {
            self.expect_kv(&format!("{device}.crc.{k}"), &crate::disk::crc_text(*crc));
        }
        self.expect_kv(&format!("{device}.copy"), "done");
        let path = self.disk_path(disk_id);
        let after = std::fs::read(&path)
            .unwrap_or_else(|e| self.fail(&format!("cannot read {}: {e}", path.display())));
        if let Err(why) = crate::disk::check_scratch_copy(image, &after) {
            self.fail(&format!("host image {} after the run: {why}", path.display()));
        }
        self
    }

    /// Asserts the console contains `needle`.
    #[track_caller]
    pub fn expect_console(&self, needle: &str) -> &Self {
        if !self.console.contains(needle) {
            self.fail(&format!("the console does not contain {needle:?}"));
        }
        self
    }
}

/// Names of scenarios currently running in this process.
static RUNNING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Holds a scenario name for the duration of a run.
struct NameClaim(String);

impl NameClaim {
    fn new(name: &str) -> Self {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = running.get_or_insert_with(HashSet::new).insert(name.to_string());
        drop(running);
        assert!(fresh, "two scenarios named {name:?} run at once: they would share target/qemu-tests/{name}");
        Self(name.to_string())
    }
}

impl Drop for NameClaim {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = running.as_mut() {
            set.remove(&self.0);
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `program` with `args`, stdout and stderr both into `log` (in order), killing it after
/// `timeout`; returns its exit status, whether it was killed, and the wall time. Panics only
/// when it cannot be started or waited for.
pub fn run_logged(
    program: &Path,
    args: &[String],
    log: &Path,
    timeout: Duration,
) -> (Option<ExitStatus>, bool, Duration) {
    let run = run_logged_stamped(program, args, log, timeout, false);
    (run.status, run.timed_out, run.wall)
}

/// What [`run_logged_stamped`] saw.
#[derive(Debug)]
pub struct LoggedRun {
    /// The exit status (the kill's after a timeout).
    pub status: Option<ExitStatus>,
    /// Killed because the timeout expired.
    pub timed_out: bool,
    /// From spawning to the exit (or to the kill).
    pub wall: Duration,
    /// With stamps: every output line (without its newline) and the host's wall-clock time
    /// (seconds since the epoch, as QEMU's `-msg timestamp=on` trace prefix) when it was read.
    pub lines: Vec<(f64, String)>,
}

/// Seconds since the epoch (the clock QEMU's trace timestamps use: `gettimeofday`).
pub fn epoch_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// [`run_logged`]; with `stamp`, the output goes through a pipe read line by line, so that each
/// line gets the time it arrived (to place another log's timestamped events before, during or
/// after something the program printed).
pub fn run_logged_stamped(
    program: &Path,
    args: &[String],
    log: &Path,
    timeout: Duration,
    stamp: bool,
) -> LoggedRun {
    run_logged_inner(program, args, log, timeout, stamp, || {})
}

/// As [`run_logged`], calling `drive` once the program has started (the timeout still applies
/// from the start).
pub fn run_logged_driven(
    program: &Path,
    args: &[String],
    log: &Path,
    timeout: Duration,
    drive: impl FnOnce(),
) -> (Option<ExitStatus>, bool, Duration) {
    let run = run_logged_inner(program, args, log, timeout, false, drive);
    (run.status, run.timed_out, run.wall)
}

fn run_logged_inner(
    program: &Path,
    args: &[String],
    log: &Path,
    timeout: Duration,
    stamp: bool,
    drive: impl FnOnce(),
) -> LoggedRun {
    use std::io::{BufRead, BufReader, Write};
    let out = File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let start = Instant::now();
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    let mut reader = None;
    if stamp {
        let (pipe_out, pipe_in) = std::io::pipe().unwrap_or_else(|e| panic!("cannot make a pipe: {e}"));
        let err = pipe_in.try_clone().unwrap_or_else(|e| panic!("cannot duplicate the pipe: {e}"));
        command.stdout(pipe_in).stderr(err);
        let mut out = out;
        reader = Some(std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut pipe = BufReader::new(pipe_out);
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let _ = out.write_all(&line);
                let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
                lines.push((epoch_seconds(), text));
                line.clear();
            }
            lines
        }));
    } else {
        let err = out.try_clone().unwrap_or_else(|e| panic!("cannot duplicate the log file handle: {e}"));
        command.stdout(out).stderr(err);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    // Our copies of the pipe's write end go with the command, so the reader sees the end.
    drop(command);
    drive();
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (Some(status), false),
            Ok(None) => {}
            Err(e) => panic!("waiting for {} failed: {e}", program.display()),
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = start.elapsed();
    let lines = reader.map(|r| r.join().unwrap_or_default()).unwrap_or_default();
    LoggedRun { status, timed_out, wall, lines }
}

/// The shell-quoted command line, also saved as `dir/command.txt` for reproducing by hand.
pub fn record_command(program: &Path, args: &[String], dir: &Path) -> String {
    let line = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = fs::write(dir.join("command.txt"), format!("{line}\n"));
    line
}

/// A file's contents, lossily decoded (empty if unreadable).
pub fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

/// `arg` quoted for a POSIX shell (as is when it needs no quoting).
pub fn shell_quote(arg: &str) -> String {
    let plain = arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c));
    if plain && !arg.is_empty() {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A 2 GiB VOF boot with one 16 MiB scratch disk (`disk0`, filled from `seed`), QEMU's
/// `spapr_iommu_pci_*` and `spapr_iommu_ddw_*` traces on and `append` on the kernel command
/// line; no `edu` (the single-window path needs the default window free).
pub fn scratch_disk_boot(name: &str, append: &str, seed: u64) -> (Outcome, Arc<Vec<u8>>) {
    let image = Arc::new(crate::disk::scratch_image(16 << 20, seed));
    let outcome = Scenario::new(name, Firmware::Vof)
        .memory("2G")
        .timeout(Duration::from_secs(240))
        .trace(["spapr_iommu_pci_*", "spapr_iommu_ddw_*"])
        .append(append)
        .virtio_blk_image("disk0", None, Arc::clone(&image), true)
        .run();
    (outcome, image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts() -> Artifacts {
        Artifacts { elf: PathBuf::from("/k/kernel"), bios: PathBuf::from("/k/kernel.bin") }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn firmware_selects_machine_and_loader() {
        let vof = Scenario::new("unit-vof", Firmware::Vof).qemu_args(&artifacts());
        assert_eq!(value_after(&vof, "-M"), vec![format!("{MACHINE},x-vof=on")]);
        assert_eq!(value_after(&vof, "-kernel"), vec!["/k/kernel"]);
        let slof = Scenario::new("unit-slof", Firmware::Slof).qemu_args(&artifacts());
        assert_eq!(value_after(&slof, "-M"), vec![MACHINE]);
        assert!(value_after(&slof, "-bios").is_empty());
        let bios = Scenario::new("unit-bios", Firmware::Bios).qemu_args(&artifacts());
        assert_eq!(value_after(&bios, "-bios"), vec!["/k/kernel.bin"]);
        assert!(value_after(&bios, "-kernel").is_empty());
        assert_eq!(value_after(&bios, "-m"), vec!["512M"]);
        assert_eq!(value_after(&bios, "-action"), vec!["panic=exit-failure"]);
    }

    #[test]
    fn builder_options_reach_the_command_line() {
        let s = Scenario::new("unit-opts", Firmware::Vof)
            .memory("2G,maxmem=8G,slots=2")
            .smp(2)
            .append("test=panic")
            .virtio_blk("d1", Some("phb1.0"))
            .trace(["vof_*"]);
        let args = s.qemu_args(&artifacts());
        assert_eq!(value_after(&args, "-m"), vec!["2G,maxmem=8G,slots=2"]);
        assert_eq!(value_after(&args, "-smp"), vec!["2"]);
        assert_eq!(value_after(&args, "-append"), vec!["test=panic"]);
        assert_eq!(value_after(&args, "-trace"), vec!["vof_*"]);
        let trace_file = s.dir().join("trace.log").display().to_string();
        assert_eq!(value_after(&args, "-D"), vec![trace_file.as_str()]);
        let drive = value_after(&args, "-drive");
        assert_eq!(drive.len(), 1);
        assert!(drive[0].ends_with("d1.img,if=none,id=d1,format=raw"), "{}", drive[0]);
        assert_eq!(
            value_after(&args, "-device"),
            vec!["virtio-blk-pci,drive=d1,disable-legacy=on,iommu_platform=on,bus=phb1.0"]
        );
        let image = Scenario::new("unit-image", Firmware::Vof)
            .virtio_blk_image("d2", Some("pci.0"), Arc::new(vec![1; 512]), false)
            .virtio_blk_image("d3", None, Arc::new(vec![2; 1024]), true);
        let args = image.qemu_args(&artifacts());
        assert_eq!(
            value_after(&args, "-device"),
            vec![
                "virtio-blk-pci,drive=d2,bus=pci.0",
                "virtio-blk-pci,drive=d3,disable-legacy=on,iommu_platform=on"
            ]
        );
        assert!(value_after(&args, "-drive")[1].ends_with("d3.img,if=none,id=d3,format=raw"));
        let nvme = Scenario::new("unit-nvme", Firmware::Vof).nvme_image(
            "n0",
            Some("pci.0"),
            "s1",
            Arc::new(vec![0; 512]),
        );
        let args = nvme.qemu_args(&artifacts());
        assert_eq!(value_after(&args, "-device"), vec!["nvme,serial=s1,drive=n0,bus=pci.0"]);
        assert!(value_after(&args, "-drive")[0].ends_with("n0.img,if=none,id=n0,format=raw"));
        let quiet = Scenario::new("unit-quiet", Firmware::Vof).trace(Vec::<String>::new());
        assert!(value_after(&quiet.qemu_args(&artifacts()), "-D").is_empty());
    }

    #[test]
    #[should_panic(expected = "must match")]
    fn names_are_directory_safe() {
        let _ = Scenario::new("../escape", Firmware::Vof);
    }

    #[test]
    fn outcome_helpers() {
        let outcome = Outcome {
            name: "unit".into(),
            firmware: Firmware::Vof,
            dir: PathBuf::from("/nowhere"),
            command_line: String::new(),
            exit_code: Some(1),
            exit_status: None,
            timed_out: false,
            timeout: Duration::from_secs(1),
            console: "a\r\nb\r\nexit.status=fail\r\n".into(),
            trace: String::new(),
            wall: Duration::ZERO,
            kv: Kv::parse("exit.status=fail\n"),
        };
        assert_eq!(outcome.tail(2), "b\nexit.status=fail");
        assert_eq!(outcome.tail(10), "a\nb\nexit.status=fail");
        outcome.expect_exit(1).expect_kv("exit.status", "fail");
        let err = std::panic::catch_unwind(|| {
            outcome.expect_exit(0);
        })
        .expect_err("exit code 1 is not 0");
        let message = err.downcast_ref::<String>().expect("a formatted message");
        assert!(message.contains("status 0"), "{message}");
        assert!(message.contains("exit code Some(1)"), "{message}");
        assert!(message.contains("timed out: false"), "{message}");
        assert!(message.contains("b\nexit.status=fail"), "the tail is included: {message}");
    }

    #[test]
    fn name_clash_is_detected() {
        let first = NameClaim::new("unit-clash");
        assert!(std::panic::catch_unwind(|| NameClaim::new("unit-clash")).is_err());
        drop(first);
        let _again = NameClaim::new("unit-clash");
    }
}
