//! The nested lanes: the kernel boots as L2 under genuine KVM-HV, nested under TCG
//! (QEMU `cap-nested-hv`; Linux arch/powerpc/kvm/book3s_hv_nested.c).
//!
//! L0 is this machine's `qemu-system-ppc64` (TCG, `cap-nested-hv=on`) booting Debian's ppc64el
//! Linux as L1 with an initramfs: a cached base (busybox, the lane's modules, the ppc64el QEMU
//! and its libraries; fetched once by `tests/kvm/setup.sh`) followed by a small per-run
//! archive (the `/init` script, the L2 kernel, its disk image and `/l2/config`). L1's `/init`
//! loads the modules, runs L2 under `-accel kvm` and tags everything it prints (see
//! `tests/kvm/init`). Two lanes ([`Nesting`]):
//! - the KVM-HV lane: L2's devices are emulated by L1's QEMU;
//! - the VFIO lane: L2's devices are L0's, on L0's PHB, which L1 (Linux 6.12, whose pSeries
//!   IOMMU code turns L2's DDW requests into its own RTAS DDW calls to L0 and L2's TCE
//!   hypercalls into its own: Linux v6.11 `arch/powerpc/platforms/pseries/iommu.c`,
//!   `spapr_tce_create_table`/`spapr_tce_unset_window` and `drivers/vfio/vfio_iommu_spapr_tce.c`)
//!   hands to `vfio-pci` and L1's QEMU passes through (`-device vfio-pci,host=…`). L0's own
//!   `spapr_iommu_*` trace then shows what L2's requests did to the "real" hypervisor.
//!
//! The run comes back as a [`KvmOutcome`]: an [`Outcome`] for L2 (its console, exit status,
//! report and L1 QEMU's trace, so the usual assertions apply), whether KVM was available, the
//! SHA-256 of an L1-side disk computed in L1 after L2 exited, and, in the VFIO lane, L0's
//! trace and the host times between which L2's QEMU ran.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::build::{kernel_artifacts, target_dir, workspace_root};
use crate::kv::Kv;
use crate::qemu::{read_lossy, record_command, run_logged_stamped, shell_quote, Firmware, Outcome};
use crate::trace::{DdwCreate, Trace};

/// Which nested lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nesting {
    /// The KVM-HV lane: L2's devices are emulated by L1's QEMU.
    Kvm,
    /// The VFIO lane: L2's devices are L0's, passed through by L1 with VFIO.
    Vfio,
}

impl Nesting {
    /// `kvm` or `vfio`: the argument of `tests/kvm/setup.sh`, the name of the cache.
    pub fn name(self) -> &'static str {
        match self {
            Nesting::Kvm => "kvm",
            Nesting::Vfio => "vfio",
        }
    }

    /// The variable that switches the lane off (`=off`).
    pub fn switch(self) -> &'static str {
        match self {
            Nesting::Kvm => "PSERIES_KVM_LANE",
            Nesting::Vfio => "PSERIES_VFIO_LANE",
        }
    }

    /// Why the lane is not run (`PSERIES_KVM_LANE=off` / `PSERIES_VFIO_LANE=off`, e.g. on a
    /// machine without network access for the one-time download), or `None`.
    pub fn skipped(self) -> Option<String> {
        let var = self.switch();
        std::env::var(var)
            .is_ok_and(|v| v == "off")
            .then(|| format!("{var}=off: the {} lane is switched off", self.name()))
    }
}

/// What the lane's set-up left in its cache.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The L1 kernel.
    pub vmlinux: PathBuf,
    /// The cached base initramfs (newc cpio of `l1root/`).
    pub base_cpio: PathBuf,
}

/// Fetches (first time only) and packs the lane's L1 pieces; `Err` says why it cannot run.
pub fn lane(nesting: Nesting) -> Result<&'static Lane, String> {
    static KVM: OnceLock<Result<Lane, String>> = OnceLock::new();
    static VFIO: OnceLock<Result<Lane, String>> = OnceLock::new();
    let cell = match nesting {
        Nesting::Kvm => &KVM,
        Nesting::Vfio => &VFIO,
    };
    cell.get_or_init(|| set_up(nesting)).as_ref().map_err(Clone::clone)
}

