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
/// consolidation of the many small JSON allocations); mimalloc's thread-local free lists do
/// not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mimalloc.h`'s `mi_option_e` (the same in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is kept for reuse rather than returned to the OS a moment later: under load,
/// returning it and faulting it back in (zeroing whole huge pages) took a sixth of the API
/// server's CPU. Freed memory stays in the RSS, as with glibc's malloc.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Agent(args) => {
            init_logging(args.debug);
            // Before the runtime starts its threads.
            if let Err(e) = skiff_agent::runtime::spawner::start() {
                log::warn!("kubelet: no shim spawner ({e}); shims fork from the agent");
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
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
