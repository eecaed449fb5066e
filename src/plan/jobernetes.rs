//! An unchanged Jobernetes `jobermodel.yaml`, read as Jobernetes reads it: phases of jobs that
//! point at Job manifests, a `jobernetes_config` of run-wide options, unknown keys noted.

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value};

use super::fields::{
    Field, depends_on, did_you_mean, entry_name, field_names, kind_of, knows, mapping,
    note_unknown_fields,
};
use super::manifests::{directory_jobs, load_job_file};
use super::steps::{PhaseShape, Unknown, phase_list};
use super::{Ctx, Entry, PlanError, PlanOptions};
use crate::config::{Cleanup, StepSettings, check_dns_label, nearest, parse_bool};

/// The labels Jobernetes puts on every Job it creates, and jobherd on the children of a model.
pub const JOBERNETES_JOB_NAME: &str = "jobernetes_job_name";
pub const JOBERNETES_PHASE: &str = "jobernetes_phase";
pub const JOBERNETES_EXPLODED: &str = "jobernetes_exploded";

pub const JOBERNETES_PHASE_FIELDS: &[Field] = &[
    Field {
        name: "phase_name",
        meaning: "The phase's name. Every job of a phase depends on every job of the phase before.",
    },
    Field {
        name: "jobs",
        meaning: "The phase's jobs.",
    },
];

pub const JOBERNETES_JOB_FIELDS: &[Field] = &[
    Field {
        name: "name",
        meaning: "The job's name: the child is `<prefix>-<name>` (lowercased, `_` and `.` as `-`), labelled `jobernetes_job_name: <name>`.",
    },
    Field {
        name: "job_path",
        meaning: "Required: a Job manifest, or with `type: directory` a directory of them (`*.yml`, `*.yaml`, `*.json`, by file name), relative to the model's directory.",
    },
    Field {
        name: "type",
        meaning: "`directory` runs every manifest of `job_path`, each as a step `<name>-<file stem>`; anything else runs one file.",
    },
    Field {
        name: "depends_on",
        meaning: "Jobs of the same or an earlier phase; a directory job's name means all its files.",
    },
];

/// The keys `jobernetes.py` reads; others are ignored there, and here with a note.
pub const JOBERNETES_CONFIG_FIELDS: &[Field] = &[
    Field {
        name: "cleanup",
        meaning: "`true` is `JOBHERD_CLEANUP=succeeded`, `false` is `never`; the variable wins.",
    },
    Field {
        name: "kubernetes_namespace",
        meaning: "The children's namespace; `JOBHERD_NAMESPACE` wins. Unset: the parent's namespace, not `default`.",
    },
    Field {
        name: "parallelization",
        meaning: "The most children active at once, counting this run's only (`0`: no limit); `JOBHERD_PARALLELISM` wins.",
    },
    Field {
        name: "refresh_time",
        meaning: "Accepted, not needed: jobherd watches instead of polling (a note).",
    },
    Field {
        name: "incluster",
        meaning: "Accepted, not needed: jobherd finds the cluster as kubectl does (a note).",
    },
    Field {
        name: "ssl_insecure_warnings",
        meaning: "Accepted, not needed: jobherd prints no such warnings (a note).",
    },
];

const JOBERNETES_PHASES: PhaseShape = PhaseShape {
    list_key: "jobernetes",
    name_key: "phase_name",
    items_key: "jobs",
    item: "job",
    fields: JOBERNETES_PHASE_FIELDS,
    what: "a Jobernetes phase",
    unknown: Unknown::Note,
};