fn set_up(nesting: Nesting) -> Result<Lane, String> {
    let script = workspace_root().join("tests/kvm/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(nesting.name())
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

/// L0's PHB as QEMU numbers its first `spapr-pci-host-bridge` (index 0): its BUID and the LIOBN
/// of its default window (QEMU `include/hw/pci-host/spapr.h`: `SPAPR_PCI_BASE_BUID`,
/// `SPAPR_PCI_LIOBN(index, 0)`).
pub const L0_PHB_BUID: u64 = 0x0800_0000_2000_0000;
/// The LIOBN of L0's default window (see [`L0_PHB_BUID`]).
pub const L0_DEFAULT_LIOBN: u64 = 0x8000_0000;
/// The VFIO lane's scratch disk as L1 sees it: L0's PHB is L1's PCI domain 0, bus 0, and the
/// disk sits at `addr=0x0` on L0.
pub const VFIO_DISK_BDF: &str = "0000:00:00.0";
/// The VFIO lane's `edu` as L1 sees it (`addr=0x1` on L0).
pub const VFIO_EDU_BDF: &str = "0000:00:01.0";
/// L0's NVMe controller (`addr=0x2`) as L1 sees it.
pub const VFIO_NVME_BDF: &str = "0000:00:02.0";

/// One L2 boot in a nested lane.
#[derive(Debug, Clone)]
pub struct KvmScenario {
    nesting: Nesting,
    name: String,
    memory: String,
    append: String,
    edu: bool,
    disk: Option<Arc<Vec<u8>>>,
    nvme: Option<Arc<Vec<u8>>>,
    trace: Vec<String>,
    nested_hv: bool,
    bind_vfio: bool,
    dump_dtb: bool,
    l0_trace: Vec<String>,
    timeout: Duration,
}

/// What a nested-lane run produced.
#[derive(Debug)]
pub struct KvmOutcome {
    /// L2 as an ordinary outcome: console, exit status (`None` if L2 never ran to an exit),
    /// report, and L1 QEMU's trace. In the VFIO lane its directory holds L0's disk images
    /// (`disk0.img`), so [`Outcome::expect_scratch_disk`] checks them on the host.
    pub l2: Outcome,
    /// Whether L1 could load `kvm_hv`.
    pub kvm_available: Option<bool>,
    /// SHA-256 of L2's disk image, computed in L1 after L2 exited (KVM-HV lane).
    pub disk_sha256: Option<String>,
    /// Everything L0 printed (L1's console, tags included).
    pub l0_console: String,
    /// L0's wall time.
    pub wall: Duration,
    /// Every `KVMLANE: key=value` fact L1 reported, in order.
    pub facts: Vec<(String, String)>,
    /// Host times (seconds since the epoch) at which L1 said L2's QEMU starts and had exited.
    pub l2_span: Option<(f64, f64)>,
    /// L0 QEMU's `spapr_iommu_*` trace, timestamped (VFIO lane; empty otherwise).
    pub l0_trace: String,
    /// The passthrough devices' BDFs in L1 (VFIO lane).
    pub passthrough: Vec<String>,
    /// The flattened device tree L2's QEMU built for L2 ([`KvmScenario::dump_dtb`]).
    pub l2_dtb: Option<Vec<u8>>,
}

/// QEMU's arguments for the scratch disk `disk0` in `file`: a modern virtio-blk that
/// translates DMA through its PHB's IOMMU, with `device_options` appended to the device.
fn scratch_disk_args(file: &str, device_options: &str) -> [String; 4] {
    [
        "-drive".into(),
        format!("file={},if=none,id=disk0,format=raw", file.replace(',', ",,")),
        "-device".into(),
        format!("virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=on{device_options}"),
    ]
}

impl KvmScenario {
    /// A KVM-HV lane scenario named `name` (its directory is `target/kvm-tests/<name>`): 1 GiB
    /// for L2, VOF, no devices, nested HV on, a 240 s limit for the whole L0 run.
    pub fn new(name: &str) -> Self {
        Self {
            nesting: Nesting::Kvm,
            name: name.to_string(),
            memory: "1G".into(),
            append: String::new(),
            edu: false,
            disk: None,
            nvme: None,
            trace: Vec::new(),
            nested_hv: true,
            bind_vfio: true,
            dump_dtb: false,
            // Every IOMMU event but the per-access translations (which would make it gigabytes).
            l0_trace: vec!["spapr_iommu_*".into(), "-spapr_iommu_xlate".into()],
            timeout: Duration::from_secs(240),
        }
    }

    /// A VFIO lane scenario named `name` (directory `target/vfio-tests/<name>`): 2 GiB for L2,
    /// a 300 s limit. Its devices ([`KvmScenario::scratch_disk`], [`KvmScenario::edu`]) are
    /// L0's, on L0's PHB; L1 binds them to `vfio-pci` and L2's QEMU takes them with
    /// `-device vfio-pci,host=…`.
    pub fn vfio(name: &str) -> Self {
        Self {
            nesting: Nesting::Vfio,
            memory: "2G".into(),
            timeout: Duration::from_secs(300),
            ..Self::new(name)
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

    /// Adds QEMU's `edu` device (on L0 in the VFIO lane).
    pub fn edu(mut self) -> Self {
        self.edu = true;
        self
    }

    /// Adds `image` as `virtio-blk-pci,disable-legacy=on,iommu_platform=on` (on L0 in the VFIO
    /// lane: without `iommu_platform` a virtio device bypasses L0's IOMMU).
    pub fn scratch_disk(mut self, image: Arc<Vec<u8>>) -> Self {
        self.disk = Some(image);
        self
    }

    /// Adds `image` as QEMU's `nvme` controller on L0 (VFIO lane), passed through like the disk
    /// and checked on the host afterwards (`nvme0.img` in the L2 outcome's directory).
    pub fn nvme(mut self, image: Arc<Vec<u8>>) -> Self {
        self.nvme = Some(image);
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

    /// VFIO lane, negative control: L1 leaves the devices on their own drivers instead of
    /// binding them to `vfio-pci`.
    pub fn keep_l1_drivers(mut self) -> Self {
        self.bind_vfio = false;
        self
    }

    /// Before the run, L1 has L2's QEMU, with the same arguments, write the device tree it
    /// builds for L2 (`-machine dumpdtb=…`, which exits before the guest starts).
    pub fn dump_dtb(mut self) -> Self {
        self.dump_dtb = true;
        self
    }

    /// Replaces the VFIO lane's L0 trace patterns (default: `spapr_iommu_*` without
    /// `spapr_iommu_xlate`; a run writes ~60 MB, mostly L1 clearing L2's tables at its exit).
    pub fn l0_trace<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.l0_trace = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// The limit for the whole L0 run.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The passthrough devices' BDFs in L1 (VFIO lane).
    fn passthrough(&self) -> Vec<String> {
        let mut bdfs = Vec::new();
        if self.nesting == Nesting::Vfio {
            if self.disk.is_some() {
                bdfs.push(VFIO_DISK_BDF.to_string());
            }
            if self.edu {
                bdfs.push(VFIO_EDU_BDF.to_string());
            }
            if self.nvme.is_some() {
                bdfs.push(VFIO_NVME_BDF.to_string());
            }
        }
        bdfs
    }

    /// L1 QEMU's arguments for L2 (words without spaces).
    fn l2_qemu_args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            ["-M", "pseries,x-vof=on", "-nodefaults", "-nographic", "-serial", "mon:stdio", "-no-reboot"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["-m".into(), self.memory.clone(), "-kernel".into(), "/l2/kernel".into()]);
        if self.nesting == Nesting::Vfio {
            for bdf in self.passthrough() {
                args.extend(["-device".into(), format!("vfio-pci,host={bdf}")]);
            }
        } else {
            if self.disk.is_some() {
                args.extend(scratch_disk_args("/l2/disk.img", ""));
            }
            if self.edu {
                args.extend(["-device".into(), "edu".into()]);
            }
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
        target_dir().join(format!("{}-tests", self.nesting.name())).join(&self.name)
    }

    /// L0's arguments other than the machine, the L1 kernel and its initramfs.
    fn l0_args(&self, dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = ["-cpu", "POWER9", "-smp", "1", "-nodefaults", "-nographic"]
            .iter()
            .chain(&["-serial", "mon:stdio", "-no-reboot"])
            .map(|s| s.to_string())
            .collect();
        if self.nesting == Nesting::Kvm {
            args.extend(["-m".into(), "4G".into()]);
            return args;
        }
        // maxmem: without it QEMU 7.2 reports `ibm,lrdr-capacity` as 0, and L1 (Linux 6.12,
        // arch/powerpc/platforms/pseries/iommu.c, `ddw_memory_hotplug_max`) asks for a window
        // of shift 0, is refused and puts the PE on its failed-DDW list, and later refuses
        // VFIO's window too.
        args.extend(["-m".into(), "6G,slots=4,maxmem=16G".into()]);
        if self.disk.is_some() {
            args.extend(scratch_disk_args(&dir.join("disk0.img").display().to_string(), ",addr=0x0"));
        }
        if self.edu {
            args.extend(["-device".into(), "edu,addr=0x1".into()]);
        }
        if self.nvme.is_some() {
            let file = dir.join("nvme0.img").display().to_string().replace(',', ",,");
            args.extend([
                "-drive".into(),
                format!("file={file},if=none,id=nvme0,format=raw"),
                "-device".into(),
                "nvme,serial=pseries-vfio,drive=nvme0,addr=0x2".into(),
            ]);
        }
        // Stamped with the host's time, so that L2's part can be told apart.
        for pattern in &self.l0_trace {
            args.extend(["-trace".into(), pattern.clone()]);
        }
        args.extend([
            "-msg".into(),
            "timestamp=on".into(),
            "-D".into(),
            dir.join("l0-trace.log").display().to_string(),
        ]);
        args
    }

    /// Boots L0 → L1 → L2 and collects the evidence. Panics only on harness problems; a lane
    /// that cannot be set up panics with the reason (the set-up needs apt and the network once).
    pub fn run(&self) -> KvmOutcome {
        let lane = lane(self.nesting)
            .unwrap_or_else(|why| panic!("the {} lane cannot run: {why}", self.nesting.name()));
        let kernel = kernel_artifacts();
        let dir = self.dir();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));

        let mut run = Cpio::default();
        let init = fs::read(workspace_root().join("tests/kvm/init")).expect("tests/kvm/init");
        run.file("init", &init, true);
        run.dir("l2");
        run.file("l2/kernel", &fs::read(&kernel.elf).expect("the kernel ELF"), false);
        if let Some(image) = self.nvme.as_ref().filter(|_| self.nesting == Nesting::Vfio) {
            let path = dir.join("nvme0.img");
            fs::write(&path, image.as_slice())
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        if let Some(image) = &self.disk {
            if self.nesting == Nesting::Vfio {
                let path = dir.join("disk0.img");
                fs::write(&path, image.as_slice())
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            } else {
                run.file("l2/disk.img", image, false);
            }
        }
        let config = format!(
            "L2_QEMU_ARGS={}\nL2_APPEND={}\nL1_PASSTHROUGH={}\nL1_BIND={}\nL2_DUMPDTB={}\n",
            shell_quote(&self.l2_qemu_args().join(" ")),
            shell_quote(&self.append),
            shell_quote(&self.passthrough().join(" ")),
            if self.bind_vfio { "vfio-pci" } else { "keep" },
            if self.dump_dtb { "yes" } else { "no" }
        );
        run.file("l2/config", config.as_bytes(), false);
        let mut initrd = fs::read(&lane.base_cpio).expect("the base cpio");
        initrd.extend_from_slice(&run.finish());
        let initrd_path = dir.join("initrd.cpio");
        fs::write(&initrd_path, &initrd)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", initrd_path.display()));

        let machine = format!("pseries,cap-nested-hv={},x-vof=on", if self.nested_hv { "on" } else { "off" });
        let mut args = vec!["-M".to_string(), machine];
        args.extend(self.l0_args(&dir));
        args.extend([
            "-kernel".into(),
            lane.vmlinux.display().to_string(),
            "-initrd".into(),
            initrd_path.display().to_string(),
            "-append".into(),
            "console=hvc0 quiet rdinit=/init".into(),
        ]);
        let qemu = crate::qemu::Scenario::qemu_binary();
        let command_line = record_command(&qemu, &args, &dir);
        let l0_log = dir.join("l0-console.log");
        let l0 = run_logged_stamped(&qemu, &args, &l0_log, self.timeout, true);
        let l0_trace = read_lossy(&dir.join("l0-trace.log"));
        self.outcome(dir, command_line, &l0.lines, l0.timed_out, l0.wall, l0_trace)
    }

    fn outcome(
        &self,
        dir: PathBuf,
        command_line: String,
        l0: &[(f64, String)],
        timed_out: bool,
        wall: Duration,
        l0_trace: String,
    ) -> KvmOutcome {
        let (mut console, mut trace, mut l0_console) = (String::new(), String::new(), String::new());
        let (mut kvm_available, mut l2_exit, mut disk_sha256) = (None, None, None);
        let (mut facts, mut l2_start, mut l2_end) = (Vec::new(), None, None);
        let mut dtb: Option<Vec<u8>> = None;
        for (time, line) in l0 {
            l0_console.push_str(line);
            l0_console.push('\n');
            if let Some(rest) = line.strip_prefix("L2| ") {
                console.push_str(rest);
                console.push('\n');
            } else if let Some(hex) = line.strip_prefix("L2DTB| ") {
                let bytes = dtb.get_or_insert_with(Vec::new);
                let hex = hex.trim().as_bytes();
                bytes.extend(
                    hex.chunks(2)
                        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()),
                );
            } else if let Some(rest) = line.strip_prefix("L1TRACE| ") {
                trace.push_str(rest);
                trace.push('\n');
            } else if let Some((key, value)) = line.strip_prefix("KVMLANE: ").and_then(|f| f.split_once('='))
            {
                let value = value.trim();
                match key {
                    "kvm" => kvm_available = Some(value == "available"),
                    "l2" if value == "starting" => l2_start = Some(*time),
                    "l2_exit" => {
                        l2_exit = value.parse().ok();
                        l2_end = Some(*time);
                    }
                    "disk_sha256" => disk_sha256 = Some(value.to_string()),
                    _ => {}
                }
                facts.push((key.to_string(), value.to_string()));
            }
        }
        // A timed-out L2 ran until L0 was killed.
        let l2_span = l2_start.map(|start| (start, l2_end.unwrap_or(crate::qemu::epoch_seconds())));
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
            console: if console.is_empty() { l0_console.clone() } else { console },
            trace,
            wall,
            kv,
        };
        KvmOutcome {
            l2,
            kvm_available,
            disk_sha256,
            l0_console,
            wall,
            facts,
            l2_span,
            l0_trace,
            passthrough: self.passthrough(),
            l2_dtb: dtb,
        }
    }
}

impl KvmOutcome {
    /// The last value L1 reported for `key` (`KVMLANE: key=value`).
    pub fn fact(&self, key: &str) -> Option<&str> {
        self.facts.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Panics with `message`, L2's context and L1's facts.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        let facts: Vec<String> = self.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.l2.fail(&format!("{message}\nL1 reported: {}", facts.join(", ")))
    }

    /// Asserts L1 loaded `kvm_hv`.
    #[track_caller]
    pub fn expect_kvm(&self) -> &Self {
        if self.kvm_available != Some(true) {
            self.fail("L1 could not load kvm_hv");
        }
        self
    }

    /// Whether every passthrough device reached L2's QEMU through `vfio-pci` in L1 (bound to
    /// it, its VFIO group's device node present); otherwise which device sits on which driver
    /// (L2's QEMU cannot open a group whose devices are still L1's).
    pub fn passthrough_problem(&self) -> Option<String> {
        for bdf in &self.passthrough {
            let fact = |what: &str| self.fact(&format!("vfio.{bdf}.{what}")).unwrap_or("unknown");
            if self.fact(&format!("vfio.{bdf}")) == Some("absent") {
                return Some(format!("L1 has no PCI function {bdf}: the device is missing on L0's PHB"));
            }
            let (driver, dev) = (fact("driver"), fact("dev"));
            if driver != "vfio-pci" || dev == "none" {
                let qemu = self
                    .l2
                    .console
                    .lines()
                    .find(|l| l.contains("vfio"))
                    .map_or_else(String::new, |l| format!("; L2's QEMU said: {}", l.trim()));
                return Some(format!(
                    "the VFIO lane's device {bdf} (L0's {}) is bound to {driver} in L1, not \
                     vfio-pci (its IOMMU group {} has device node {dev}): L1 still owns it, so \
                     L2's QEMU cannot take it{qemu}",
                    fact("id"),
                    fact("group"),
                ));
            }
        }
        None
    }

    /// Asserts [`KvmOutcome::passthrough_problem`] found none.
    #[track_caller]
    pub fn expect_passthrough(&self) -> &Self {
        if let Some(problem) = self.passthrough_problem() {
            self.fail(&problem);
        }
        self
    }

    /// L0's whole trace.
    pub fn l0_trace(&self) -> Trace {
        Trace::parse(&self.l0_trace)
    }

    /// L0's trace from L1's announcement of L2's QEMU to its report of L2's exit status.
    #[track_caller]
    pub fn l0_trace_during_l2(&self) -> Trace {
        let Some((from, to)) = self.l2_span else {
            self.fail("L1 never started L2's QEMU, so L0's trace has no part of L2's");
        };
        self.l0_trace().between(from, to)
    }

    /// L0's trace shows, while L2 ran, the DDW L2 asked for: one `ddw_create` on L0's PHB,
    /// whatever page size L1 chose, and TCEs for all of L2's RAM written on it (nonzero entries
    /// at every IOMMU page of the RAM L2 reported, inside the window). Returns that window, or
    /// what is missing.
    pub fn l2_ddw_on_l0(&self) -> Result<DdwCreate, String> {
        let (from, to) =
            self.l2_span.ok_or("L1 never started L2's QEMU, so L0's trace has no part of L2's")?;
        let during = self.l0_trace().between(from, to);
        let creates: Vec<DdwCreate> =
            during.ddw_creates()?.into_iter().filter(|c| c.buid == L0_PHB_BUID).collect();
        let window = match creates.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "L0's trace has no spapr_iommu_ddw_create on L0's PHB (BUID {L0_PHB_BUID:#x}) \
                     while L2 ran ({:.1} s): L2's DDW request never reached L0 (L2 reported \
                     pe.0.ddw={}; {} spapr_iommu events on L0 meanwhile)",
                    to - from,
                    self.l2.kv.get("pe.0.ddw").unwrap_or("(nothing)"),
                    during.count_prefix("spapr_iommu_")
                ))
            }
            more => return Err(format!("expected one DDW created on L0 while L2 ran, got {more:x?}")),
        };
        let ram = self.l2.kv.get_hex("mem.total").ok_or("L2 did not report mem.total")?;
        let mut pages: Vec<u64> = during
            .pci_puts()?
            .iter()
            .filter(|p| p.liobn == window.liobn && p.ret == 0 && p.tce != 0)
            .map(|p| p.ioba)
            .collect();
        pages.sort_unstable();
        pages.dedup();
        let needed = ram / window.page_size;
        let end = window.start + window.window_size;
        let outside = pages.iter().filter(|&&a| a < window.start || a >= end).count();
        if (pages.len() as u64) < needed || outside > 0 {
            return Err(format!(
                "L0's trace shows TCEs at {} IOMMU pages of L2's window {:#x} while L2 ran \
                 ({outside} outside it), but L2's {ram:#x} bytes of RAM need {needed} pages of {:#x}",
                pages.len(),
                window.liobn,
                window.page_size
            ));
        }
        Ok(window)
    }

    /// Asserts [`KvmOutcome::l2_ddw_on_l0`] and returns the window.
    #[track_caller]
    pub fn expect_l2_ddw_on_l0(&self) -> DdwCreate {
        match self.l2_ddw_on_l0() {
            Ok(window) => window,
            Err(why) => self.fail(&why),
        }
    }

    /// The windows created on L0 while L2 ran that are still there when L0's trace ends.
    #[track_caller]
    pub fn l2_windows_left_on_l0(&self) -> Vec<DdwCreate> {
        let Some((from, to)) = self.l2_span else {
            self.fail("L1 never started L2's QEMU, so L0's trace has no part of L2's");
        };
        let left = self.l0_trace().ddw_windows_left().unwrap_or_else(|e| self.fail(&e));
        left.into_iter().filter(|(t, _)| t.is_some_and(|t| from <= t && t <= to)).map(|(_, w)| w).collect()
    }
}

/// SHA-256 of `bytes` in lower-case hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
