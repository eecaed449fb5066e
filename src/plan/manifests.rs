//! The Job manifests a plan gives: inline, in a file (`job_file`, `job_path`) or a directory of
//! files, each read from JSON or YAML documents and checked to be a usable batch/v1 Job.

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;

use super::fields::kind_of;
use super::{Ctx, PlanError};
use crate::config::{job_from_json, parse_json};

/// Files a Jobernetes `type: directory` job runs (extensions compared as Jobernetes does,
/// case and all).
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A step's inline `job`, checked now so that a Job the API server would reject fails the plan
/// before any of its dependencies run.
pub(super) fn inline_job(value: &Value) -> Result<Job, String> {
    job_from_json(value.clone()).and_then(|job| check_containers(&job).map(|()| job))
}

/// Reads one batch/v1 Job manifest. Errors start with the path, to follow a field name.
pub(super) fn load_job_file(path: &Path) -> Result<Job, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown} {}", describe_io(&e)))?;
    let mut docs = parse_documents(&text).map_err(|e| format!("{shown} is {e}"))?;
    let doc = match docs.len() {
        0 => return Err(format!("{shown} is empty; expected a batch/v1 Job")),
        1 => docs.remove(0),
        // One file, one step: several Jobs in one file would need invented names; a directory
        // of files already gives each Job its own step.
        n => {
            return Err(format!(
                "{shown} holds {n} YAML documents; a Job file holds exactly one batch/v1 Job (put each Job in its own file and use a Jobernetes `type: directory` job or one step per file)"
            ));
        }
    };
    let Value::Object(fields) = &doc else {
        return Err(format!(
            "{shown} holds {}, not a batch/v1 Job",
            kind_of(&doc)
        ));
    };
    let api_version = fields.get("apiVersion").and_then(Value::as_str);
    let kind = fields.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (Some("batch/v1"), Some("Job")) => {}
        (None, None) => {
            return Err(format!(
                "{shown} has no apiVersion and kind; expected a batch/v1 Job"
            ));
        }
        (a, k) => {
            return Err(format!(
                "{shown} is a {} {}, not a batch/v1 Job",
                a.unwrap_or("(no apiVersion)"),
                k.unwrap_or("(no kind)")
            ));
        }
    }
    let job = job_from_json(doc).map_err(|e| format!("{shown} is {e}"))?;
    check_containers(&job).map_err(|e| format!("{shown}: {e}"))?;
    Ok(job)
}

/// `k8s_openapi` fills a missing container list with an empty one, so check it here rather
/// than let the API server reject the child after its dependencies already ran.
fn check_containers(job: &Job) -> Result<(), String> {
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or(0, |p| p.containers.len());
    if containers == 0 {
        Err("the Job has no containers (spec.template.spec.containers is empty)".into())
    } else {
        Ok(())
    }
}

/// One Job per manifest directly in `dir`, sorted by file name, each named `<job>-<file stem>`.
/// Jobernetes (`JobModel.__directory_filelist`) takes the same extensions, in `os.walk` order;
/// it also walked into subdirectories but looked for their files in `dir`, so a manifest in a
/// subdirectory made it fail. Here subdirectories and hidden files are left out, with a note.
pub(super) fn directory_jobs(
    ctx: &Ctx,
    label: &str,
    job: &str,
    dir: &Path,
) -> Result<Vec<(String, Job)>, PlanError> {
    let fail = |message: String| ctx.manifest(format!("{label}: `job_path` {message}"));
    if !dir.is_dir() {
        return Err(fail(if dir.exists() {
            format!(
                "{} is not a directory; `type: directory` runs every Job manifest in a directory (leave out `type` for a single file)",
                dir.display()
            )
        } else {
            format!("{} does not exist", dir.display())
        }));
    }
    let unreadable = |e: std::io::Error| fail(format!("{} {}", dir.display(), describe_io(&e)));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if runs_in_directory_job(ctx, label, &path, &file_name) {
            files.push((file_name, path));
        }
    }
    if files.is_empty() {
        return Err(fail(format!(
            "{} holds no Job manifests (*.yaml, *.yml or *.json)",
            dir.display()
        )));
    }
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let manifest = load_job_file(&path).map_err(&fail)?;
            Ok((directory_step_name(job, &stem), manifest))
        })
        .collect()
}

