//! What a Job's status says: how it ended (read from its conditions, as the Job controller
//! writes them at every version from 1.21 on) and when that was decided. Shared by the run,
//! the record, retries, the disruption check and the trigger.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

/// When the condition that decided a Job's outcome was set (1.31+ sets `completionTime` only
/// with `Complete`, after `SuccessCriteriaMet`; failures have none).
pub fn decided_at(job: &Job) -> Option<Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .filter(|c| {
            matches!(
                c.type_.as_str(),
                "Complete" | "SuccessCriteriaMet" | "Failed" | "FailureTarget"
            )
        })
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .min()
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed { reason: String, message: String },
}

/// Reads a Job's conditions: `SuccessCriteriaMet`/`Complete` is success, `FailureTarget`/
/// `Failed` failure with its reason and message. `None` while it is still running.
/// (kube's `is_job_completed` never reports a failed Job, so conditions are read here.)
pub fn outcome(job: &Job) -> Option<Outcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let mut failure = None;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Some(Outcome::Succeeded),
            // Prefer the final `Failed` over `FailureTarget` when both are there.
            "Failed" | "FailureTarget" if failure.is_none() || c.type_ == "Failed" => {
                failure = Some(Outcome::Failed {
                    reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    message: c.message.clone().unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    failure
}
