//! Skiff node agent: the service proxy (eBPF maps), the BPF loader and the
//! service sources.
//!
//! - [`proxy`]: pure code (no root) that turns Services and EndpointSlices
//!   into map contents and programs them in a safe order;
//! - [`dataplane`]: loading, pinning and attaching the BPF programs (root);
//! - [`source`]: where Services and EndpointSlices come from;
//! - [`cpclient`]: the client of the control plane's agent API (gRPC);
//! - [`sandbox`]: pod network namespaces, veths, IPAM, routes (root);
//! - [`image`]: the node-local image store;
//! - [`runtime`]: containers in their own namespaces and cgroups (root);
//! - [`kubelet`]: the pod manager, probes, container logs and the agent HTTP server.

pub mod cpclient;
pub mod dataplane;
pub mod image;
pub mod kubelet;
pub mod proxy;
pub mod runtime;
pub mod sandbox;
pub mod source;
