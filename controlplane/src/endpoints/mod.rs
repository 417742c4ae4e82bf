//! The endpoints controller: an EndpointSlice (`kubernetes.io/service-name`, IPv4, ports
//! named like the service's with target ports resolved, conditions from pod readiness and
//! deletion) and the legacy Endpoints object for every Service with a selector.
//!
//! [`reflector`] is the list+watch cache it runs on (also used by node IPAM and node
//! lifecycle); [`desired`] computes what a Service's endpoints should be; [`controller`]
//! writes the difference, stamped by [`trigger`] with the time of the change that caused it
//! (`endpoints.kubernetes.io/last-change-trigger-time`).

pub mod controller;
pub mod desired;
pub mod reflector;
pub mod trigger;

pub use controller::run;

#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
