//! The KVM-HV lane: the kernel boots as L2 under genuine KVM-HV, nested under TCG
//! (QEMU `cap-nested-hv`; Linux arch/powerpc/kvm/book3s_hv_nested.c).
//!
//! L0 is this machine's `qemu-system-ppc64` (TCG, `cap-nested-hv=on`) booting Debian's ppc64el
//! Linux as L1 with an initramfs: a cached base (busybox, `kvm.ko`/`kvm-hv.ko`, the ppc64el
//! QEMU and its libraries; fetched once by `tests/kvm/setup.sh`) followed by a small per-run
//! archive (the `/init` script, the L2 kernel, its disk image and `/l2/config`). L1's `/init`
//! loads `kvm_hv`, runs L2 under `-accel kvm` and tags everything it prints (see
//! `tests/kvm/init`). The run comes back as a [`KvmOutcome`]: an [`Outcome`] for L2 (its
//! console, exit status, report and L1 QEMU's trace, so the usual assertions apply), whether
//! KVM was available, and the SHA-256 of L2's disk computed in L1 after L2 exited.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::build::{kernel_artifacts, target_dir, workspace_root};
use crate::kv::Kv;
use crate::qemu::{read_lossy, record_command, run_logged, shell_quote, Firmware, Outcome};

/// What the lane's set-up left in its cache.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The L1 kernel.
    pub vmlinux: PathBuf,
    /// The cached base initramfs (newc cpio of `l1root/`).
    pub base_cpio: PathBuf,
}

/// Fetches (first time only) and packs the L1 pieces; `Err` says why the lane cannot run.
pub fn lane() -> Result<&'static Lane, String> {
    static LANE: OnceLock<Result<Lane, String>> = OnceLock::new();
    LANE.get_or_init(set_up).as_ref().map_err(Clone::clone)
}

fn set_up() -> Result<Lane, String> {
    let script = workspace_root().join("tests/kvm/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ));
    }
    let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let base_cpio = cache.join("base.cpio");
    let complete = cache.join("l1root/.complete");
    let stale = |p: &Path| -> bool {
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(p), modified(&complete)) {
            (Some(cpio), Some(root)) => cpio < root,
            _ => true,
        }
    };
    if stale(&base_cpio) {
        let mut archive = Cpio::default();
        archive.add_tree(&cache.join("l1root"), "")?;
        let tmp = cache.join("base.cpio.tmp");
        fs::write(&tmp, archive.finish()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        fs::rename(&tmp, &base_cpio).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    }
    Ok(Lane { vmlinux: cache.join("vmlinux"), base_cpio })
}

/// A `newc` cpio archive, as the Linux kernel unpacks into its initial root file system.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let fields = [self.inode, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        let mut header = String::from("070701");
        for field in fields {
            let _ = write!(header, "{field:08x}");
        }
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8], executable: bool) {
        self.entry(name, if executable { 0o100_755 } else { 0o100_644 }, data);
    }

    /// Everything under `dir` (files, directories, symbolic links), named `prefix/...`.
    pub fn add_tree(&mut self, dir: &Path, prefix: &str) -> Result<(), String> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = format!(
                "{prefix}{}{}",
                if prefix.is_empty() { "" } else { "/" },
                entry.file_name().to_string_lossy()
            );
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.entry(&name, 0o120_777, target.to_string_lossy().as_bytes());
            } else if meta.is_dir() {
                self.dir(&name);
                self.add_tree(&path, &name)?;
            } else {
                use std::os::unix::fs::PermissionsExt;
                let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.file(&name, &data, meta.permissions().mode() & 0o111 != 0);
            }
        }
        Ok(())
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        while !self.bytes.len().is_multiple_of(512) {
            self.bytes.push(0);
        }
        self.bytes
    }
}

/// One L2 boot in the KVM lane.
#[derive(Debug, Clone)]
pub struct KvmScenario {
    name: String,
    memory: String,
    append: String,
    edu: bool,
    disk: Option<Arc<Vec<u8>>>,
    trace: Vec<String>,
    nested_hv: bool,
    timeout: Duration,
}

