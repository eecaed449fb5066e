//! The children of a run: which ones there are (steps fanned out by count, params, or another
//! step's result once it is known) and the batch/v1 Job each one is, built the way
//! `kubectl create job NAME --image=IMAGE -- CMD` would (`child/job.rs`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::config::{CHILD_PREFIX, ConfigError, EnvMap, FanOut, Pack, StepSettings};
use crate::plan::{self, Plan, When};
use by_name::ByName;
pub(crate) use job::put_env;
use job::{build_template, instantiate};

mod by_name;
mod job;
mod packed;

pub use packed::{PackJob, Passing};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of `MANAGED_BY` on every child.
pub const MANAGER: &str = "jobherd";
pub const RUN_LABEL: &str = "jobherd.io/run";
pub const STEP_LABEL: &str = "jobherd.io/step";
/// The label Kueue reads to put a Job in a LocalQueue (`JOBHERD_QUEUE`). On the Job only: Kueue
/// reads a Job's own labels, and admits each child as a workload of its own because the
/// children's owner reference to the parent is not a `controller` one.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// Kubernetes' limit for names that end up in labels (`job-name`) and for label values.
const MAX_NAME: usize = 63;
/// What Kubernetes would default anyway; set explicitly so the dry-run output says it.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// The most a child's Job may weigh as sent. etcd refuses a write over 1.5 MiB (its default
/// `--max-request-bytes`), and the stored Job grows after creation (status, managed fields):
/// one megabyte leaves that room.
pub const MAX_JOB: usize = 1024 * 1024;

/// Who the children belong to: decided once per run (see `cluster::identify`).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Value of `jobherd.io/run`: the parent's uid, or a generated id outside a pod.
    pub run_id: String,
    /// Child names are `<prefix>-<index or step>`.
    pub prefix: String,
    /// Namespace of the children; `None` only for a client dry run that knows none.
    pub namespace: Option<String>,
    /// The parent Job or Pod; `None` outside a pod or when children go to another namespace.
    pub owner: Option<OwnerReference>,
}

/// One child of the run. Its Job is built on demand from its step's template
/// ([`Children::job`]), so a herd of thousands keeps names, not Job objects, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    /// The Job's name.
    pub name: Box<str>,
    /// Its `jobherd.io/step` label when the naming rule cannot give it (a child known only
    /// by its Job, [`Children::named`]); see [`Children::label`]. A herd of 100,000 keeps
    /// no string for it.
    own_label: Option<Box<str>>,
    /// Index of its step in [`Children::steps`].
    pub step: usize,
}

/// A step of the run (a plan step, or the whole run without a plan). Its children share one
/// Job template and differ only in name, step label and fan-out env.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The plan step's name; `None` without a plan.
    pub name: Option<String>,
    /// Steps (indices into [`Children::steps`]) that must succeed before this one starts.
    pub depends_on: Vec<usize>,
    /// The plan steps it depends on, for the report.
    pub depends_on_names: Vec<String>,
    /// Its children, as indices into the run's children.
    pub children: Range<usize>,
    /// When it runs, given how its dependencies ended.
    pub when: When,
    /// `params_from`: the step whose result it fans out over. Its children are laid out once
    /// that result is known ([`Children::lay_out`]), after every other step's.
    pub source: Option<usize>,
    /// Its children are known: always, but for a `params_from` step before it is laid out.
    pub laid_out: bool,
    /// Its children are packed into Indexed Jobs (`JOBHERD_PACK`, a step's `pack`; only a
    /// step that fans out).
    pub packed: bool,
    /// Shared by its children's [`ChildJob`]s until each is built.
    template: Arc<Job>,
    /// The template's size as sent, for [`ChildJob::check`].
    template_size: usize,
    fan_out: FanOut,
    /// `JOBHERD_RESULT_*` of the steps it depends on, set when it is about to start.
    inputs: EnvMap,
}

impl StepSpec {
    /// Its result is a JSON array of its children's (`count`, `params`, `params_from`).
    pub fn fans_out(&self) -> bool {
        !matches!(self.fan_out, FanOut::Single)
    }
}

/// Every child of a run, and their steps. Steps are in creation order (dependencies before
/// dependants); children are laid out step by step, those of `params_from` steps at the end, as
/// their sources' results come.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    prefix: String,
    specs: Vec<ChildSpec>,
    steps: Vec<StepSpec>,
    by_name: ByName,
}

