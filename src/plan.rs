//! Plans: steps with dependencies, phases, and Jobernetes files. (Temporary stub: the real
//! module is being written; this only carries its interface so the rest compiles.)

use std::path::Path;

use crate::config::{Cleanup, PlanSource, StepSettings};

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub options: PlanOptions,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub depends_on: Vec<String>,
    pub settings: StepSettings,
    pub phase: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub cleanup: Option<Cleanup>,
    pub namespace: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
}

pub fn load(_source: &PlanSource) -> Result<Plan, PlanError> {
    Err(PlanError::Invalid("plans are not supported yet".into()))
}

pub fn parse(_text: &str, _origin: &str, _base_dir: &Path) -> Result<Plan, PlanError> {
    Err(PlanError::Invalid("plans are not supported yet".into()))
}

pub fn k8s_name(step_name: &str) -> String {
    step_name.to_lowercase().replace(['_', '.'], "-")
}
