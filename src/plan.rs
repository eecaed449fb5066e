//! Plans (SPEC §4): steps with dependencies from `JOBHERD_PLAN` / `JOBHERD_PLAN_FILE`. Here: the
//! model, choosing the format, and what every format is checked for before anything is created
//! (names, dependencies, phases, cycles); the result is the steps in a stable topological order.

mod fields;
mod jobernetes;
mod manifests;
mod steps;
#[cfg(test)]
mod test_support;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{Cleanup, FanOut, PlanSource, StepSettings};
pub use fields::Field;
use fields::{did_you_mean, field_names, kind_of, knows};
use jobernetes::jobernetes_plan;
pub use jobernetes::{
    JOBERNETES_CONFIG_FIELDS, JOBERNETES_EXPLODED, JOBERNETES_JOB_FIELDS, JOBERNETES_JOB_NAME,
    JOBERNETES_PHASE, JOBERNETES_PHASE_FIELDS,
};
use manifests::{describe_io, parse_documents};
pub use steps::{PHASE_FIELDS, STEP_FIELDS};
use steps::{phases_plan, steps_plan};

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
    /// When it runs, given how its dependencies ended (SPEC §8).
    pub when: When,
}

/// `when`: what a step's dependencies must have done for it to run (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// Every dependency succeeded.
    #[default]
    Succeeded,
    /// Every dependency finished, and at least one failed or was skipped: undo, compensate.
    Failed,
    /// Every dependency finished, whatever happened: notify, clean up.
    Always,
}

impl When {
    pub fn parse(s: &str) -> Result<When, String> {
        match s {
            "succeeded" => Ok(When::Succeeded),
            "failed" => Ok(When::Failed),
            "always" => Ok(When::Always),
            _ => Err("expected succeeded, failed or always".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            When::Succeeded => "succeeded",
            When::Failed => "failed",
            When::Always => "always",
        }
    }
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

/// The keys a plan has at the top; which it has says its format.
pub const TOP_LEVEL_KEYS: &[Field] = &[
    Field {
        name: "steps",
        meaning: "A list of steps; dependencies are only what their `depends_on` says.",
    },
    Field {
        name: "phases",
        meaning: "A list of phases (`name`, `steps`): every step of a phase depends on every step of the phase before.",
    },
    Field {
        name: "jobernetes",
        meaning: "A Jobernetes `jobermodel.yaml`'s phases (`phase_name`, `jobs`), run unchanged; keys it does not read are noted, not refused.",
    },
    Field {
        name: "jobernetes_config",
        meaning: "A Jobernetes model's run-wide options.",
    },
];

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
    for key in top.keys().filter(|k| !knows(TOP_LEVEL_KEYS, k)) {
        let hint = did_you_mean(key, field_names(TOP_LEVEL_KEYS));
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
    when: When,
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

/// The checks across steps, the same whatever the format: each reader turns its format into
/// entries, and here names, dependencies and phases are checked and the steps put in order.
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
                when: entry.when,
            });
        }
    }
    check_unique_child_names(ctx, &steps)?;
    check_results_flow(ctx, &steps)?;
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

const NAME_RULE: &str =
    "1 to 63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit";

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
    // A step that fans out over a result may have any number of children.
    let dynamic: HashMap<String, &str> = steps
        .iter()
        .filter(|s| matches!(s.settings.fan_out, FanOut::From(_)))
        .map(|s| (k8s_name(&s.name), s.name.as_str()))
        .collect();
    for step in steps {
        let children = match &step.settings.fan_out {
            FanOut::Single | FanOut::From(_) => 0,
            FanOut::Count(n) => *n as usize,
            FanOut::Params(p) => p.len(),
        };
        let own = k8s_name(&step.name);
        let taken = own
            .rsplit_once('-')
            .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(base, _)| dynamic.get(base).filter(|d| **d != step.name));
        if let Some(other) = taken {
            return Err(ctx.name(format!(
                "steps {other:?} and {:?} may both have a child Job named {own:?} ({other:?} fans out over a result and names its children <step>-<index>); rename one",
                step.name
            )));
        }
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