impl Children {
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn get(&self, index: usize) -> &ChildSpec {
        &self.specs[index]
    }

    pub fn name(&self, index: usize) -> &str {
        &self.specs[index].name
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChildSpec> {
        self.specs.iter()
    }

    pub fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    pub fn step_of(&self, index: usize) -> &StepSpec {
        &self.steps[self.specs[index].step]
    }

    /// What the report shows as a child's step: the plan step, or the index without a plan.
    pub fn step_name(&self, index: usize) -> Cow<'_, str> {
        match &self.step_of(index).name {
            Some(name) => Cow::Borrowed(name),
            None => self.label(index),
        }
    }

    /// Value of its `jobherd.io/step` label: the index without a plan, else the step (and
    /// index), by the one naming rule.
    pub fn label(&self, index: usize) -> Cow<'_, str> {
        let spec = &self.specs[index];
        if let Some(label) = &spec.own_label {
            return Cow::Borrowed(label);
        }
        let step = &self.steps[spec.step];
        let position = index - step.children.start;
        Cow::Owned(child_label(step.name.as_deref(), step.fans_out(), position))
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(&self.specs, name)
    }

    /// The batch/v1 Job of one child, ready to create.
    pub fn job(&self, index: usize) -> Job {
        self.recipe(index).build()
    }

    /// What one child's Job is made of, to build it when its create is sent.
    pub fn recipe(&self, index: usize) -> ChildJob {
        let spec = &self.specs[index];
        let step = &self.steps[spec.step];
        let position = index - step.children.start;
        let mut env = step.inputs.clone();
        env.extend(fan_out_env(&step.fan_out, position));
        ChildJob {
            template: step.template.clone(),
            template_size: step.template_size,
            name: spec.name.to_string(),
            label: self.label(index).into_owned(),
            env,
        }
    }

    /// Every child, step by step: the order in which they could run, and in which reports
    /// list them (a `params_from` step's children are laid out after the others).
    pub fn in_step_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().flat_map(|s| s.children.clone())
    }

    /// What a dry run shows, step by step: every child's Job, and for a `params_from` step,
    /// whose children are known only at run time, its Job template once, named as its only
    /// child would be.
    pub fn dry_run_jobs(&self, pack: (usize, PackHow<'_>)) -> Vec<Job> {
        let mut jobs = Vec::new();
        for spec in &self.steps {
            if spec.laid_out && spec.packed {
                jobs.extend(self.dry_run_packs(spec, (pack.0, &pack.1)));
            } else if spec.laid_out {
                jobs.extend(spec.children.clone().map(|i| self.job(i)));
            } else {
                let name = spec.name.as_deref().unwrap_or_default();
                let child = child_name_of(&self.prefix, Some(name), false, 0);
                let label = child_label(Some(name), false, 0);
                jobs.push(instantiate(&spec.template, &child, &label, &EnvMap::new()));
            }
        }
        jobs
    }

    /// A packed step's packs, as a run would create them all at once (their ConfigMaps are
    /// not shown); a step that cannot be packed, its children's Jobs.
    fn dry_run_packs(&self, spec: &StepSpec, (size, how): (usize, &PackHow<'_>)) -> Vec<Job> {
        let all: Vec<usize> = spec.children.clone().collect();
        let packs: Result<Vec<Job>, String> = all
            .chunks(size.max(1))
            .map(|members| {
                let how = PackHow {
                    parallelism: members.len(),
                    ..*how
                };
                self.pack_job(members, &how).map(|p| p.build().0)
            })
            .collect();
        packs.unwrap_or_else(|why| {
            let name = spec.name.as_deref().unwrap_or("the run");
            tracing::info!("{name} is not packed: {why}");
            all.iter().map(|i| self.job(*i)).collect()
        })
    }

    /// The names of the steps that fan out over another step's result, with their sources.
    pub fn fanning_out(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().filter(|s| !s.laid_out).filter_map(|s| {
            let source = self.steps.get(s.source?)?.name.as_deref()?;
            Some((s.name.as_deref()?, source))
        })
    }

    /// Lays out the children of a `params_from` step, after every child laid out so far: one
    /// per item (`JOBHERD_ITEM` or the item's entries, with `JOBHERD_CHILD_INDEX`/`_COUNT`), or
    /// with `None`, one child standing for a step that cannot fan out (skipped, or whose source
    /// gave no usable result), which is never created.
    pub fn lay_out(&mut self, step: usize, items: Option<Vec<EnvMap>>) -> Range<usize> {
        let fan_out = match items {
            Some(items) => FanOut::Params(items),
            None => FanOut::Single,
        };
        let start = self.specs.len();
        let name = self.steps[step].name.clone();
        self.push_children(step, name.as_deref(), &fan_out);
        let spec = &mut self.steps[step];
        spec.fan_out = fan_out;
        spec.children = start..self.specs.len();
        spec.laid_out = true;
        spec.children.clone()
    }

    /// The variables only this child has (its index, count, params entries or item): what
    /// jobherd's entrypoint sets in a packed child.
    pub fn own_env(&self, index: usize) -> EnvMap {
        let spec = &self.specs[index];
        let step = &self.steps[spec.step];
        fan_out_env(&step.fan_out, index - step.children.start)
    }

    /// The pack of `members` (children of one packed step, in completion-index order): its
    /// name and label after its first child, and how its children learn who they are. Without
    /// a way (they need their own values, and there is no command to run after jobherd's
    /// entrypoint, or no image to copy it from), why not.
    pub fn pack_job(&self, members: &[usize], how: &PackHow<'_>) -> Result<PackJob, String> {
        let first = *members.first().ok_or("a pack of no children")?;
        let step = &self.steps[self.specs[first].step];
        let positions: Vec<usize> = members.iter().map(|i| i - step.children.start).collect();
        let base = step.name.as_deref().map(plan::k8s_name);
        let suffix = match &base {
            Some(b) => format!("{b}-pack{}", positions[0]),
            None => format!("pack{}", positions[0]),
        };
        // From 1.28 the API refuses an Indexed Job whose `<name>-<last index>` is no DNS label.
        let room = MAX_NAME - 1 - positions.len().saturating_sub(1).to_string().len();
        let name = shorten(&format!("{}-{suffix}", self.prefix), room);
        let label = shorten(&suffix, MAX_NAME);
        let in_order = positions.iter().enumerate().all(|(i, p)| i == *p);
        let passing = match &step.fan_out {
            FanOut::Count(n) if in_order => Passing::Index { count: *n as usize },
            _ => Passing::Values {
                values: crate::pack::values_file(members.iter().map(|i| self.own_env(*i))),
                image: self.entrypoint_image(step, how.image)?,
            },
        };
        Ok(PackJob {
            template: step.template.clone(),
            name,
            label,
            step: step.name.clone().unwrap_or_default(),
            positions,
            inputs: step.inputs.clone(),
            passing,
            parallelism: how.parallelism,
            fail_fast: how.fail_fast,
            owner: step
                .template
                .metadata
                .owner_references
                .clone()
                .and_then(|o| o.into_iter().next()),
        })
    }

    /// The image jobherd's entrypoint comes from, when the step has a command for it to run.
    fn entrypoint_image(&self, step: &StepSpec, image: Option<&str>) -> Result<String, String> {
        let runs = step
            .template
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        let main = runs.and_then(|p| p.containers.first());
        if main.is_none_or(|c| c.command.is_none() && c.args.is_none()) {
            return Err("its children need their own variables, which jobherd's entrypoint sets before it runs their command, and the step has no command (the image's own entrypoint cannot be read from here): give it `command`, `args` or `shell`".into());
        }
        image.map(str::to_string).ok_or_else(|| {
            "its children need jobherd's entrypoint, and jobherd's image is not known: set JOBHERD_PACK_IMAGE".into()
        })
    }

    /// The step's children run as Jobs of their own after all (it cannot be packed).
    pub fn unpack(&mut self, step: usize) {
        self.set_packed(step, false);
    }

    /// Packs a step's children or not; only unpacked children are found by their names.
    fn set_packed(&mut self, step: usize, packed: bool) {
        self.steps[step].packed = packed;
        for i in self.steps[step].children.clone() {
            if packed {
                self.by_name.remove(&self.specs, i);
            } else {
                self.by_name.insert(&self.specs, i);
            }
        }
        if packed {
            self.by_name.shrink_to_fit(&self.specs);
        }
    }

    /// What the steps it depends on give a step's children (`JOBHERD_RESULT_*`).
    pub fn set_inputs(&mut self, step: usize, inputs: EnvMap) {
        self.steps[step].inputs = inputs;
    }
}

/// How a run packs: the jobherd image for entrypoints, each pack's share of the parallelism,
/// and fail fast.
#[derive(Debug, Clone, Copy)]
pub struct PackHow<'a> {
    pub image: Option<&'a str>,
    pub parallelism: usize,
    pub fail_fast: bool,
}

