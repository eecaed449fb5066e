//! Carrying a run out against the API: creates children as the state machine allows
//! (rate-limited, one request at a time), follows them with two label-selector watches (Jobs
//! and Pods, whatever the number of children), fetches logs, and deletes children when the run
//! stops. Every decision is `run::Run`'s; this module only does I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::child::{Identity, RUN_LABEL};
use crate::cluster::{ClusterError, delete_child, describe, status_code};
use crate::config::{Cleanup, LogsMode};
use crate::report;
use crate::run::{Change, ChildResult, Phase, Run, Stop, Transition};

/// Create requests per second, and the burst allowed: kube has no client-side limit, and a
/// fan-out of thousands must not flood the API server.
const CREATE_QPS: f64 = 20.0;
const CREATE_BURST: f64 = 40.0;
/// How long the API may stay unusable during a run before jobherd gives up (exit 4).
const API_GIVE_UP: Duration = Duration::from_secs(300);
/// Tries of the first request before jobherd reports the API unreachable (about 15 s).
const PREFLIGHT_TRIES: u32 = 5;
/// Lines of a failed child's log printed with `JOBHERD_LOGS=failed`.
const TAIL_LINES: i64 = 20;
/// How long a failed child's logs are waited for when its pods are already gone.
const LOG_WAIT: Duration = Duration::from_secs(3);

pub struct Settings {
    pub timeout: Option<Duration>,
    pub stuck_timeout: Duration,
    pub logs: LogsMode,
    pub cleanup: Cleanup,
}

enum Created {
    Ok {
        job: Box<Job>,
        adopted: bool,
    },
    /// The run stopped before this child's turn came.
    NotStarted,
    Failed {
        reason: String,
        message: String,
    },
    Fatal(ClusterError),
}

