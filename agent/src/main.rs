//! `skiff`: the Skiff binary: `skiff agent`, `skiff server`, `skiff kubeconfig`, `skiff status`.

mod cli;
mod image_cmd;
mod kubeconfig_cmd;
mod nodeport;
mod run;
mod server_cmd;
mod status_cmd;

use std::process::ExitCode;

use clap::Parser as _;

/// glibc's malloc spent a fifth of the API server's CPU under concurrent writes (arena locks,
/// consolidation of the many small JSON allocations), and serving the same load took 40% more
/// time than with jemalloc.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turns jemalloc's per-thread cache off for the calling thread. The agent's blocking-pool
/// threads (one per pod being set up, in a burst) each allocate a little; their caches
/// doubled its RSS during a 100-pod burst. The server keeps them: its few threads allocate a
/// lot.
fn disable_thread_cache() {
    // SAFETY: `thread.tcache.enabled` takes a `bool`.
    if let Err(e) = unsafe { tikv_jemalloc_ctl::raw::write(b"thread.tcache.enabled\0", false) } {
        log::debug!("jemalloc thread cache: {e}");
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Agent(args) => {
            init_logging(args.debug);
            // Before the spawner forks (it and the shims inherit it).
            disable_thread_cache();
            // Before the runtime starts its threads.
            if let Err(e) = skiff_agent::runtime::spawner::start() {
                log::warn!("kubelet: no shim spawner ({e}); shims fork from the agent");
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(disable_thread_cache)
                .build();
            exit(
                rt.map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(run::run(args))),
            )
        }
        cli::Command::Server(args) => {
            init_logging(args.debug);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build();
            exit(
                rt.map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(server_cmd::run(args))),
            )
        }
        cli::Command::Kubeconfig(args) => {
            init_logging(false);
            exit(kubeconfig_cmd::run(args))
        }
        cli::Command::Image(args) => {
            init_logging(false);
            exit(image_cmd::run(args))
        }
        cli::Command::Status(args) => {
            init_logging(false);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            exit(
                rt.map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(status_cmd::run(args))),
            )
        }
    }
}

fn exit(res: anyhow::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug {
        "info,skiff=debug,skiff_agent=debug,skiff_ebpf=trace"
    } else {
        "info"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

/// The error chain as `a: b: c`, skipping causes a message already quotes
/// (the library errors include their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