/// Results flow along dependencies (SPEC §8): a step fans out over the result of a step it
/// depends on directly, and a step that runs on failure (or always) runs after something.
fn check_results_flow(ctx: &Ctx, steps: &[Step]) -> Result<(), PlanError> {
    for step in steps {
        if let FanOut::From(source) = &step.settings.fan_out
            && !step.depends_on.contains(source)
        {
            let hint = did_you_mean(source, step.depends_on.iter().map(String::as_str));
            let deps = if step.depends_on.is_empty() {
                "it depends on no step".to_string()
            } else {
                format!("it depends on {}", step.depends_on.join(", "))
            };
            return Err(ctx.dependency(format!(
                "step {:?}: `params_from` {source:?} is not one of its dependencies{hint} ({deps}); a step fans out over the result of a step it depends on directly",
                step.name
            )));
        }
        if step.when != When::Succeeded && step.depends_on.is_empty() {
            return Err(ctx.dependency(format!(
                "step {:?} runs `when: {}` but depends on no step; give it `depends_on`: it runs once the steps it names have finished",
                step.name,
                step.when.as_str()
            )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::test_support::*;

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
    fn k8s_name_lowercases_and_replaces_underscores_and_dots() {
        assert_eq!(k8s_name("sleep_one"), "sleep-one");
        assert_eq!(k8s_name("Step.V2"), "step-v2");
        assert_eq!(k8s_name("download-a"), "download-a");
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
    fn results_flow_along_direct_dependencies() {
        let p = plan(
            r#"{"steps": [{"name": "list"},
              {"name": "process", "depends_on": ["list"], "params_from": "list"},
              {"name": "revert", "depends_on": ["process"], "when": "failed"},
              {"name": "notify", "depends_on": ["process", "revert"], "when": "always"}]}"#,
        );
        assert_eq!(
            step(&p, "process").settings.fan_out,
            FanOut::From("list".into())
        );
        assert_eq!(step(&p, "revert").when, When::Failed);
        assert_eq!(step(&p, "notify").when, When::Always);
        assert_eq!(step(&p, "list").when, When::Succeeded);
    }

    #[test]
    fn params_from_must_name_a_direct_dependency() {
        let err = error(
            r#"{"steps": [{"name": "list"}, {"name": "prepare"},
              {"name": "process", "depends_on": ["prepare"], "params_from": "lst"}]}"#,
        );
        assert_eq!(
            err,
            "plan.yaml: step \"process\": `params_from` \"lst\" is not one of its dependencies (it depends on prepare); a step fans out over the result of a step it depends on directly"
        );
        let err = error(r#"{"steps": [{"name": "a", "params_from": "a"}]}"#);
        assert!(err.contains("it depends on no step"), "{err}");
        let err = error(
            r#"{"steps": [{"name": "list"},
              {"name": "p", "depends_on": ["list"], "params_from": "list", "count": 2}]}"#,
        );
        assert!(err.contains("sets both `params_from` and `count`"), "{err}");
    }

    #[test]
    fn a_step_that_runs_on_failure_needs_dependencies() {
        let err = error(r#"{"steps": [{"name": "revert", "when": "failed"}]}"#);
        assert!(
            err.contains("step \"revert\" runs `when: failed` but depends on no step"),
            "{err}"
        );
        let err = error(
            r#"{"steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"], "when": "sometimes"}]}"#,
        );
        assert!(
            err.contains("`when`: expected succeeded, failed or always, found \"sometimes\""),
            "{err}"
        );
    }

    #[test]
    fn a_step_named_like_a_dynamic_childs_name_is_refused() {
        let err = error(
            r#"{"steps": [{"name": "list"},
              {"name": "work", "depends_on": ["list"], "params_from": "list"},
              {"name": "work-3"}]}"#,
        );
        assert!(
            err.contains(
                "steps \"work\" and \"work-3\" may both have a child Job named \"work-3\""
            ),
            "{err}"
        );
    }
}
