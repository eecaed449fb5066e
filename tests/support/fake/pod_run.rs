//! A pod as the kubelet runs it (its containers' states, attempts and restarts), and the
//! status the kubelet reports for it: phase, conditions, container statuses, termination
//! messages, waiting reasons.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::disruption::{self, Disruption};
use super::fate::Fate;
use super::meta;
use super::sim::cond;
use super::store::Key;
use super::versions::Version;

/// The kubelet's restart back-off: the first restart is immediate, then 10 s, doubling, at
/// most 5 minutes (real time; scaled by the cluster's time scale).
const CRASH_BASE: Duration = Duration::from_secs(10);
const CRASH_MAX: Duration = Duration::from_secs(300);

/// A termination message is at most this long (the kubelet's limit per container).
const MESSAGE_MAX: usize = 4096;
/// `FallbackToLogsOnError`: the log's last 80 lines, at most 2048 bytes.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

/// Why the kubelet stopped a pod on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeletStop {
    /// Node-pressure eviction (`FakeCluster::disrupt(.., "TerminationByKubelet")`).
    Evicted,
    /// The pod's own `spec.activeDeadlineSeconds` passed.
    Deadline,
}

impl KubeletStop {
    /// The pod's `status.reason` and `status.message` once it stopped.
    fn reason(self) -> (&'static str, &'static str) {
        match self {
            KubeletStop::Evicted => ("Evicted", disruption::NODE_PRESSURE),
            KubeletStop::Deadline => (
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum CState {
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
    pub(super) name: String,
    pub(super) image: String,
    pub(super) spec: Value,
    pub(super) fate: Fate,
    /// jobherd's image: the real binary runs (never for an init container).
    pub(super) real: bool,
    /// An init container: it runs before the others, one after the other.
    pub(super) init: bool,
    /// Bumped on every change of attempt or state, so stale timers are ignored.
    pub(super) epoch: u64,
    pub(super) restarts: u32,
    pub(super) state: CState,
    pub(super) last: Value,
    pub(super) pid: Option<u32>,
    pub(super) ever_started: bool,
    /// The pod is being deleted: this container will not (re)start.
    pub(super) stopped: bool,
}

impl Ctr {
    pub(super) fn running(&self) -> bool {
        matches!(self.state, CState::Running { .. })
    }

    /// Will not run again: terminated for good, or stopped before it could run.
    pub(super) fn done(&self, policy: &str) -> bool {
        match &self.state {
            CState::Terminated { code, .. } => {
                self.stopped
                    || policy == "Never"
                    || (*code == 0 && (self.init || policy == "OnFailure"))
            }
            CState::Running { .. } => false,
            _ => self.stopped,
        }
    }

    /// An init container that completed (exit 0).
    pub(super) fn completed(&self) -> bool {
        matches!(self.state, CState::Terminated { code: 0, .. })
    }

    pub(super) fn status(&self, pod_uid: &str) -> Value {
        let state = match &self.state {
            CState::Creating => json!({"waiting": {"reason": "ContainerCreating"}}),
            CState::Waiting { reason, message } if message.is_empty() => {
                json!({"waiting": {"reason": reason}})
            }
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

    pub(super) fn container_id(&self, pod_uid: &str) -> String {
        format!("containerd://{pod_uid}-{}-{}", self.name, self.restarts)
    }
}

/// A pod as the kubelet runs it.
pub struct PodRun {
    pub(super) key: Key,
    pub(super) attempt_base: u32,
    pub(super) policy: String,
    /// Init containers first (`inits` of them), then the others.
    pub(super) containers: Vec<Ctr>,
    pub(super) inits: usize,
    /// The sandbox is up: containers may run.
    pub(super) sandbox: bool,
    pub(super) terminating: bool,
    /// When SIGKILL comes for what still runs.
    pub(super) kill_at: Option<Instant>,
    /// The end was confirmed to the API (grace period 0), or reported (an evicted pod).
    pub(super) ended: bool,
    /// Stopped by the kubelet itself (node-pressure eviction, the pod's own
    /// `activeDeadlineSeconds`): ends `Failed` with the reason, and stays.
    pub(super) stopped_by: Option<KubeletStop>,
}

impl PodRun {
    pub(super) fn phase(&self) -> &'static str {
        if !self.sandbox && !self.terminating {
            return "Pending";
        }
        let mains = &self.containers[self.inits..];
        if self.containers.iter().all(|c| c.done(&self.policy)) {
            if self.stopped_by.is_some() {
                return "Failed";
            }
            let all_ok = self.containers.iter().all(Ctr::completed);
            return if all_ok { "Succeeded" } else { "Failed" };
        }
        if !self.initialized() {
            // A `Never` pod whose init container failed has failed: the others never run.
            let failed = self.containers[..self.inits]
                .iter()
                .any(|c| c.done(&self.policy) && !c.completed());
            return if failed { "Failed" } else { "Pending" };
        }
        let unstarted = mains
            .iter()
            .any(|c| !c.ever_started && !matches!(c.state, CState::Terminated { .. }));
        if unstarted { "Pending" } else { "Running" }
    }

    /// Every init container completed.
    pub(super) fn initialized(&self) -> bool {
        self.containers[..self.inits].iter().all(Ctr::completed)
    }
}

impl PodRun {
    pub(super) fn restarts_of(&self, i: usize) -> u32 {
        self.containers[i].restarts
    }
}

/// The pod's status from what runs: phase, conditions, IPs and the statuses of its init and
/// other containers; for a pod the kubelet stopped, once it stopped, the reason.
pub(super) fn render(run: &PodRun, pod: &Value, v: Version) -> Value {
    let old = &pod["status"];
    let uid = meta::uid_of(pod);
    let phase = run.phase();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let statuses = |list: &[Ctr]| list.iter().map(|c| c.status(uid)).collect::<Vec<_>>();
    let mut status = json!({
        "phase": phase, "conditions": conditions(run, old, phase, v),
        "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": old["startTime"].clone(), "qosClass": "BestEffort",
        "containerStatuses": statuses(&run.containers[run.inits..]),
    });
    if run.inits > 0 {
        status["initContainerStatuses"] = json!(statuses(&run.containers[..run.inits]));
    }
    if let Some(why) = run.stopped_by.filter(|_| terminal) {
        let (reason, message) = why.reason();
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    if run.sandbox {
        status["podIP"] = json!(pod_ip(uid));
        status["podIPs"] = json!([{"ip": pod_ip(uid)}]);
    }
    status
}

/// The pod's conditions: the kubelet's own (keeping their transition times), after those
/// others wrote, such as `DisruptionTarget`, in their order, as the kubelet's status merge
/// keeps them; for a pod the kubelet evicted, once it stopped, its own `DisruptionTarget`.
fn conditions(run: &PodRun, old: &Value, phase: &str, v: Version) -> Vec<Value> {
    let now = meta::now_time();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let mut conditions = kubelet_conditions(run, phase, v, &now);
    let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    for c in &mut conditions {
        if let Some(o) = old_conditions
            .iter()
            .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
        {
            c["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
    }
    let ours: Vec<Value> = conditions.iter().map(|c| c["type"].clone()).collect();
    let theirs: Vec<Value> = old_conditions
        .iter()
        .filter(|o| !ours.contains(&o["type"]))
        .cloned()
        .collect();
    conditions.splice(0..0, theirs);
    let evicted = terminal && run.stopped_by == Some(KubeletStop::Evicted);
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
    conditions
}

/// `PodReadyToStartContainers` (1.29+), `Initialized`, `Ready`, `ContainersReady` and
/// `PodScheduled`, as they are now.
fn kubelet_conditions(run: &PodRun, phase: &str, v: Version, now: &str) -> Vec<Value> {
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let mut conditions = Vec::new();
    if v.pod_ready_to_start() {
        let up = run.sandbox && !terminal;
        conditions.push(cond("PodReadyToStartContainers", tf(up), now));
    }
    let mut initialized = cond("Initialized", tf(run.initialized()), now);
    if !run.initialized() {
        let pending = names(&run.containers[..run.inits], |c| !c.completed());
        initialized["reason"] = json!("ContainersNotInitialized");
        initialized["message"] = json!(format!("containers with incomplete status: [{pending}]"));
    }
    conditions.push(initialized);
    let unready = names(&run.containers[run.inits..], |c| !c.running());
    let ready = phase == "Running" && unready.is_empty();
    for ty in ["Ready", "ContainersReady"] {
        let mut c = cond(ty, tf(ready), now);
        if terminal {
            c["reason"] = json!("PodCompleted");
        } else if !ready {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!("containers with unready status: [{unready}]"));
        }
        conditions.push(c);
    }
    conditions.push(cond("PodScheduled", "True", now));
    conditions
}

/// The names of the containers that `pick` picks, as the kubelet lists them in a message.
fn names(list: &[Ctr], pick: impl Fn(&Ctr) -> bool) -> String {
    let picked: Vec<&str> = list
        .iter()
        .filter(|c| pick(c))
        .map(|c| c.name.as_str())
        .collect();
    picked.join(" ")
}

fn tf(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `10 s * 2^(n-1)` before the n-th restart (the first one is immediate), at most 5 minutes.
pub(super) fn crash_delay(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    (CRASH_BASE * 2u32.pow(restarts.saturating_sub(1).min(16))).min(CRASH_MAX)
}

/// The termination message, read once the container has terminated: the end of the file (the
/// kubelet reads at most its last 4096 bytes), else with `FallbackToLogsOnError` and a failure
/// the log's tail, each line with its newline.
pub(super) fn termination_message(
    policy: &str,
    file: &str,
    lines: &[String],
    code: i32,
) -> Option<String> {
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

pub(super) fn waiting(reason: &str, image: &str) -> CState {
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
