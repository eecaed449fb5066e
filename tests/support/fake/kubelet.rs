//! The kubelet (with the scheduler's binding): runs each container of a pod by the fate written
//! in its env, or, for jobherd's own image, as the real binary (`process.rs`); restarts failed
//! containers with CrashLoopBackOff; stops the containers of a pod being deleted (SIGTERM, then
//! SIGKILL when the grace period is over); writes pod status, logs and termination messages;
//! and confirms the end of a deleted pod with a grace period of 0.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::disruption::{self, Disruption};
use super::lock;
use super::meta::{self, Kind};
use super::process;
use super::sim::{Sim, Timer, UNMANAGED, cond};
use super::store::{Key, Propagation, Store};
use super::versions::Version;

pub const NODE: &str = "fake-node-1";

/// The kubelet's restart back-off: the first restart is immediate, then 10 s, doubling, at
/// most 5 minutes (real time; scaled by the cluster's time scale).
const CRASH_BASE: Duration = Duration::from_secs(10);
const CRASH_MAX: Duration = Duration::from_secs(300);

/// A termination message is at most this long (the kubelet's limit per container).
const MESSAGE_MAX: usize = 4096;
/// `FallbackToLogsOnError`: the log's last 80 lines, at most 2048 bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

/// How a container behaves; read from its env and image (see the support module doc).
#[derive(Debug, Clone)]
pub struct Fate {
    pub pending: Duration,
    pub run: Duration,
    pub exits: Vec<i32>,
    pub log: Option<Vec<String>>,
    pub waiting: Option<String>,
    pub unschedulable: bool,
    /// How long it takes to exit after SIGTERM, and with which code.
    pub term: Duration,
    pub term_exit: i32,
    /// Runs until `FakeCluster::release(name)`.
    pub hold: Option<String>,
    /// What it writes to its termination-message file: a template whose `${NAME}` are the
    /// container's variables, written `message_repeat` times.
    pub message: Option<String>,
    pub message_repeat: usize,
    /// Starts and ends in one moment: the pod goes from Pending straight to its end.
    pub instant: bool,
}

impl Fate {
    /// The fate of one container (a container spec).
    pub fn of_container(c: &Value) -> Fate {
        let env: HashMap<&str, &str> = c["env"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|v| Some((v["name"].as_str()?, v["value"].as_str().unwrap_or(""))))
                    .collect()
            })
            .unwrap_or_default();
        let ms = |name: &str, default: u64| {
            Duration::from_millis(
                env.get(name)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(default),
            )
        };
        let text = |name: &str| {
            env.get(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        };
        let exits: Vec<i32> = env
            .get("FAKE_EXIT")
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        let image = c["image"].as_str().unwrap_or("");
        let waiting = text("FAKE_WAITING").or_else(|| {
            image
                .starts_with("fake-missing/")
                .then(|| "ErrImagePull".to_string())
        });
        Fate {
            pending: ms("FAKE_PENDING_MS", 10),
            run: ms("FAKE_RUN_MS", 50),
            exits: if exits.is_empty() { vec![0] } else { exits },
            log: env.get("FAKE_LOG").map(|l| {
                l.replace("\\n", "\n")
                    .split('\n')
                    .map(str::to_string)
                    .collect()
            }),
            waiting,
            unschedulable: env
                .get("FAKE_UNSCHEDULABLE")
                .is_some_and(|v| !v.is_empty() && *v != "0" && *v != "false"),
            term: ms("FAKE_TERM_MS", 100),
            term_exit: env
                .get("FAKE_TERM_EXIT")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(143),
            hold: text("FAKE_HOLD"),
            message: text("FAKE_MESSAGE"),
            message_repeat: env
                .get("FAKE_MESSAGE_REPEAT")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1),
            instant: env
                .get("FAKE_INSTANT")
                .is_some_and(|v| !v.is_empty() && *v != "0" && *v != "false"),
        }
    }

    /// The fate of a pod's first container (pod-wide settings live there).
    pub fn of(pod: &Value) -> Fate {
        Self::of_container(&pod["spec"]["containers"][0])
    }

    /// The termination-message file as the container leaves it, with `env` its environment
    /// (where `FAKE_MESSAGE` itself has had the kubelet's `$(VAR)` expansion).
    pub fn message_file(&self, env: &[(String, String)]) -> String {
        let Some(raw) = &self.message else {
            return String::new();
        };
        let template = env
            .iter()
            .rev()
            .find(|(k, _)| k == "FAKE_MESSAGE")
            .map_or(raw.as_str(), |(_, v)| v.as_str());
        process::expand_braces(template, env).repeat(self.message_repeat)
    }

    pub fn exit_code(&self, attempt: u32) -> i32 {
        let i = (attempt as usize).min(self.exits.len() - 1);
        self.exits[i]
    }
}