/// What a KVM-lane run produced.
#[derive(Debug)]
pub struct KvmOutcome {
    /// L2 as an ordinary outcome: console, exit status (`None` if L2 never ran to an exit),
    /// report, and L1 QEMU's trace.
    pub l2: Outcome,
    /// Whether L1 could load `kvm_hv`.
    pub kvm_available: Option<bool>,
    /// SHA-256 of L2's disk image, computed in L1 after L2 exited.
    pub disk_sha256: Option<String>,
    /// Everything L0 printed (L1's console, tags included).
    pub l0_console: String,
    /// L0's wall time.
    pub wall: Duration,
}

impl KvmScenario {
    /// A scenario named `name` (its directory is `target/kvm-tests/<name>`): 1 GiB for L2,
    /// VOF, no devices, nested HV on, a 240 s limit for the whole L0 run.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            memory: "1G".into(),
            append: String::new(),
            edu: false,
            disk: None,
            trace: Vec::new(),
            nested_hv: true,
            timeout: Duration::from_secs(240),
        }
    }

    /// L2's RAM (QEMU `-m`).
    pub fn memory(mut self, size: &str) -> Self {
        self.memory = size.into();
        self
    }

    /// L2's kernel command line.
    pub fn append(mut self, args: &str) -> Self {
        self.append = args.into();
        self
    }

    /// Adds QEMU's `edu` device.
    pub fn edu(mut self) -> Self {
        self.edu = true;
        self
    }

    /// Adds `image` as `virtio-blk-pci,disable-legacy=on,iommu_platform=on`.
    pub fn scratch_disk(mut self, image: Arc<Vec<u8>>) -> Self {
        self.disk = Some(image);
        self
    }

    /// Traces these events in L1's QEMU.
    pub fn trace<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.trace.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// `cap-nested-hv` on L0 (off for the negative control).
    pub fn nested_hv(mut self, on: bool) -> Self {
        self.nested_hv = on;
        self
    }

    /// The limit for the whole L0 run.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// L1 QEMU's arguments for L2 (words without spaces).
    fn l2_qemu_args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            ["-M", "pseries,x-vof=on", "-nodefaults", "-nographic", "-serial", "mon:stdio", "-no-reboot"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["-m".into(), self.memory.clone(), "-kernel".into(), "/l2/kernel".into()]);
        if self.disk.is_some() {
            args.extend([
                "-drive".into(),
                "if=none,id=disk0,file=/l2/disk.img,format=raw".into(),
                "-device".into(),
                "virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=on".into(),
            ]);
        }
        if self.edu {
            args.extend(["-device".into(), "edu".into()]);
        }
        for pattern in &self.trace {
            args.extend(["-trace".into(), pattern.clone()]);
        }
        if !self.trace.is_empty() {
            args.extend(["-D".into(), "/tmp/l1trace.log".into()]);
        }
        args
    }

    fn dir(&self) -> PathBuf {
        target_dir().join("kvm-tests").join(&self.name)
    }

    /// Boots L0 → L1 → L2 and collects the evidence. Panics only on harness problems; a lane
    /// that cannot be set up panics with the reason (the set-up needs apt and the network once).
    pub fn run(&self) -> KvmOutcome {
        let lane = lane().unwrap_or_else(|why| panic!("the KVM lane cannot run: {why}"));
        let kernel = kernel_artifacts();
        let dir = self.dir();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));

        let mut run = Cpio::default();
        let init = fs::read(workspace_root().join("tests/kvm/init")).expect("tests/kvm/init");
        run.file("init", &init, true);
        run.dir("l2");
        run.file("l2/kernel", &fs::read(&kernel.elf).expect("the kernel ELF"), false);
        if let Some(image) = &self.disk {
            run.file("l2/disk.img", image, false);
        }
        let config = format!(
            "L2_QEMU_ARGS={}\nL2_APPEND={}\n",
            shell_quote(&self.l2_qemu_args().join(" ")),
            shell_quote(&self.append)
        );
        run.file("l2/config", config.as_bytes(), false);
        let mut initrd = fs::read(&lane.base_cpio).expect("the base cpio");
        initrd.extend_from_slice(&run.finish());
        let initrd_path = dir.join("initrd.cpio");
        fs::write(&initrd_path, &initrd)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", initrd_path.display()));

        let machine = format!("pseries,cap-nested-hv={},x-vof=on", if self.nested_hv { "on" } else { "off" });
        let args: Vec<String> = [
            "-M",
            &machine,
            "-cpu",
            "POWER9",
            "-smp",
            "1",
            "-m",
            "4G",
            "-nodefaults",
            "-nographic",
            "-serial",
            "mon:stdio",
            "-no-reboot",
            "-kernel",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            lane.vmlinux.display().to_string(),
            "-initrd".into(),
            initrd_path.display().to_string(),
            "-append".into(),
            "console=hvc0 quiet rdinit=/init".into(),
        ])
        .collect();
        let qemu = crate::qemu::Scenario::qemu_binary();
        let command_line = record_command(&qemu, &args, &dir);
        let l0_log = dir.join("l0-console.log");
        let (_, timed_out, wall) = run_logged(&qemu, &args, &l0_log, self.timeout);
        let l0_console = read_lossy(&l0_log);
        self.outcome(dir, command_line, l0_console, timed_out, wall)
    }

    fn outcome(
        &self,
        dir: PathBuf,
        command_line: String,
        l0: String,
        timed_out: bool,
        wall: Duration,
    ) -> KvmOutcome {
        let (mut console, mut trace) = (String::new(), String::new());
        let (mut kvm_available, mut l2_exit, mut disk_sha256) = (None, None, None);
        for line in l0.lines().map(|l| l.trim_end_matches('\r')) {
            if let Some(rest) = line.strip_prefix("L2| ") {
                console.push_str(rest);
                console.push('\n');
            } else if let Some(rest) = line.strip_prefix("L1TRACE| ") {
                trace.push_str(rest);
                trace.push('\n');
            } else if let Some(fact) = line.strip_prefix("KVMLANE: ") {
                match fact.split_once('=') {
                    Some(("kvm", value)) => kvm_available = Some(value == "available"),
                    Some(("l2_exit", value)) => l2_exit = value.trim().parse().ok(),
                    Some(("disk_sha256", value)) => disk_sha256 = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        let _ = fs::write(dir.join("console.log"), &console);
        let _ = fs::write(dir.join("trace.log"), &trace);
        let kv = Kv::parse(&console);
        let l2 = Outcome {
            name: self.name.clone(),
            firmware: Firmware::Vof,
            dir,
            command_line,
            exit_code: if timed_out { None } else { l2_exit },
            exit_status: None,
            timed_out,
            timeout: self.timeout,
            // Without an L2 console, L0's (L1's) is what explains the failure.
            console: if console.is_empty() { l0.clone() } else { console },
            trace,
            wall,
            kv,
        };
        KvmOutcome { l2, kvm_available, disk_sha256, l0_console: l0, wall }
    }
}

/// SHA-256 of `bytes` in lower-case hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the lane is switched off (`PSERIES_KVM_LANE=off`), e.g. on a machine without
/// network access for the one-time download.
pub fn lane_disabled() -> bool {
    std::env::var("PSERIES_KVM_LANE").is_ok_and(|v| v == "off")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newc layout the kernel's unpacker expects: "070701", 13 hex fields, the name with
    /// its NUL padded to 4 bytes, the data padded to 4, a trailer, 512-byte total.
    #[test]
    fn cpio_entries_follow_the_newc_layout() {
        let mut cpio = Cpio::default();
        cpio.file("init", b"#!x", true);
        let bytes = cpio.finish();
        assert_eq!(&bytes[..6], b"070701");
        let field = |i: usize| {
            u32::from_str_radix(std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
        };
        assert_eq!((field(1), field(6), field(11)), (0o100_755, 3, 5));
        assert_eq!(&bytes[110..115], b"init\0");
        // 110 + 5 = 115 → padded to 116; data at 116..119, padded to 120.
        assert_eq!(&bytes[116..119], b"#!x");
        assert_eq!(&bytes[120..126], b"070701");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(bytes.len() % 512, 0);
    }
}
