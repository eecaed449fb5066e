//! A fake Kubernetes cluster for tests: an HTTP API server speaking kube-apiserver's JSON API
//! on 127.0.0.1, with a simulated Job controller, kubelet, garbage collector and TTL controller
//! behind it, behaving like the Kubernetes version it is told to be.
//!
//! See the parent module for the version table, time scaling, the child-fate convention and
//! the remaining differences from a real cluster. Everything here is usable from plain
//! synchronous tests: the server and controllers run on their own tokio runtime.
//!
//! `http.rs` (the API) and `kubectl.rs` (apply) → `versions.rs` (what a version takes),
//! `defaults.rs`, `configmap.rs`, `store.rs` (objects, watches, history, logs, size limits) →
//! `sim.rs` (event loop, GC, TTL) → `jobs.rs` (Job controller: `job_pods.rs`, `indexed.rs`;
//! what it would have sent: `cost.rs`), `kubelet.rs` (pods: `pod_run.rs`, `fate.rs`),
//! `process.rs` (real jobherd); `disruption.rs` (evictions, preemption: `DisruptionTarget`),
//! `kueue.rs` (queued Jobs).

mod configmap;
mod cost;
mod defaults;
mod disruption;
mod fate;
mod http;
mod indexed;
mod job_pods;
mod jobs;
mod kubectl;
mod kubelet;
mod kueue;
mod meta;
mod pod_run;
mod process;
mod sim;
mod store;
mod versions;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use cost::ControllerRequests;
pub use fate::Fate;
pub use job_pods::TRACKING;
use meta::ApiError;
pub use meta::Kind;
use sim::Control;
pub use sim::UNMANAGED;
pub use store::Propagation;
use store::{EventType, Store};
use versions::Version;

/// Locks a mutex, ignoring poisoning: a panicking test thread must not wedge the server.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One API request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Raw (still percent-encoded) query string.
    pub query: String,
    /// kube-apiserver's verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
    /// Who made it: `fake-token` for the test's own kubeconfig (a caller outside the
    /// cluster), `system:serviceaccount:NS:NAME` for a process the kubelet runs in a pod.
    pub user: String,
}

impl Request {
    /// A decoded query parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        meta::parse_query(&self.query).remove(key)
    }

    /// The `labelSelector` of a list, watch or deletecollection.
    pub fn label_selector(&self) -> Option<String> {
        self.param("labelSelector")
    }
}

struct FailRule {
    remaining: usize,
    status: u16,
    retry_after: Option<u64>,
    filter: Option<(String, String)>,
}

#[derive(Default)]
pub(crate) struct Faults {
    fail: VecDeque<FailRule>,
    stall: Option<(Duration, usize)>,
    /// Stalls of only the requests a `(verb, resource)` filter matches: (delay, remaining).
    stall_only: Vec<(Duration, usize, (String, String))>,
    forbidden: HashSet<(String, String)>,
}

impl Faults {
    /// Consumes the faults that apply to one request: a delay, and an error to answer instead.
    fn take(
        &mut self,
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: Option<&str>,
    ) -> (Option<Duration>, Option<ApiError>) {
        let full = if sub.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{sub}")
        };
        let only = self.stall_only.iter_mut().find(|(_, n, (v, r))| {
            *n > 0 && (v == verb || v == "*") && (r == &full || r == resource || r == "*")
        });
        let stall = match (only, &mut self.stall) {
            (Some((d, n, _)), _) | (None, Some((d, n))) if *n > 0 => {
                *n -= 1;
                Some(*d)
            }
            _ => None,
        };
        let forbidden = [(verb, full.as_str()), ("*", full.as_str()), (verb, "*")]
            .iter()
            .any(|(v, r)| self.forbidden.contains(&(v.to_string(), r.to_string())));
        if forbidden {
            return (stall, Some(ApiError::forbidden(verb, group, &full, ns)));
        }
        let rule = self.fail.iter_mut().find(|r| {
            r.remaining > 0
                && r.filter.as_ref().is_none_or(|(v, res)| {
                    (v == verb || v == "*") && (res == &full || res == resource || res == "*")
                })
        });
        let Some(rule) = rule else {
            return (stall, None);
        };
        rule.remaining -= 1;
        let mut err = match rule.status {
            429 => ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            ),
            500 => ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: injected by the fake cluster",
            ),
            503 => ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => ApiError::new(
                504,
                "Timeout",
                "the server was unable to return a response in the time allotted",
            ),
            code => ApiError::new(code, "InternalError", format!("injected status {code}")),
        };
        err.retry_after = rule.retry_after;
        self.fail.retain(|r| r.remaining > 0);
        (stall, Some(err))
    }
}

