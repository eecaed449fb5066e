//! Carrying a run out against the API. Everything that happens (watch events, request
//! results, log lines, ticks, signals, the deadline) arrives as a `run::Event` on one channel;
//! `run::Run` decides, the reporter prints, and the effects are performed without waiting for
//! them: their results come back as events. The whole loop is `execute`.

mod effects;
pub(crate) mod sources;

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::child::{Identity, RUN_LABEL};
use crate::cluster::{ClusterError, describe, status_code};
use crate::config::{Cleanup, RateLimit};
use crate::disruption::OwnPod;
use crate::report::Reporter;
use crate::run::{At, Event, Run, Stop};
use effects::Effects;

/// Events waiting for the loop; producers wait when it is full, which bounds memory.
const EVENT_BUFFER: usize = 256;
/// Tries of the first request before jobherd reports the API unreachable (about 15 s).
const PREFLIGHT_TRIES: u32 = 5;

pub struct Settings {
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

/// Runs until the run is over; returns the run for reporting. Signals are heard from the
/// start: one that comes while the API is first tried ends that try.
pub async fn execute<W: Write>(
    api: ChildApi,
    mut run: Run,
    reporter: &mut Reporter<W>,
    settings: &Settings,
) -> Result<Run, ClusterError> {
    let (tx, mut events) = mpsc::channel(EVENT_BUFFER);
    let mut sources = sources::start_timers(tx.clone())?;
    let mut early = None;
    tokio::select! {
        tried = preflight(&api) => tried?,
        signal = first_signal(&mut events) => early = Some(signal),
    }
    sources::start_watches(&mut sources, &api, tx.clone());
    let mut effects = Effects::start(api, settings.rate, settings.own_pod.clone(), tx);
    if let Some(signal) = early {
        step(&mut run, signal, reporter, &mut effects);
    }
    while !run.is_over() {
        let Some(event) = events.recv().await else {
            break;
        };
        step(&mut run, event, reporter, &mut effects);
    }
    if let Some(fatal) = run.take_fatal() {
        return Err(fatal);
    }
    // A run that moves leaves everything, finished children too, to the next attempt; one that
    // stopped hard has no time to spare.
    let stopped_hard = run.stop_reason().is_some_and(Stop::is_hard);
    if run.moving().is_none() && !stopped_hard {
        effects.clean_up(run.to_clean_up(settings.cleanup)).await;
    }
    Ok(run)
}

/// One event through the run: it decides, the reporter tells, the effects are set going.
fn step<W: Write>(run: &mut Run, event: Event, reporter: &mut Reporter<W>, effects: &mut Effects) {
    let at = At::now();
    let reaction = run.apply(event, at);
    reporter.report(run, &reaction.transitions, at.instant);
    effects.perform(reaction.effects);
}

/// The first signal among the events (ticks before it are dropped: nothing waits on time yet).
async fn first_signal(events: &mut mpsc::Receiver<Event>) -> Event {
    loop {
        match events.recv().await {
            Some(event @ Event::Signal(_)) => return event,
            Some(_) => {}
            None => std::future::pending::<()>().await,
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
    children: &[Job],
) -> Result<Vec<Job>, ClusterError> {
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    for job in children {
        match jobs.create(&params, job).await {
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