/// Runs until every child is done or the run stops; returns the run for reporting.
pub async fn execute(
    client: Client,
    identity: &Identity,
    mut run: Run,
    settings: &Settings,
) -> Result<Run, ClusterError> {
    let namespace = identity
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("{RUN_LABEL}={}", identity.run_id);
    preflight(&jobs, &selector, &namespace).await?;
    let watch_config = watcher::Config::default().labels(&selector);
    let mut job_events = watcher(jobs.clone(), watch_config.clone())
        .default_backoff()
        .boxed();
    let mut pod_events = watcher(pods.clone(), watch_config)
        .default_backoff()
        .boxed();
    let mut pods_watched = true;

    let stopping = Arc::new(AtomicBool::new(false));
    let (create_tx, create_rx) = mpsc::unbounded_channel::<(usize, Job)>();
    let (result_tx, mut result_rx) = mpsc::unbounded_channel::<(usize, Created)>();
    let mut create_tx = Some(create_tx);
    tokio::spawn(creator(
        jobs.clone(),
        identity.run_id.clone(),
        create_rx,
        result_tx,
        stopping.clone(),
    ));
    let (logs_tx, mut logs_rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut log_stash: HashMap<usize, String> = HashMap::new();
    // Failed children whose logs may still arrive (the pod watch can lag the Job watch).
    let mut awaiting_logs: HashMap<usize, Instant> = HashMap::new();
    let mut logs_fetched: HashSet<(String, i32)> = HashSet::new();
    let mut followed: HashSet<String> = HashSet::new();
    let mut followers = Vec::new();

    let io = |e: std::io::Error| ClusterError::Connect(format!("installing signal handlers: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let deadline = settings.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(Duration::from_millis(250));

    // Nothing is created before the first list: it tells which children already exist.
    let mut listed = false;
    let mut relist: Option<HashSet<String>> = None;
    let mut api_down_since: Option<Instant> = None;
    let mut stopped = false;

    while !run.is_done() || !awaiting_logs.is_empty() {
        let mut changes: Vec<Transition> = Vec::new();
        tokio::select! {
            event = job_events.next() => match event {
                Some(Ok(event)) => {
                    api_down_since = None;
                    match event {
                        watcher::Event::Init => relist = Some(HashSet::new()),
                        watcher::Event::InitApply(job) => {
                            if let Some(seen) = relist.as_mut() {
                                seen.insert(job.name_any());
                            }
                            changes.extend(run.observe_job(&job));
                        }
                        watcher::Event::InitDone => {
                            // Children that vanished while the watch was down get no DELETE.
                            if let Some(seen) = relist.take() && listed {
                                let gone: Vec<String> = run.specs.iter().zip(&run.states)
                                    .filter(|(s, st)| matches!(st.phase, Phase::Created | Phase::Running) && !seen.contains(&s.name))
                                    .map(|(s, _)| s.name.clone())
                                    .collect();
                                for name in gone {
                                    changes.extend(run.observe_gone(&name));
                                }
                            }
                            listed = true;
                        }
                        watcher::Event::Apply(job) => changes.extend(run.observe_job(&job)),
                        watcher::Event::Delete(job) => {
                            let ours = run.index_of(&job.name_any())
                                .is_some_and(|i| run.states[i].uid.is_none() || run.states[i].uid == job.uid());
                            if ours && !stopped {
                                changes.extend(run.observe_gone(&job.name_any()));
                            }
                        }
                    }
                }
                Some(Err(e)) => watch_failed("jobs", &namespace, e, &mut api_down_since)?,
                None => return Err(ClusterError::Connect("the Job watch ended".into())),
            },
            event = pod_events.next(), if pods_watched => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    changes.extend(run.observe_pod(&pod, Instant::now()));
                    if let Some(index) = job_of(&run, &pod) {
                        if settings.logs != LogsMode::None {
                            stash_failure_logs(&pods, &pod, index, &mut logs_fetched, &logs_tx);
                        }
                        if settings.logs == LogsMode::All && is_running(&pod) && followed.insert(pod.uid().unwrap_or_default()) {
                            followers.push(tokio::spawn(follow_logs(pods.clone(), pod.name_any(), run.specs[index].name.clone())));
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if matches!(&e, watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) if status_code(k) == Some(403)) {
                        tracing::warn!("cannot watch pods ({e}); attempts, stuck-image detection and logs are limited");
                        pods_watched = false;
                    } else {
                        tracing::debug!("pod watch: {e}");
                    }
                }
                None => pods_watched = false,
            },
            Some((index, created)) = result_rx.recv() => {
                changes.extend(handle_created(&mut run, index, created)?);
            }
            Some((index, text)) = logs_rx.recv() => {
                if awaiting_logs.remove(&index).is_some() {
                    print_logs(&run.specs[index].name, &text);
                } else {
                    log_stash.insert(index, text);
                }
            }
            _ = sleep_until(deadline), if !stopped && !run.is_done() => {
                changes.extend(begin_stop(&mut run, Stop::Timeout));
            }
            _ = sigterm.recv() => changes.extend(begin_stop(&mut run, Stop::Terminate)),
            _ = sigint.recv() => changes.extend(begin_stop(&mut run, Stop::Interrupt)),
            _ = tick.tick() => {
                let now = Instant::now();
                awaiting_logs.retain(|index, deadline| {
                    let waiting = *deadline > now;
                    if !waiting {
                        println!("{} left no logs to show (its pods are gone or printed nothing)", run.specs[*index].name);
                    }
                    waiting
                });
                for index in run.stuck(Instant::now(), settings.stuck_timeout) {
                    changes.extend(run.fail_stuck(index, settings.stuck_timeout));
                    if let Err(e) = delete_child(&jobs, &run.specs[index].name).await {
                        tracing::warn!(child = %run.specs[index].name, "deleting stuck child: {}", describe(&e));
                    }
                }
            }
        }
        for t in &changes {
            println!("{}", report::progress_line(&run, t));
            if t.change == Change::Done(ChildResult::Failed) && settings.logs != LogsMode::None {
                let name = &run.specs[t.index].name;
                match current_logs(&pods, name)
                    .await
                    .or_else(|| log_stash.remove(&t.index))
                {
                    Some(text) => print_logs(name, &text),
                    None => {
                        awaiting_logs.insert(t.index, Instant::now() + LOG_WAIT);
                    }
                }
            }
        }
        if run.stop.is_some() && !stopped {
            stopped = true;
            stopping.store(true, Ordering::SeqCst);
            create_tx = None;
            let why = run.stop.unwrap_or(Stop::Terminate);
            println!(
                "jobherd stopping: {}; deleting active children",
                stop_reason(why)
            );
            let mut changes = begin_stop(&mut run, why);
            // Let the creator finish what it has in flight, so nothing is left behind.
            while let Some((index, created)) = result_rx.recv().await {
                changes.extend(handle_created(&mut run, index, created)?);
            }
            let active: Vec<usize> = (0..run.total())
                .filter(|i| run.states[*i].phase.is_active())
                .collect();
            for index in active {
                match delete_child(&jobs, &run.specs[index].name).await {
                    Ok(()) => changes.extend(run.cancelled(index)),
                    Err(e) => {
                        tracing::error!(child = %run.specs[index].name, "could not delete: {}", describe(&e));
                        changes.extend(run.cancelled(index));
                    }
                }
            }
            for t in &changes {
                println!("{}", report::progress_line(&run, t));
            }
        }
        if listed && let Some(tx) = &create_tx {
            for index in run.next_to_create() {
                // The creator only ends when we drop the sender, so sending cannot fail here.
                let _ = tx.send((index, run.specs[index].job.clone()));
            }
        }
    }
    drop(create_tx);
    if !followers.is_empty() {
        // Give followers a moment to print the last lines of children that just ended.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures::future::join_all(followers.iter_mut()),
        )
        .await;
        followers.iter().for_each(|f| f.abort());
    }
    cleanup(&jobs, &run, settings.cleanup).await;
    Ok(run)
}

/// One list before anything else, so that an unreachable API or a missing RBAC rule ends the
/// run at once (exit 4) instead of after the watch's patient retries.
async fn preflight(jobs: &Api<Job>, selector: &str, namespace: &str) -> Result<(), ClusterError> {
    let params = ListParams::default().labels(selector).limit(1);
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        match jobs.list(&params).await {
            Ok(_) => return Ok(()),
            Err(e) if status_code(&e) == Some(403) || attempt == PREFLIGHT_TRIES => {
                return Err(ClusterError::from_kube("list", "jobs", namespace, e));
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

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

fn begin_stop(run: &mut Run, why: Stop) -> Vec<Transition> {
    run.stop(why).1
}

fn stop_reason(why: Stop) -> &'static str {
    match why {
        Stop::Timeout => "JOBHERD_TIMEOUT passed",
        Stop::Interrupt => "interrupted (SIGINT)",
        Stop::Terminate => "terminated (SIGTERM)",
        Stop::FailFast => "a child failed and JOBHERD_FAIL_FAST is set",
    }
}

fn handle_created(
    run: &mut Run,
    index: usize,
    created: Created,
) -> Result<Vec<Transition>, ClusterError> {
    Ok(match created {
        Created::Ok { job, adopted } => run.created(index, &job, adopted),
        Created::NotStarted => run.not_started(index),
        Created::Failed { reason, message } => run.create_failed(index, &reason, &message),
        Created::Fatal(e) => return Err(e),
    })
}

/// A watch error: kube's watcher retries with backoff by itself; jobherd gives up only when
/// RBAC forbids the watch or the API has been unusable for `API_GIVE_UP`.
fn watch_failed(
    resource: &str,
    namespace: &str,
    e: watcher::Error,
    down_since: &mut Option<Instant>,
) -> Result<(), ClusterError> {
    if let watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) = &e
        && status_code(k) == Some(403)
    {
        let verb = if matches!(e, watcher::Error::InitialListFailed(_)) {
            "list"
        } else {
            "watch"
        };
        if let watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) = e {
            return Err(ClusterError::from_kube(verb, resource, namespace, k));
        }
    }
    let since = *down_since.get_or_insert_with(Instant::now);
    tracing::warn!("watching {resource}: {e}; retrying");
    if since.elapsed() > API_GIVE_UP {
        return Err(ClusterError::Api {
            action: format!("watch {resource} in namespace {namespace}"),
            message: format!(
                "the API has been unusable for {}s: {e}",
                API_GIVE_UP.as_secs()
            ),
        });
    }
    Ok(())
}

/// Creates children one at a time at most `CREATE_QPS` per second.
async fn creator(
    jobs: Api<Job>,
    run_id: String,
    mut queue: mpsc::UnboundedReceiver<(usize, Job)>,
    results: mpsc::UnboundedSender<(usize, Created)>,
    stopping: Arc<AtomicBool>,
) {
    let mut limit = RateLimit::new(CREATE_QPS, CREATE_BURST, Instant::now());
    while let Some((index, job)) = queue.recv().await {
        if stopping.load(Ordering::SeqCst) {
            let _ = results.send((index, Created::NotStarted));
            continue;
        }
        let wait = limit.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let created = create(&jobs, &run_id, &job).await;
        if results.send((index, created)).is_err() {
            return;
        }
    }
}

/// A token bucket: `burst` requests at once, then `per_second`. Pure, so it is unit-tested.
struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        RateLimit {
            per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token for a request made at `now`; returns how long to wait before sending it.
    fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

async fn create(jobs: &Api<Job>, run_id: &str, job: &Job) -> Created {
    let name = job.name_any();
    let namespace = job.namespace().unwrap_or_default();
    let mut failures = 0;
    loop {
        match jobs.create(&PostParams::default(), job).await {
            Ok(job) => {
                return Created::Ok {
                    job: Box::new(job),
                    adopted: false,
                };
            }
            Err(e) => match status_code(&e) {
                // A restarted parent whose predecessor created it a moment before it died.
                Some(409) => match jobs.get(&name).await {
                    Ok(existing)
                        if existing.labels().get(RUN_LABEL).map(String::as_str) == Some(run_id) =>
                    {
                        return Created::Ok {
                            job: Box::new(existing),
                            adopted: true,
                        };
                    }
                    Ok(_) => {
                        return Created::Failed {
                            reason: "NameTaken".into(),
                            message: format!(
                                "a Job named {name} already exists and belongs to another run; set JOBHERD_NAME_PREFIX"
                            ),
                        };
                    }
                    Err(e) => {
                        return Created::Fatal(ClusterError::from_kube(
                            "get", "jobs", &namespace, e,
                        ));
                    }
                },
                Some(403) => {
                    return Created::Fatal(ClusterError::from_kube(
                        "create", "jobs", &namespace, e,
                    ));
                }
                Some(400 | 422) => {
                    return Created::Failed {
                        reason: "Invalid".into(),
                        message: describe(&e),
                    };
                }
                // kube already retried 429/503/504; connection errors and 5xx get a few more tries.
                _ if failures < 5 => {
                    failures += 1;
                    tracing::warn!(child = %name, "create failed ({}); retrying", describe(&e));
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(failures))).await;
                }
                _ => {
                    return Created::Fatal(ClusterError::from_kube(
                        "create", "jobs", &namespace, e,
                    ));
                }
            },
        }
    }
}

