//! The kernel under test: given through the environment, or built once per process.
//!
//! `PSERIES_KERNEL_ELF` (and optionally `PSERIES_KERNEL_BIOS`) name prebuilt artifacts, as
//! `run.sh test` does. Otherwise the first caller runs
//! `cargo build --release -p kernel --target powerpc64le-unknown-linux-gnu` in the workspace
//! and writes the `-bios` image next to the ELF as `kernel.bin`; later callers (other test
//! threads) wait for that and share the result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kernel's target triple.
pub const TARGET: &str = "powerpc64le-unknown-linux-gnu";

/// Paths of the kernel ELF (for `-kernel`) and its raw image (for `-bios`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    /// The kernel ELF.
    pub elf: PathBuf,
    /// The `-bios` image built from it.
    pub bios: PathBuf,
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The kernel artifacts, located or built on first use. Panics with the reason on failure.
pub fn kernel_artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| match locate_or_build() {
        Ok(artifacts) => artifacts,
        Err(why) => panic!("cannot provide the kernel under test: {why}"),
    })
}

/// Uses `PSERIES_KERNEL_ELF`/`PSERIES_KERNEL_BIOS` if set, else builds the kernel.
pub fn locate_or_build() -> Result<Artifacts, String> {
    let Some(elf) = std::env::var_os("PSERIES_KERNEL_ELF").map(PathBuf::from) else {
        return build_kernel();
    };
    if !elf.is_file() {
        return Err(format!("PSERIES_KERNEL_ELF={} is not a file", elf.display()));
    }
    let bios = match std::env::var_os("PSERIES_KERNEL_BIOS").map(PathBuf::from) {
        Some(bios) if bios.is_file() => bios,
        Some(bios) => {
            return Err(format!("PSERIES_KERNEL_BIOS={} is not a file", bios.display()));
        }
        None => {
            let bios = target_dir().join("qemu-tests").join("kernel-from-env.bin");
            write_bios_image(&elf, &bios)?;
            bios
        }
    };
    Ok(Artifacts { elf, bios })
}

/// Runs the release kernel build and writes `kernel.bin` next to the ELF.
pub fn build_kernel() -> Result<Artifacts, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let args = ["build", "--release", "-p", "kernel", "--target", TARGET];
    let output = Command::new(&cargo)
        .current_dir(&root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "`cargo {}` in {} failed ({}):\n{}",
            args.join(" "),
            root.display(),
            output.status,
            tail.join("\n")
        ));
    }
    let elf = target_dir().join(TARGET).join("release").join("kernel");
    if !elf.is_file() {
        return Err(format!("the build succeeded but {} is missing", elf.display()));
    }
    let bios = elf.with_file_name("kernel.bin");
    write_bios_image(&elf, &bios)?;
    Ok(Artifacts { elf, bios })
}

/// Builds the `-bios` image for `elf` and writes it to `out` (via a temporary file and a
/// rename, so a concurrent reader never sees half an image).
pub fn write_bios_image(elf: &Path, out: &Path) -> Result<(), String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
    let image = crate::image::bios_image(&bytes)
        .map_err(|e| format!("cannot build the -bios image from {}: {e}", elf.display()))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = out.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, image).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("cannot rename to {}: {e}", out.display()))
}