/// A Jobernetes `jobermodel.yaml`, read as Jobernetes reads it (`jobernetes/jobmodel.py`,
/// `jobernetes/jobconfig.py`): phases in order, keys it does not know ignored.
pub(super) fn jobernetes_plan(
    ctx: &Ctx,
    top: &Map<String, Value>,
) -> Result<(Vec<Entry>, Vec<String>, PlanOptions), PlanError> {
    let options = jobernetes_config(ctx, top.get("jobernetes_config").unwrap_or(&Value::Null))?;
    let phases = top.get("jobernetes").unwrap_or(&Value::Null);
    let (entries, names) = phase_list(ctx, phases, &JOBERNETES_PHASES, jobernetes_job)?;
    Ok((entries, names, options))
}

fn jobernetes_job(
    ctx: &Ctx,
    value: &Value,
    position: &str,
    phase: usize,
) -> Result<Entry, PlanError> {
    let fields = mapping(value).ok_or_else(|| {
        ctx.format(format!(
            "{position} must be a mapping with name and job_path, found {}",
            kind_of(value)
        ))
    })?;
    let name = entry_name(ctx, &fields, position, "job")?;
    let label = format!("job {name:?}");
    note_unknown_fields(ctx, &fields, JOBERNETES_JOB_FIELDS, &label);
    let depends_on = depends_on(ctx, &fields, &label)?;
    let kind = fields.get("type");
    let directory = is_directory_job(ctx, &label, kind);
    let path = job_path(ctx, &label, &fields)?;
    let jobs = if directory {
        directory_jobs(ctx, &label, &name, &path)?
    } else {
        vec![(name.clone(), single_job_file(ctx, &label, kind, &path)?)]
    };
    let steps = jobs
        .into_iter()
        .map(|(step, mut job)| {
            add_jobernetes_labels(&mut job, &name, phase, directory);
            (step, job_settings(job))
        })
        .collect();
    Ok(Entry {
        name,
        noun: "job",
        phase: Some(phase),
        depends_on,
        when: super::When::Succeeded,
        steps,
    })
}

/// Jobernetes expands a directory for `type: directory` only; any other type is one file, and a
/// type other than `file` is noted, since its author may have meant a directory.
fn is_directory_job(ctx: &Ctx, label: &str, kind: Option<&Value>) -> bool {
    let directory = kind.and_then(Value::as_str) == Some("directory");
    if let Some(other) = kind.filter(|t| !directory && t.as_str() != Some("file")) {
        ctx.note(format!(
            "{label}: `type` {other} runs `job_path` as a single file, as in Jobernetes (only `type: directory` runs a directory)"
        ));
    }
    directory
}

/// A job's required `job_path`, resolved; when it is missing, a near-miss key is named, as
/// Jobernetes' own KeyError did not say which key was wrong.
fn job_path(ctx: &Ctx, label: &str, fields: &Map<String, Value>) -> Result<PathBuf, PlanError> {
    match fields.get("job_path") {
        Some(Value::String(p)) if !p.trim().is_empty() => Ok(ctx.resolve(p.trim())),
        Some(other) => {
            Err(ctx.format(format!("{label}: `job_path` must be a path, found {other}")))
        }
        None => {
            let typo = fields
                .keys()
                .filter(|k| !knows(JOBERNETES_JOB_FIELDS, k))
                .find(|k| nearest(k, ["job_path"]).is_some())
                .map(|k| format!(" (is {k:?} meant to be `job_path`?)"))
                .unwrap_or_default();
            Err(ctx.format(format!("{label} has no `job_path`{typo}")))
        }
    }
}

/// The Job of a job that is not `type: directory`; a directory there is refused with the fix,
/// rather than failing to read it as a file.
fn single_job_file(
    ctx: &Ctx,
    label: &str,
    kind: Option<&Value>,
    path: &Path,
) -> Result<Job, PlanError> {
    if path.is_dir() {
        let but = kind.map_or(String::new(), |t| format!(", but its `type` is {t}"));
        return Err(ctx.manifest(format!(
            "{label}: `job_path` {} is a directory{but}; add `type: directory` to run every Job in it",
            path.display()
        )));
    }
    load_job_file(path).map_err(|e| ctx.manifest(format!("{label}: `job_path` {e}")))
}