fn job_of(run: &Run, pod: &Pod) -> Option<usize> {
    let labels = pod.labels();
    labels
        .get("batch.kubernetes.io/job-name")
        .or_else(|| labels.get("job-name"))
        .and_then(|n| run.index_of(n))
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Fetches the log tail of a container that just failed, while its pod still exists: with
/// `OnFailure` the Job controller deletes the pod when it gives up.
fn stash_failure_logs(
    pods: &Api<Pod>,
    pod: &Pod,
    index: usize,
    fetched: &mut HashSet<(String, i32)>,
    out: &mpsc::UnboundedSender<(usize, String)>,
) {
    let Some(statuses) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
    else {
        return;
    };
    for c in statuses {
        let current = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        let previous = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let (failed, use_previous) = match (current, previous) {
            (Some(t), _) if t.exit_code != 0 => (true, false),
            (None, Some(t)) if t.exit_code != 0 => (true, true),
            _ => (false, false),
        };
        if !failed || !fetched.insert((pod.uid().unwrap_or_default(), c.restart_count)) {
            continue;
        }
        let (pods, name, container, out) =
            (pods.clone(), pod.name_any(), c.name.clone(), out.clone());
        tokio::spawn(async move {
            let params = LogParams {
                container: Some(container),
                tail_lines: Some(TAIL_LINES),
                previous: use_previous,
                ..Default::default()
            };
            match pods.logs(&name, &params).await {
                Ok(text) if !text.trim().is_empty() => {
                    let _ = out.send((index, text));
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(pod = name, "fetching logs: {}", describe(&e)),
            }
        });
    }
}

/// The log tail of a child's newest pod, if it still has one.
async fn current_logs(pods: &Api<Pod>, child: &str) -> Option<String> {
    let params = ListParams::default().labels(&format!("job-name={child}"));
    let list = tokio::time::timeout(Duration::from_secs(5), pods.list(&params))
        .await
        .ok()?
        .ok()?;
    let newest = list
        .items
        .into_iter()
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0))?;
    let lp = LogParams {
        tail_lines: Some(TAIL_LINES),
        ..Default::default()
    };
    let text = tokio::time::timeout(Duration::from_secs(5), pods.logs(&newest.name_any(), &lp))
        .await
        .ok()?
        .ok()?;
    (!text.trim().is_empty()).then_some(text)
}