pub(crate) struct Config {
    pub version: Version,
    pub bookmark_interval: Duration,
    /// Fraction of real time the control plane's own delays take (back-offs).
    pub time_scale: f64,
    /// Where containers running jobherd get their files.
    pub scratch: PathBuf,
    /// The kubeconfig those containers use to reach this server.
    pub kubeconfig: PathBuf,
    pub jobherd_bin: PathBuf,
    /// Kueue's webhook suspends queued Jobs on create.
    pub kueue: bool,
}

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub requests: Mutex<Vec<Request>>,
    pub faults: Mutex<Faults>,
    pub config: Config,
    /// To the controllers: releases, exits of real processes.
    pub control: mpsc::UnboundedSender<Control>,
    /// Pids of the processes containers run, killed when the cluster is dropped.
    pub processes: Mutex<HashSet<u32>>,
    /// What the real Job controller would have sent for what the fake's did.
    pub cost: Mutex<cost::Model>,
}

/// One committed version of an object, from the history the cluster records when built with
/// [`Builder::record_history`]. Versions are in resourceVersion order: the order every watcher
/// saw them in.
#[derive(Clone, Debug)]
pub struct Revision {
    pub rv: u64,
    /// When the store committed it (for durations between versions).
    pub at: Instant,
    pub time: jiff::Timestamp,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub event: &'static str,
    pub object: Value,
}

impl Revision {
    pub fn name(&self) -> &str {
        meta::name_of(&self.object)
    }

    pub fn uid(&self) -> &str {
        meta::uid_of(&self.object)
    }

    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> T {
        FakeCluster::typed(&self.object)
    }
}

/// The largest number of objects for which `holds` was true at once, over `history` (in
/// resourceVersion order; a deleted object stops counting).
pub fn peak(history: &[Revision], holds: impl Fn(&Value) -> bool) -> usize {
    let mut now: HashSet<String> = HashSet::new();
    let mut most = 0;
    for r in history {
        let uid = r.uid().to_string();
        if r.event != "DELETED" && holds(&r.object) {
            now.insert(uid);
        } else {
            now.remove(&uid);
        }
        most = most.max(now.len());
    }
    most
}

/// The parent jobherd believes it runs in: an unmanaged Job and its Running pod.
#[derive(Debug, Clone)]
pub struct Parent {
    pub job_name: String,
    pub job_uid: String,
    pub pod_name: String,
    pub namespace: String,
}

/// Options of a [`FakeCluster`].
pub struct Builder {
    compaction_window: usize,
    version: u32,
    bookmark_interval: Duration,
    time_scale: f64,
    record_history: bool,
    kueue: bool,
}

impl Builder {
    /// How many resourceVersions of watch history are kept; resuming a watch from an older one
    /// answers 410 Expired. Default 100 000.
    pub fn compaction_window(mut self, events: usize) -> Self {
        self.compaction_window = events;
        self
    }

    /// Which Kubernetes to be: `1.<minor>`, from 1.21 to 1.33 (default 33). It decides the
    /// Job controller's conditions and status fields, job-tracking finalizers, the API's
    /// defaults, the fields it knows and field validation (see the support module doc).
    pub fn version(mut self, minor: u32) -> Self {
        assert!(
            (versions::OLDEST..=versions::NEWEST).contains(&minor),
            "the fake cluster can be Kubernetes 1.{} to 1.{}, not 1.{minor}",
            versions::OLDEST,
            versions::NEWEST
        );
        self.version = minor;
        self
    }

    /// Behave like Kubernetes before 1.31 (only `Complete`/`Failed` conditions): an alias for
    /// `version(30)`, the last such version.
    pub fn pre_131_conditions(self, yes: bool) -> Self {
        if yes { self.version(30) } else { self }
    }