/// One child's Job before it is built: its step's shared template, and what makes it this child
/// (name, step label, its own and its dependencies' variables). A herd holds thousands of these
/// while their creates wait their turn; each Job is built when its create is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildJob {
    template: Arc<Job>,
    template_size: usize,
    pub name: String,
    pub label: String,
    env: EnvMap,
}

impl ChildJob {
    pub fn build(&self) -> Job {
        instantiate(&self.template, &self.name, &self.label, &self.env)
    }

    /// About what its Job weighs as sent: the template's size, its name and label where they
    /// go, and its variables as JSON (a slight overestimate).
    pub fn size(&self) -> usize {
        const PER_VARIABLE: usize = 32;
        let named = 4 * self.name.len() + 2 * self.label.len();
        let env: usize = self
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len() + PER_VARIABLE)
            .sum();
        self.template_size + named + env
    }

    /// Why it cannot be created as it is: a variable longer than a process may be given, or a
    /// Job heavier than the API stores. The message names the sizes and the way out.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in &self.env {
            crate::outputs::fits(name, value)?;
        }
        let size = self.size();
        if size > MAX_JOB {
            return Err(format!(
                "its Job would weigh {} KiB, more than the {} KiB a Job may (etcd stores at most 1.5 MiB per object, and a Job grows once it runs): pass large results by reference (an object storage key), not inline",
                size.div_ceil(1024),
                MAX_JOB / 1024
            ));
        }
        Ok(())
    }
}

