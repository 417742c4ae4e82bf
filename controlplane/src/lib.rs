//! Skiff control plane: a Raft-replicated (openraft) store of Kubernetes objects, durable in
//! redb, with revisions, optimistic concurrency, prefix ranges and resumable watches.
//!
//! Module per job: [`types`] (openraft type config), [`command`] (replicated writes),
//! [`log_store`] and [`state_machine`] (storage), [`network`] (Raft RPC over HTTP, client and
//! server), [`node`] (bootstrap, join, the API the API server calls), [`keys`] (key layout).

pub mod agentapi;
pub mod alloc;
pub mod api;
pub mod command;
pub mod controllers;
pub mod db;
pub mod endpoints;
pub mod error;
pub mod keys;
pub mod log_store;
pub mod network;
pub mod node;
pub mod nodelifecycle;
pub mod pod_status;
pub mod resource_metrics;
pub mod scheduler;
pub mod server;
pub mod state_machine;
pub mod types;

pub use command::{Command, CommandResponse, KeyValue, Op, OpError, OpOutcome};
pub use error::Error;
pub use node::{Consistency, ControlPlane, NodeConfig};
pub use state_machine::watch::{Event, EventKind, Watcher};
pub use state_machine::{ListPage, StoreReader};
