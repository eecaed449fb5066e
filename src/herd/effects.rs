//! Performing what the run decided: creates and deletes under `JOBHERD_QPS`/`JOBHERD_BURST`
//! with several requests in flight, log fetches, outputs looked up in pods, and the disruption
//! check. Nothing here waits for a result: each result comes back to the loop as an event.
//! Everything an effect needs comes with it (a create carries its Job's recipe, a delete the
//! names and labels): this side keeps no copy of the run's children.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, Sender, UnboundedSender};
use tokio::task::JoinSet;

use super::ChildApi;
use crate::child::{ChildJob, MAX_JOB, PackJob, RUN_LABEL, STEP_LABEL};
use crate::cluster::{ClusterError, delete_child, describe, follow_log, status_code};
use crate::config::RateLimit;
use crate::disruption::{OwnPod, Verdict};
use crate::outputs::Output;
use crate::run::{Created, Effect, Event, LogSource, OutputRead, Target, pod_output};

/// Lines of a failed child's log shown with `JOBHERD_LOGS=failed`.
const TAIL_LINES: i64 = 20;
/// Most creates in flight at once (fewer when the burst is smaller).
const MAX_IN_FLIGHT: u32 = 64;
/// A label selector of one deletecollection stays below this many bytes: proxies in front of
/// API servers often cap request lines at 8 KiB.
const MAX_SELECTOR: usize = 4000;
/// Children per deletecollection, whose answer lists each deleted Job.
const MAX_BATCH: usize = 250;

/// A create waiting for its turn: its number in the order the run handed creates out.
struct Queued {
    number: u64,
    index: usize,
    job: Build,
}

/// What a create builds: one child's Job, or a pack (with its ConfigMap).
enum Build {
    Child(Box<ChildJob>),
    Pack(Box<PackJob>),
}

pub struct Effects {
    api: ChildApi,
    events: Sender<Event>,
    bucket: Arc<Bucket>,
    creates: UnboundedSender<Queued>,
    handed_out: u64,
    /// Creates numbered below this are not sent (`Effect::StopCreating`).
    cutoff: Arc<AtomicU64>,
    /// The Role may predate `deletecollection`: then children are deleted one by one.
    one_by_one: Arc<AtomicBool>,
    own_pod: Option<OwnPod>,
    followers: JoinSet<()>,
}

impl Effects {
    pub fn start(
        api: ChildApi,
        rate: RateLimit,
        own_pod: Option<OwnPod>,
        events: Sender<Event>,
    ) -> Self {
        let bucket = Arc::new(Bucket::new(rate, Instant::now()));
        let (creates, queue) = mpsc::unbounded_channel();
        let cutoff = Arc::new(AtomicU64::new(0));
        tokio::spawn(creator(Creator {
            api: api.clone(),
            bucket: bucket.clone(),
            cutoff: cutoff.clone(),
            events: events.clone(),
            slots: Arc::new(Semaphore::new(rate.burst.clamp(1, MAX_IN_FLIGHT) as usize)),
            queue,
        }));
        Effects {
            api,
            events,
            bucket,
            creates,
            handed_out: 0,
            cutoff,
            one_by_one: Arc::new(AtomicBool::new(false)),
            own_pod,
            followers: JoinSet::new(),
        }
    }