#[derive(Debug, Clone)]
enum CState {
    /// The sandbox is being created.
    Creating,
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        since: String,
    },
    Terminated {
        code: i32,
        reason: String,
        message: Option<String>,
        started: String,
        finished: String,
    },
}

/// One container as the kubelet runs it.
pub struct Ctr {
    name: String,
    image: String,
    spec: Value,
    fate: Fate,
    /// jobherd's image: the real binary runs.
    real: bool,
    /// Bumped on every change of attempt or state, so stale timers are ignored.
    epoch: u64,
    restarts: u32,
    state: CState,
    last: Value,
    pid: Option<u32>,
    ever_started: bool,
    /// The pod is being deleted: this container will not (re)start.
    stopped: bool,
}

impl Ctr {
    fn running(&self) -> bool {
        matches!(self.state, CState::Running { .. })
    }

    /// Will not run again: terminated for good, or stopped before it could run.
    fn done(&self, policy: &str) -> bool {
        match &self.state {
            CState::Terminated { code, .. } => {
                self.stopped || policy == "Never" || (policy == "OnFailure" && *code == 0)
            }
            CState::Running { .. } => false,
            _ => self.stopped,
        }
    }

    fn status(&self, pod_uid: &str) -> Value {
        let state = match &self.state {
            CState::Creating => json!({"waiting": {"reason": "ContainerCreating"}}),
            CState::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            CState::Running { since } => json!({"running": {"startedAt": since}}),
            CState::Terminated {
                code,
                reason,
                message,
                started,
                finished,
            } => {
                let mut t = json!({"exitCode": code, "reason": reason, "startedAt": started,
                    "finishedAt": finished, "containerID": self.container_id(pod_uid)});
                if let Some(m) = message {
                    t["message"] = json!(m);
                }
                json!({ "terminated": t })
            }
        };
        let mut s = json!({
            "name": self.name, "image": self.image, "imageID": "", "ready": self.running(),
            "restartCount": self.restarts, "started": self.running(), "state": state,
            "lastState": self.last,
        });
        if self.ever_started {
            s["imageID"] = json!(format!("docker.io/library/{}@sha256:0000", self.image));
            s["containerID"] = json!(self.container_id(pod_uid));
        }
        s
    }

    fn container_id(&self, pod_uid: &str) -> String {
        format!("containerd://{pod_uid}-{}-{}", self.name, self.restarts)
    }
}

/// A pod as the kubelet runs it.
pub struct PodRun {
    key: Key,
    attempt_base: u32,
    policy: String,
    containers: Vec<Ctr>,
    /// The sandbox is up: containers may run.
    sandbox: bool,
    terminating: bool,
    /// When SIGKILL comes for what still runs.
    kill_at: Option<Instant>,
    /// The end was confirmed to the API (grace period 0), or reported (an evicted pod).
    ended: bool,
    /// Stopped by the kubelet's own node-pressure eviction: ends `Failed` (`Evicted`), stays.
    evicted: bool,
}

impl PodRun {
    fn phase(&self) -> &'static str {
        if !self.sandbox && !self.terminating {
            return "Pending";
        }
        if self.containers.iter().all(|c| c.done(&self.policy)) {
            if self.evicted {
                return "Failed";
            }
            let all_ok = self
                .containers
                .iter()
                .all(|c| matches!(c.state, CState::Terminated { code: 0, .. }));
            return if all_ok { "Succeeded" } else { "Failed" };
        }
        let unstarted = self
            .containers
            .iter()
            .any(|c| !c.ever_started && !matches!(c.state, CState::Terminated { .. }));
        if unstarted { "Pending" } else { "Running" }
    }
}

