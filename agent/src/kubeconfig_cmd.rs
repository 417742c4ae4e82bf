//! `skiff kubeconfig`: print or write a kubeconfig for the server (plain HTTP, no auth).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:6443")]
    pub server: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// The kubeconfig text for `server`.
pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n\
         contexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff\n    \
         namespace: default\ncurrent-context: skiff\nusers:\n- name: skiff\n  user: {{}}\n"
    )
}

pub fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let text = kubeconfig(args.server.trim_end_matches('/'));
    match args.output {
        None => print!("{text}"),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
