//! Trigger mode (SPEC §7, `JOBHERD_TRIGGER=cronjob/NAME`): runs a CronJob's herd now, from a
//! Jenkins step or any caller. Creates a Job from the CronJob exactly as
//! `kubectl create job --from=cronjob/NAME` does, with the caller's overrides; streams the
//! parent's log, through a retried pod too; exits with the parent's own code; writes the JSON
//! and JUnit reports on the caller's side from what the cluster holds; and on SIGTERM/SIGINT
//! deletes the parent, whose children go with it.

mod follow;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc::{self, Sender};
use tokio::task::JoinSet;

use crate::child::{RUN_LABEL, put_env, shorten};
use crate::cluster::{self, ClusterError, describe, status_code};
use crate::config::{DryRun, Mode, PREFIX, RetryFrom, TriggerConfig};
use crate::exit::Exit;
use crate::herd::sources;
use crate::record::{self, RECORD, Record};
use crate::report;
use crate::run::{Signal, Stop};
use follow::{Act, Ending, Follow, NO_CODE, Seen};

/// The annotation `kubectl create job --from=cronjob/NAME` puts on the Job.
pub const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";
/// The container that runs jobherd when the CronJob's pod has several.
const CONTAINER: &str = "jobherd";
/// Variables that exclude each other: an override of one removes the CronJob's others.
const EXCLUSIVE: &[(&str, &[&str])] = &[
    ("COUNT", &["PARAMS", "PLAN", "PLAN_FILE"]),
    ("PARAMS", &["COUNT", "PLAN", "PLAN_FILE"]),
    ("PLAN", &["PLAN_FILE", "COUNT", "PARAMS"]),
    ("PLAN_FILE", &["PLAN", "COUNT", "PARAMS"]),
    ("SHELL", &["COMMAND", "ARGS"]),
    ("COMMAND", &["SHELL"]),
    ("ARGS", &["SHELL"]),
];

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The CronJob or the overrides cannot be used (exit 2: nothing is created).
    #[error("JOBHERD_TRIGGER=cronjob/{cronjob}: {problem}")]
    Unusable { cronjob: String, problem: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Everything that happens while the parent is followed.
#[derive(Debug)]
enum Happened {
    Seen(Seen),
    Line(String),
    Signal(Stop),
    Deadline,
    Fatal(ClusterError),
}

/// Triggers the CronJob's run and follows it; returns the exit code.
pub async fn trigger(t: TriggerConfig) -> Result<i32, crate::Error> {
    let started = Instant::now();
    let client = cluster::connect().await?;
    let namespace = t
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let unusable = |problem: String| TriggerError::Unusable {
        cronjob: t.cronjob.clone(),
        problem,
    };
    let cronjob = find_cronjob(&client, &namespace, &t.cronjob)
        .await?
        .map_err(unusable)?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let overrides = overrides(&t, &jobs, &namespace, &cronjob).await?;
    let name = t.name.clone().unwrap_or_else(|| default_name(&t.cronjob));
    let job = job_from_cronjob(&cronjob, &name, &overrides).map_err(unusable)?;
    if let Some(dry) = t.dry_run {
        let shown = dry_run(&jobs, &namespace, job, dry).await?;
        println!("{}", pretty(&shown));
        return Ok(0);
    }
    let created = match jobs.create(&PostParams::default(), &job).await {
        Ok(created) => created,
        Err(e) if status_code(&e) == Some(409) => {
            return Err(unusable(format!(
                "a Job named {name} already exists in namespace {namespace}; JOBHERD_TRIGGER_NAME must name a new one"
            ))
            .into());
        }
        Err(e) => return Err(ClusterError::from_kube("create", "jobs", &namespace, e).into()),
    };
    println!(
        "jobherd trigger: created job/{name} from cronjob/{} in namespace {namespace}; following it (SIGINT or SIGTERM deletes it)",
        t.cronjob
    );
    let (code, why) = match follow_parent(&client, &namespace, &created, t.timeout).await {
        Ok(ending) => ending,
        Err(e) => {
            // A parent nobody follows is not left running.
            println!("jobherd trigger: cannot follow job/{name}: {e}");
            let _ = abort(&jobs, &name, Stop::Terminate).await;
            return Err(e.into());
        }
    };
    say_how_it_ended(&name, code, why.as_deref());
    let reports = Reports {
        jobs: &jobs,
        namespace: &namespace,
        parent: &created,
    };
    reports.write(&t, code, started.elapsed()).await?;
    Ok(code)
}

/// The CronJob to trigger, or why there is none.
async fn find_cronjob(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Result<CronJob, String>, ClusterError> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let found = cronjobs
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::from_kube("get", "cronjobs", namespace, e))?;
    Ok(found.ok_or_else(|| format!("no CronJob named {name} in namespace {namespace}")))
}