impl Sim {
    /// A new Pending pod: bind it to the node (or leave it unschedulable) and create its
    /// sandbox, which takes the first container's `FAKE_PENDING_MS`.
    pub(super) fn kubelet_admit(&mut self, key: &Key, uid: &str) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st.get(Kind::Pod, key).cloned() else {
            return;
        };
        let fate = Fate::of(&pod);
        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|c| Ctr {
                name: c["name"].as_str().unwrap_or("").to_string(),
                image: c["image"].as_str().unwrap_or("").to_string(),
                fate: Fate::of_container(&c),
                real: process::is_jobherd_image(c["image"].as_str().unwrap_or("")),
                spec: c,
                epoch: 0,
                restarts: 0,
                state: CState::Creating,
                last: json!({}),
                pid: None,
                ever_started: false,
                stopped: false,
            })
            .collect();
        let run = PodRun {
            key: key.clone(),
            attempt_base: self.attempt_base.get(uid).copied().unwrap_or(0),
            policy: pod["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("Always")
                .to_string(),
            containers,
            sandbox: false,
            terminating: false,
            kill_at: None,
            ended: false,
            evicted: false,
        };
        let now = meta::now_time();
        if fate.unschedulable {
            pod["status"] = json!({
                "phase": "Pending",
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                }],
                "qosClass": "BestEffort",
            });
            st.put(Kind::Pod, pod);
            self.pods.insert(uid.to_string(), run);
            return;
        }
        pod["spec"]["nodeName"] = json!(NODE);
        pod["status"] = json!({
            "phase": "Pending", "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
            "startTime": now, "qosClass": "BestEffort",
        });
        pod["status"] = render(&run, &pod, shared.config.version);
        st.put(Kind::Pod, pod);
        drop(st);
        self.pods.insert(uid.to_string(), run);
        self.after(
            fate.pending,
            Timer::Start {
                uid: uid.to_string(),
            },
        );
    }

    pub(super) fn kubelet_start(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.terminating {
            return;
        }
        run.sandbox = true;
        for i in 0..run.containers.len() {
            self.start_container(uid, i);
        }
        self.write_status(uid);
    }

    /// Starts one attempt of a container (the caller writes the status).
    fn start_container(&mut self, uid: &str, i: usize) {
        let shared = self.shared.clone();
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let key = run.key.clone();
        let c = &mut run.containers[i];
        if c.stopped {
            return;
        }
        c.epoch += 1;
        let epoch = c.epoch;
        let timer = |delay: Duration| {
            let t = Timer::Exit {
                uid: uid.to_string(),
                container: i,
                epoch,
            };
            (delay, t)
        };
        let mut next: Option<(Duration, Timer)> = None;
        let mut ended = false;
        let mut instant = false;
        if let Some(message) = config_error(&c.spec) {
            c.state = CState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message,
            };
        } else if let Some(reason) = c.fate.waiting.clone().filter(|_| !c.real) {
            c.state = waiting(&reason, &c.image);
            if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                let flip = Timer::PullFlip {
                    uid: uid.to_string(),
                    container: i,
                    epoch,
                };
                next = Some((Duration::from_millis(300), flip));
            }
        } else {
            let now = meta::now_time();
            let mut st = lock(&shared.store);
            let Some(pod) = st.get(Kind::Pod, &key).cloned() else {
                return;
            };
            c.ever_started = true;
            if c.real {
                let log_gen = start_logs(&mut st, uid, &c.name, Vec::new());
                drop(st);
                match process::spawn(&shared, &pod, &c.spec, i, epoch, log_gen) {
                    Ok(pid) => {
                        c.pid = Some(pid);
                        c.state = CState::Running { since: now };
                    }
                    Err(message) => {
                        // As containerd does when the command is not in the image.
                        stop_logs(&mut lock(&shared.store), uid, &c.name);
                        c.state = CState::Terminated {
                            code: 128,
                            reason: "StartError".into(),
                            message: Some(message),
                            started: now.clone(),
                            finished: now,
                        };
                        c.epoch += 1;
                        ended = true;
                    }
                }
            } else {
                let lines = c
                    .fate
                    .log
                    .clone()
                    .unwrap_or_else(|| vec![format!("hello from {}", meta::name_of(&pod))]);
                start_logs(&mut st, uid, &c.name, lines);
                drop(st);
                c.state = CState::Running { since: now };
                match c.fate.hold.clone() {
                    Some(name) if !self.released.contains(&name) => {
                        self.holds
                            .entry(name)
                            .or_default()
                            .push((uid.to_string(), i, epoch));
                    }
                    _ if c.fate.instant => instant = true,
                    _ => next = Some(timer(c.fate.run)),
                }
            }
        }
        if let Some((delay, t)) = next {
            self.after(delay, t);
        }
        if ended {
            self.after_end(uid, i);
        }
        // `FAKE_INSTANT`: it ends before its running state is ever written.
        if instant {
            self.simulated_exit(uid, i, epoch, None);
        }
    }

    /// A simulated container's attempt ends: by itself (its `FAKE_EXIT` code for the attempt)
    /// or, when `code` is given, because it was signalled.
    pub(super) fn simulated_exit(&mut self, uid: &str, i: usize, epoch: u64, code: Option<i32>) {
        let shared = self.shared.clone();
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let attempt = run.attempt_base + run.restarts_of(i);
        let c = &mut run.containers[i];
        if c.epoch != epoch || !c.running() || c.real {
            return;
        }
        let code = code.unwrap_or_else(|| c.fate.exit_code(attempt));
        if code != 0 {
            append_log(
                &mut lock(&shared.store),
                uid,
                &c.name,
                &format!("exit code {code}"),
            );
        }
        self.container_ended(uid, i, code);
    }

    /// A real process ended (its output is all in the log).
    pub(super) fn container_exited(&mut self, uid: &str, i: usize, epoch: u64, code: i32) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        if c.epoch != epoch || !c.running() {
            return;
        }
        c.pid = None;
        self.container_ended(uid, i, code);
    }

    /// The container's attempt is over: termination message, then restart (maybe after a
    /// CrashLoopBackOff) or, for a pod being deleted, the end of the pod.
    fn container_ended(&mut self, uid: &str, i: usize, code: i32) {
        let shared = self.shared.clone();
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        let mut st = lock(&shared.store);
        let lines = stop_logs(&mut st, uid, &c.name);
        let env = st
            .get(Kind::Pod, &run.key)
            .map(|pod| process::container_env(pod, &c.spec))
            .unwrap_or_default();
        drop(st);
        let file = if c.real {
            process::read_termination_log(&shared, uid, &c.name)
        } else {
            c.fate.message_file(&env)
        };
        let policy = c.spec["terminationMessagePolicy"]
            .as_str()
            .unwrap_or("File")
            .to_string();
        let started = match &c.state {
            CState::Running { since } => since.clone(),
            _ => meta::now_time(),
        };
        c.state = CState::Terminated {
            code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: termination_message(&policy, &file, &lines, code),
            started,
            finished: meta::now_time(),
        };
        c.epoch += 1;
        self.after_end(uid, i);
    }

    /// After a container terminated: restart it, or write the pod's status (and end a pod
    /// being deleted once nothing runs).
    fn after_end(&mut self, uid: &str, i: usize) {
        let scale = self.shared.config.time_scale;
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let policy = run.policy.clone();
        let terminating = run.terminating;
        let key = run.key.clone();
        let c = &mut run.containers[i];
        let CState::Terminated { code, .. } = c.state else {
            return;
        };
        let restart = !terminating
            && match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            };
        if !restart {
            self.write_status(uid);
            self.maybe_finish(uid);
            return;
        }
        // The terminated state is reported before the kubelet acts on it.
        self.write_status(uid);
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        let delay = crash_delay(c.restarts);
        c.last = c.status(uid)["state"].clone();
        if delay.is_zero() {
            let epoch = c.epoch;
            self.restart_container(uid, i, epoch);
            return;
        }
        c.state = CState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "back-off {}s restarting failed container={} pod={}_{}({uid})",
                delay.as_secs(),
                c.name,
                key.1,
                key.0
            ),
        };
        c.epoch += 1;
        let epoch = c.epoch;
        self.write_status(uid);
        self.after(
            delay.mul_f64(scale),
            Timer::Restart {
                uid: uid.to_string(),
                container: i,
                epoch,
            },
        );
    }

    pub(super) fn restart_container(&mut self, uid: &str, i: usize, epoch: u64) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        if c.epoch != epoch || c.stopped {
            return;
        }
        if let CState::Terminated { .. } = c.state {
            c.last = c.status(uid)["state"].clone();
        }
        c.restarts += 1;
        self.start_container(uid, i);
        self.write_status(uid);
    }

    pub(super) fn pull_flip(&mut self, uid: &str, i: usize, epoch: u64) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        let CState::Waiting { reason, .. } = &c.state else {
            return;
        };
        if c.epoch != epoch || c.stopped {
            return;
        }
        let next = if reason == "ErrImagePull" {
            "ImagePullBackOff"
        } else {
            "ErrImagePull"
        };
        c.state = waiting(next, &c.image);
        self.write_status(uid);
        self.after(
            Duration::from_millis(300),
            Timer::PullFlip {
                uid: uid.to_string(),
                container: i,
                epoch,
            },
        );
    }

    /// A pod got (or changed) its `deletionTimestamp`: stop its containers, SIGTERM first.
    pub(super) fn kubelet_terminate(&mut self, key: &Key, uid: &str) {
        let shared = self.shared.clone();
        let (grace, unmanaged) = {
            let st = lock(&shared.store);
            let Some(pod) = st.get(Kind::Pod, key) else {
                return;
            };
            (
                pod["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0),
                meta::annotation(pod, UNMANAGED).is_some(),
            )
        };
        if !self.pods.contains_key(uid) {
            // Not run by this kubelet (a parent standing for the test itself, or a pod created
            // already running): nothing to stop, confirm at once.
            if grace > 0 || unmanaged {
                lock(&shared.store).delete(Kind::Pod, key, Propagation::Background, Some(0));
            }
            return;
        }
        self.stop_pod(uid, grace);
    }

    /// Node-pressure eviction: the kubelet stops the pod as for a deletion, with the pod's own
    /// grace period (a soft eviction), but deletes nothing. Like the real kubelet, it reports
    /// `DisruptionTarget` only with the terminal phase, so a process being stopped this way
    /// sees neither a deletionTimestamp nor the condition on its pod.
    pub(super) fn kubelet_evict(&mut self, uid: &str) {
        let grace = {
            let st = lock(&self.shared.store);
            let Some(run) = self.pods.get(uid) else {
                return;
            };
            st.get(Kind::Pod, &run.key)
                .and_then(|p| p["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30)
        };
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.terminating || run.ended {
            return;
        }
        run.evicted = true;
        self.stop_pod(uid, grace);
    }

    /// Stops a pod's containers: SIGTERM now, SIGKILL when `grace` seconds are over (a second
    /// stop may only bring that closer).
    fn stop_pod(&mut self, uid: &str, grace: i64) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.ended {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
        let sooner = run.kill_at.is_none_or(|k| deadline < k);
        let first = !run.terminating;
        run.terminating = true;
        if sooner {
            run.kill_at = Some(deadline);
            self.after(
                Duration::from_secs(grace.max(0) as u64),
                Timer::Kill {
                    uid: uid.to_string(),
                },
            );
        }
        if !first {
            return;
        }
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let grace_ms = Duration::from_secs(grace.max(0) as u64);
        let mut term_timers = Vec::new();
        for (i, c) in run.containers.iter_mut().enumerate() {
            c.stopped = true;
            match (&c.state, c.real) {
                (CState::Running { .. }, true) => {
                    if let Some(pid) = c.pid {
                        process::signal(pid, libc::SIGTERM);
                    }
                }
                (CState::Running { .. }, false) => {
                    if c.fate.term < grace_ms {
                        term_timers.push((c.fate.term, i, c.epoch, c.fate.term_exit));
                    }
                }
                _ => c.epoch += 1,
            }
        }
        for (after, container, epoch, code) in term_timers {
            self.after(
                after,
                Timer::Term {
                    uid: uid.to_string(),
                    container,
                    epoch,
                    code,
                },
            );
        }
        self.write_status(uid);
        self.maybe_finish(uid);
    }

    /// The grace period is over: SIGKILL whatever still runs.
    pub(super) fn kill_pod(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.ended || run.kill_at.is_none_or(|k| k > Instant::now()) {
            return;
        }
        let mut simulated = Vec::new();
        for (i, c) in run.containers.iter().enumerate() {
            if !c.running() {
                continue;
            }
            match (c.real, c.pid) {
                (true, Some(pid)) => process::signal(pid, libc::SIGKILL),
                _ => simulated.push((i, c.epoch)),
            }
        }
        for (i, epoch) in simulated {
            self.simulated_exit(uid, i, epoch, Some(137));
        }
    }

    /// A pod being deleted whose containers all stopped: its terminal status, then the
    /// kubelet's final delete with a grace period of 0.
    fn maybe_finish(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if !run.terminating || run.ended || run.containers.iter().any(Ctr::running) {
            return;
        }
        run.ended = true;
        let key = run.key.clone();
        self.write_status(uid);
        let mut st = lock(&self.shared.store);
        // An evicted pod is only reported; one being deleted is confirmed gone.
        if st
            .get(Kind::Pod, &key)
            .is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null())
        {
            st.delete(Kind::Pod, &key, Propagation::Background, Some(0));
        }
    }

    /// The pod object is gone: kill what might still run (a forced delete).
    pub(super) fn kubelet_forget(&mut self, uid: &str) {
        if let Some(run) = self.pods.remove(uid) {
            for c in &run.containers {
                if let Some(pid) = c.pid {
                    process::signal(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// `FakeCluster::release`: held containers exit now, later ones do not hold.
    pub(super) fn release(&mut self, name: &str) {
        self.released.insert(name.to_string());
        for (uid, i, epoch) in self.holds.remove(name).unwrap_or_default() {
            self.simulated_exit(&uid, i, epoch, None);
        }
    }

    /// Writes the pod's status as the kubelet sees it now.
    fn write_status(&mut self, uid: &str) {
        let Some(run) = self.pods.get(uid) else {
            return;
        };
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st
            .get(Kind::Pod, &run.key)
            .filter(|p| meta::uid_of(p) == uid)
            .cloned()
        else {
            return;
        };
        let status = render(run, &pod, shared.config.version);
        if status != pod["status"] {
            pod["status"] = status;
            st.put(Kind::Pod, pod);
        }
    }
}

impl PodRun {
    fn restarts_of(&self, i: usize) -> u32 {
        self.containers[i].restarts
    }
}

/// The pod's status from what runs: phase, conditions (keeping their transition times and
/// conditions others wrote, such as `DisruptionTarget`), IPs and container statuses; for a pod
/// the kubelet evicted, once it stopped, `Evicted` and its own `DisruptionTarget`.
fn render(run: &PodRun, pod: &Value, v: Version) -> Value {
    let ready_to_start = v.pod_ready_to_start();
    let now = meta::now_time();
    let old = &pod["status"];
    let uid = meta::uid_of(pod);
    let phase = run.phase();
    let unready: Vec<&str> = run
        .containers
        .iter()
        .filter(|c| !c.running())
        .map(|c| c.name.as_str())
        .collect();
    let ready = phase == "Running" && unready.is_empty();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let mut conditions = Vec::new();
    if ready_to_start {
        let up = run.sandbox && !terminal;
        conditions.push(cond("PodReadyToStartContainers", tf(up), &now));
    }
    conditions.push(cond("Initialized", "True", &now));
    for ty in ["Ready", "ContainersReady"] {
        let mut c = cond(ty, tf(ready), &now);
        if !ready {
            let (reason, message) = if terminal {
                ("PodCompleted", String::new())
            } else {
                (
                    "ContainersNotReady",
                    format!("containers with unready status: [{}]", unready.join(" ")),
                )
            };
            c["reason"] = json!(reason);
            if !message.is_empty() {
                c["message"] = json!(message);
            }
        }
        conditions.push(c);
    }
    conditions.push(cond("PodScheduled", "True", &now));
    let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    for c in &mut conditions {
        if let Some(o) = old_conditions
            .iter()
            .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
        {
            c["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
    }
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    // Conditions others own come first, in their order, as the kubelet's status merge keeps
    // them.
    let theirs: Vec<Value> = old_conditions
        .iter()
        .filter(|o| !ours.iter().any(|t| o["type"] == *t))
        .cloned()
        .collect();
    conditions.splice(0..0, theirs);
    let evicted = run.evicted && terminal;
    if evicted && v.disruption_target() {
        let mut cond = disruption::condition(Disruption::NodePressure, disruption::NODE_PRESSURE);
        if let Some(old) = old_conditions
            .iter()
            .find(|o| o["type"] == "DisruptionTarget" && o["status"] == "True")
        {
            cond["lastTransitionTime"] = old["lastTransitionTime"].clone();
        }
        conditions.retain(|c| c["type"] != "DisruptionTarget");
        conditions.push(cond);
    }
    let mut status = json!({
        "phase": phase, "conditions": conditions,
        "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": old["startTime"].clone(), "qosClass": "BestEffort",
        "containerStatuses": run.containers.iter().map(|c| c.status(uid)).collect::<Vec<_>>(),
    });
    if evicted {
        status["reason"] = json!("Evicted");
        status["message"] = json!(disruption::NODE_PRESSURE);
    }
    if run.sandbox {
        status["podIP"] = json!(pod_ip(uid));
        status["podIPs"] = json!([{"ip": pod_ip(uid)}]);
    }
    status
}

fn tf(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `10 s * 2^(n-1)` before the n-th restart (the first one is immediate), at most 5 minutes.
fn crash_delay(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    (CRASH_BASE * 2u32.pow(restarts.saturating_sub(1).min(16))).min(CRASH_MAX)
}

/// The termination message, read once the container has terminated: the end of the file (the
/// kubelet reads at most its last 4096 bytes), else with `FallbackToLogsOnError` and a failure
/// the log's tail, each line with its newline.
fn termination_message(policy: &str, file: &str, lines: &[String], code: i32) -> Option<String> {
    if !file.is_empty() {
        return Some(last_bytes(file, MESSAGE_MAX).to_string());
    }
    if policy != "FallbackToLogsOnError" || code == 0 || lines.is_empty() {
        return None;
    }
    let tail = &lines[lines.len().saturating_sub(FALLBACK_LINES)..];
    let text: String = tail.iter().map(|l| format!("{l}\n")).collect();
    Some(last_bytes(&text, FALLBACK_BYTES).to_string())
}

/// The last `max` bytes of `s` (fewer when a character would be cut: the kubelet cuts bytes).
fn last_bytes(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Why a container could not be configured: the fake serves no ConfigMaps or Secrets, so a
/// required reference to one fails as it would with the object missing.
fn config_error(c: &Value) -> Option<String> {
    let refs = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["valueFrom"])
        .flat_map(|v| {
            [
                (&v["configMapKeyRef"], "configmap"),
                (&v["secretKeyRef"], "secret"),
            ]
        })
        .chain(c["envFrom"].as_array().into_iter().flatten().flat_map(|e| {
            [
                (&e["configMapRef"], "configmap"),
                (&e["secretRef"], "secret"),
            ]
        }));
    for (r, what) in refs {
        if r.is_object() && r["optional"].as_bool() != Some(true) {
            return Some(format!(
                "{what} \"{}\" not found",
                r["name"].as_str().unwrap_or("")
            ));
        }
    }
    None
}

fn waiting(reason: &str, image: &str) -> CState {
    let message = match reason {
        "ErrImagePull" => format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
        ),
        "ImagePullBackOff" => format!("Back-off pulling image \"{image}\""),
        "CreateContainerConfigError" => "secret \"missing\" not found".to_string(),
        other => format!("{other} (simulated)"),
    };
    CState::Waiting {
        reason: reason.to_string(),
        message,
    }
}

pub(super) fn pod_ip(uid: &str) -> String {
    let h = uid
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
}

/// A new attempt's log; returns its generation.
fn start_logs(st: &mut Store, uid: &str, container: &str, lines: Vec<String>) -> usize {
    let ts = meta::now_nanos();
    let logs = st
        .logs
        .entry(uid.to_string())
        .or_default()
        .entry(container.to_string())
        .or_default();
    logs.attempts
        .push(lines.into_iter().map(|l| (ts, l)).collect());
    logs.generation += 1;
    if logs.attempts.len() > 2 {
        logs.attempts.remove(0);
    }
    logs.running = true;
    logs.notify.notify_waiters();
    logs.generation
}

/// Appends a line to the current attempt's log.
pub(super) fn append_log(st: &mut Store, uid: &str, container: &str, line: &str) {
    if let Some(logs) = st.logs.get_mut(uid).and_then(|l| l.get_mut(container))
        && let Some(cur) = logs.attempts.last_mut()
    {
        cur.push((meta::now_nanos(), line.to_string()));
        logs.notify.notify_waiters();
    }
}

/// The attempt is over; returns its lines.
fn stop_logs(st: &mut Store, uid: &str, container: &str) -> Vec<String> {
    let Some(logs) = st.logs.get_mut(uid).and_then(|l| l.get_mut(container)) else {
        return Vec::new();
    };
    logs.running = false;
    logs.notify.notify_waiters();
    logs.attempts
        .last()
        .map(|a| a.iter().map(|(_, l)| l.clone()).collect())
        .unwrap_or_default()
}