    pub fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                // The creator lives as long as `self`, so the queue is open.
                Effect::Create { index, job } => {
                    let number = self.handed_out;
                    let job = Build::Child(job);
                    let _ = self.creates.send(Queued { number, index, job });
                    self.handed_out += 1;
                }
                Effect::CreatePack { index, job } => {
                    let number = self.handed_out;
                    let job = Build::Pack(job);
                    let _ = self.creates.send(Queued { number, index, job });
                    self.handed_out += 1;
                }
                Effect::StopCreating => self.cutoff.store(self.handed_out, Ordering::SeqCst),
                Effect::Delete(targets) => self.delete(targets),
                Effect::CheckDisruption => self.check_disruption(),
                effect => self.read(effect),
            }
        }
    }

    /// The effects that read: outputs, logs. Each answers with an event.
    fn read(&mut self, effect: Effect) {
        let (api, events) = (self.api.clone(), self.events.clone());
        match effect {
            Effect::ReadOutput { index, pods } => {
                tokio::spawn(async move {
                    let read = read_output(&api, &pods).await;
                    let _ = events.send(Event::Output { index, read }).await;
                });
            }
            Effect::FetchLogs {
                index,
                pod,
                container,
                previous,
            } => {
                tokio::spawn(async move {
                    let text = tail(&api, &pod, Some(container), previous).await;
                    let from = LogSource::Attempt;
                    let _ = events.send(Event::Logs { index, from, text }).await;
                });
            }
            Effect::FetchNewestLogs { index, pods } => {
                tokio::spawn(async move {
                    let text = newest_tail(&api, &pods).await;
                    let from = LogSource::Newest;
                    let _ = events.send(Event::Logs { index, from, text }).await;
                });
            }
            Effect::FollowLogs { index, pod } => {
                self.followers.spawn(follow(api, pod, index, events));
            }
            Effect::FollowNewestLogs { index, pods } => {
                self.followers.spawn(async move {
                    match newest_pod(&api, &pods).await {
                        Some(pod) => follow(api, pod.name_any(), index, events).await,
                        None => {
                            let _ = events.send(Event::LogEnded).await;
                        }
                    }
                });
            }
            Effect::FailPod { pod, reason } => {
                tokio::spawn(async move { fail_pod(&api, &pod, &reason).await });
            }
            Effect::Create { .. }
            | Effect::CreatePack { .. }
            | Effect::StopCreating
            | Effect::Delete(_)
            | Effect::CheckDisruption => {}
        }
    }

    /// Reads jobherd's own pod and parent for what a SIGTERM means (outside a pod, or without
    /// a parent Job, it means the end).
    fn check_disruption(&self) {
        let (own, events) = (self.own_pod.clone(), self.events.clone());
        tokio::spawn(async move {
            let verdict = match own {
                Some(own) => own.why_terminated().await,
                None => Verdict::Ending { why: None },
            };
            let _ = events.send(Event::Disruption(verdict)).await;
        });
    }

    /// Deletes children in as few requests as the selector limit allows, each taking its turn
    /// under the rate limit, one batch after another: a deletecollection answers with every
    /// Job it deleted, and one such answer at a time keeps memory flat. Each batch is
    /// reported as `Event::Deleted` when it went through.
    fn delete(&self, targets: Vec<Target>) {
        let deleter = self.deleter();
        let events = self.events.clone();
        tokio::spawn(async move {
            for batch in batches(targets) {
                deleter.delete(&batch).await;
                let indices = batch.iter().map(|t| t.index).collect();
                if events.send(Event::Deleted { indices }).await.is_err() {
                    return;
                }
            }
        });
    }

    fn deleter(&self) -> Deleter {
        Deleter {
            api: self.api.clone(),
            bucket: self.bucket.clone(),
            one_by_one: self.one_by_one.clone(),
        }
    }

    /// `JOBHERD_CLEANUP`: deletes finished children at the end, and waits for it (a minute at
    /// most: an API that hangs must not keep the run from its record).
    pub async fn clean_up(&self, targets: Vec<Target>) {
        let deleter = self.deleter();
        let all = async {
            for batch in batches(targets) {
                deleter.delete(&batch).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .is_err()
        {
            tracing::warn!(
                "JOBHERD_CLEANUP: the API did not answer within 60s; some finished children are left"
            );
        }
    }
}

/// A token bucket: `burst` requests at once, then `qps` per second. Pure, so it is unit-tested.
struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: RateLimit, now: Instant) -> Self {
        TokenBucket {
            per_second: rate.qps,
            burst: f64::from(rate.burst),
            tokens: f64::from(rate.burst),
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

/// The token bucket shared by every create and delete of a run.
struct Bucket(Mutex<TokenBucket>);

impl Bucket {
    fn new(rate: RateLimit, now: Instant) -> Self {
        Bucket(Mutex::new(TokenBucket::new(rate, now)))
    }

    /// Waits for this request's turn.
    async fn turn(&self) {
        let wait = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

struct Creator {
    api: ChildApi,
    bucket: Arc<Bucket>,
    cutoff: Arc<AtomicU64>,
    events: Sender<Event>,
    /// Creates in flight.
    slots: Arc<Semaphore>,
    queue: mpsc::UnboundedReceiver<Queued>,
}

/// Sends creates in the order the run handed them out, each after its turn under the rate
/// limit, several in flight. Once the run stops, what was queued before is reported not
/// started (after fail-fast, the steps that run on failure still hand out creates).
async fn creator(mut c: Creator) {
    while let Some(Queued { number, index, job }) = c.queue.recv().await {
        let stopped = || number < c.cutoff.load(Ordering::SeqCst);
        if !stopped() {
            c.bucket.turn().await;
        }
        // The semaphore is never closed.
        let Ok(slot) = c.slots.clone().acquire_owned().await else {
            return;
        };
        if stopped() {
            let outcome = Created::NotStarted;
            let _ = c.events.send(Event::Created { index, outcome }).await;
            continue;
        }
        let (api, events) = (c.api.clone(), c.events.clone());
        tokio::spawn(async move {
            let created = match job {
                Build::Child(job) => create(&api, &job.build()).await,
                Build::Pack(pack) => create_pack(&api, &pack).await,
            };
            let event = match created {
                Ok(outcome) => Event::Created { index, outcome },
                Err(fatal) => Event::Fatal(fatal),
            };
            drop(slot);
            let _ = events.send(event).await;
        });
    }
}

async fn create(api: &ChildApi, job: &Job) -> Result<Created, ClusterError> {
    let name = job.name_any();
    let mut failures = 0;
    loop {
        let e = match api.jobs.create(&PostParams::default(), job).await {
            Ok(job) => return Ok(Created::Created(Box::new(job))),
            Err(e) => e,
        };
        match status_code(&e) {
            // A restarted parent whose predecessor created it a moment before it died.
            Some(409) => return adopt(api, &name).await,
            Some(403) => return Err(ClusterError::from_kube("create", "jobs", &api.namespace, e)),
            Some(400 | 422) => {
                return Ok(Created::Failed {
                    reason: "Invalid".into(),
                    message: describe(&e),
                });
            }
            // The API refuses this Job for its size: this child fails, not the run. (The
            // apiserver answers 413 past its 3 MiB body limit; past etcd's 1.5 MiB, a 500 whose
            // message says so, which would otherwise look like a passing trouble.)
            Some(413) => return Ok(too_large(&e)),
            Some(500) if is_too_large(&e) => return Ok(too_large(&e)),
            // kube waited out 429s (honouring Retry-After) many times already; the server
            // is busy, not failing, so this does not count towards giving up.
            Some(429) => {
                tracing::warn!(child = %name, "the API server is throttling creates; waiting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Connection errors and 5xx get a few more tries.
            _ if failures < 5 => {
                failures += 1;
                tracing::warn!(child = %name, "create failed ({}); retrying", describe(&e));
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(failures))).await;
            }
            _ => return Err(ClusterError::from_kube("create", "jobs", &api.namespace, e)),
        }
    }
}

/// etcd refused the object for its size (`etcdserver: request is too large`, or its client's
/// `trying to send message larger than max`).
fn is_too_large(e: &kube::Error) -> bool {
    let text = describe(e);
    text.contains("request is too large") || text.contains("larger than max")
}

fn too_large(e: &kube::Error) -> Created {
    Created::Failed {
        reason: "TooLarge".into(),
        message: format!(
            "the API refused its Job as too large ({}); a Job may weigh {} KiB as jobherd sends it: pass large results by reference (an object storage key), not inline",
            describe(e),
            MAX_JOB / 1024
        ),
    }
}

/// A pack: its ConfigMap first (its pods wait for it), then its Job. A ConfigMap that exists
/// already is an earlier attempt's, with the same values.
async fn create_pack(api: &ChildApi, pack: &PackJob) -> Result<Created, ClusterError> {
    let (job, config_map) = pack.build();
    if let Some(config_map) = config_map {
        let maps: Api<ConfigMap> = Api::namespaced(api.jobs.clone().into_client(), &api.namespace);
        match maps.create(&PostParams::default(), &config_map).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) if status_code(&e) == Some(403) => {
                return Err(ClusterError::from_kube(
                    "create",
                    "configmaps",
                    &api.namespace,
                    e,
                ));
            }
            Err(e) => {
                return Ok(Created::Failed {
                    reason: "Invalid".into(),
                    message: format!("its pack's ConfigMap: {}", describe(&e)),
                });
            }
        }
    }
    create(api, &job).await
}

/// A stuck packed child's pod: jobherd's condition on it, so that its pack's
/// `podFailurePolicy` fails its index, then deleted. Without the right to patch pods' status,
/// the pod is deleted all the same (its index is then retried by its Job).
async fn fail_pod(api: &ChildApi, pod: &str, reason: &str) {
    let condition = serde_json::json!({"status": {"conditions": [{
        "type": crate::pack::STUCK_CONDITION, "status": "True", "reason": reason,
        "message": "stuck past JOBHERD_STUCK_TIMEOUT",
        "lastTransitionTime": jiff::Timestamp::now().to_string(),
    }]}});
    let patched = api
        .pods
        .patch_status(pod, &PatchParams::default(), &Patch::Strategic(&condition))
        .await;
    if let Err(e) = patched {
        tracing::warn!(
            pod,
            "could not mark the stuck pod for its pack: {}",
            describe(&e)
        );
    }
    let params = DeleteParams::background();
    if let Err(e) = api.pods.delete(pod, &params).await
        && status_code(&e) != Some(404)
    {
        tracing::warn!(pod, "could not delete the stuck pod: {}", describe(&e));
    }
}

/// AlreadyExists: the Job is this run's (adopt it) or another's (this child fails).
async fn adopt(api: &ChildApi, name: &str) -> Result<Created, ClusterError> {
    match api.jobs.get(name).await {
        Ok(existing) if existing.labels().get(RUN_LABEL) == Some(&api.run_id) => {
            Ok(Created::Adopted(Box::new(existing)))
        }
        Ok(_) => Ok(Created::Failed {
            reason: "NameTaken".into(),
            message: format!(
                "a Job named {name} already exists and belongs to another run; set JOBHERD_NAME_PREFIX"
            ),
        }),
        Err(e) => Err(ClusterError::from_kube("get", "jobs", &api.namespace, e)),
    }
}

/// Children grouped so that one batch's step labels fit in one label selector.
fn batches(targets: Vec<Target>) -> Vec<Vec<Target>> {
    let mut out: Vec<Vec<Target>> = Vec::new();
    let mut size = 0;
    for target in targets {
        let len = target.label.len() + 1;
        match out.last_mut() {
            Some(batch) if size + len <= MAX_SELECTOR && batch.len() < MAX_BATCH => {
                batch.push(target)
            }
            _ => {
                out.push(vec![target]);
                size = 0;
            }
        }
        size += len;
    }
    out
}

#[derive(Clone)]
struct Deleter {
    api: ChildApi,
    bucket: Arc<Bucket>,
    one_by_one: Arc<AtomicBool>,
}

impl Deleter {
    /// Deletes a batch with Background propagation, so the children's pods go too: one
    /// deletecollection by run and step labels, or, for one child or without the
    /// `deletecollection` verb, by name. A child already gone is not an error.
    async fn delete(&self, batch: &[Target]) {
        if batch.len() > 1 && !self.one_by_one.load(Ordering::SeqCst) {
            self.bucket.turn().await;
            match self.delete_collection(batch).await {
                Ok(()) => return,
                Err(e) if status_code(&e) == Some(403) => {
                    if !self.one_by_one.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            "cannot deletecollection jobs ({}); deleting children one by one: add `deletecollection` on jobs to jobherd's Role (see rbac.yaml)",
                            describe(&e)
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    "deleting {} children at once failed ({}); deleting them one by one",
                    batch.len(),
                    describe(&e)
                ),
            }
        }
        for target in batch {
            self.bucket.turn().await;
            if let Err(e) = delete_child(&self.api.jobs, &target.name).await {
                tracing::error!(child = %target.name, "could not delete: {}", describe(&e));
            }
        }
    }

    async fn delete_collection(&self, batch: &[Target]) -> Result<(), kube::Error> {
        let labels: Vec<&str> = batch.iter().map(|t| t.label.as_str()).collect();
        let selector = format!(
            "{},{STEP_LABEL} in ({})",
            self.api.selector(),
            labels.join(",")
        );
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let list = ListParams::default().labels(&selector);
        self.api
            .jobs
            .delete_collection(&params, &list)
            .await
            .map(drop)
    }
}

/// The tail of one container's log (the previous run's with `previous`), if it has one.
async fn tail(
    api: &ChildApi,
    pod: &str,
    container: Option<String>,
    previous: bool,
) -> Option<String> {
    let params = LogParams {
        container,
        tail_lines: Some(TAIL_LINES),
        previous,
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(5), api.pods.logs(pod, &params)).await {
        Ok(Ok(text)) if !text.trim().is_empty() => Some(text),
        Ok(Ok(_)) | Err(_) => None,
        Ok(Err(e)) => {
            tracing::debug!(pod, "fetching logs: {}", describe(&e));
            None
        }
    }
}

/// The log tail of a child's newest pod, if it still has one.
async fn newest_tail(api: &ChildApi, pods: &str) -> Option<String> {
    let newest = newest_pod(api, pods).await?;
    tail(api, &newest.name_any(), None, false).await
}

/// A child's newest pod (of a label selector), if it still has one.
async fn newest_pod(api: &ChildApi, pods: &str) -> Option<Pod> {
    let params = ListParams::default().labels(pods);
    let list = tokio::time::timeout(Duration::from_secs(5), api.pods.list(&params))
        .await
        .ok()?
        .ok()?;
    list.items
        .into_iter()
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0))
}