/// The variables to set on the parent: the caller's, with `JOBHERD_RETRY=last-failed` made a
/// name (the CronJob's newest failed run).
async fn overrides(
    t: &TriggerConfig,
    jobs: &Api<Job>,
    namespace: &str,
    cronjob: &CronJob,
) -> Result<Vec<(String, String)>, TriggerError> {
    let mut out = t.overrides.clone();
    let retry = match &t.retry {
        None => return Ok(out),
        Some(RetryFrom::Job(name)) => name.clone(),
        Some(RetryFrom::LastFailed) => {
            let uid = cronjob.uid().unwrap_or_default();
            let found =
                crate::retry::newest_failed(jobs, namespace, (&t.cronjob, &uid), "").await?;
            let earlier = found.map_err(|problem| TriggerError::Unusable {
                cronjob: t.cronjob.clone(),
                problem: format!("JOBHERD_RETRY=last-failed: {problem}"),
            })?;
            println!(
                "jobherd trigger: retrying the newest failed run of cronjob/{}: job/{}",
                t.cronjob,
                earlier.name_any()
            );
            earlier.name_any()
        }
    };
    out.push((format!("{PREFIX}RETRY"), retry));
    Ok(out)
}

/// The Job as it would be created: as built (client), or as the API server would store it.
async fn dry_run(
    jobs: &Api<Job>,
    namespace: &str,
    job: Job,
    dry: DryRun,
) -> Result<Job, ClusterError> {
    match dry {
        DryRun::Client => Ok(job),
        DryRun::Server => {
            let params = PostParams {
                dry_run: true,
                ..Default::default()
            };
            jobs.create(&params, &job)
                .await
                .map_err(|e| ClusterError::from_kube("create", "jobs", namespace, e))
        }
    }
}

/// `<cronjob>-<8 characters>`: unique, and short enough for a CronJob name of 52 characters.
fn default_name(cronjob: &str) -> String {
    shorten(&format!("{cronjob}-{}", cluster::generated_run_id()), 63)
}

/// The Job `kubectl create job NAME --from=cronjob/CRONJOB` creates (annotation
/// `cronjob.kubernetes.io/instantiate: manual` over the template's, the template's labels,
/// a controller ownerReference to the CronJob without blockOwnerDeletion, the template's
/// spec), with the overrides set on jobherd's container: each replaces the CronJob's value,
/// and the values it excludes (`JOBHERD_COUNT` replaces `JOBHERD_PARAMS`, ...). Overrides
/// that jobherd would reject are refused here, before anything is created.
pub fn job_from_cronjob(
    cronjob: &CronJob,
    name: &str,
    overrides: &[(String, String)],
) -> Result<Job, String> {
    let template = cronjob
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let mut annotations = BTreeMap::from([(INSTANTIATE.to_string(), "manual".to_string())]);
    let meta = template.metadata.unwrap_or_default();
    annotations.extend(meta.annotations.unwrap_or_default());
    let mut job = Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(annotations),
            labels: meta.labels,
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cronjob.name_any(),
                uid: cronjob.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    if overrides.is_empty() {
        return Ok(job);
    }
    let container = jobherd_container(&mut job)?;
    let env = container.env.get_or_insert_with(Vec::new);
    let excluded: Vec<String> = overrides
        .iter()
        .filter_map(|(k, _)| {
            EXCLUSIVE
                .iter()
                .find(|(v, _)| k.strip_prefix(PREFIX) == Some(*v))
        })
        .flat_map(|(_, others)| others.iter().map(|o| format!("{PREFIX}{o}")))
        .filter(|o| !overrides.iter().any(|(k, _)| k == o))
        .collect();
    env.retain(|e| !excluded.contains(&e.name));
    for (key, value) in overrides {
        put_env(env, key, value, true);
    }
    check_overrides(env, overrides)?;
    Ok(job)
}

