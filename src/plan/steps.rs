//! jobherd's own plan formats: `steps`, and `phases` (lists of steps). One step's fields are
//! read here, into the settings it layers over the variables.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value};

use super::fields::{
    Field, check_fields, depends_on, entry_name, kind_of, list, mapping, note_unknown_fields,
};
use super::manifests::{inline_job, load_job_file};
use super::{Ctx, Entry, PlanError, When};
use crate::config::{
    FanOut, Pack, RestartPolicy, StepSettings, env_from_json, params_from_json, parse_duration,
    parse_positive_duration, parse_queue, string_array_from_json,
};

/// Every field a step takes; any other is a typo. Each is read in `step_settings`, or in
/// `step_entry` when it names other steps.
pub const STEP_FIELDS: &[Field] = &[
    Field {
        name: "name",
        meaning: "Required: 1 to 63 letters, digits, `_`, `.` or `-`, starting and ending with a letter or digit. Children are named `<prefix>-<step>`, with `_` and `.` as `-`.",
    },
    Field {
        name: "depends_on",
        meaning: "A list of step names: the step starts once they have ended as its `when` asks.",
    },
    Field {
        name: "image",
        meaning: "The container image, as `JOBHERD_IMAGE`.",
    },
    Field {
        name: "command",
        meaning: "A list of strings (exec form), as `JOBHERD_COMMAND`.",
    },
    Field {
        name: "args",
        meaning: "A list of strings, as `JOBHERD_ARGS`.",
    },
    Field {
        name: "shell",
        meaning: "A string run as `[\"/bin/sh\",\"-c\",STRING]`, as `JOBHERD_SHELL`; excludes `command` and `args`.",
    },
    Field {
        name: "env",
        meaning: "A mapping of environment variables (strings, numbers, booleans), merged over `JOBHERD_ENV`, the step winning.",
    },
    Field {
        name: "params",
        meaning: "A list of mappings: one child per element, as `JOBHERD_PARAMS`.",
    },
    Field {
        name: "count",
        meaning: "N children with `JOBHERD_CHILD_INDEX` and `JOBHERD_CHILD_COUNT`, as `JOBHERD_COUNT`; excludes `params`.",
    },
    Field {
        name: "params_from",
        meaning: "The name of a step in `depends_on`: one child per element of that step's result, a JSON array (an object's entries become env vars, anything else `JOBHERD_ITEM`); excludes `params` and `count`.",
    },
    Field {
        name: "when",
        meaning: "`succeeded` (the default: every dependency succeeded), `failed` (every dependency ended and one did not succeed: a revert) or `always` (every dependency ended: a notification); other than `succeeded` it needs `depends_on`.",
    },
    Field {
        name: "backoff_limit",
        meaning: "A whole number, 0 or more, as `JOBHERD_BACKOFF_LIMIT`.",
    },
    Field {
        name: "restart_policy",
        meaning: "`OnFailure` or `Never`, as `JOBHERD_RESTART_POLICY`.",
    },
    Field {
        name: "child_timeout",
        meaning: "A duration, as `JOBHERD_CHILD_TIMEOUT`.",
    },
    Field {
        name: "ttl",
        meaning: "A duration, as `JOBHERD_TTL`.",
    },
    Field {
        name: "queue",
        meaning: "A Kueue LocalQueue for this step's children, instead of `JOBHERD_QUEUE`.",
    },
    Field {
        name: "pack",
        meaning: "`indexed` or `off`, instead of `JOBHERD_PACK`: whether this step's children (of `count`, `params` or `params_from`) are packed into Indexed Jobs.",
    },
    Field {
        name: "job",
        meaning: "A batch/v1 Job manifest (a mapping) used as this step's base, instead of `JOBHERD_JOB_TEMPLATE`; its `metadata.name` is replaced.",
    },
    Field {
        name: "job_file",
        meaning: "The path of a JSON or YAML file holding one batch/v1 Job, relative to the plan file (to the current directory for `JOBHERD_PLAN`); excludes `job`.",
    },
];