/// Expands the configuration (and plan, if any) into the run's children, in creation order.
/// Every step's Job is built and checked here, so a child without an image (the only thing
/// that can be missing after parsing) is an error before anything is created.
pub fn children(
    defaults: &StepSettings,
    plan: Option<&Plan>,
    id: &Identity,
) -> Result<Children, ConfigError> {
    let mut out = Children::empty(&id.prefix);
    let Some(plan) = plan else {
        let template = build_template(defaults, &StepSettings::default(), id).map_err(|e| {
            let first = child_name(&id.prefix, "0");
            ConfigError::Plan(format!("child {first}: {e}"))
        })?;
        let fan_out = defaults.fan_out.clone();
        out.push_step(None, vec![], vec![], template, fan_out);
        out.set_packed(0, packs(defaults, &StepSettings::default()));
        return Ok(out);
    };
    let mut step_ids: HashMap<&str, usize> = HashMap::new();
    for step in &plan.steps {
        let template = build_template(defaults, &step.settings, id)
            .map_err(|e| ConfigError::Plan(format!("step {}: {e}", step.name)))?;
        // Plans come in topological order, so every dependency already has its id.
        let depends_on = step
            .depends_on
            .iter()
            .filter_map(|d| step_ids.get(d.as_str()).copied())
            .collect();
        let source = match &step.settings.fan_out {
            FanOut::From(source) => step_ids.get(source.as_str()).copied(),
            _ => None,
        };
        out.push_step(
            Some(step.name.clone()),
            depends_on,
            step.depends_on.clone(),
            template,
            step.settings.fan_out.clone(),
        );
        let pushed = out.steps.len() - 1;
        out.steps[pushed].when = step.when;
        out.steps[pushed].source = source;
        out.set_packed(pushed, packs(defaults, &step.settings));
        step_ids.insert(step.name.as_str(), pushed);
    }
    Ok(out)
}

/// A step is packed when it fans out and `pack: indexed` (its own, or `JOBHERD_PACK`) says so.
fn packs(defaults: &StepSettings, own: &StepSettings) -> bool {
    let fan_out = match &own.fan_out {
        FanOut::Single => &defaults.fan_out,
        mine => mine,
    };
    let fans_out = !matches!(fan_out, FanOut::Single);
    fans_out && own.pack.or(defaults.pack) == Some(Pack::Indexed)
}