fn print_logs(child: &str, text: &str) {
    println!("{child} last log lines:");
    for line in text.lines() {
        println!("{child} | {line}");
    }
}

/// `JOBHERD_LOGS=all`: prints a pod's log lines as they come, prefixed with the child's name.
async fn follow_logs(pods: Api<Pod>, pod: String, child: String) {
    let params = LogParams {
        follow: true,
        ..Default::default()
    };
    match pods.log_stream(&pod, &params).await {
        Ok(stream) => {
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                println!("{child} | {line}");
            }
        }
        Err(e) => tracing::debug!(pod, "following logs: {}", describe(&e)),
    }
}

/// `JOBHERD_CLEANUP`: deletes finished children (Background, so their pods go too).
async fn cleanup(jobs: &Api<Job>, run: &Run, policy: Cleanup) {
    for (spec, state) in run.specs.iter().zip(&run.states) {
        let delete = matches!(
            (policy, state.phase.result()),
            (
                Cleanup::Always,
                Some(ChildResult::Succeeded | ChildResult::Failed)
            ) | (Cleanup::Succeeded, Some(ChildResult::Succeeded))
        );
        if delete && let Err(e) = delete_child(jobs, &spec.name).await {
            tracing::warn!(child = %spec.name, "cleanup: {}", describe(&e));
        }
    }
}