/// Whether a directory job runs the entry at `path`: a manifest file directly in the directory.
/// What a user may have expected to run is noted, since Jobernetes treated it differently.
fn runs_in_directory_job(ctx: &Ctx, label: &str, path: &Path, file_name: &str) -> bool {
    let hidden = file_name.starts_with('.');
    // `is_dir`/`is_file` follow symlinks: a mounted ConfigMap's visible names link into its
    // hidden `..data/` directory, which is left out without a note.
    if path.is_dir() {
        if !hidden {
            ctx.note(format!(
                "{label}: subdirectory {} is not read; a directory job runs the manifests directly in `job_path`",
                path.display()
            ));
        }
        return false;
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !MANIFEST_EXTENSIONS.contains(&extension) || !path.is_file() {
        return false;
    }
    if hidden {
        // Dotfiles are left-overs more often than Jobs (macOS `._name.yaml`, editors).
        ctx.note(format!(
            "{label}: hidden file {} is left out; Jobernetes ran it, rename it to run it here",
            path.display()
        ));
        return false;
    }
    true
}

/// `<job>-<stem>`, with characters a step name cannot hold turned into `-` and cut to 63.
/// A clash this might cause is reported by the duplicate-name check like any other.
fn directory_step_name(job: &str, stem: &str) -> String {
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name: String = format!("{job}-{stem}").chars().take(63).collect();
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    name
}

/// JSON or YAML documents, through one path. Text that looks like JSON is read as JSON first so
/// that its errors are JSON's; YAML's flow style (`{steps: [...]}`) then still works.
pub(super) fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with(['{', '[']) {
        return match parse_json(text) {
            Ok(v) => Ok(vec![v]),
            Err(json) => yaml_documents(text).map_err(|_| json),
        };
    }
    // The snippet form spans several lines; jobherd's log is one event per line.
    yaml_documents(text).map_err(|e| format!("not valid YAML: {}", e.without_snippet()))
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple::<Value>(text)
        .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
}