    /// The fraction of real time the control plane's own delays take: the Job controller's
    /// pod-failure back-off (10 s doubling to 6 min) and the kubelet's CrashLoopBackOff (10 s
    /// doubling to 5 min). Default 0.01 (10 s become 100 ms). Durations a user writes
    /// (`activeDeadlineSeconds`, `ttlSecondsAfterFinished`, grace periods) are never scaled.
    pub fn time_scale(mut self, fraction: f64) -> Self {
        assert!(fraction > 0.0, "time scale must be positive");
        self.time_scale = fraction;
        self
    }

    /// Keep every version of every object for [`FakeCluster::history`] (off by default: at
    /// 10 000 children that is a lot of memory).
    pub fn record_history(mut self, yes: bool) -> Self {
        self.record_history = yes;
        self
    }

    /// Behave as if Kueue were installed: the API creates every Job labelled
    /// `kueue.x-k8s.io/queue-name` with `spec.suspend: true`, as Kueue's webhook does (Jobs
    /// without the label are untouched); [`FakeCluster::admit`] and [`FakeCluster::preempt`]
    /// play its controller. Needs `spec.suspend` (1.22+). Off by default.
    pub fn kueue(mut self, yes: bool) -> Self {
        self.kueue = yes;
        self
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK. Default 1 s.
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    pub fn start(self) -> FakeCluster {
        FakeCluster::start_with(self)
    }
}

/// A running fake cluster. Dropping it stops the server and the controllers.
pub struct FakeCluster {
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl FakeCluster {
    /// Starts on a random port of 127.0.0.1 with default options.
    pub fn start() -> FakeCluster {
        Self::builder().start()
    }

    pub fn builder() -> Builder {
        Builder {
            compaction_window: 100_000,
            version: versions::NEWEST,
            bookmark_interval: Duration::from_secs(1),
            time_scale: 0.01,
            record_history: false,
            kueue: false,
        }
    }

    fn start_with(b: Builder) -> FakeCluster {
        assert!(
            !b.kueue || Version(b.version).indexed_and_suspend(),
            "Kueue suspends Jobs: 1.22 or later, not 1.{}",
            b.version
        );
        let dir = tempfile::tempdir().expect("temp dir for the kubeconfig");
        let kubeconfig = dir.path().join("kubeconfig");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-cluster")
            .enable_all()
            .build()
            .expect("the fake cluster needs a tokio runtime");
        let (tx, rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(b.compaction_window, tx, b.record_history)),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            config: Config {
                version: Version(b.version),
                bookmark_interval: b.bookmark_interval,
                time_scale: b.time_scale,
                scratch: dir.path().to_path_buf(),
                kubeconfig: kubeconfig.clone(),
                jobherd_bin: PathBuf::from(env!("CARGO_BIN_EXE_jobherd")),
                kueue: b.kueue,
            },
            control,
            processes: Mutex::new(HashSet::new()),
            cost: Mutex::new(cost::Model::new(Version(b.version).tracking_finalizers())),
        });
        rt.spawn(sim::Sim::new(shared.clone()).run(rx, control_rx));
        let listener = bind(&rt, SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0 for the fake cluster");
        let addr = listener
            .local_addr()
            .expect("local address of the fake cluster listener");
        let server = rt.spawn(http::serve(shared.clone(), listener));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: fake\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n"
        );
        std::fs::write(&kubeconfig, config).expect("write the kubeconfig");
        FakeCluster {
            shared,
            rt: Some(rt),
            addr,
            server: Mutex::new(Some(server)),
            dir,
            kubeconfig,
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        // Only `Drop` takes the runtime out.
        self.rt
            .as_ref()
            .expect("fake cluster runtime is alive until drop")
    }

    /// A kubeconfig whose current context points at this server, namespace `default`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A scratch directory that lives as long as the cluster.
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (for the fake's own tests and test arrangements). Must be
    /// called inside a tokio runtime.
    pub fn kube_config(&self) -> kube::Config {
        let mut c = kube::Config::new(self.url().parse().expect("the fake's URL is a valid URI"));
        c.default_namespace = "default".into();
        c
    }

    /// The Kubernetes minor version this cluster behaves as.
    pub fn version(&self) -> u32 {
        self.shared.config.version.0
    }

    /// See [`Builder::time_scale`].
    pub fn time_scale(&self) -> f64 {
        self.shared.config.time_scale
    }

    // ----------------------------------------------------------------------------------------
    // Inspection

    fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("stored object does not deserialize: {e}: {v}"))
    }

