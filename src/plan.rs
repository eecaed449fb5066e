//! Plans (SPEC §4): steps with dependencies from `JOBHERD_PLAN` / `JOBHERD_PLAN_FILE`, written as
//! `steps`, as `phases`, or as an unchanged Jobernetes `jobermodel.yaml`. Everything is checked
//! here, before anything is created; the result is the steps in a valid, stable topological order.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Map, Value};

use crate::config::{
    Cleanup, FanOut, PlanSource, RestartPolicy, StepSettings, check_dns_label, env_from_json,
    job_from_json, nearest, params_from_json, parse_bool, parse_duration, parse_json,
    parse_positive_duration, string_array_from_json,
};

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// In a valid topological order; where dependencies allow, in the order of the file.
    pub steps: Vec<Step>,
    pub options: PlanOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// As written in the plan (Jobernetes names like `sleep_one` are valid); see `k8s_name`.
    pub name: String,
    /// Every direct dependency after expanding phases and directory jobs, deduplicated, in order.
    pub depends_on: Vec<String>,
    /// Only what the step itself sets; the caller layers it over the variables.
    pub settings: StepSettings,
    /// The phase's name, when the plan has phases.
    pub phase: Option<String>,
}

/// Run-wide settings a plan may carry (only Jobernetes' `jobernetes_config` does).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanOptions {
    pub cleanup: Option<Cleanup>,
    pub namespace: Option<String>,
    /// Most children active at once; `None` is no limit (Jobernetes' `parallelization: 0`).
    pub parallelism: Option<u32>,
    /// Human notes for the run's log: Jobernetes settings jobherd does not need, keys it
    /// ignores as Jobernetes did, files a directory job leaves out.
    pub notes: Vec<String>,
}

/// Why a plan was rejected. Display is the whole message, starting with the plan's origin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("plan file {origin} {message}")]
    Read { origin: String, message: String },
    /// Not JSON/YAML, or not shaped like any accepted format (unknown keys, wrong types, conflicts).
    #[error("{origin}: {message}")]
    Format { origin: String, message: String },
    /// Invalid or duplicate step names.
    #[error("{origin}: {message}")]
    Name { origin: String, message: String },
    /// Unknown dependencies, self-dependencies, dependencies on a later phase.
    #[error("{origin}: {message}")]
    Dependency { origin: String, message: String },
    /// The steps in flow order: each depends on the one before it, the last on the first.
    #[error("{origin}: dependency cycle {} -> {} (each step depends on the one before it)", .cycle.join(" -> "), .cycle.first().map_or("", String::as_str))]
    Cycle { origin: String, cycle: Vec<String> },
    /// A `job`, `job_file` or Jobernetes `job_path` that is not a usable batch/v1 Job.
    #[error("{origin}: {message}")]
    Manifest { origin: String, message: String },
}

const NAME_RULE: &str =
    "1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit";
/// YAML reads some bare words as booleans or numbers (`y`, `no`, `on`, `1`): names that look
/// like them need quotes.
const QUOTE_HINT: &str = " (quote names that YAML would read as a boolean or number)";
const TOP_LEVEL_KEYS: &[&str] = &["steps", "phases", "jobernetes", "jobernetes_config"];
const STEP_FIELDS: &[&str] = &[
    "name",
    "depends_on",
    "image",
    "command",
    "args",
    "shell",
    "env",
    "params",
    "count",
    "backoff_limit",
    "restart_policy",
    "child_timeout",
    "ttl",
    "job",
    "job_file",
];
const PHASE_FIELDS: &[&str] = &["name", "steps"];
const JOBERNETES_PHASE_FIELDS: &[&str] = &["phase_name", "jobs"];
const JOBERNETES_JOB_FIELDS: &[&str] = &["name", "job_path", "type", "depends_on"];
/// The keys `jobernetes.py` reads; others are ignored there, and here with a note.
const JOBERNETES_CONFIG_FIELDS: &[&str] = &[
    "cleanup",
    "kubernetes_namespace",
    "parallelization",
    "refresh_time",
    "incluster",
    "ssl_insecure_warnings",
];
/// Files a Jobernetes `type: directory` job runs (extensions compared as Jobernetes does,
/// case and all).
const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads and validates a plan. Relative `job_file`/`job_path` are taken from the plan file's
/// directory, or from the current directory for an inline plan.
pub fn load(source: &PlanSource) -> Result<Plan, PlanError> {
    match source {
        PlanSource::Inline(text) => parse(text, "JOBHERD_PLAN", Path::new("")),
        PlanSource::File(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
                origin: origin.clone(),
                message: describe_io(&e),
            })?;
            parse(&text, &origin, path.parent().unwrap_or(Path::new("")))
        }
    }
}

