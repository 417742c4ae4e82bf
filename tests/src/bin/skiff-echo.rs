//! `skiff-echo --port 8080 --name <id>`: TCP + UDP echo server for tests.
//!
//! Each line (UDP: each datagram) is answered with
//! `<name> <peer_ip>:<peer_port> <line>`.

use anyhow::Context;
use clap::Parser;
use skiff_tests::echo::server::EchoServer;

#[derive(Parser, Debug)]
#[command(about = "TCP and UDP echo server that names itself and its peer")]
struct Args {
    /// Port for both TCP and UDP, on 0.0.0.0.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Identifies this server in every answer.
    #[arg(long)]
    name: String,
    /// Most TCP connections served at once.
    #[arg(long, default_value_t = 512)]
    max_conns: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.name.contains(char::is_whitespace),
        "--name must be one word"
    );
    let server = EchoServer::bind(args.port, &args.name, args.max_conns)
        .with_context(|| format!("binding 0.0.0.0:{}", args.port))?;
    println!(
        "skiff-echo {} listening on 0.0.0.0:{} (tcp, udp)",
        args.name,
        server.port()
    );
    server.run().context("serving")
}
