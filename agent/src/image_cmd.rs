//! `skiff image import <archive>` and `skiff image ls`: the node's image store.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use skiff_agent::image::ImageStore;

/// Default agent state directory (the store is `<state-dir>/images`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/skiff/agent";

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The agent's state directory.
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout or a `docker save` archive (dir or tar).
    Import {
        archive: PathBuf,
        /// Also tag the imported image(s) with this reference.
        #[arg(long)]
        tag: Vec<String>,
    },
    /// List the images in the store.
    Ls,
}

pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    let store = ImageStore::open(&args.state_dir)
        .with_context(|| format!("opening the image store in {}", args.state_dir.display()))?;
    match args.command {
        ImageCommand::Import { archive, tag } => {
            eprintln!(
                "importing {} into {}",
                archive.display(),
                store.root().display()
            );
            for image in store.import(&archive)? {
                let mut image = image;
                for t in &tag {
                    image = store.tag(&image.id, t)?;
                }
                println!("{} {}", short(&image.id), image.repo_tags.join(","));
            }
        }
        ImageCommand::Ls => {
            println!("{:<48} {:<14} {:>10}", "REPOSITORY:TAG", "IMAGE ID", "SIZE");
            for image in store.list()? {
                let tags = if image.repo_tags.is_empty() {
                    vec!["<none>".to_owned()]
                } else {
                    image.repo_tags.clone()
                };
                for t in tags {
                    println!(
                        "{:<48} {:<14} {:>9.1}M",
                        t,
                        short(&image.id),
                        image.size as f64 / 1048576.0
                    );
                }
            }
        }
    }
    Ok(())
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}