/// Validates a plan given as JSON or YAML text; `origin` names it in every error.
pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Plan, PlanError> {
    let ctx = Ctx {
        origin,
        base_dir,
        notes: RefCell::default(),
    };
    let top = top_level(&ctx, text)?;
    check_top_level_keys(&ctx, &top)?;
    let (entries, phases, options) =
        if top.contains_key("jobernetes") || top.contains_key("jobernetes_config") {
            jobernetes_plan(&ctx, &top)?
        } else if let Some(phases) = top.get("phases") {
            let (entries, names) = phases_plan(&ctx, phases)?;
            (entries, names, PlanOptions::default())
        } else {
            let steps = top.get("steps").unwrap_or(&Value::Null);
            (steps_plan(&ctx, steps)?, Vec::new(), PlanOptions::default())
        };
    build(&ctx, entries, &phases, options)
}

/// The plan's single document; every format is a mapping that names its parts at the top.
fn top_level(ctx: &Ctx, text: &str) -> Result<Map<String, Value>, PlanError> {
    let mut docs = parse_documents(text).map_err(|e| ctx.format(e))?;
    let root = match docs.len() {
        0 => return Err(ctx.format("the plan is empty: it has no steps")),
        1 => docs.remove(0),
        n => {
            return Err(ctx.format(format!(
                "holds {n} YAML documents; a plan is a single document"
            )));
        }
    };
    let Value::Object(top) = root else {
        return Err(ctx.format(format!(
            "a plan is a mapping with `steps`, `phases` or `jobernetes` at the top, found {}",
            kind_of(&root)
        )));
    };
    Ok(top)
}

/// Unknown keys are a typo guard for jobherd's own formats, and a plan that gives its steps
/// more than one way would leave unclear which of them run.
fn check_top_level_keys(ctx: &Ctx, top: &Map<String, Value>) -> Result<(), PlanError> {
    for key in top.keys().filter(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
        let hint = did_you_mean(key, TOP_LEVEL_KEYS.iter().copied());
        // Jobernetes reads only its two keys; a working model may carry others (anchors,
        // versions). jobherd's own formats keep the typo guard.
        if top.contains_key("jobernetes") {
            ctx.note(format!(
                "top-level key {key:?} is ignored, as Jobernetes ignores it{hint}"
            ));
        } else {
            return Err(ctx.format(format!(
                "unknown top-level key {key:?}{hint}; a plan has `steps`, `phases`, or Jobernetes' `jobernetes` and `jobernetes_config`"
            )));
        }
    }
    let present: Vec<&str> = ["steps", "phases", "jobernetes"]
        .into_iter()
        .filter(|k| top.contains_key(*k))
        .collect();
    if present.len() > 1 {
        return Err(ctx.format(format!(
            "`{}` and `{}` cannot be used together: give the steps one way",
            present[0], present[1]
        )));
    }
    if top.contains_key("jobernetes_config")
        && !top.contains_key("jobernetes")
        && let Some(other) = present.first()
    {
        return Err(ctx.format(format!(
            "`jobernetes_config` only goes with a Jobernetes `jobernetes` list; with `{other}`, set run-wide options with JOBHERD_* variables"
        )));
    }
    Ok(())
}

/// The DNS-1123 form of a step name used in child Job names and labels.
pub fn k8s_name(step_name: &str) -> String {
    step_name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Where the plan came from, for messages and relative paths, and the notes gathered on the way.
struct Ctx<'a> {
    origin: &'a str,
    base_dir: &'a Path,
    notes: RefCell<Vec<String>>,
}

impl Ctx<'_> {
    fn note(&self, note: String) {
        self.notes.borrow_mut().push(note);
    }
    fn format(&self, message: impl Into<String>) -> PlanError {
        PlanError::Format {
            origin: self.origin.to_string(),
            message: message.into(),
        }
    }
    fn name(&self, message: impl Into<String>) -> PlanError {
        PlanError::Name {
            origin: self.origin.to_string(),
            message: message.into(),
        }
    }
    fn dependency(&self, message: impl Into<String>) -> PlanError {
        PlanError::Dependency {
            origin: self.origin.to_string(),
            message: message.into(),
        }
    }
    fn manifest(&self, message: impl Into<String>) -> PlanError {
        PlanError::Manifest {
            origin: self.origin.to_string(),
            message: message.into(),
        }
    }
    fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// One named thing of the plan a dependency can point at: a step, or a Jobernetes
/// `type: directory` job that expands to several steps.
struct Entry {
    name: String,
    /// "step" or, in a Jobernetes file, "job": the word the user wrote it as.
    noun: &'static str,
    phase: Option<usize>,
    depends_on: Vec<String>,
    steps: Vec<(String, StepSettings)>,
}

