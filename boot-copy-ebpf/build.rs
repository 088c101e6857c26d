//! Compiles the CO-RE shim (`src/c/shim.c`) to LLVM bitcode and hands it to bpf-linker, which
//! links it with the Rust code (the accessors inline into the programs).
//!
//! The clang used must have the same LLVM major version as the nightly rustc and bpf-linker
//! (22 here); `BOOT_COPY_CLANG` overrides the choice.
use std::{env, path::PathBuf, process::Command};

use which::which;

fn main() {
    // bpf-linker is an undeclared dependency: rebuild when it changes (as aya's template does).
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    println!("cargo:rerun-if-changed=src/c/shim.c");
    println!("cargo:rerun-if-env-changed=BOOT_COPY_CLANG");

    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    let clang = env::var_os("BOOT_COPY_CLANG")
        .map(PathBuf::from)
        .or_else(|| which("clang-22").ok())
        .or_else(|| which("clang").ok())
        .expect("clang not found (install clang-22, or set BOOT_COPY_CLANG)");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bitcode = out_dir.join("shim.bc");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-emit-llvm", "-c", "-target", "bpfel"])
        .args(["-Wall", "-Werror", "-Wno-unused-function"])
        .arg("src/c/shim.c")
        .arg("-o")
        .arg(&bitcode)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", clang.display()));
    assert!(status.success(), "compiling src/c/shim.c failed");
    println!("cargo:rustc-link-arg={}", bitcode.display());
    // The file program's global functions (see src/file.rs): kept global, so that the verifier
    // checks each once. bpf-linker internalises every other symbol.
    println!(
        "cargo:rustc-link-arg=--export=boot_copy_resolve,boot_copy_watched,boot_copy_prefix_watched,boot_copy_climbs,boot_copy_send"
    );
}
