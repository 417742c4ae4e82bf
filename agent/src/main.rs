//! `skiff`: the Skiff binary. For now one subcommand, `skiff agent`.

mod cli;
mod run;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Agent(args) => {
            init_logging(args.debug);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let res = rt
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run::run(args)));
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{}", describe(&e));
                    ExitCode::FAILURE
                }
            }
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