/// The container running jobherd: the one named `jobherd`, or the only one.
fn jobherd_container(job: &mut Job) -> Result<&mut k8s_openapi::api::core::v1::Container, String> {
    let containers = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .map(|p| &mut p.containers)
        .ok_or("its job template has no pod spec")?;
    let index = match containers.iter().position(|c| c.name == CONTAINER) {
        Some(i) => i,
        None if containers.len() == 1 => 0,
        None => {
            return Err(format!(
                "its pod has {} containers and none is named {CONTAINER}: name jobherd's container {CONTAINER} so the overrides know where to go",
                containers.len()
            ));
        }
    };
    Ok(&mut containers[index])
}

/// Parses the parent's variables as the parent will; a problem with an override is the
/// caller's to fix now (a problem with the CronJob's own values is the parent's exit 2).
fn check_overrides(env: &[EnvVar], overrides: &[(String, String)]) -> Result<(), String> {
    let vars = env
        .iter()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)));
    let Err(e) = Mode::from_vars(vars) else {
        return Ok(());
    };
    let message = e.to_string();
    let ours = overrides.iter().any(|(k, _)| message.contains(k.as_str()));
    if ours {
        Err(format!("with the overrides: {message}"))
    } else {
        Ok(())
    }
}

fn pretty(job: &Job) -> String {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    v["apiVersion"] = "batch/v1".into();
    v["kind"] = "Job".into();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Follows the parent to its end; returns the exit code to pass on and, when it is not
/// jobherd's own, why. A signal or the trigger's timeout deletes the parent first.
async fn follow_parent(
    client: &Client,
    namespace: &str,
    parent: &Job,
    timeout: Option<Duration>,
) -> Result<(i32, Option<String>), ClusterError> {
    let name = parent.name_any();
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let container = container_name(parent);
    let (tx, mut events) = mpsc::channel(1024);
    let mut tasks = watch_parent(&jobs, &pods, &name, namespace, tx.clone());
    let made = sources::Made {
        signalled: |signal| {
            Happened::Signal(match signal {
                Signal::Interrupt => Stop::Interrupt,
                Signal::Terminate => Stop::Terminate,
            })
        },
        tick: || Happened::Seen(Seen::Tick),
        deadline: || Happened::Deadline,
    };
    sources::timers(&mut tasks, timeout, tx.clone(), made)?;
    let mut follow = Follow::new(&name, &container, Instant::now());
    loop {
        let Some(happened) = events.recv().await else {
            return Err(ClusterError::Connect("following the parent stopped".into()));
        };
        let seen = match happened {
            Happened::Seen(seen) => seen,
            Happened::Line(line) => {
                println!("{line}");
                continue;
            }
            Happened::Fatal(e) => return Err(e),
            Happened::Signal(why) => return abort(&jobs, &name, why).await,
            Happened::Deadline => return abort(&jobs, &name, Stop::Timeout).await,
        };
        let (acts, end) = follow.apply(seen, Instant::now());
        for act in acts {
            match act {
                Act::Say(text) => println!("{text}"),
                Act::Stream { pod } => {
                    let reader = (pods.clone(), container.clone(), namespace.to_string());
                    tasks.spawn(stream(reader, pod, tx.clone()));
                }
            }
        }
        if let Some(Ending { code, why }) = end {
            return Ok((code, why));
        }
    }
}

/// The parent Job (by name) and its pods (by `job-name`), watched as the run watches its own.
fn watch_parent(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    name: &str,
    namespace: &str,
    events: Sender<Happened>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let of_job = watcher::Config::default().labels(&format!("job-name={name}"));
    tasks.spawn(sources::watch_or_give_up(
        jobs.clone(),
        by_name,
        namespace.to_string(),
        events.clone(),
        |e| Happened::Seen(Seen::Job(e)),
        Happened::Fatal,
    ));
    tasks.spawn(sources::watch_or_give_up(
        pods.clone(),
        of_job,
        namespace.to_string(),
        events,
        |e| Happened::Seen(Seen::Pod(e)),
        Happened::Fatal,
    ));
    tasks
}

fn container_name(job: &Job) -> String {
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .find(|c| c.name == CONTAINER)
        .or(containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// Streams one pod's log, line by line, to the end of its container.
async fn stream(
    (pods, container, namespace): (Api<Pod>, String, String),
    pod: String,
    events: Sender<Happened>,
) {
    use futures::TryStreamExt;
    match cluster::follow_log(&pods, &pod, Some(container)).await {
        Ok(mut lines) => {
            while let Ok(Some(line)) = lines.try_next().await {
                if events.send(Happened::Line(line)).await.is_err() {
                    return;
                }
            }
        }
        Err(e) if status_code(&e) == Some(403) => {
            let forbidden = ClusterError::from_kube("get", "pods/log", &namespace, e);
            let _ = events.send(Happened::Fatal(forbidden)).await;
            return;
        }
        Err(e) => tracing::warn!(pod, "cannot read the parent's log: {}", describe(&e)),
    }
    let _ = events.send(Happened::Seen(Seen::LogEnded)).await;
}

/// Deletes the parent with Background propagation: its pod gets SIGTERM (jobherd deletes the
/// active children first) and the garbage collector deletes its children through their
/// ownerReferences. Returns the exit code for why; a parent that could not be deleted is
/// still running, which is an error of its own (exit 4).
async fn abort(
    jobs: &Api<Job>,
    name: &str,
    why: Stop,
) -> Result<(i32, Option<String>), ClusterError> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let (code, cause) = match why {
        Stop::Timeout => (Exit::Timeout, "JOBHERD_TRIGGER_TIMEOUT passed".to_string()),
        Stop::Interrupt => (Exit::Interrupted, why.as_str().to_string()),
        _ => (Exit::Terminated, why.as_str().to_string()),
    };
    let code = code.code();
    match jobs.delete(name, &params).await {
        Ok(_) => {
            println!("jobherd trigger: {cause}: deleted job/{name}, and with it its children");
            Ok((code, None))
        }
        Err(e) if status_code(&e) == Some(404) => Ok((code, None)),
        Err(e) => {
            println!(
                "jobherd trigger: {cause}, but job/{name} could not be deleted and is still running (kubectl delete job {name})"
            );
            let namespace = jobs.namespace().unwrap_or_default().to_string();
            Err(ClusterError::from_kube("delete", "jobs", &namespace, e))
        }
    }
}

fn say_how_it_ended(name: &str, code: i32, why: Option<&str>) {
    match why {
        Some(why) => println!(
            "jobherd trigger: job/{name} ended without an exit code of jobherd's own: {why} (exit {NO_CODE})"
        ),
        None => println!("jobherd trigger: job/{name} ended: exit {code}"),
    }
}

/// Where the caller-side reports come from.
struct Reports<'a> {
    jobs: &'a Api<Job>,
    namespace: &'a str,
    parent: &'a Job,
}

impl Reports<'_> {
    /// `JOBHERD_REPORT_FILE` / `JOBHERD_JUNIT_FILE` / `JOBHERD_HTML_FILE` on the caller's
    /// side: the run as its parent's record and the children left in the cluster describe it.
    async fn write(
        &self,
        t: &TriggerConfig,
        code: i32,
        elapsed: Duration,
    ) -> Result<(), ClusterError> {
        if t.report_file.is_none() && t.junit_file.is_none() && t.html_file.is_none() {
            return Ok(());
        }
        let (name, uid) = (
            self.parent.name_any(),
            self.parent.uid().unwrap_or_default(),
        );
        let denied =
            |verb: &str, e: kube::Error| ClusterError::from_kube(verb, "jobs", self.namespace, e);
        let record = match self.jobs.get_opt(&name).await {
            Ok(job) => job.and_then(|j| Record::parse(j.annotations().get(RECORD)?).ok()),
            Err(e) => return Err(denied("get", e)),
        };
        let of_run = ListParams::default().labels(&format!("{RUN_LABEL}={uid}"));
        let children = self
            .jobs
            .list(&of_run)
            .await
            .map_err(|e| denied("list", e))?
            .items;
        let run = record::rebuild(record.as_ref(), &children, (&uid, &name), code);
        if let Some(path) = &t.report_file {
            write(
                path,
                &report::json(&run, &uid, Some(self.namespace), elapsed),
            );
        }
        if let Some(path) = &t.junit_file {
            write(path, &report::junit(&run, &name, elapsed));
        }
        if let Some(path) = &t.html_file {
            report::write_read_back(path, &run, &children, self.parent, elapsed);
        }
        Ok(())
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        tracing::warn!(path = %path.display(), "could not write report: {e}");
    }
}

#[cfg(test)]
mod tests;