/// A succeeded child's output, looked up in its pods when the pod watch has not shown it: the
/// message of its succeeded pod, or why it cannot be known (its pods are gone, reading them is
/// forbidden, the API did not answer after a few tries).
async fn read_output(api: &ChildApi, child: &str) -> OutputRead {
    let params = ListParams::default().labels(child);
    let mut last = String::new();
    for attempt in 1..=3 {
        let listed = tokio::time::timeout(Duration::from_secs(10), api.pods.list(&params)).await;
        match listed {
            Ok(Ok(list)) => {
                return match list.items.iter().find_map(pod_output) {
                    Some(Output::Text(text)) => OutputRead::Found(Some(text.into())),
                    Some(Output::Lost(why)) => OutputRead::Lost(why.into()),
                    Some(_) => OutputRead::Found(None),
                    None => OutputRead::Lost(
                        "its succeeded pod is gone (removed by a TTL, the garbage collector or a node drain) before its result was read".into(),
                    ),
                };
            }
            Ok(Err(e)) if status_code(&e) == Some(403) => {
                return OutputRead::Lost(format!(
                    "reading its pods is forbidden ({}): jobherd's Role needs `list` on pods",
                    describe(&e)
                ));
            }
            Ok(Err(e)) => last = describe(&e),
            Err(_) => last = "no answer within 10s".into(),
        }
        tracing::warn!(child, "reading its result from its pods: {last}");
        tokio::time::sleep(Duration::from_secs(attempt)).await;
    }
    OutputRead::Lost(format!("its pods could not be listed ({last})"))
}