pub(super) fn describe_io(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "does not exist".into()
    } else {
        format!("cannot be read: {e}")
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::parse;
    use crate::plan::test_support::*;

    #[test]
    fn missing_job_file_shows_the_resolved_path() {
        let (msg, dir) = error_in_dir("steps: [{name: a, job_file: jobs/a.yaml}]", &[]);
        let path = dir.path().join("jobs/a.yaml");
        assert!(
            msg.ends_with(&format!(
                ": step \"a\": `job_file` {} does not exist",
                path.display()
            )),
            "{msg}"
        );
        let (msg, dir) = error_in_dir(
            "jobernetes: [{phase_name: p, jobs: [{name: a, job_path: test-dir/x.yaml}]}]",
            &[],
        );
        let path = dir.path().join("test-dir/x.yaml");
        assert!(
            msg.ends_with(&format!(
                ": job \"a\": `job_path` {} does not exist",
                path.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn job_file_that_is_not_yaml_shows_the_parser_message() {
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: a.yaml}]",
            &[("a.yaml", "apiVersion: batch/v1\nkind: Job\n  spec: [\n")],
        );
        assert!(
            msg.contains("a.yaml is not valid YAML: ") && msg.contains(" at line 3, column "),
            "{msg}"
        );
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: a.json}]",
            &[("a.json", "{\"apiVersion\": \"batch/v1\"")],
        );
        assert!(msg.contains("a.json is not valid JSON ("), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn job_file_that_is_not_a_job_says_what_it_is() {
        let (msg, dir) = error_in_dir(
            "jobernetes: [{phase_name: p, jobs: [{name: a, job_path: test-dir/x.yaml}]}]",
            &[("test-dir/x.yaml", POD)],
        );
        assert_eq!(
            msg,
            format!(
                "{}: job \"a\": `job_path` {} is a v1 Pod, not a batch/v1 Job",
                dir.path().join("plan.yaml").display(),
                dir.path().join("test-dir/x.yaml").display()
            )
        );
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: x.yaml}]",
            &[("x.yaml", "name: just-a-mapping\n")],
        );
        assert!(
            msg.ends_with("x.yaml has no apiVersion and kind; expected a batch/v1 Job"),
            "{msg}"
        );
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: x.yaml}]",
            &[("x.yaml", "just text\n")],
        );
        assert!(
            msg.ends_with("x.yaml holds a string, not a batch/v1 Job"),
            "{msg}"
        );
        let msg = error("steps: [{name: a, job: {apiVersion: apps/v1, kind: Deployment}}]");
        assert_eq!(
            msg,
            "plan.yaml: step \"a\": `job`: expected a batch/v1 Job, found apps/v1 Deployment"
        );
    }

    #[test]
    fn job_without_containers_is_rejected() {
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: x.yaml}]",
            &[(
                "x.yaml",
                "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\n",
            )],
        );
        assert!(
            msg.ends_with(
                "x.yaml: the Job has no containers (spec.template.spec.containers is empty)"
            ),
            "{msg}"
        );
        assert_eq!(
            error("steps: [{name: a, job: {spec: {template: {spec: {containers: []}}}}}]"),
            "plan.yaml: step \"a\": `job`: the Job has no containers (spec.template.spec.containers is empty)"
        );
    }

    #[test]
    fn multi_document_job_file_is_rejected() {
        let (msg, _dir) = error_in_dir(
            "steps: [{name: a, job_file: x.yaml}]",
            &[("x.yaml", &format!("---\n{JOB}---\n{JOB}"))],
        );
        assert!(
            msg.contains(
                "x.yaml holds 2 YAML documents; a Job file holds exactly one batch/v1 Job"
            ),
            "{msg}"
        );
    }

    #[test]
    fn directory_job_problems_are_explained() {
        let model =
            "jobernetes: [{phase_name: p, jobs: [{name: w, type: directory, job_path: d}]}]";
        let (msg, dir) = error_in_dir(model, &[("d/notes.txt", "x")]);
        assert!(
            msg.ends_with(&format!(
                ": job \"w\": `job_path` {} holds no Job manifests (*.yaml, *.yml or *.json)",
                dir.path().join("d").display()
            )),
            "{msg}"
        );
        let (msg, _dir) = error_in_dir(model, &[("d/a.yaml", JOB), ("d/b.yaml", POD)]);
        assert!(
            msg.ends_with("b.yaml is a v1 Pod, not a batch/v1 Job"),
            "{msg}"
        );
        let (msg, _dir) = error_in_dir(
            "jobernetes: [{phase_name: p, jobs: [{name: w, job_path: d}]}]",
            &[("d/a.yaml", JOB)],
        );
        assert!(
            msg.ends_with("is a directory; add `type: directory` to run every Job in it"),
            "{msg}"
        );
        let (msg, _dir) = error_in_dir(
            "jobernetes: [{phase_name: p, jobs: [{name: w, type: dir, job_path: d}]}]",
            &[("d/a.yaml", JOB)],
        );
        assert!(
            msg.ends_with(
                "is a directory, but its `type` is \"dir\"; add `type: directory` to run every Job in it"
            ),
            "{msg}"
        );
    }

    #[test]
    fn directory_jobs_leave_out_hidden_files_and_subdirectories_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        for (name, text) in [
            ("b.yml", JOB),
            (".a.yaml", JOB),
            ("c.YAML", POD),
            (".c.yaml.un~", "undo"),
            ("old/d.yaml", JOB),
            ("..data/e.yaml", POD),
        ] {
            let path = jobs.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let model =
            "jobernetes: [{phase_name: p, jobs: [{name: all, type: directory, job_path: jobs}]}]";
        let p = parse(model, "jobermodel.yaml", dir.path()).unwrap();
        // Extensions are compared as Jobernetes compares them: `c.YAML` is not a manifest.
        assert_eq!(names(&p), ["all-b"]);
        let mut notes = p.options.notes.clone();
        notes.sort();
        assert_eq!(
            notes,
            [
                format!(
                    "job \"all\": hidden file {} is left out; Jobernetes ran it, rename it to run it here",
                    jobs.join(".a.yaml").display()
                ),
                format!(
                    "job \"all\": subdirectory {} is not read; a directory job runs the manifests directly in `job_path`",
                    jobs.join("old").display()
                ),
            ]
        );
    }
}