pub(super) fn steps_plan(ctx: &Ctx, steps: &Value) -> Result<Vec<Entry>, PlanError> {
    let items = list(steps).ok_or_else(|| {
        ctx.format(format!(
            "`steps` must be a list of steps, found {}",
            kind_of(steps)
        ))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| step_entry(ctx, v, &format!("step {}", i + 1), None))
        .collect()
}

/// Steps of every phase, each tagged with its phase index.
pub(super) fn phases_plan(
    ctx: &Ctx,
    phases: &Value,
) -> Result<(Vec<Entry>, Vec<String>), PlanError> {
    phase_list(ctx, phases, &PHASES, |ctx, step, position, p| {
        step_entry(ctx, step, position, Some(p))
    })
}

/// The two phase-list formats differ only in their words.
pub(super) struct PhaseShape {
    /// The top-level key holding the list.
    pub(super) list_key: &'static str,
    pub(super) name_key: &'static str,
    pub(super) items_key: &'static str,
    /// What one item is called in messages: `step` or `job`.
    pub(super) item: &'static str,
    pub(super) fields: &'static [Field],
    /// What one phase is called in messages.
    pub(super) what: &'static str,
    /// Whether a field outside `fields` is an error or a note.
    pub(super) unknown: Unknown,
}

/// What a format does with a field it does not know.
#[derive(Clone, Copy)]
pub(super) enum Unknown {
    /// jobherd's own formats: a typo guard.
    Reject,
    /// Jobernetes reads only the keys it knows, so a working model may hold others: run it
    /// unchanged and say what was ignored.
    Note,
}

pub const PHASE_FIELDS: &[Field] = &[
    Field {
        name: "name",
        meaning: "The phase's name, shown in the table and the report.",
    },
    Field {
        name: "steps",
        meaning: "The phase's steps. Each depends on every step of the phase before; `depends_on` may add steps of the same or an earlier phase.",
    },
];

const PHASES: PhaseShape = PhaseShape {
    list_key: "phases",
    name_key: "name",
    items_key: "steps",
    item: "step",
    fields: PHASE_FIELDS,
    what: "a phase",
    unknown: Unknown::Reject,
};

/// Walks a list of phases, checking each phase's shape, and turns every item into an entry
/// tagged with its phase index. Returns the entries and the phase names.
pub(super) fn phase_list(
    ctx: &Ctx,
    phases: &Value,
    shape: &PhaseShape,
    entry: impl Fn(&Ctx, &Value, &str, usize) -> Result<Entry, PlanError>,
) -> Result<(Vec<Entry>, Vec<String>), PlanError> {
    let (name_key, items_key, item) = (shape.name_key, shape.items_key, shape.item);
    let items = list(phases).ok_or_else(|| {
        ctx.format(format!(
            "`{}` must be a list of phases ({{{name_key}, {items_key}}}), found {}",
            shape.list_key,
            kind_of(phases)
        ))
    })?;
    let mut entries = Vec::new();
    let mut names = Vec::new();
    for (p, phase) in items.iter().enumerate() {
        let position = format!("phase {}", p + 1);
        let fields = mapping(phase).ok_or_else(|| {
            ctx.format(format!(
                "{position} must be a mapping with {name_key} and {items_key}, found {}",
                kind_of(phase)
            ))
        })?;
        let name = phase_name(ctx, &fields, name_key, &position, &names)?;
        let label = format!("phase {name:?}");
        match shape.unknown {
            Unknown::Reject => check_fields(ctx, &fields, shape.fields, &label, shape.what)?,
            Unknown::Note => note_unknown_fields(ctx, &fields, shape.fields, &label),
        }
        let members = fields.get(items_key).unwrap_or(&Value::Null);
        let members = list(members).ok_or_else(|| {
            ctx.format(format!(
                "phase {name:?}: `{items_key}` must be a list of {item}s, found {}",
                kind_of(members)
            ))
        })?;
        if members.is_empty() {
            return Err(ctx.format(format!("phase {name:?} has no {items_key}")));
        }
        for (i, member) in members.iter().enumerate() {
            let position = format!("{item} {} of phase {name:?}", i + 1);
            entries.push(entry(ctx, member, &position, p)?);
        }
        names.push(name);
    }
    Ok((entries, names))
}

fn phase_name(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    key: &str,
    position: &str,
    earlier: &[String],
) -> Result<String, PlanError> {
    let name = match fields.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v) => {
            return Err(ctx.format(format!(
                "{position}: `{key}` must be a non-empty string, found {}",
                kind_of(v)
            )));
        }
        None => return Err(ctx.format(format!("{position} has no `{key}`"))),
    };
    if earlier.contains(&name) {
        return Err(ctx.name(format!(
            "two phases are named {name:?}; phase names must be unique"
        )));
    }
    Ok(name)
}

