//! What the plan unit tests share: a plan from text or from a file among others, and its steps.

use std::path::{Path, PathBuf};

use super::{Plan, PlanSource, Step, load, parse};

pub(super) const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n";

pub(super) const JOB: &str = "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox\n";

pub(super) fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub(super) fn plan(text: &str) -> Plan {
    parse(text, "plan.yaml", Path::new("")).unwrap()
}

pub(super) fn error(text: &str) -> String {
    parse(text, "plan.yaml", Path::new(""))
        .unwrap_err()
        .to_string()
}

/// A plan file in a temporary directory with the given other files beside it.
pub(super) fn error_in_dir(plan: &str, files: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let plan_file = dir.path().join("plan.yaml");
    std::fs::write(&plan_file, plan).unwrap();
    let message = load(&PlanSource::File(plan_file)).unwrap_err().to_string();
    (message, dir)
}

pub(super) fn names(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.name.as_str()).collect()
}

pub(super) fn step<'a>(plan: &'a Plan, name: &str) -> &'a Step {
    plan.steps.iter().find(|s| s.name == name).unwrap()
}

pub(super) fn deps<'a>(plan: &'a Plan, name: &str) -> Vec<&'a str> {
    step(plan, name)
        .depends_on
        .iter()
        .map(String::as_str)
        .collect()
}

pub(super) fn job_command(step: &Step) -> Vec<String> {
    let job = step.settings.job.as_ref().unwrap();
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0].command.clone().unwrap()
}
