//! Skiff's test infrastructure: a netns lab shaped like a small cluster
//! ([`lab`]), an echo workload ([`echo`]), deadline-bounded waiting
//! ([`wait`]), and the pieces the root integration tests drive the agent with
//! ([`agent`], [`kubelet_lab`], [`manifests`], [`bpfmaps`], [`rawpkt`], [`clusterip`]).

pub mod agent;
pub mod bpfmaps;
pub mod cluster;
pub mod clusterip;
pub mod demo;
pub mod echo;
pub mod kubelet_lab;
pub mod lab;
pub mod manifests;
pub mod metrics;
pub mod nodeport;
pub mod prog_run;
pub mod rawpkt;
pub mod seed_demo;
pub mod wait;
pub mod webapp;