/// `JOBHERD_LOGS=all`: a pod's log lines as they come, from its start.
async fn follow(api: ChildApi, pod: String, index: usize, events: Sender<Event>) {
    match follow_log(&api.pods, &pod, None).await {
        Ok(mut lines) => {
            while let Ok(Some(line)) = lines.try_next().await {
                if events.send(Event::LogLine { index, line }).await.is_err() {
                    return;
                }
            }
        }
        Err(e) => tracing::debug!(pod, "following logs: {}", describe(&e)),
    }
    let _ = events.send(Event::LogEnded).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(qps: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket::new(RateLimit { qps, burst }, now)
    }

    #[test]
    fn creates_burst_then_follow_the_rate() {
        let t0 = Instant::now();
        let mut limit = bucket(20.0, 40, t0);
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
        let mut limit = bucket(20.0, 40, t0);
        let later = t0 + Duration::from_secs(3600);
        let free = (0..100).take_while(|_| limit.take(later).is_zero()).count();
        assert_eq!(free, 40);
    }

    #[test]
    fn a_fractional_rate_spaces_requests_seconds_apart() {
        let t0 = Instant::now();
        let mut limit = bucket(0.5, 1, t0);
        assert_eq!(limit.take(t0), Duration::ZERO);
        assert_eq!(limit.take(t0), Duration::from_secs(2));
    }
}
