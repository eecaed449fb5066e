//! jobherd: runs as the parent Job of a CronJob, fans out child Jobs, follows them through the
//! Kubernetes API and exits with the aggregate result. `main.rs` only wires these together.

pub mod config;
pub mod plan;