    /// Raw objects of a kind in a namespace, in list order.
    pub fn objects(&self, kind: Kind, ns: &str) -> Vec<Value> {
        lock(&self.shared.store)
            .list(kind, Some(ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Counts objects matching `pred` without copying them (cheap enough to poll at scale).
    pub fn count(&self, kind: Kind, ns: &str, pred: impl Fn(&Value) -> bool) -> usize {
        lock(&self.shared.store)
            .list(kind, Some(ns))
            .filter(|(_, v)| pred(v))
            .count()
    }

    pub fn object(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store)
            .get(kind, &store::key(ns, name))
            .cloned()
    }

    pub fn jobs(&self, ns: &str) -> Vec<Job> {
        self.objects(Kind::Job, ns)
            .iter()
            .map(Self::typed)
            .collect()
    }

    pub fn job(&self, ns: &str, name: &str) -> Option<Job> {
        self.object(Kind::Job, ns, name).as_ref().map(Self::typed)
    }

    pub fn pods(&self, ns: &str) -> Vec<Pod> {
        self.objects(Kind::Pod, ns)
            .iter()
            .map(Self::typed)
            .collect()
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.object(Kind::Pod, ns, name).as_ref().map(Self::typed)
    }

    /// Pods whose controller is the named Job.
    pub fn pods_of(&self, ns: &str, job: &str) -> Vec<Pod> {
        let Some(uid) = self
            .object(Kind::Job, ns, job)
            .map(|j| meta::uid_of(&j).to_string())
        else {
            return Vec::new();
        };
        self.objects(Kind::Pod, ns)
            .iter()
            .filter(|p| meta::controller_uid(p) == Some(uid.as_str()))
            .map(Self::typed)
            .collect()
    }

    /// Events of both APIs (events.k8s.io/v1 first, then v1).
    pub fn events(&self, ns: &str) -> Vec<Value> {
        let mut all = self.objects(Kind::Event, ns);
        all.extend(self.objects(Kind::CoreEvent, ns));
        all
    }

    /// The current log lines of a pod's first container (None once the pod is gone or before
    /// it ran).
    pub fn log_lines(&self, ns: &str, pod: &str) -> Option<Vec<String>> {
        let first = self.object(Kind::Pod, ns, pod)?["spec"]["containers"][0]["name"]
            .as_str()?
            .to_string();
        self.container_log_lines(ns, pod, &first)
    }

    /// Every line a pod's first container logged in its current attempt, by the pod's uid, also
    /// once the pod is gone (kept only when the cluster records history: the API serves none).
    pub fn log_lines_of_uid(&self, uid: &str) -> Vec<String> {
        let st = lock(&self.shared.store);
        let logs = st.logs.get(uid).or_else(|| st.retired_logs.get(uid));
        logs.and_then(|containers| containers.values().next())
            .and_then(|l| l.attempts.last())
            .map(|a| a.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// The current attempt's log lines of one container of a pod.
    pub fn container_log_lines(&self, ns: &str, pod: &str, container: &str) -> Option<Vec<String>> {
        let st = lock(&self.shared.store);
        let uid = meta::uid_of(st.get(Kind::Pod, &store::key(ns, pod))?).to_string();
        st.logs
            .get(&uid)?
            .get(container)?
            .attempts
            .last()
            .map(|a| a.iter().map(|(_, l)| l.clone()).collect())
    }

    /// Every recorded version of objects of a kind, in resourceVersion order. Panics unless the
    /// cluster was built with [`Builder::record_history`].
    pub fn history(&self, kind: Kind) -> Vec<Revision> {
        let st = lock(&self.shared.store);
        assert!(
            st.records(),
            "history is recorded only with FakeCluster::builder().record_history(true)"
        );
        st.recorded()
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| Revision {
                rv: r.rv,
                at: r.at,
                time: r.time,
                event: match r.ty {
                    EventType::Added => "ADDED",
                    EventType::Modified => "MODIFIED",
                    EventType::Deleted => "DELETED",
                },
                object: (*r.obj).clone(),
            })
            .collect()
    }

    /// Every recorded version of one object (by namespace and name, across re-creations).
    pub fn history_of(&self, kind: Kind, ns: &str, name: &str) -> Vec<Revision> {
        self.history(kind)
            .into_iter()
            .filter(|r| r.name() == name && meta::namespace_of(&r.object) == ns)
            .collect()
    }

    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).resource_version()
    }

    /// Number of open watch streams.
    pub fn watch_count(&self) -> usize {
        lock(&self.shared.store).watch_count()
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// How many recorded requests had this verb on this resource (`pods/log` for subresources).
    pub fn count_requests(&self, verb: &str, resource: &str) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| {
                r.verb == verb
                    && (r.resource == resource
                        || format!("{}/{}", r.resource, r.subresource) == resource)
            })
            .count()
    }

