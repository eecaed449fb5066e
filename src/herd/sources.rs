//! What happens on its own: the two watches (Jobs and Pods of the run, by label), signals and a
//! ticker, each a task feeding the run's event channel (the run keeps its own deadline, which
//! the ticks let it see). Dropping the returned set stops them all. The trigger uses the same
//! timers with its own events, and a deadline of its own.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::signal::unix::{Signal as UnixSignal, SignalKind, signal};
use tokio::sync::mpsc::Sender;
use tokio::task::JoinSet;

use super::ChildApi;
use crate::cluster::{ClusterError, status_code};
use crate::run::{Event, Signal};

/// How long the API may stay unusable during a run before jobherd gives up (exit 4).
const API_GIVE_UP: Duration = Duration::from_secs(300);
/// How often time is looked at: stuck children, awaited logs, heartbeats.
const TICK: Duration = Duration::from_millis(250);

/// Signals and ticks for a run, started before anything else so that no signal is missed.
pub fn start_timers(events: Sender<Event>) -> Result<JoinSet<()>, ClusterError> {
    let mut tasks = JoinSet::new();
    let made = Made {
        signalled: Event::Signal,
        tick: || Event::Tick,
        deadline: || Event::Tick,
    };
    timers(&mut tasks, None, events, made)?;
    Ok(tasks)
}

/// The run's two watches.
pub fn start_watches(tasks: &mut JoinSet<()>, api: &ChildApi, events: Sender<Event>) {
    let config = watcher::Config::default().labels(&api.selector());
    tasks.spawn(watch_or_give_up(
        api.jobs.clone(),
        config.clone(),
        api.namespace.clone(),
        events.clone(),
        Event::Jobs,
        Event::Fatal,
    ));
    tasks.spawn(watch_pods(api.pods.clone(), config, events));
}

/// How the timers' events are made, for each kind of event channel.
pub struct Made<E> {
    pub signalled: fn(Signal) -> E,
    pub tick: fn() -> E,
    pub deadline: fn() -> E,
}

/// Signals, a ticker and, with a timeout, the deadline.
pub fn timers<E: Send + 'static>(
    tasks: &mut JoinSet<()>,
    timeout: Option<Duration>,
    events: Sender<E>,
    made: Made<E>,
) -> Result<(), ClusterError> {
    let Made {
        signalled,
        tick,
        deadline,
    } = made;
    let io = |e: std::io::Error| ClusterError::Connect(format!("installing signal handlers: {e}"));
    let terminate = signal(SignalKind::terminate()).map_err(io)?;
    let interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    tasks.spawn(signals(terminate, interrupt, events.clone(), signalled));
    tasks.spawn(ticks(events.clone(), tick));
    if let Some(timeout) = timeout {
        tasks.spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = events.send(deadline()).await;
        });
    }
    Ok(())
}

/// A watch that must work: forbidden, or the API gone for `API_GIVE_UP`, ends the run.
pub async fn watch_or_give_up<K, E>(
    api: Api<K>,
    config: watcher::Config,
    namespace: String,
    events: Sender<E>,
    seen: fn(Box<watcher::Event<K>>) -> E,
    fatal: fn(ClusterError) -> E,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let resource = K::plural(&()).to_string();
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut down_since = None;
    loop {
        let (event, last) = match stream.next().await {
            Some(Ok(event)) => {
                down_since = None;
                (seen(Box::new(event)), false)
            }
            Some(Err(e)) => match trouble(&resource, &namespace, e, &mut down_since) {
                Some(problem) => (fatal(problem), true),
                None => continue,
            },
            None => {
                let ended = format!("the {resource} watch ended");
                (fatal(ClusterError::Connect(ended)), true)
            }
        };
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

/// Pods only add detail (attempts, stuck images, logs): without the right to watch them the
/// run goes on.
async fn watch_pods(pods: Api<Pod>, config: watcher::Config, events: Sender<Event>) {
    let mut stream = watcher(pods, config).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if events.send(Event::Pods(Box::new(event))).await.is_err() {
                    return;
                }
            }
            Err(e) if forbidden(&e).is_some() => {
                tracing::warn!(
                    "cannot watch pods ({e}); attempts, stuck-image detection and logs are limited"
                );
                return;
            }
            Err(e) => tracing::debug!("pod watch: {e}"),
        }
    }
}

/// The verb RBAC refused, if a watch error is a 403.
fn forbidden(e: &watcher::Error) -> Option<&'static str> {
    match e {
        watcher::Error::InitialListFailed(k) if status_code(k) == Some(403) => Some("list"),
        watcher::Error::WatchStartFailed(k) if status_code(k) == Some(403) => Some("watch"),
        _ => None,
    }
}

/// A watch error: kube's watcher retries with backoff by itself; jobherd gives up only when
/// RBAC forbids the watch or the API has been unusable for `API_GIVE_UP`.
fn trouble(
    resource: &str,
    namespace: &str,
    e: watcher::Error,
    down_since: &mut Option<Instant>,
) -> Option<ClusterError> {
    if let Some(verb) = forbidden(&e)
        && let watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) = e
    {
        return Some(ClusterError::from_kube(verb, resource, namespace, k));
    }
    let since = *down_since.get_or_insert_with(Instant::now);
    tracing::warn!("watching {resource}: {e}; retrying");
    (since.elapsed() > API_GIVE_UP).then(|| ClusterError::Api {
        action: format!("watch {resource} in namespace {namespace}"),
        message: format!(
            "the API has been unusable for {}s: {e}",
            API_GIVE_UP.as_secs()
        ),
    })
}

async fn signals<E>(
    mut terminate: UnixSignal,
    mut interrupt: UnixSignal,
    events: Sender<E>,
    signalled: fn(Signal) -> E,
) {
    loop {
        let why = tokio::select! {
            _ = terminate.recv() => Signal::Terminate,
            _ = interrupt.recv() => Signal::Interrupt,
        };
        if events.send(signalled(why)).await.is_err() {
            return;
        }
    }
}

async fn ticks<E>(events: Sender<E>, tick: fn() -> E) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if events.send(tick()).await.is_err() {
            return;
        }
    }
}
