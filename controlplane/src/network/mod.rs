//! Raft RPC and replica-to-replica API over HTTP/1.1 with JSON bodies.
//!
//! Every endpoint is a `POST` whose response body is a JSON `Result<T, E>`, so a remote
//! Raft error travels back as data and an HTTP error only means transport trouble.

pub mod client;
pub mod http;
pub mod notices;
pub mod peer;
pub mod server;

/// Paths of the replica endpoints.
pub mod paths {
    pub const APPEND: &str = "/raft/append";
    pub const VOTE: &str = "/raft/vote";
    pub const SNAPSHOT: &str = "/raft/snapshot";
    pub const WRITE: &str = "/cluster/write";
    pub const JOIN: &str = "/cluster/join";
    pub const READ: &str = "/cluster/read";
}