fn job_settings(job: Job) -> StepSettings {
    StepSettings {
        job: Some(job),
        ..StepSettings::default()
    }
}

/// The labels Jobernetes puts on every Job it creates (`JobModel.__extend_jobmodel`), so that
/// whatever selects Jobs by them (`kubectl get jobs -l jobernetes_phase=1`) still finds them.
fn add_jobernetes_labels(job: &mut Job, name: &str, phase: usize, exploded: bool) {
    let labels = job.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(JOBERNETES_JOB_NAME.into(), name.into());
    labels.insert(JOBERNETES_PHASE.into(), phase.to_string());
    // Python's `str(bool)`, as Jobernetes writes it.
    let exploded = if exploded { "True" } else { "False" };
    labels.insert(JOBERNETES_EXPLODED.into(), exploded.into());
}

/// `jobernetes_config`: overrides of Jobernetes' defaults, merged key by key
/// (`JobConfig.get_jobconfig`); `jobernetes.py` reads six of them and nothing else.
fn jobernetes_config(ctx: &Ctx, value: &Value) -> Result<PlanOptions, PlanError> {
    let mut options = PlanOptions::default();
    if value.is_null() {
        return Ok(options);
    }
    let fields = mapping(value).ok_or_else(|| {
        ctx.format(format!(
            "`jobernetes_config` must be a mapping, found {}",
            kind_of(value)
        ))
    })?;
    let invalid =
        |key: &str, problem: String| ctx.format(format!("`jobernetes_config.{key}`: {problem}"));
    for (key, value) in &fields {
        match key.as_str() {
            "cleanup" => options.cleanup = Some(jobernetes_cleanup(value).map_err(|e| invalid(key, e))?),
            "kubernetes_namespace" => {
                options.namespace = Some(jobernetes_namespace(value).map_err(|e| invalid(key, e))?)
            }
            "parallelization" => {
                options.parallelism = jobernetes_parallelism(value).map_err(|e| invalid(key, e))?
            }
            "refresh_time" => ctx.note(
                "jobernetes_config.refresh_time is not needed: jobherd watches the API instead of polling every refresh_time seconds".into(),
            ),
            "incluster" => ctx.note(
                "jobernetes_config.incluster is not needed: jobherd finds the cluster like kubectl does (KUBECONFIG or ~/.kube/config first, then the pod's service account)".into(),
            ),
            "ssl_insecure_warnings" => ctx.note(
                "jobernetes_config.ssl_insecure_warnings is not needed: it only silenced Python's warnings about unverified TLS, and jobherd prints none (it verifies TLS as the kubeconfig or the service account says)".into(),
            ),
            _ => ctx.note(format!(
                "jobernetes_config.{key} is ignored, as Jobernetes ignores it{}",
                did_you_mean(key, field_names(JOBERNETES_CONFIG_FIELDS))
            )),
        }
    }
    Ok(options)
}

/// Jobernetes deletes its Jobs only once every one has succeeded: it waits for ever on a failed
/// one. Failed children stay, for their logs.
fn jobernetes_cleanup(value: &Value) -> Result<Cleanup, String> {
    let cleanup = match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => parse_bool(s),
        _ => Err("expected true or false".to_string()),
    }
    .map_err(|e| format!("{e}, found {value}"))?;
    Ok(if cleanup {
        Cleanup::Succeeded
    } else {
        Cleanup::Never
    })
}

/// Checked here, as every child is created in it: a bad name would fail only at the first one.
fn jobernetes_namespace(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a namespace name, found {value}"))
        .and_then(|s| check_dns_label(s).map(|()| s.to_string()))
}