/// Whether two runs' steps have the same shape: the same steps in the same order, each with as
/// many children, fanned out alike (a `params_from` step's children are its source's result's,
/// not the configuration's, so they are not compared).
pub fn same_shape(a: &[StepShape], b: &[StepShape]) -> bool {
    let key = |s: &StepShape| {
        let size = (!s.dynamic).then_some((s.children, s.fanned_out));
        (s.name.clone(), s.dynamic, size)
    };
    a.iter().map(key).eq(b.iter().map(key))
}

/// The shape of one step as a run's record keeps it: enough to name its children again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepShape {
    /// The plan step; `None` without a plan.
    pub name: Option<String>,
    pub children: usize,
    /// Named `<step>-<index>` even when alone (`count`/`params` of one).
    pub fanned_out: bool,
    /// Indices of the steps it depends on.
    pub depends_on: Vec<usize>,
    /// It fanned out over another step's result (`params_from`): how many children it has is
    /// that result's, not the configuration's.
    pub dynamic: bool,
    /// Where its children start among the run's, for a `params_from` step that was laid out
    /// (the others are laid out step by step, in order).
    pub first: Option<usize>,
}

impl Children {
    fn empty(prefix: &str) -> Self {
        Children {
            prefix: prefix.to_string(),
            specs: Vec::new(),
            steps: Vec::new(),
            by_name: ByName::default(),
        }
    }

    /// Every step's shape, in order (see `StepShape`).
    pub fn shape(&self) -> Vec<StepShape> {
        self.steps
            .iter()
            .map(|s| StepShape {
                name: s.name.clone(),
                children: s.children.len(),
                fanned_out: s.fans_out(),
                depends_on: s.depends_on.clone(),
                dynamic: s.source.is_some(),
                first: (s.source.is_some() && s.laid_out).then_some(s.children.start),
            })
            .collect()
    }

    /// The children of a run known only by its shape (a record read back): the same names
    /// and labels as the run had, without Job templates.
    pub fn from_shape(prefix: &str, shape: &[StepShape]) -> Children {
        let mut out = Children::empty(prefix);
        let fan_out = |step: &StepShape| {
            if step.fanned_out {
                FanOut::Count(step.children as u32)
            } else {
                FanOut::Single
            }
        };
        for step in shape {
            let names = step
                .depends_on
                .iter()
                .filter_map(|d| shape.get(*d)?.name.clone())
                .collect();
            let (name, deps) = (step.name.clone(), step.depends_on.clone());
            let laid_out = if step.dynamic {
                FanOut::Count(0)
            } else {
                fan_out(step)
            };
            out.push_step(name, deps, names, Job::default(), laid_out);
            let pushed = out.steps.len() - 1;
            out.steps[pushed].laid_out = !step.dynamic;
        }
        // `params_from` steps were laid out after every other step, as their sources ended.
        let mut dynamic: Vec<(usize, usize)> = shape
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.first?, i)))
            .collect();
        dynamic.sort_unstable();
        for (_, i) in dynamic {
            let start = out.specs.len();
            let name = out.steps[i].name.clone();
            out.push_children(i, name.as_deref(), &fan_out(&shape[i]));
            out.steps[i].children = start..out.specs.len();
            out.steps[i].fan_out = fan_out(&shape[i]);
            out.steps[i].laid_out = true;
        }
        out
    }

    /// Children known only by their names and step labels (Jobs found in the cluster).
    pub fn named(children: Vec<(String, String)>) -> Children {
        let mut out = Children::empty("");
        for (name, label) in children {
            out.specs.push(ChildSpec {
                name: name.into(),
                own_label: Some(label.into()),
                step: 0,
            });
            out.by_name.insert(&out.specs, out.specs.len() - 1);
        }
        out.steps.push(StepSpec {
            name: None,
            depends_on: vec![],
            depends_on_names: vec![],
            children: 0..out.specs.len(),
            when: When::Succeeded,
            source: None,
            laid_out: true,
            packed: false,
            template: Arc::default(),
            template_size: 0,
            fan_out: FanOut::Count(out.specs.len() as u32),
            inputs: EnvMap::new(),
        });
        out
    }

    /// Adds a step and, unless it fans out over a result not known yet, its children.
    fn push_step(
        &mut self,
        name: Option<String>,
        depends_on: Vec<usize>,
        depends_on_names: Vec<String>,
        template: Job,
        fan_out: FanOut,
    ) {
        let step = self.steps.len();
        let start = self.specs.len();
        self.push_children(step, name.as_deref(), &fan_out);
        let template_size = serde_json::to_vec(&template).map_or(0, |v| v.len());
        self.steps.push(StepSpec {
            name,
            depends_on,
            depends_on_names,
            children: start..self.specs.len(),
            when: When::Succeeded,
            source: None,
            laid_out: !matches!(fan_out, FanOut::From(_)),
            packed: false,
            template: Arc::new(template),
            template_size,
            fan_out,
            inputs: EnvMap::new(),
        });
    }

    /// Appends the children of a step, named by the one naming rule.
    fn push_children(&mut self, step: usize, name: Option<&str>, fan_out: &FanOut) {
        let fanned_out = !matches!(fan_out, FanOut::Single);
        let len = fan_out_len(fan_out);
        // Room for exactly these: a herd of 100,000 would otherwise keep up to twice.
        self.specs.reserve_exact(len);
        for position in 0..len {
            self.specs.push(ChildSpec {
                name: child_name_of(&self.prefix, name, fanned_out, position).into(),
                own_label: None,
                step,
            });
            // A packed child is found by its pack and index, never by its own name.
            if !self.steps.get(step).is_some_and(|s| s.packed) {
                self.by_name.insert(&self.specs, self.specs.len() - 1);
            }
        }
    }
}