/// One step of a `steps` or `phases` plan.
fn step_entry(
    ctx: &Ctx,
    value: &Value,
    position: &str,
    phase: Option<usize>,
) -> Result<Entry, PlanError> {
    let fields = mapping(value).ok_or_else(|| {
        ctx.format(format!(
            "{position} must be a mapping with at least a name, found {}",
            kind_of(value)
        ))
    })?;
    let name = entry_name(ctx, &fields, position, "step")?;
    let label = format!("step {name:?}");
    check_fields(ctx, &fields, STEP_FIELDS, &label, "a step")?;
    let depends_on = depends_on(ctx, &fields, &label)?;
    let settings = step_settings(ctx, &label, &fields)?;
    let when = match fields.get("when") {
        Some(value) => value
            .as_str()
            .ok_or_else(|| "expected succeeded, failed or always".to_string())
            .and_then(When::parse)
            .map_err(|e| ctx.format(format!("{label}: `when`: {e}, found {value}")))?,
        None => When::Succeeded,
    };
    Ok(Entry {
        name: name.clone(),
        noun: "step",
        phase,
        depends_on,
        when,
        steps: vec![(name, settings)],
    })
}

/// The settings a step sets itself; the caller layers them over the variables.
fn step_settings(
    ctx: &Ctx,
    label: &str,
    fields: &Map<String, Value>,
) -> Result<StepSettings, PlanError> {
    check_exclusive_fields(ctx, label, fields)?;
    let field = |key: &str, problem: String| ctx.format(format!("{label}: `{key}`: {problem}"));
    let mut s = StepSettings::default();
    for (key, value) in fields {
        let key = key.as_str();
        match key {
            "image" => s.image = Some(non_empty_string(value).map_err(|e| field(key, e))?),
            "shell" => s.shell = Some(non_empty_string(value).map_err(|e| field(key, e))?),
            "command" => {
                s.command = Some(string_array_from_json(value).map_err(|e| field(key, e))?)
            }
            "args" => s.args = Some(string_array_from_json(value).map_err(|e| field(key, e))?),
            "env" => s.env = env_from_json(value).map_err(|e| field(key, e))?,
            "params" => {
                s.fan_out = FanOut::Params(params_from_json(value).map_err(|e| field(key, e))?)
            }
            "count" => s.fan_out = FanOut::Count(positive_count(value).map_err(|e| field(key, e))?),
            "params_from" => {
                let source = value.as_str().filter(|s| !s.trim().is_empty());
                let source = source.ok_or_else(|| {
                    field(
                        key,
                        format!("expected the name of a step it depends on, found {value}"),
                    )
                })?;
                s.fan_out = FanOut::From(source.to_string());
            }
            "backoff_limit" => {
                s.backoff_limit = Some(backoff_limit(value).map_err(|e| field(key, e))?)
            }
            "restart_policy" => {
                s.restart_policy = Some(restart_policy(value).map_err(|e| field(key, e))?)
            }
            "child_timeout" => {
                s.child_timeout =
                    Some(duration(value, parse_positive_duration).map_err(|e| field(key, e))?)
            }
            "ttl" => s.ttl = Some(duration(value, parse_duration).map_err(|e| field(key, e))?),
            "queue" => s.queue = Some(queue_name(value).map_err(|e| field(key, e))?),
            "pack" => s.pack = Some(pack(value).map_err(|e| field(key, e))?),
            "job" => {
                let job =
                    inline_job(value).map_err(|e| ctx.manifest(format!("{label}: `job`: {e}")))?;
                s.job = Some(job);
            }
            "job_file" => s.job = Some(step_job_file(ctx, label, value)?),
            // `name` and `depends_on` are read by the caller; anything else was rejected by
            // `check_fields` before.
            _ => {}
        }
    }
    Ok(s)
}

/// Pairs of fields that say the same thing two ways: taking either silently would run
/// something the plan's author did not mean.
fn check_exclusive_fields(
    ctx: &Ctx,
    label: &str,
    fields: &Map<String, Value>,
) -> Result<(), PlanError> {
    for (first, second, why) in [
        (
            "shell",
            "command",
            "shell runs [\"/bin/sh\",\"-c\",SHELL]; use either shell or command/args",
        ),
        (
            "shell",
            "args",
            "shell runs [\"/bin/sh\",\"-c\",SHELL]; use either shell or command/args",
        ),
        (
            "count",
            "params",
            "give either a number of children or one parameter object per child",
        ),
        (
            "params_from",
            "params",
            "params_from gives one child per element of another step's result; give either",
        ),
        (
            "params_from",
            "count",
            "params_from gives one child per element of another step's result; give either",
        ),
        (
            "job",
            "job_file",
            "give the Job manifest inline or as a file, not both",
        ),
    ] {
        if fields.contains_key(first) && fields.contains_key(second) {
            return Err(ctx.format(format!("{label} sets both `{first}` and `{second}`: {why}")));
        }
    }
    Ok(())
}