impl Entry {
    fn label(&self) -> String {
        format!("{} {:?}", self.noun, self.name)
    }

    /// A directory job is not a step itself; only its expansion is.
    fn is_expanded(&self) -> bool {
        !(self.steps.len() == 1 && self.steps[0].0 == self.name)
    }
}

fn steps_plan(ctx: &Ctx, steps: &Value) -> Result<Vec<Entry>, PlanError> {
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
fn phases_plan(ctx: &Ctx, phases: &Value) -> Result<(Vec<Entry>, Vec<String>), PlanError> {
    phase_list(ctx, phases, &PHASES, |ctx, step, position, p| {
        step_entry(ctx, step, position, Some(p))
    })
}

/// The two phase-list formats differ only in their words.
struct PhaseShape {
    /// The top-level key holding the list.
    list_key: &'static str,
    name_key: &'static str,
    items_key: &'static str,
    /// What one item is called in messages: `step` or `job`.
    item: &'static str,
    fields: &'static [&'static str],
    /// What one phase is called in messages.
    what: &'static str,
    /// Whether a field outside `fields` is an error or a note.
    unknown: Unknown,
}

/// What a format does with a field it does not know.
#[derive(Clone, Copy)]
enum Unknown {
    /// jobherd's own formats: a typo guard.
    Reject,
    /// Jobernetes reads only the keys it knows, so a working model may hold others: run it
    /// unchanged and say what was ignored.
    Note,
}

const PHASES: PhaseShape = PhaseShape {
    list_key: "phases",
    name_key: "name",
    items_key: "steps",
    item: "step",
    fields: PHASE_FIELDS,
    what: "a phase",
    unknown: Unknown::Reject,
};

const JOBERNETES_PHASES: PhaseShape = PhaseShape {
    list_key: "jobernetes",
    name_key: "phase_name",
    items_key: "jobs",
    item: "job",
    fields: JOBERNETES_PHASE_FIELDS,
    what: "a Jobernetes phase",
    unknown: Unknown::Note,
};

/// Walks a list of phases, checking each phase's shape, and turns every item into an entry
/// tagged with its phase index. Returns the entries and the phase names.
fn phase_list(
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
    Ok(Entry {
        name: name.clone(),
        noun: "step",
        phase,
        depends_on,
        steps: vec![(name, settings)],
    })
}

fn entry_name(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    position: &str,
    noun: &str,
) -> Result<String, PlanError> {
    match fields.get("name") {
        Some(Value::String(name)) => {
            check_step_name(name).map_err(|e| ctx.name(format!("{noun} {e}")))?;
            Ok(name.clone())
        }
        Some(v) => Err(ctx.format(format!(
            "{position}: `name` must be a string, found {v}{QUOTE_HINT}"
        ))),
        None => Err(ctx.format(format!("{position} has no name"))),
    }
}

/// Valid names are what DNS-1123 allows once lowercased and with `_`/`.` turned into `-`
/// (see `k8s_name`), so that Jobernetes names like `sleep_one` work unchanged.
fn check_step_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let ok = (1..=63).contains(&name.len())
        && name.chars().all(allowed)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("name {name:?} is invalid: a name is {NAME_RULE}"))
    }
}