/// Jobernetes' `parallelization: 0` is no limit, which is `None` here.
fn jobernetes_parallelism(value: &Value) -> Result<Option<u32>, String> {
    let most = value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!("expected a whole number of Jobs at once, 0 for no limit, found {value}")
        })?;
    Ok((most > 0).then_some(most))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlanSource;
    use crate::plan::test_support::*;
    use crate::plan::{load, parse};

    #[test]
    fn jobernetes_simple_example_runs_unchanged() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/simple/jobermodel.yaml",
        )))
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "sleep_one",
                "dream_a",
                "dream_b",
                "wakeup-phase-three-sleep-2a",
                "wakeup-phase-three-sleep-3b",
            ]
        );
        assert_eq!(deps(&p, "dream_a"), ["sleep_one"]);
        assert_eq!(deps(&p, "dream_b"), ["sleep_one"]);
        for wakeup in ["wakeup-phase-three-sleep-2a", "wakeup-phase-three-sleep-3b"] {
            assert_eq!(deps(&p, wakeup), ["dream_a", "dream_b"]);
            assert_eq!(step(&p, wakeup).phase.as_deref(), Some("end_sleep"));
        }
        assert_eq!(job_command(step(&p, "dream_a")), ["sleep", "15"]);
        // The JSON manifest of the directory is read like the YAML ones.
        assert_eq!(
            job_command(step(&p, "wakeup-phase-three-sleep-3b")),
            ["sleep", "3"]
        );
        // Jobernetes deletes its Jobs only after every one succeeded.
        assert_eq!(p.options.cleanup, Some(Cleanup::Succeeded));
        assert!(p.options.notes.is_empty());
    }

    #[test]
    fn jobernetes_tree_example_depends_within_the_phase() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/tree/jobermodel.yaml",
        )))
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "sleep_one",
                "dream_a",
                "sleep_hickup_a",
                "dream_b",
                "sleep_hickup_b",
                "wakeup-phase-three-sleep-2a",
                "wakeup-phase-three-sleep-3b",
            ]
        );
        assert_eq!(deps(&p, "sleep_hickup_a"), ["sleep_one", "dream_a"]);
        assert_eq!(deps(&p, "sleep_hickup_b"), ["sleep_one", "dream_b"]);
        assert_eq!(
            deps(&p, "wakeup-phase-three-sleep-2a"),
            ["dream_a", "sleep_hickup_a", "dream_b", "sleep_hickup_b"]
        );
        assert_eq!(job_command(step(&p, "sleep_hickup_b")), ["sleep", "10"]);
    }

    #[test]
    fn jobernetes_repository_model_runs_with_its_own_config() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/upstream/jobermodel.yaml",
        )))
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "create_indices",
                "download_brahms",
                "import_brahms",
                "download_crs",
                "import_crs",
                "enrichment_jobs-phase-three-sleep-20",
            ]
        );
        assert_eq!(
            deps(&p, "import_brahms"),
            ["create_indices", "download_brahms"]
        );
        assert_eq!(deps(&p, "import_crs"), ["create_indices", "download_crs"]);
        assert_eq!(
            deps(&p, "enrichment_jobs-phase-three-sleep-20"),
            [
                "download_brahms",
                "import_brahms",
                "download_crs",
                "import_crs"
            ]
        );
        assert_eq!(p.options.cleanup, Some(Cleanup::Succeeded));
        assert_eq!(
            p.options.parallelism, None,
            "parallelization: 0 is no limit"
        );
        assert_eq!(p.options.notes.len(), 4, "{:?}", p.options.notes);
    }

    #[test]
    fn etl_model_with_directories_of_yml_files_validates() {
        let p = load(&PlanSource::File(fixture("jobernetes/etl/jobermodel.yaml"))).unwrap();
        assert_eq!(p.steps.len(), 32);
        assert_eq!(p.options.parallelism, Some(5));
        assert_eq!(p.options.namespace.as_deref(), Some("nba-v2-production"));
        assert_eq!(p.options.cleanup, Some(Cleanup::Never));
        let brahms_l: Vec<&str> = names(&p)
            .into_iter()
            .filter(|n| n.starts_with("import_brahms_l-"))
            .collect();
        assert_eq!(
            brahms_l.len(),
            12,
            "the editor's undo file is not a manifest"
        );
        assert_eq!(brahms_l[0], "import_brahms_l-brahms-l1-multimedia");
        let mut expected = vec!["create_indices"];
        expected.extend(&brahms_l);
        assert_eq!(deps(&p, "import_brahms_u-brahms-u-specimens"), expected);
        assert_eq!(
            deps(&p, "import_brahms_wag-brahms-wag-multimedia"),
            [
                "create_indices",
                "import_brahms_u-brahms-u-multimedia",
                "import_brahms_u-brahms-u-specimens"
            ]
        );
        assert_eq!(deps(&p, "force_merge"), ["log_extender-log-extender"]);
        assert_eq!(step(&p, "force_merge").phase.as_deref(), Some("post_jobs"));
    }

    #[test]
    fn jobernetes_labels_are_kept_on_the_jobs() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/upstream/jobermodel.yaml",
        )))
        .unwrap();
        let labels = |step_name: &str| {
            let job = step(&p, step_name).settings.job.clone().unwrap();
            job.metadata.labels.unwrap()
        };
        let file = labels("import_crs");
        assert_eq!(file["jobernetes_job_name"], "import_crs");
        assert_eq!(file["jobernetes_phase"], "1");
        assert_eq!(file["jobernetes_exploded"], "False");
        assert_eq!(
            file["app"], "phase-two-sleep-10",
            "the manifest's own labels stay"
        );
        let exploded = labels("enrichment_jobs-phase-three-sleep-20");
        assert_eq!(exploded["jobernetes_job_name"], "enrichment_jobs");
        assert_eq!(exploded["jobernetes_phase"], "2");
        assert_eq!(exploded["jobernetes_exploded"], "True");
    }

    #[test]
    fn jobernetes_config_maps_namespace_and_cleanup_and_explains_the_rest() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/simple/jobermodel.yaml",
        )))
        .unwrap()
        .steps;
        // Same steps, different config: the README's full config block, written as it shows.
        let model = std::fs::read_to_string(fixture("jobernetes/simple/jobermodel.yaml"))
            .unwrap()
            .replace(
                "  cleanup: true\n",
                "  cleanup: False\n  ssl_insecure_warnings: True\n  refresh_time: 5\n  kubernetes_namespace: 'default'\n  incluster: True\n",
            );
        let base = fixture("jobernetes/simple");
        let with_config = parse(&model, "jobermodel.yaml", &base).unwrap();
        assert_eq!(with_config.steps, p);
        let options = with_config.options;
        assert_eq!(options.cleanup, Some(Cleanup::Never));
        assert_eq!(options.namespace.as_deref(), Some("default"));
        assert_eq!(options.notes.len(), 3);
        assert!(options.notes.iter().any(|n| {
            n.starts_with("jobernetes_config.refresh_time is not needed: jobherd watches the API")
        }));
        assert!(
            options
                .notes
                .iter()
                .any(|n| n.contains("incluster is not needed")
                    && n.contains("KUBECONFIG")
                    && n.contains("service account"))
        );
        assert!(options.notes.iter().any(
            |n| n.contains("ssl_insecure_warnings is not needed") && n.contains("verifies TLS")
        ));
    }

    #[test]
    fn jobernetes_keys_jobherd_does_not_read_are_notes_not_errors() {
        let p = load(&PlanSource::File(fixture(
            "jobernetes/upstream/jobermodel.yaml",
        )))
        .unwrap();
        assert!(
            p.options
                .notes
                .contains(&"jobernetes_config.jobname is ignored, as Jobernetes ignores it".into()),
            "{:?}",
            p.options.notes
        );
        let (_, dir) = error_in_dir("", &[("a.yaml", JOB)]);
        let model = r#"
version: 2
jobernetes_config: {cleanup: true, parallelisation: 2, owner: data-team}
jobernetes:
  - phase_name: p
    description: nightly
    jobs:
      - {name: a, job_path: a.yaml, depend_on: [b], retries: 3}
      - {name: b, job_path: a.yaml, type: file}
      - {name: c, job_path: a.yaml, type: exploded}
"#;
        let p = parse(model, "jobermodel.yaml", dir.path()).unwrap();
        assert_eq!(names(&p), ["a", "b", "c"]);
        // Jobernetes ran `a` without the misspelt dependency; so does jobherd, and says so.
        assert_eq!(deps(&p, "a"), Vec::<&str>::new());
        assert_eq!(p.options.parallelism, None);
        assert_eq!(
            p.options.notes,
            [
                "top-level key \"version\" is ignored, as Jobernetes ignores it",
                "jobernetes_config.owner is ignored, as Jobernetes ignores it",
                "jobernetes_config.parallelisation is ignored, as Jobernetes ignores it (did you mean \"parallelization\"?)",
                "phase \"p\": field \"description\" is ignored, as Jobernetes ignores it",
                "job \"a\": field \"depend_on\" is ignored, as Jobernetes ignores it (did you mean \"depends_on\"?)",
                "job \"a\": field \"retries\" is ignored, as Jobernetes ignores it",
                "job \"c\": `type` \"exploded\" runs `job_path` as a single file, as in Jobernetes (only `type: directory` runs a directory)",
            ]
        );
    }

    #[test]
    fn values_of_jobernetes_keys_jobherd_uses_are_still_checked() {
        assert_eq!(
            error("jobernetes_config: {kubernetes_namespace: My_NS}\njobernetes: []"),
            "plan.yaml: `jobernetes_config.kubernetes_namespace`: \"My_NS\" is not a valid DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
        );
        assert_eq!(
            error("jobernetes_config: {cleanup: sometimes}\njobernetes: []"),
            "plan.yaml: `jobernetes_config.cleanup`: expected true or false, found \"sometimes\""
        );
        assert_eq!(
            error("jobernetes_config: {cleanup: true}\nsteps: [{name: a}]"),
            "plan.yaml: `jobernetes_config` only goes with a Jobernetes `jobernetes` list; with `steps`, set run-wide options with JOBHERD_* variables"
        );
        // A misspelt required key failed in Jobernetes too (a KeyError); here it is named.
        assert_eq!(
            error("jobernetes: [{phase_name: p, jobs: [{name: a, jobpath: x.yaml}]}]"),
            "plan.yaml: job \"a\" has no `job_path` (is \"jobpath\" meant to be `job_path`?)"
        );
    }

    #[test]
    fn jobernetes_parallelization_limits_children_and_0_means_no_limit() {
        let with = |value: &str| {
            let (_, dir) = error_in_dir("", &[("a.yaml", JOB)]);
            let model = format!(
                "jobernetes_config: {{parallelization: {value}}}\njobernetes: [{{phase_name: p, jobs: [{{name: a, job_path: a.yaml}}]}}]"
            );
            parse(&model, "jobermodel.yaml", dir.path()).map(|p| p.options)
        };
        assert_eq!(with("0").unwrap().parallelism, None);
        assert_eq!(with("5").unwrap().parallelism, Some(5));
        assert!(with("5").unwrap().notes.is_empty());
        for (bad, shown) in [
            ("-1", "-1"),
            ("five", "\"five\""),
            ("'5'", "\"5\""),
            ("2.5", "2.5"),
        ] {
            assert_eq!(
                with(bad).unwrap_err().to_string(),
                format!(
                    "jobermodel.yaml: `jobernetes_config.parallelization`: expected a whole number of Jobs at once, 0 for no limit, found {shown}"
                ),
                "{bad}"
            );
        }
    }
}
