//! Passes the linker script for the ppc64le kernel and tells cargo when to relink.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("powerpc64") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/../linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-static");
    }
    println!("cargo:rerun-if-changed={dir}/../linker.ld");
    println!("cargo:rerun-if-changed={dir}/../arch-ppc64/src/entry.S");
}