    /// Runs `f` with a kube client built from the cluster's kubeconfig, on a fresh runtime (for
    /// arranging state through the API, as a user's kubectl would).
    pub fn with_client<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(kube::Client) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let path = self.kubeconfig_path().to_path_buf();
        rt.block_on(async move {
            let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
            let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .expect("config");
            f(kube::Client::try_from(config).expect("client")).await
        })
    }

    /// One request as it goes over the wire, for what a typed client cannot send (a body of
    /// another API version, fields a version does not know); returns the status, the `Warning`
    /// headers and the JSON answer.
    pub fn raw_request(&self, method: &str, path: &str, body: &Value) -> (u16, Vec<String>, Value) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).expect("connect");
        let body = body.to_string();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        let (head, rest) = resp.split_once("\r\n\r\n").expect("http response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        let warnings = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("warning"))
            .map(|(_, v)| v.trim().to_string())
            .collect();
        (
            status,
            warnings,
            serde_json::from_str(rest).unwrap_or_default(),
        )
    }

    /// The names of the Jobs of a namespace, sorted.
    pub fn job_names(&self, ns: &str) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.shared.store)
            .list(Kind::Job, Some(ns))
            .map(|(_, v)| meta::name_of(v).to_string())
            .collect();
        names.sort();
        names
    }

    /// The requests the real Job controller would have sent for what the fake's did so far
    /// (a model, calibrated on real control planes: see the support module's doc).
    pub fn controller_requests(&self) -> ControllerRequests {
        lock(&self.shared.cost).total()
    }

    /// As [`FakeCluster::controller_requests`], for one Job that exists.
    pub fn controller_requests_of(&self, ns: &str, job: &str) -> ControllerRequests {
        let Some(uid) = self
            .object(Kind::Job, ns, job)
            .map(|j| meta::uid_of(&j).to_string())
        else {
            return ControllerRequests::default();
        };
        lock(&self.shared.cost).of(&uid)
    }

    /// Counts the Job controller's requests from zero again.
    pub fn reset_controller_requests(&self) {
        lock(&self.shared.cost).reset();
    }

    /// The contents of a file in a container of a pod, as its `configMap` volumes show it (the
    /// ConfigMap as it is now); `None` when no such file is there.
    pub fn volume_file(&self, ns: &str, pod: &str, container: &str, path: &str) -> Option<Vec<u8>> {
        let st = lock(&self.shared.store);
        let pod = st.get(Kind::Pod, &store::key(ns, pod))?;
        configmap::volume_file(&st, pod, container, path)
    }

    /// How many Jobs were created through the API (successful creates).
    pub fn jobs_created(&self) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300)
            .count()
    }

    /// Polls `cond` every few milliseconds until it holds or `timeout` passes.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&FakeCluster) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // ----------------------------------------------------------------------------------------
    // Arranging state (direct inserts, not recorded as requests)

    fn insert(&self, kind: Kind, mut obj: Value) -> Value {
        if obj["metadata"]["namespace"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            obj["metadata"]["namespace"] = json!("default");
        }
        let mut st = lock(&self.shared.store);
        if meta::name_of(&obj).is_empty() {
            let generate = obj["metadata"]["generateName"]
                .as_str()
                .unwrap_or("obj-")
                .to_string();
            obj["metadata"]["name"] = json!(format!("{generate}{}", meta::random_suffix(5)));
        }
        obj["metadata"]["uid"] = json!(meta::new_uid());
        let name = meta::name_of(&obj).to_string();
        let version = self.shared.config.version;
        // Direct inserts drop what the version does not take, without warnings.
        let _ = versions::admit(
            versions::Schema::Served(kind),
            &mut obj,
            version,
            Some("Ignore"),
        );
        defaults::admit_create(kind, &mut obj, false, version)
            .and_then(|()| {
                if self.shared.config.kueue {
                    kueue::webhook(kind, &mut obj);
                }
                st.create(kind, obj)
            })
            .unwrap_or_else(|e| {
                panic!("fake cluster refused {} {name}: {}", kind.kind(), e.message)
            })
    }

    /// Inserts a Job as the API would store it (defaults, selector, labels); panics if invalid.
    pub fn create_job(&self, job: Job) -> Job {
        let v = serde_json::to_value(job).expect("Job serializes");
        Self::typed(&self.insert(Kind::Job, v))
    }

    /// Inserts a Pod; a given status is kept (the kubelet only picks up Pending pods).
    pub fn create_pod(&self, pod: Pod) -> Pod {
        let v = serde_json::to_value(pod).expect("Pod serializes");
        Self::typed(&self.insert(Kind::Pod, v))
    }

    /// Inserts any object of a served kind from JSON.
    pub fn create_raw(&self, kind: Kind, obj: Value) -> Value {
        self.insert(kind, obj)
    }

    /// Deletes as `DELETE` with a propagation policy would (no request recorded); a pod goes
    /// gracefully, with its own grace period.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str, policy: Propagation) -> bool {
        self.delete_with_grace(kind, ns, name, policy, None)
    }

    /// As [`FakeCluster::delete`], with DeleteOptions' `gracePeriodSeconds`.
    pub fn delete_with_grace(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        policy: Propagation,
        grace: Option<i64>,
    ) -> bool {
        lock(&self.shared.store)
            .delete(kind, &store::key(ns, name), policy, grace)
            .is_some()
    }

    /// Evicts a pod as `POST pods/NAME/eviction` does (no request recorded): from 1.26 a write
    /// of the `DisruptionTarget` condition (`EvictionByEvictionAPI`), then in the next one a
    /// graceful delete with the pod's own grace period. Returns whether the pod existed.
    pub fn evict(&self, ns: &str, pod: &str) -> bool {
        self.disrupt(ns, pod, "EvictionByEvictionAPI")
    }

    /// Disrupts a pod for `reason`, as the component that owns the reason does:
    ///
    /// - `EvictionByEvictionAPI` (the API), `PreemptionByScheduler` (the scheduler),
    ///   `DeletionByTaintManager` (the taint manager): from 1.26 the `DisruptionTarget`
    ///   condition with that reason, then in the next write a graceful delete;
    /// - `TerminationByKubelet` (node-pressure eviction): no delete at all. The kubelet stops the
    ///   containers (SIGTERM, SIGKILL after the pod's grace period); only once they stopped does
    ///   it report the pod `Failed` with reason `Evicted` and, from 1.26, the condition. The pod
    ///   stays in the API.
    ///
    /// Returns whether the pod existed. Panics on another reason.
    pub fn disrupt(&self, ns: &str, pod: &str, reason: &str) -> bool {
        let d = disruption::Disruption::from_reason(reason).unwrap_or_else(|| {
            panic!(
                "the fake disrupts pods for {:?}, not {reason:?}",
                disruption::Disruption::REASONS
            )
        });
        let mut st = lock(&self.shared.store);
        if d == disruption::Disruption::NodePressure {
            let Some(obj) = st.get(Kind::Pod, &store::key(ns, pod)) else {
                return false;
            };
            let uid = meta::uid_of(obj).to_string();
            drop(st);
            let _ = self.shared.control.send(Control::Evict { uid });
            return true;
        }
        let v = self.shared.config.version;
        disruption::mark_and_delete(&mut st, v, d, ns, pod, None, false).is_ok()
    }

    /// Admits a Job as Kueue's controller does: an update setting `spec.suspend: false` (no
    /// request recorded). Returns whether the Job exists.
    pub fn admit(&self, ns: &str, job: &str) -> bool {
        self.set_suspend(ns, job, false)
    }

    /// Preempts a Job as Kueue's controller does: an update setting `spec.suspend: true`, after
    /// which the Job controller deletes its pods without counting them. Returns whether the Job
    /// exists.
    pub fn preempt(&self, ns: &str, job: &str) -> bool {
        self.set_suspend(ns, job, true)
    }

    fn set_suspend(&self, ns: &str, job: &str, suspend: bool) -> bool {
        assert!(
            self.shared.config.version.indexed_and_suspend(),
            "spec.suspend is Kubernetes 1.22's, this cluster is 1.{}",
            self.version()
        );
        kueue::set_suspend(&mut lock(&self.shared.store), &store::key(ns, job), suspend)
    }

    /// Makes an object look `by` older: its `creationTimestamp` moves back, as if it had been
    /// created that long ago (a parent Job whose run has gone on for hours: `JOBHERD_TIMEOUT`
    /// counts from there). One write (MODIFIED), which a real API server would never make: it
    /// stands for time that passed. Returns whether the object exists.
    pub fn backdate(&self, kind: Kind, ns: &str, name: &str, by: Duration) -> bool {
        let mut st = lock(&self.shared.store);
        let Some(mut obj) = st.get(kind, &store::key(ns, name)).cloned() else {
            return false;
        };
        let created = obj["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(jiff::Timestamp::now);
        let by = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        let earlier = created.checked_sub(by).unwrap_or(jiff::Timestamp::MIN);
        obj["metadata"]["creationTimestamp"] = json!(earlier.to_string());
        st.put(kind, obj);
        true
    }

    /// Pids of the processes containers of jobherd's image run now.
    pub fn process_ids(&self) -> Vec<u32> {
        lock(&self.shared.processes).iter().copied().collect()
    }

    /// Ends every container holding on `name` (`FAKE_HOLD`); later ones do not hold.
    pub fn release(&self, name: &str) {
        let _ = self.shared.control.send(Control::Release(name.to_string()));
    }

    /// What the Job controller writes when the pod of a parent from [`FakeCluster::create_parent`]
    /// exits with `code`: the parent Job ends, `Complete` on 0, else `Failed`.
    pub fn finish_parent(&self, parent: &Parent, code: i32) {
        let (ty, reason) = if code == 0 {
            ("Complete", "")
        } else {
            ("Failed", "PodFailurePolicy")
        };
        let mut st = lock(&self.shared.store);
        let key = store::key(&parent.namespace, &parent.job_name);
        let Some(mut job) = st.get(Kind::Job, &key).cloned() else {
            return;
        };
        job["status"] = json!({"active": 0, "ready": 0,
            "succeeded": i32::from(code == 0), "failed": i32::from(code != 0),
            "conditions": [{"type": ty, "status": "True", "reason": reason, "message": "",
                "lastProbeTime": meta::now_time(), "lastTransitionTime": meta::now_time()}]});
        st.put(Kind::Job, job);
    }

    /// A parent Job that the Job controller leaves alone, and its Running pod: what jobherd
    /// finds through `POD_NAME`/`POD_NAMESPACE` when it runs as a CronJob's Job.
    pub fn create_parent(&self, ns: &str, name: &str) -> Parent {
        let mut status = json!({"active": 1, "ready": 1, "startTime": meta::now_time()});
        if !self.shared.config.version.job_ready() {
            status.as_object_mut().map(|s| s.remove("ready"));
        }
        let job = self.insert(
            Kind::Job,
            json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": ns, "annotations": {UNMANAGED: "true"}},
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never", "serviceAccountName": "jobherd",
                    "containers": [{"name": "jobherd", "image": "jobherd:test"}],
                }}},
                "status": status,
            }),
        );
        let mut st = lock(&self.shared.store);
        let mut pod = job_pods::pod_from_template(&st, &job, self.shared.config.version, None);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
        pod["metadata"]["annotations"] = json!({UNMANAGED: "true"});
        pod["metadata"]["uid"] = json!(meta::new_uid());
        pod["spec"]["nodeName"] = json!("fake-node-1");
        let now = meta::now_time();
        pod["status"] = json!({
            "phase": "Running", "podIP": "10.244.0.2", "startTime": now, "qosClass": "BestEffort",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}],
            "containerStatuses": [{"name": "jobherd", "image": "jobherd:test", "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}, "lastState": {}}],
        });
        let pod = st
            .create(Kind::Pod, pod)
            .unwrap_or_else(|e| panic!("parent pod: {}", e.message));
        Parent {
            job_name: name.to_string(),
            job_uid: meta::uid_of(&job).to_string(),
            pod_name: meta::name_of(&pod).to_string(),
            namespace: ns.to_string(),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Faults

    /// Cuts every open watch connection now (clients see the stream break).
    pub fn drop_watches(&self) {
        lock(&self.shared.store).drop_watches();
    }

    /// Answers the next `n` matching requests with `status` (429, 500, 503, 504), with a
    /// `Retry-After` header when given. `filter` is `(verb, resource)`, `*` matches any.
    pub fn fail_next(
        &self,
        n: usize,
        status: u16,
        retry_after_secs: Option<u64>,
        filter: Option<(&str, &str)>,
    ) {
        lock(&self.shared.faults).fail.push_back(FailRule {
            remaining: n,
            status,
            retry_after: retry_after_secs,
            filter: filter.map(|(v, r)| (v.to_string(), r.to_string())),
        });
    }

    /// Delays the next `n` responses by `delay`.
    pub fn stall(&self, delay: Duration, n: usize) {
        lock(&self.shared.faults).stall = Some((delay, n));
    }

    /// Delays the next `n` requests of `verb` on `resource` (as [`FakeCluster::fail_next`]'s
    /// filter: `*` matches any) by `delay`; others are not delayed.
    pub fn stall_only(&self, delay: Duration, n: usize, (verb, resource): (&str, &str)) {
        lock(&self.shared.faults).stall_only.push((
            delay,
            n,
            (verb.to_string(), resource.to_string()),
        ));
    }

    /// How many requests [`FakeCluster::stall_only`] is still waiting for: 0 once each has
    /// arrived (and is being delayed), so a test can act while one is.
    pub fn stalls_left(&self) -> usize {
        lock(&self.shared.faults)
            .stall_only
            .iter()
            .map(|(_, n, _)| n)
            .sum()
    }

    /// Answers `verb` on `resource` (`jobs`, `pods/log`, `*`) with 403, as RBAC does.
    pub fn forbid(&self, verb: &str, resource: &str) {
        lock(&self.shared.faults)
            .forbidden
            .insert((verb.to_string(), resource.to_string()));
    }

    pub fn allow(&self, verb: &str, resource: &str) {
        lock(&self.shared.faults)
            .forbidden
            .remove(&(verb.to_string(), resource.to_string()));
    }

    /// Clears every pending fault (fail_next, stall, forbid).
    pub fn clear_faults(&self) {
        *lock(&self.shared.faults) = Faults::default();
    }

    /// Drops the watch history: every resourceVersion handed out so far becomes too old.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// Stops listening and cuts every connection; state and controllers keep going.
    pub fn stop(&self) {
        let handle = lock(&self.server).take();
        if let Some(handle) = handle {
            handle.abort();
            let (tx, rx) = std::sync::mpsc::channel();
            self.rt().spawn(async move {
                let _ = handle.await;
                let _ = tx.send(());
            });
            // The listener closes when the aborted task is dropped; wait for it so the port is free.
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        lock(&self.shared.store).drop_watches();
    }

    /// Listens again on the same port, with the state kept.
    pub fn restart(&self) {
        let mut server = lock(&self.server);
        if server.is_some() {
            return;
        }
        let end = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match bind(self.rt(), self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("fake cluster cannot listen on {} again: {e}", self.addr),
            }
        };
        *server = Some(self.rt().spawn(http::serve(self.shared.clone(), listener)));
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.kill_processes();
        if let Some(rt) = self.rt.take() {
            // Not `drop(rt)`: that blocks, and panics when the test itself runs inside tokio.
            rt.shutdown_background();
        }
        // A process the controllers started while shutting down.
        self.kill_processes();
    }
}

impl FakeCluster {
    /// SIGKILLs every process a container runs (no stray jobherd after a test, even a
    /// panicking one).
    fn kill_processes(&self) {
        for pid in lock(&self.shared.processes).drain() {
            process::signal(pid, libc::SIGKILL);
        }
    }
}

fn bind(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let _guard = rt.enter();
    let socket = tokio::net::TcpSocket::new_v4()?;
    // A restarted server must get its port back despite connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
