//! Carrying a run out against the API. Everything that happens (watch events, request
//! results, log lines, ticks, signals, the deadline) arrives as a `run::Event` on one channel;
//! `run::Run` decides, the reporter prints, and the effects are performed without waiting for
//! them: their results come back as events. The whole loop is `execute`.

mod effects;
pub(crate) mod sources;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::child::{Children, Identity, RUN_LABEL};
use crate::cluster::{ClusterError, describe, status_code};
use crate::config::{Cleanup, RateLimit};
use crate::disruption::{OwnPod, Verdict};
use crate::report::Reporter;
use crate::run::{Event, Run, Stop};
use effects::Effects;

/// Events waiting for the loop; producers wait when it is full, which bounds memory.
const EVENT_BUFFER: usize = 1024;
/// Tries of the first request before jobherd reports the API unreachable (about 15 s).
const PREFLIGHT_TRIES: u32 = 5;

pub struct Settings {
    pub timeout: Option<Duration>,
    pub rate: RateLimit,
    pub cleanup: Cleanup,
    /// In a pod: what a SIGTERM is read against (SPEC §9).
    pub own_pod: Option<OwnPod>,
}

/// The API of one run's children: their namespace, and the label that selects them.
#[derive(Clone)]
pub struct ChildApi {
    pub jobs: Api<Job>,
    pub pods: Api<Pod>,
    pub namespace: String,
    pub run_id: String,
}

impl ChildApi {
    pub fn new(client: Client, identity: &Identity) -> Self {
        let namespace = identity
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        ChildApi {
            jobs: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client, &namespace),
            namespace,
            run_id: identity.run_id.clone(),
        }
    }

    /// `jobherd.io/run=<run id>`: every child of this run, and nothing else.
    pub fn selector(&self) -> String {
        format!("{RUN_LABEL}={}", self.run_id)
    }
}

/// Runs until every child is done or the run stops; returns the run for reporting.
pub async fn execute<W: Write>(
    api: ChildApi,
    mut run: Run,
    reporter: &mut Reporter<W>,
    settings: &Settings,
) -> Result<Run, ClusterError> {
    preflight(&api).await?;
    let (tx, mut events) = mpsc::channel(EVENT_BUFFER);
    let _sources = sources::start(&api, settings.timeout, tx.clone())?;
    let mut effects = Effects::start(api, run.shared_children(), settings.rate, tx);
    while !run.is_over() {
        let Some(event) = events.recv().await else {
            break;
        };
        let event = match (event, &settings.own_pod) {
            (Event::Signal(Stop::Terminate), Some(own)) if run.stop_reason().is_none() => {
                why_terminated(own, reporter).await
            }
            (event, _) => event,
        };
        let now = Instant::now();
        let reaction = run.apply(event, now);
        reporter.report(&run, &reaction.transitions, now);
        effects.perform(reaction.effects);
    }
    if let Some(fatal) = run.take_fatal() {
        return Err(fatal);
    }
    // A run that moves leaves everything, finished children too, to the next attempt.
    if run.moving().is_none() {
        effects.clean_up(run.to_clean_up(settings.cleanup)).await;
    }
    Ok(run)
}

/// A SIGTERM in a pod: the run moves when only the pod goes, else it stops.
async fn why_terminated<W: Write>(own: &OwnPod, reporter: &mut Reporter<W>) -> Event {
    match own.why_terminated().await {
        Verdict::Moving { reason } => Event::Moving { reason },
        Verdict::Ending { why } => {
            if let Some(why) = why {
                reporter.note(&format!("jobherd: {why}"));
            }
            Event::Signal(Stop::Terminate)
        }
    }
}

/// One list before anything else, so that an unreachable API or a missing RBAC rule ends the
/// run at once (exit 4) instead of after the watch's patient retries.
async fn preflight(api: &ChildApi) -> Result<(), ClusterError> {
    let params = ListParams::default().labels(&api.selector()).limit(1);
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        match api.jobs.list(&params).await {
            Ok(_) => return Ok(()),
            Err(e) if status_code(&e) == Some(403) || attempt == PREFLIGHT_TRIES => {
                return Err(ClusterError::from_kube("list", "jobs", &api.namespace, e));
            }
            Err(e) => {
                tracing::warn!(
                    "the API is not answering ({}); retrying in {}s",
                    describe(&e),
                    delay.as_secs_f32()
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Ok(())
}

/// `JOBHERD_DRY_RUN=server`: every child is submitted with `dryRun=All`; the API validates
/// and defaults them, and nothing is stored. Returns the Jobs as the server would have them.
pub async fn server_dry_run(
    client: Client,
    namespace: &str,
    children: &Arc<Children>,
) -> Result<Vec<Job>, ClusterError> {
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    for job in children.dry_run_jobs() {
        match jobs.create(&params, &job).await {
            Ok(job) => out.push(job),
            Err(e) if status_code(&e) == Some(403) => {
                return Err(ClusterError::from_kube("create", "jobs", namespace, e));
            }
            Err(e) => {
                return Err(ClusterError::Api {
                    action: format!("dry-run create of {}", job.name_any()),
                    message: describe(&e),
                });
            }
        }
    }
    Ok(out)
}