/// Rejects fields outside `allowed` (a typo guard), suggesting the nearest one.
fn check_fields(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    allowed: &[&str],
    label: &str,
    what: &str,
) -> Result<(), PlanError> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ctx.format(format!(
            "{label} has an unknown field {key:?}{}; {what} takes {}",
            did_you_mean(key, allowed.iter().copied()),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Notes every field outside `allowed`, suggesting the nearest one: a Jobernetes model that
/// worked with a typo in an optional key (`depend_on`) ran without it there, and does here.
fn note_unknown_fields(ctx: &Ctx, fields: &Map<String, Value>, allowed: &[&str], label: &str) {
    for key in fields.keys().filter(|k| !allowed.contains(&k.as_str())) {
        ctx.note(format!(
            "{label}: field {key:?} is ignored, as Jobernetes ignores it{}",
            did_you_mean(key, allowed.iter().copied())
        ));
    }
}

fn depends_on(
    ctx: &Ctx,
    fields: &Map<String, Value>,
    label: &str,
) -> Result<Vec<String>, PlanError> {
    let Some(value) = fields.get("depends_on") else {
        return Ok(Vec::new());
    };
    let names = list(value).and_then(|items| {
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
    });
    names.ok_or_else(|| {
        let scalar = |v: &Value| v.is_boolean() || v.is_number();
        let hint = if list(value).is_some_and(|items| items.iter().any(scalar)) {
            QUOTE_HINT
        } else {
            ""
        };
        ctx.format(format!(
            "{label}: `depends_on` must be a list of step names, e.g. [\"prepare\"], found {value}{hint}"
        ))
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

/// A non-string is named with the same words as a wrong string, so either fix reads alike.
fn restart_policy(value: &Value) -> Result<RestartPolicy, String> {
    value
        .as_str()
        .ok_or_else(|| "expected OnFailure or Never".to_string())
        .and_then(RestartPolicy::parse)
        .map_err(|e| format!("{e}, found {value}"))
}

/// A step's inline `job`, checked now so that a Job the API server would reject fails the plan
/// before any of its dependencies run.
fn inline_job(value: &Value) -> Result<Job, String> {
    job_from_json(value.clone()).and_then(|job| check_containers(&job).map(|()| job))
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

/// A Jobernetes `jobermodel.yaml`, read as Jobernetes reads it (`jobernetes/jobmodel.py`,
/// `jobernetes/jobconfig.py`): phases in order, keys it does not know ignored.
fn jobernetes_plan(
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
                .filter(|k| !JOBERNETES_JOB_FIELDS.contains(&k.as_str()))
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
    labels.insert("jobernetes_job_name".into(), name.into());
    labels.insert("jobernetes_phase".into(), phase.to_string());
    // Python's `str(bool)`, as Jobernetes writes it.
    let exploded = if exploded { "True" } else { "False" };
    labels.insert("jobernetes_exploded".into(), exploded.into());
}

/// One Job per manifest directly in `dir`, sorted by file name, each named `<job>-<file stem>`.
/// Jobernetes (`JobModel.__directory_filelist`) takes the same extensions, in `os.walk` order;
/// it also walked into subdirectories but looked for their files in `dir`, so a manifest in a
/// subdirectory made it fail. Here subdirectories and hidden files are left out, with a note.
fn directory_jobs(
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
                did_you_mean(key, JOBERNETES_CONFIG_FIELDS.iter().copied())
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

/// Reads one batch/v1 Job manifest. Errors start with the path, to follow a field name.
fn load_job_file(path: &Path) -> Result<Job, String> {
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

/// JSON or YAML documents, through one path. Text that looks like JSON is read as JSON first so
/// that its errors are JSON's; YAML's flow style (`{steps: [...]}`) then still works.
fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
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

/// Checks names and dependencies and puts the steps in order.
fn build(
    ctx: &Ctx,
    entries: Vec<Entry>,
    phases: &[String],
    options: PlanOptions,
) -> Result<Plan, PlanError> {
    if entries.is_empty() {
        return Err(ctx.format("the plan is empty: it has no steps"));
    }
    check_unique_names(ctx, &entries)?;
    let targets = dependency_targets(&entries);
    let mut steps = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let depends_on = entry_dependencies(ctx, &entries, i, &targets, phases)?;
        for (name, settings) in &entry.steps {
            steps.push(Step {
                name: name.clone(),
                depends_on: depends_on.clone(),
                settings: settings.clone(),
                phase: phase_of(phases, entry.phase),
            });
        }
    }
    check_unique_child_names(ctx, &steps)?;
    let steps = topological(steps).map_err(|cycle| PlanError::Cycle {
        origin: ctx.origin.to_string(),
        cycle,
    })?;
    let mut options = options;
    options.notes.extend(ctx.notes.take());
    Ok(Plan { steps, options })
}

/// Every name a dependency may use -> (its entry, the steps it stands for).
type Targets<'a> = HashMap<&'a str, (usize, Vec<&'a str>)>;

/// A dependency may name an entry, or one step a directory job expands to, so each is a target.
fn dependency_targets(entries: &[Entry]) -> Targets<'_> {
    let mut targets = Targets::new();
    for (i, entry) in entries.iter().enumerate() {
        let steps: Vec<&str> = entry.steps.iter().map(|(n, _)| n.as_str()).collect();
        if entry.is_expanded() {
            for step in &steps {
                targets.insert(step, (i, vec![step]));
            }
        }
        targets.insert(&entry.name, (i, steps));
    }
    targets
}

/// The direct dependencies of entry `i` as step names, deduplicated in order, so every step it
/// stands for waits for the same ones; a dependency the run could never satisfy is an error.
fn entry_dependencies(
    ctx: &Ctx,
    entries: &[Entry],
    i: usize,
    targets: &Targets,
    phases: &[String],
) -> Result<Vec<String>, PlanError> {
    let entry = &entries[i];
    let mut depends_on: Vec<String> = Vec::new();
    // The phase barrier: every step of the phase before, before explicit dependencies.
    if let Some(p) = entry.phase.filter(|p| *p > 0) {
        for earlier in entries.iter().filter(|e| e.phase == Some(p - 1)) {
            depends_on.extend(earlier.steps.iter().map(|(n, _)| n.clone()));
        }
    }
    for dep in &entry.depends_on {
        let Some((target, names)) = targets.get(dep.as_str()) else {
            let hint = did_you_mean(dep, targets.keys().copied());
            return Err(ctx.dependency(format!(
                "{} depends on {dep:?}, which is not in the plan{hint}",
                entry.label()
            )));
        };
        if *target == i {
            return Err(ctx.dependency(format!("{} depends on itself", entry.label())));
        }
        let target = &entries[*target];
        if target.phase > entry.phase {
            return Err(ctx.dependency(format!(
                "{} in phase {:?} depends on {dep:?} in the later phase {:?}; a step can depend only on steps of its own or an earlier phase",
                entry.label(),
                phase_of(phases, entry.phase).unwrap_or_default(),
                phase_of(phases, target.phase).unwrap_or_default(),
            )));
        }
        depends_on.extend(names.iter().map(|n| n.to_string()));
    }
    let mut seen = BTreeSet::new();
    depends_on.retain(|d| seen.insert(d.clone()));
    Ok(depends_on)
}

/// Entries keep their phase as an index; steps and messages carry its name.
fn phase_of(phases: &[String], phase: Option<usize>) -> Option<String> {
    phase.and_then(|p| phases.get(p)).cloned()
}

/// Names must be unique as written and once turned into child Job names.
fn check_unique_names(ctx: &Ctx, entries: &[Entry]) -> Result<(), PlanError> {
    let mut by_k8s: HashMap<String, &str> = HashMap::new();
    let names = entries.iter().flat_map(|e| {
        let generated = e.is_expanded().then_some(&e.steps).into_iter().flatten();
        std::iter::once(e.name.as_str()).chain(generated.map(|(n, _)| n.as_str()))
    });
    for name in names {
        if let Some(first) = by_k8s.insert(k8s_name(name), name) {
            return Err(ctx.name(if first == name {
                format!("two steps are named {name:?}; step names must be unique")
            } else {
                format!(
                    "steps {first:?} and {name:?} would both be {:?} in child Job names (lowercased, '_' and '.' become '-'); rename one",
                    k8s_name(name)
                )
            }));
        }
    }
    Ok(())
}

/// A step that fans out names its children `<k8s_name>-<index>` (see `child.rs`), which must
/// not be another step's name: both would map to the same child Job.
fn check_unique_child_names(ctx: &Ctx, steps: &[Step]) -> Result<(), PlanError> {
    let mut owners: HashMap<String, &str> = HashMap::new();
    for step in steps {
        let children = match &step.settings.fan_out {
            FanOut::Single => 0,
            FanOut::Count(n) => *n as usize,
            FanOut::Params(p) => p.len(),
        };
        let base = k8s_name(&step.name);
        let names: Vec<String> = if children == 0 {
            vec![base]
        } else {
            (0..children).map(|i| format!("{base}-{i}")).collect()
        };
        for name in names {
            if let Some(other) = owners.insert(name.clone(), &step.name) {
                return Err(ctx.name(format!(
                    "steps {other:?} and {:?} would both have a child Job named {name:?} (a step that fans out names its children <step>-<index>); rename one",
                    step.name
                )));
            }
        }
    }
    Ok(())
}

/// Kahn's algorithm, always taking the ready step that comes first in the file, so the order
/// is stable and reads like the plan. On a cycle, returns it in flow order.
fn topological(steps: Vec<Step>) -> Result<Vec<Step>, Vec<String>> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // `build` resolved every dependency to a step name, so each lookup succeeds.
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependants = vec![Vec::new(); steps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for d in ds {
            dependants[*d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..steps.len()).filter(|i| waiting[*i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    let mut done = vec![false; steps.len()];
    while let Some(i) = ready.pop_first() {
        order.push(i);
        done[i] = true;
        for d in &dependants[i] {
            waiting[*d] -= 1;
            if waiting[*d] == 0 {
                ready.insert(*d);
            }
        }
    }
    if order.len() < steps.len() {
        return Err(find_cycle(&deps, &done)
            .into_iter()
            .map(|i| steps[i].name.clone())
            .collect());
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// A cycle among the steps Kahn's algorithm could not place. Each of them still waits for one
/// of them, so walking dependencies from any of them must come back to a step already seen.
fn find_cycle(deps: &[Vec<usize>], done: &[bool]) -> Vec<usize> {
    let Some(start) = done.iter().position(|d| !d) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(next) = deps[current].iter().copied().find(|d| !done[*d]) else {
            return path;
        };
        if let Some(at) = path.iter().position(|p| *p == next) {
            // `path` runs from dependant to dependency; a reader follows the flow, so reverse
            // it and start at the step that comes first in the file.
            let mut cycle: Vec<usize> = path[at..].iter().rev().copied().collect();
            if let Some(first) = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map(|(p, _)| p)
            {
                cycle.rotate_left(first);
            }
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

/// A YAML/JSON mapping with `null` values dropped: in YAML an empty `depends_on:` or `env:` is
/// null, and means the same as leaving the field out.
fn mapping(value: &Value) -> Option<Map<String, Value>> {
    value.as_object().map(|m| {
        m.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// A list, with `null` (an empty YAML value) as the empty list.
fn list(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        Value::Null => Some(&[]),
        _ => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn describe_io(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        "does not exist".into()
    } else {
        format!("cannot be read: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n";
    const JOB: &str = "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox\n";

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path)
    }

    fn plan(text: &str) -> Plan {
        parse(text, "plan.yaml", Path::new("")).unwrap()
    }

    fn error(text: &str) -> String {
        parse(text, "plan.yaml", Path::new(""))
            .unwrap_err()
            .to_string()
    }

    /// A plan file in a temporary directory with the given other files beside it.
    fn error_in_dir(plan: &str, files: &[(&str, &str)]) -> (String, tempfile::TempDir) {
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

    fn names(plan: &Plan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.name.as_str()).collect()
    }

    fn step<'a>(plan: &'a Plan, name: &str) -> &'a Step {
        plan.steps.iter().find(|s| s.name == name).unwrap()
    }

    fn deps<'a>(plan: &'a Plan, name: &str) -> Vec<&'a str> {
        step(plan, name)
            .depends_on
            .iter()
            .map(String::as_str)
            .collect()
    }

    fn job_command(step: &Step) -> Vec<String> {
        let job = step.settings.job.as_ref().unwrap();
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0].command.clone().unwrap()
    }

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
    fn json_and_yaml_give_the_same_plan() {
        let json = r#"{ "steps": [
          { "name": "prepare",    "shell": "echo prepare" },
          { "name": "download-a", "depends_on": ["prepare"], "env": {"SOURCE": "a"} },
          { "name": "download-b", "depends_on": ["prepare"], "env": {"SOURCE": "b"} },
          { "name": "report",     "depends_on": ["download-a", "download-b"], "image": "alpine:3" } ] }"#;
        let inline = load(&PlanSource::Inline(json.into())).unwrap();
        let file = load(&PlanSource::File(fixture("plans/download.yaml"))).unwrap();
        assert_eq!(inline, file);
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
    fn phases_add_every_step_of_the_phase_before() {
        let p = load(&PlanSource::File(fixture("plans/phases.json"))).unwrap();
        assert_eq!(
            names(&p),
            ["setup", "fetch-regions", "fetch-shards", "report"]
        );
        assert_eq!(deps(&p, "fetch-regions"), ["setup"]);
        assert_eq!(deps(&p, "fetch-shards"), ["setup"]);
        assert_eq!(deps(&p, "report"), ["fetch-regions", "fetch-shards"]);
        assert_eq!(step(&p, "report").phase.as_deref(), Some("publish"));
        assert_eq!(step(&p, "fetch-shards").settings.fan_out, FanOut::Count(3));
    }

    #[test]
    fn phases_keep_explicit_dependencies_on_earlier_phases() {
        let p = plan(
            r#"
phases:
  - name: one
    steps: [{name: a}, {name: b}]
  - name: two
    steps: [{name: c}]
  - name: three
    steps: [{name: d, depends_on: [a, c]}, {name: e, depends_on: [d]}]
"#,
        );
        // `c` comes from the phase barrier, `a` is the explicit one; no duplicates.
        assert_eq!(deps(&p, "d"), ["c", "a"]);
        assert_eq!(deps(&p, "e"), ["c", "d"]);
        assert_eq!(names(&p), ["a", "b", "c", "d", "e"]);
    }

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
    fn depending_on_a_directory_job_means_all_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        std::fs::create_dir(&jobs).unwrap();
        std::fs::write(jobs.join("b.yml"), JOB).unwrap();
        std::fs::write(jobs.join("a job.yaml"), JOB).unwrap();
        // Not manifests: other extensions, hidden files, subdirectories (a mounted ConfigMap
        // has `..data/`).
        std::fs::write(jobs.join("README.md"), "# jobs").unwrap();
        std::fs::write(jobs.join(".hidden.yaml"), POD).unwrap();
        std::fs::create_dir(jobs.join("..data")).unwrap();
        std::fs::write(jobs.join("..data/c.yaml"), POD).unwrap();
        let model = r#"
jobernetes:
  - phase_name: only
    jobs:
      - {name: all, type: directory, job_path: jobs}
      - {name: after, job_path: jobs/b.yml, depends_on: [all]}
"#;
        let p = parse(model, "jobermodel.yaml", dir.path()).unwrap();
        assert_eq!(names(&p), ["all-a-job", "all-b", "after"]);
        assert_eq!(deps(&p, "after"), ["all-a-job", "all-b"]);
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
    fn order_is_topological_and_otherwise_follows_the_file() {
        let p = plan(
            r#"
steps:
  - {name: report, depends_on: [fetch-b, fetch-a]}
  - {name: fetch-b, depends_on: [prepare]}
  - {name: lint}
  - {name: fetch-a, depends_on: [prepare]}
  - {name: prepare}
"#,
        );
        assert_eq!(
            names(&p),
            ["lint", "prepare", "fetch-b", "fetch-a", "report"]
        );
        for (i, s) in p.steps.iter().enumerate() {
            for d in &s.depends_on {
                let at = p.steps.iter().position(|x| &x.name == d).unwrap();
                assert!(at < i, "{d} must come before {}", s.name);
            }
        }
    }

    #[test]
    fn k8s_name_lowercases_and_replaces_underscores_and_dots() {
        assert_eq!(k8s_name("sleep_one"), "sleep-one");
        assert_eq!(k8s_name("Step.V2"), "step-v2");
        assert_eq!(k8s_name("download-a"), "download-a");
    }

    #[test]
    fn inline_plan_errors_name_jobherd_plan() {
        let err = load(&PlanSource::Inline(r#"{"steps": []}"#.into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "JOBHERD_PLAN: the plan is empty: it has no steps"
        );
    }

    #[test]
    fn missing_plan_file_is_named() {
        let err = load(&PlanSource::File("/nonexistent/plan.yaml".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan file /nonexistent/plan.yaml does not exist"
        );
    }

    #[test]
    fn empty_plan_is_rejected() {
        for text in ["", "---\n", "steps: []", "jobernetes:\n", "phases: []"] {
            assert_eq!(
                error(text),
                "plan.yaml: the plan is empty: it has no steps",
                "{text:?}"
            );
        }
        assert_eq!(
            error("phases: [{name: one, steps: []}]"),
            "plan.yaml: phase \"one\" has no steps"
        );
    }

    #[test]
    fn plan_that_is_not_json_or_yaml_shows_the_parser_position() {
        let msg = error(r#"{"steps": [ {"name": "a"} }"#);
        assert!(msg.starts_with("plan.yaml: not valid JSON ("), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        let msg = error("steps:\n  - name: a\n   bad: [\n");
        assert!(
            msg.starts_with("plan.yaml: not valid YAML: ") && msg.ends_with(" at line 3, column 4"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line for the log: {msg}");
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        assert_eq!(
            error("stpes: []"),
            "plan.yaml: unknown top-level key \"stpes\" (did you mean \"steps\"?); a plan has `steps`, `phases`, or Jobernetes' `jobernetes` and `jobernetes_config`"
        );
        assert_eq!(
            error("steps: []\nphases: []"),
            "plan.yaml: `steps` and `phases` cannot be used together: give the steps one way"
        );
        assert_eq!(
            error("- name: a"),
            "plan.yaml: a plan is a mapping with `steps`, `phases` or `jobernetes` at the top, found a list"
        );
    }

    #[test]
    fn unknown_step_field_lists_the_allowed_fields() {
        assert_eq!(
            error("steps: [{name: a, imgae: alpine}]"),
            "plan.yaml: step \"a\" has an unknown field \"imgae\" (did you mean \"image\"?); a step takes name, depends_on, image, command, args, shell, env, params, count, backoff_limit, restart_policy, child_timeout, ttl, job, job_file"
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
    fn duplicate_names_are_rejected() {
        assert_eq!(
            error("steps: [{name: a}, {name: b}, {name: a}]"),
            "plan.yaml: two steps are named \"a\"; step names must be unique"
        );
        assert_eq!(
            error("phases: [{name: p, steps: [{name: a}]}, {name: p, steps: [{name: b}]}]"),
            "plan.yaml: two phases are named \"p\"; phase names must be unique"
        );
    }

    #[test]
    fn names_that_collide_as_child_names_are_rejected() {
        assert_eq!(
            error("steps: [{name: a_b}, {name: A-b}]"),
            "plan.yaml: steps \"a_b\" and \"A-b\" would both be \"a-b\" in child Job names (lowercased, '_' and '.' become '-'); rename one"
        );
    }

    #[test]
    fn fanned_out_children_cannot_take_another_steps_name() {
        assert_eq!(
            error("steps: [{name: a, count: 2}, {name: a-1}]"),
            "plan.yaml: steps \"a\" and \"a-1\" would both have a child Job named \"a-1\" (a step that fans out names its children <step>-<index>); rename one"
        );
        assert_eq!(
            names(&plan("steps: [{name: a, count: 2}, {name: a-2}]")),
            ["a", "a-2"]
        );
    }

    #[test]
    fn invalid_names_show_the_rule() {
        for bad in ["-a", "a-", "a b", "ä", "\"\"", &"x".repeat(64)] {
            let msg = error(&format!("steps: [{{name: {bad}}}]"));
            assert!(
                msg.starts_with("plan.yaml: step name ")
                    && msg.ends_with(
                        "is invalid: a name is 1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit"
                    ),
                "{bad}: {msg}"
            );
        }
        assert_eq!(
            error("steps: [{name: a b}]"),
            "plan.yaml: step name \"a b\" is invalid: a name is 1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit"
        );
    }

    #[test]
    fn unknown_dependency_names_the_step_and_suggests_a_near_name() {
        assert_eq!(
            error("steps: [{name: prepare}, {name: b, depends_on: [prepair]}]"),
            "plan.yaml: step \"b\" depends on \"prepair\", which is not in the plan (did you mean \"prepare\"?)"
        );
        assert_eq!(
            error("steps: [{name: prepare}, {name: b, depends_on: [zzz]}]"),
            "plan.yaml: step \"b\" depends on \"zzz\", which is not in the plan"
        );
    }

    #[test]
    fn names_yaml_reads_as_booleans_get_a_quoting_hint() {
        assert_eq!(
            error("steps: [{name: a, depends_on: [y]}]"),
            "plan.yaml: step \"a\": `depends_on` must be a list of step names, e.g. [\"prepare\"], found [true] (quote names that YAML would read as a boolean or number)"
        );
        assert_eq!(
            error("steps: [{name: 1}]"),
            "plan.yaml: step 1: `name` must be a string, found 1 (quote names that YAML would read as a boolean or number)"
        );
        assert_eq!(names(&plan("steps: [{name: 'y'}]")), ["y"]);
    }

    #[test]
    fn step_depending_on_itself_is_rejected() {
        assert_eq!(
            error("steps: [{name: a, depends_on: [a]}]"),
            "plan.yaml: step \"a\" depends on itself"
        );
    }

    #[test]
    fn dependency_on_a_later_phase_names_both_phases() {
        assert_eq!(
            error(
                "phases: [{name: first, steps: [{name: a, depends_on: [b]}]}, {name: second, steps: [{name: b}]}]"
            ),
            "plan.yaml: step \"a\" in phase \"first\" depends on \"b\" in the later phase \"second\"; a step can depend only on steps of its own or an earlier phase"
        );
    }

    #[test]
    fn cycle_is_printed_in_order() {
        // a waits for c, c for b, b for a: the flow is a -> b -> c -> a.
        assert_eq!(
            error(
                "steps: [{name: start}, {name: a, depends_on: [start, c]}, {name: b, depends_on: [a]}, {name: c, depends_on: [b]}, {name: after, depends_on: [c]}]"
            ),
            "plan.yaml: dependency cycle a -> b -> c -> a (each step depends on the one before it)"
        );
        let err = parse(
            "steps: [{name: p, depends_on: [q]}, {name: q, depends_on: [p]}]",
            "plan.yaml",
            Path::new(""),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PlanError::Cycle {
                origin: "plan.yaml".into(),
                cycle: vec!["p".into(), "q".into()]
            }
        );
    }

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

    #[test]
    fn typo_guard_stays_strict_for_steps_and_phases() {
        assert_eq!(
            error("phases: [{name: p, stpes: [{name: a}]}]"),
            "plan.yaml: phase \"p\" has an unknown field \"stpes\" (did you mean \"steps\"?); a phase takes name, steps"
        );
        assert_eq!(
            error("phases: [{name: p, steps: [{name: a, depend_on: [b]}]}]"),
            "plan.yaml: step \"a\" has an unknown field \"depend_on\" (did you mean \"depends_on\"?); a step takes name, depends_on, image, command, args, shell, env, params, count, backoff_limit, restart_policy, child_timeout, ttl, job, job_file"
        );
        assert_eq!(
            error("version: 2\nsteps: [{name: a}]"),
            "plan.yaml: unknown top-level key \"version\"; a plan has `steps`, `phases`, or Jobernetes' `jobernetes` and `jobernetes_config`"
        );
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
