//! Embeds the BPF object: copies it into OUT_DIR, or writes an empty file
//! when it has not been built (the loader then says how to build it), so a
//! plain `cargo build` never needs the BPF toolchain.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=SKIFF_EBPF_OBJ");
    let src = match std::env::var_os("SKIFF_EBPF_OBJ") {
        Some(p) => PathBuf::from(p),
        None => {
            let manifest = PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?,
            );
            manifest.join("../target/bpf/bpfel-unknown-none/release/skiff-ebpf")
        }
    };
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?).join("skiff-ebpf");
    if src.is_file() {
        std::fs::copy(&src, &out).map_err(|e| format!("copying {}: {e}", src.display()))?;
    } else {
        println!(
            "cargo:warning=BPF object {} not found: the agent is built without it (run `cargo xtask build`)",
            src.display()
        );
        std::fs::write(&out, b"")?;
    }
    Ok(())
}