/// A step's `job_file`: a bad value is a format error, a bad file a manifest error, as each
/// needs a different fix.
fn step_job_file(ctx: &Ctx, label: &str, value: &Value) -> Result<Job, PlanError> {
    let path = value
        .as_str()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            ctx.format(format!(
                "{label}: `job_file`: expected a file path, found {value}"
            ))
        })?;
    load_job_file(&ctx.resolve(path)).map_err(|e| ctx.manifest(format!("{label}: `job_file` {e}")))
}

fn pack(value: &Value) -> Result<Pack, String> {
    match value.as_str() {
        Some(s) => Pack::parse(s).map_err(|e| format!("{e}, found {value}")),
        None => Err(format!("expected indexed or off, found {value}")),
    }
}

fn queue_name(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(s) => parse_queue(s).map_err(|e| format!("{e}, found {value}")),
        None => Err(format!(
            "expected the name of a Kueue LocalQueue, found {value}"
        )),
    }
}

fn non_empty_string(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!("expected a non-empty string, found {value}")),
    }
}

fn positive_count(value: &Value) -> Result<u32, String> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a whole number greater than 0, found {value}"))
}

fn backoff_limit(value: &Value) -> Result<i32, String> {
    value
        .as_u64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| format!("expected a whole number, 0 or more, found {value}"))
}

/// A non-string is named with the same words as a wrong string, so either fix reads alike.
fn restart_policy(value: &Value) -> Result<RestartPolicy, String> {
    value
        .as_str()
        .ok_or_else(|| "expected OnFailure or Never".to_string())
        .and_then(RestartPolicy::parse)
        .map_err(|e| format!("{e}, found {value}"))
}

