//! Test images built in-process from host files and imported into a kubelet's store:
//! busybox (the host's static binary and a few applet links) and any dynamically linked
//! host binary with the libraries `ldd` lists.

use std::path::Path;

use skiff_agent::image::build::{write_oci_layout, LayerBuilder};
use skiff_agent::image::{ImageConfig, ImageStore};

use super::IMAGE;

const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "env", "true", "false", "dd", "grep", "head", "tail", "nc",
    "date", "ls", "kill", "tr", "seq", "rm", "tar", "nslookup",
];

/// Builds [`IMAGE`] from the host's static busybox and imports it into `state`.
pub fn import_busybox(state: &Path) {
    import(state, IMAGE, vec![busybox_layer()], vec!["sh".into()]);
}

/// A layer with the host's static busybox at /bin/busybox and its applet links.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (apt install busybox-static)");
    let mut layer = LayerBuilder::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .dir("tmp")
        .dir("etc");
    for a in APPLETS {
        layer = layer.symlink(&format!("bin/{a}"), "busybox");
    }
    layer.finish()
}

/// Builds `reference` from a host binary (at /bin/<name>, with the shared libraries
/// `ldd` lists at their host paths) and imports it into `state`.
pub fn import_binary(state: &Path, reference: &str, exe: &Path, name: &str) {
    import(
        state,
        reference,
        vec![binary_layer(exe, name)],
        vec![format!("/bin/{name}")],
    );
}

/// A layer with a host binary at /bin/<name> and the shared libraries `ldd` lists at
/// their host paths.
pub fn binary_layer(exe: &Path, name: &str) -> Vec<u8> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .expect("running ldd");
    let mut layer = LayerBuilder::new().dir("bin").dir("tmp").dir("etc").file(
        &format!("bin/{name}"),
        0o755,
        &std::fs::read(exe).unwrap_or_else(|e| panic!("reading {}: {e}", exe.display())),
    );
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let rel = lib.trim_start_matches('/').to_string();
        let mut acc = String::new();
        for c in Path::new(&rel)
            .parent()
            .into_iter()
            .flat_map(Path::components)
        {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(&c.as_os_str().to_string_lossy());
            dirs.insert(acc.clone());
        }
        let data = std::fs::read(lib).unwrap_or_else(|e| panic!("reading {lib}: {e}"));
        files.push((rel, data));
    }
    for d in dirs {
        layer = layer.dir(&d);
    }
    for (rel, data) in &files {
        layer = layer.file(rel, 0o755, data);
    }
    layer.finish()
}

/// Writes `reference` (`layers` bottom first, `PATH=/bin`, default command `cmd`) as an
/// OCI image layout at `dir`, ready for `skiff image import`.
pub fn write_layout(dir: &Path, reference: &str, layers: &[Vec<u8>], cmd: Vec<String>) {
    let config = ImageConfig {
        cmd,
        env: vec!["PATH=/bin".into()],
        ..ImageConfig::default()
    };
    write_oci_layout(dir, reference, layers, &config, true).expect("writing the OCI layout");
}

fn import(state: &Path, reference: &str, layers: Vec<Vec<u8>>, cmd: Vec<String>) {
    let store = ImageStore::open(state).expect("image store");
    let dir = state.join(format!("layout-{}", reference.replace(['/', ':'], "_")));
    write_layout(&dir, reference, &layers, cmd);
    store.import(&dir).expect("importing the image");
    let _ = std::fs::remove_dir_all(&dir);
}