/// The one naming rule, for the Job name ([`child_name_of`]) and the `jobherd.io/step` label
/// ([`child_label`]) of the child at `position` of a step. Without a plan: `<prefix>-<index>`,
/// label `<index>`. In a plan: `<prefix>-<step>`, or `<prefix>-<step>-<index>` for a step that
/// fans out, the step lowercased with `_` and `.` made `-` in the name and kept as written in
/// the label.
fn child_name_of(prefix: &str, step: Option<&str>, fanned_out: bool, position: usize) -> String {
    let suffix = match step {
        None => position.to_string(),
        Some(step) if fanned_out => format!("{}-{position}", plan::k8s_name(step)),
        Some(step) => plan::k8s_name(step),
    };
    child_name(prefix, &suffix)
}

/// The `jobherd.io/step` label by the naming rule of [`child_name_of`].
fn child_label(step: Option<&str>, fanned_out: bool, position: usize) -> String {
    match step {
        None => position.to_string(),
        Some(step) if fanned_out => shorten(&format!("{step}-{position}"), MAX_NAME),
        Some(step) => shorten(step, MAX_NAME),
    }
}

fn fan_out_len(fan_out: &FanOut) -> usize {
    match fan_out {
        FanOut::Single => 1,
        FanOut::Count(n) => *n as usize,
        FanOut::Params(list) => list.len(),
        // Known once the source's result is: see `Children::lay_out`.
        FanOut::From(_) => 0,
    }
}

/// The env the child at `position` of a fan-out adds: nothing for a single child.
fn fan_out_env(fan_out: &FanOut, position: usize) -> EnvMap {
    match fan_out {
        FanOut::Single | FanOut::From(_) => EnvMap::new(),
        FanOut::Count(n) => index_env(position, *n as usize),
        FanOut::Params(list) => {
            let mut env = index_env(position, list.len());
            env.extend(list[position].clone());
            env
        }
    }
}

fn index_env(index: usize, count: usize) -> EnvMap {
    EnvMap::from([
        (format!("{CHILD_PREFIX}INDEX"), index.to_string()),
        (format!("{CHILD_PREFIX}COUNT"), count.to_string()),
    ])
}

/// `<prefix>-<suffix>`, shortened with a stable hash when longer than a Job name may be.
pub fn child_name(prefix: &str, suffix: &str) -> String {
    shorten(&format!("{prefix}-{suffix}"), MAX_NAME)
}

/// Cuts `s` to `max` characters keeping it unique and stable: the head of the string, `-`,
/// and 8 hex digits of a hash of the whole. The head never ends in a non-alphanumeric,
/// so the result stays a valid DNS-1123 label or label value.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let hash = format!("{:08x}", fnv1a(s) as u32);
    let head: String = s.chars().take(max - hash.len() - 1).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// FNV-1a: tiny, and unlike std's hasher its output is fixed forever, which stable names need.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests;