/// `JOBHERD_DRY_RUN=server`: every child is submitted with `dryRun=All`; the API validates
/// and defaults them, and nothing is stored. Returns the Jobs as the server would have them.
pub async fn server_dry_run(
    client: Client,
    namespace: &str,
    run: &Run,
) -> Result<Vec<Job>, ClusterError> {
    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    for spec in &run.specs {
        match jobs.create(&params, &spec.job).await {
            Ok(job) => out.push(job),
            Err(e) if status_code(&e) == Some(403) => {
                return Err(ClusterError::from_kube("create", "jobs", namespace, e));
            }
            Err(e) => {
                return Err(ClusterError::Api {
                    action: format!("dry-run create of {}", spec.name),
                    message: describe(&e),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_burst_then_follow_the_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(20.0, 40.0, t0);
        for _ in 0..40 {
            assert_eq!(limit.take(t0), Duration::ZERO);
        }
        // The 41st and 42nd requests at the same instant wait 1/20 s and 2/20 s.
        assert_eq!(limit.take(t0), Duration::from_millis(50));
        assert_eq!(limit.take(t0), Duration::from_millis(100));
        // A second later 20 tokens came back; 2 were owed.
        let t1 = t0 + Duration::from_secs(1);
        let waits: Vec<Duration> = (0..19).map(|_| limit.take(t1)).collect();
        assert!(waits[..18].iter().all(Duration::is_zero), "{waits:?}");
        assert_eq!(waits[18], Duration::from_millis(50));
    }

    #[test]
    fn an_idle_limiter_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(20.0, 40.0, t0);
        let later = t0 + Duration::from_secs(3600);
        let free = (0..100).take_while(|_| limit.take(later).is_zero()).count();
        assert_eq!(free, 40);
    }
}