/// A duration string (`90s`, `10m`, `1h30m`) or whole seconds as a number.
fn duration(
    value: &Value,
    parse: fn(&str) -> Result<Duration, String>,
) -> Result<Duration, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => String::new(),
    };
    parse(&text).map_err(|e| format!("{e}, found {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlanSource;
    use crate::plan::test_support::*;
    use crate::plan::{PlanOptions, load};

    #[test]
    fn spec_example_loads_from_yaml_in_file_order() {
        let p = load(&PlanSource::File(fixture("plans/download.yaml"))).unwrap();
        assert_eq!(names(&p), ["prepare", "download-a", "download-b", "report"]);
        assert_eq!(deps(&p, "prepare"), Vec::<&str>::new());
        assert_eq!(deps(&p, "download-a"), ["prepare"]);
        assert_eq!(deps(&p, "report"), ["download-a", "download-b"]);
        assert_eq!(
            step(&p, "prepare").settings.shell.as_deref(),
            Some("echo prepare")
        );
        assert_eq!(step(&p, "download-b").settings.env["SOURCE"], "b");
        assert_eq!(
            step(&p, "report").settings.image.as_deref(),
            Some("alpine:3")
        );
        assert!(p.steps.iter().all(|s| s.phase.is_none()));
        assert_eq!(p.options, PlanOptions::default());
    }

    #[test]
    fn a_step_takes_every_setting_of_the_variables() {
        let p = plan(
            r#"
steps:
  - name: all
    image: perl:5
    command: [perl, -e]
    args: ["print 1"]
    env: {A: "1", B: 2, C: true}
    count: 3
    backoff_limit: 0
    restart_policy: Never
    child_timeout: 1h30m
    ttl: 600
    job:
      spec:
        template:
          spec:
            containers: [{name: main, resources: {limits: {cpu: "1"}}}]
  - name: fan
    shell: echo $REGION
    params: [{REGION: eu}, {REGION: us}]
    child_timeout: 90
"#,
        );
        let s = &step(&p, "all").settings;
        assert_eq!(s.image.as_deref(), Some("perl:5"));
        assert_eq!(
            s.command.as_deref(),
            Some(&["perl".into(), "-e".into()][..])
        );
        assert_eq!(s.args.as_deref(), Some(&["print 1".to_string()][..]));
        assert_eq!(s.env["B"], "2");
        assert_eq!(s.env["C"], "true");
        assert_eq!(s.fan_out, FanOut::Count(3));
        assert_eq!(s.backoff_limit, Some(0));
        assert_eq!(s.restart_policy, Some(RestartPolicy::Never));
        assert_eq!(s.child_timeout, Some(Duration::from_secs(5400)));
        assert_eq!(s.ttl, Some(Duration::from_secs(600)));
        assert!(s.job.is_some());
        let s = &step(&p, "fan").settings;
        assert_eq!(s.shell.as_deref(), Some("echo $REGION"));
        assert_eq!(s.child_timeout, Some(Duration::from_secs(90)));
        match &s.fan_out {
            FanOut::Params(params) => assert_eq!(params[1]["REGION"], "us"),
            other => panic!("expected params, got {other:?}"),
        }
    }

    #[test]
    fn job_file_is_relative_to_the_plan_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("jobs")).unwrap();
        std::fs::write(dir.path().join("jobs/base.yaml"), JOB).unwrap();
        let plan_file = dir.path().join("plan.yaml");
        std::fs::write(
            &plan_file,
            "steps:\n  - name: a\n    job_file: jobs/base.yaml\n",
        )
        .unwrap();
        let p = load(&PlanSource::File(plan_file)).unwrap();
        let job = p.steps[0].settings.job.as_ref().unwrap();
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("busybox"));
    }

    #[test]
    fn unknown_step_field_lists_the_allowed_fields() {
        assert_eq!(
            error("steps: [{name: a, imgae: alpine}]"),
            "plan.yaml: step \"a\" has an unknown field \"imgae\" (did you mean \"image\"?); a step takes name, depends_on, image, command, args, shell, env, params, count, params_from, when, backoff_limit, restart_policy, child_timeout, ttl, queue, pack, job, job_file"
        );
        assert_eq!(
            error("steps: [{image: alpine}]"),
            "plan.yaml: step 1 has no name"
        );
    }

    #[test]
    fn conflicting_step_fields_are_rejected() {
        assert_eq!(
            error("steps: [{name: a, shell: echo, command: [echo]}]"),
            "plan.yaml: step \"a\" sets both `shell` and `command`: shell runs [\"/bin/sh\",\"-c\",SHELL]; use either shell or command/args"
        );
        assert_eq!(
            error("steps: [{name: a, count: 2, params: [{A: b}]}]"),
            "plan.yaml: step \"a\" sets both `count` and `params`: give either a number of children or one parameter object per child"
        );
        assert_eq!(
            error("steps: [{name: a, job: {}, job_file: x.yaml}]"),
            "plan.yaml: step \"a\" sets both `job` and `job_file`: give the Job manifest inline or as a file, not both"
        );
    }

    #[test]
    fn bad_step_values_name_the_step_and_the_field() {
        assert_eq!(
            error("steps: [{name: a, count: three}]"),
            "plan.yaml: step \"a\": `count`: expected a whole number greater than 0, found \"three\""
        );
        assert_eq!(
            error("steps: [{name: a, child_timeout: soon}]"),
            "plan.yaml: step \"a\": `child_timeout`: expected a duration like 90s, 10m, 1h30m or plain seconds, found \"soon\""
        );
        assert_eq!(
            error("steps: [{name: a, child_timeout: 0}]"),
            "plan.yaml: step \"a\": `child_timeout`: expected a duration greater than 0, found 0"
        );
        assert_eq!(
            error("steps: [{name: a, restart_policy: Always}]"),
            "plan.yaml: step \"a\": `restart_policy`: expected OnFailure or Never, found \"Always\""
        );
        assert_eq!(
            error("steps: [{name: a, depends_on: b}]"),
            "plan.yaml: step \"a\": `depends_on` must be a list of step names, e.g. [\"prepare\"], found \"b\""
        );
        let msg = error("steps: [{name: a, env: {A: [1]}}]");
        assert!(
            msg.starts_with("plan.yaml: step \"a\": `env`: value of A must be"),
            "{msg}"
        );
    }

    #[test]
    fn typo_guard_stays_strict_for_steps_and_phases() {
        assert_eq!(
            error("phases: [{name: p, stpes: [{name: a}]}]"),
            "plan.yaml: phase \"p\" has an unknown field \"stpes\" (did you mean \"steps\"?); a phase takes name, steps"
        );
        assert_eq!(
            error("phases: [{name: p, steps: [{name: a, depend_on: [b]}]}]"),
            "plan.yaml: step \"a\" has an unknown field \"depend_on\" (did you mean \"depends_on\"?); a step takes name, depends_on, image, command, args, shell, env, params, count, params_from, when, backoff_limit, restart_policy, child_timeout, ttl, queue, pack, job, job_file"
        );
        assert_eq!(
            error("version: 2\nsteps: [{name: a}]"),
            "plan.yaml: unknown top-level key \"version\"; a plan has `steps`, `phases`, or Jobernetes' `jobernetes` and `jobernetes_config`"
        );
    }
}
