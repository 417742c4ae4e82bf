//! Admission decisions on resource usage, as kube-apiserver's LimitRanger and ResourceQuota
//! plugins make them: [`resources`] (quantities added and printed), [`limit_range`]
//! (defaults and bounds) and [`quota`] (what an object counts against a quota). Pure; the
//! reads and writes around them are in `api::objects::admit`.

pub mod limit_range;
pub mod quota;
pub mod resources;
