//! Compile the agent API (proto/agent.proto) with protox (pure Rust, no protoc) and
//! tonic-prost-build (client and server stubs).

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    let fds = protox::compile(["agent.proto"], ["proto"])
        .map_err(|e| format!("compiling proto/agent.proto: {e}"))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .map_err(|e| format!("generating the agent API from proto/agent.proto: {e}"))?;
    Ok(())
}
