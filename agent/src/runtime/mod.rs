//! The container runtime: a container is a process in its own mount, pid,
//! uts and ipc namespaces, joined to its pod's network namespace, pivoted
//! into a rootfs from the image store, in a cgroup under its pod's.
//!
//! - [`Runtime::start`] has the [`spawner`] fork a shim ([`shim`]), which forks the container
//!   process ([`child`] documents its setup sequence); the agent puts that
//!   process into its cgroup before releasing it to exec.
//! - [`Runtime::adopt`] finds a container again after an agent restart.
//! - [`cgroups`]: the v1/v2 managers, QoS classes, conversions.
//! - [`logs`]: CRI-format log files with size rotation.
//! - [`console`]: a container's stdin or terminal, served to attaches by its shim.

pub mod cgroups;
mod child;
pub mod console;
mod container;
mod error;
pub mod exec;
pub mod logs;
mod shim;
pub mod spawner;
pub mod spec;
mod state;
mod sys;

pub use container::{Container, Runtime};
pub use error::RuntimeError;
pub use spec::{ContainerSpec, HostNamespaces, VolumeMount};
pub use state::{ContainerState, ExitStatus};
pub use sys::{openpty, proc_start_time};
