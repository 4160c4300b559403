//! `drivers` reads as a library: its rustdoc builds without a warning (broken intra-doc links,
//! missing docs on public items, which `drivers` warns of: errors here), as a crate published for
//! others must. Built into a target directory of its own, so the test's run does not wait on
//! or disturb the workspace's.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn drivers_rustdoc_builds_without_warnings() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args(["doc", "-p", "drivers", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .env("CARGO_TARGET_DIR", workspace.join("target").join("doc-check"))
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo doc -p drivers --no-deps failed:\n{stderr}");
    assert!(!stderr.contains("warning"), "cargo doc -p drivers --no-deps warned:\n{stderr}");
}
