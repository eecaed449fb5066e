//! The kubelet (with the scheduler's binding): runs each container of a pod by the fate written
//! in its env, or, for jobherd's own image, as the real binary (`process.rs`); restarts failed
//! containers with CrashLoopBackOff; stops the containers of a pod being deleted (SIGTERM, then
//! SIGKILL when the grace period is over); writes pod status, logs and termination messages;
//! and confirms the end of a deleted pod with a grace period of 0.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::configmap;
use super::fate::{self, Fate};
use super::indexed;
use super::lock;
use super::meta::{self, Kind};
use super::pod_run::{
    CState, Ctr, KubeletStop, PodRun, crash_delay, render, termination_message, waiting,
};
use super::process;
use super::sim::{Sim, Timer, UNMANAGED};
use super::store::{Key, Propagation, Store};

pub const NODE: &str = "fake-node-1";

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
        let base = self.attempt_base.get(uid).copied().unwrap_or(0);
        let run = new_run(key, &pod, base);
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
        let deadline = pod["spec"]["activeDeadlineSeconds"].as_u64();
        st.put(Kind::Pod, pod);
        drop(st);
        self.pods.insert(uid.to_string(), run);
        self.after(
            fate.pending,
            Timer::Start {
                uid: uid.to_string(),
            },
        );
        if let Some(secs) = deadline {
            // From the pod's startTime, which is now; a user's duration, never scaled.
            let uid = uid.to_string();
            self.after(Duration::from_secs(secs), Timer::PodDeadline { uid });
        }
    }

    /// The sandbox is due: once the pod's `configMap` volumes can be mounted (else it waits,
    /// `ContainerCreating`, with a `FailedMount` Event), the first init container starts, or
    /// every container when there is none.
    pub(super) fn kubelet_start(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.terminating || run.sandbox {
            return;
        }
        let key = run.key.clone();
        if let Some(problem) = self.mount_problem(uid, &key) {
            if self.blocked.insert(uid.to_string()) {
                let mut st = lock(&self.shared.store);
                kubelet_event(&mut st, &key, "FailedMount", &problem);
            }
            return;
        }
        self.blocked.remove(uid);
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        run.sandbox = true;
        let inits = run.inits;
        if inits == 0 {
            for i in 0..run.containers.len() {
                self.start_container(uid, i);
            }
        } else {
            for c in &mut run.containers[1..] {
                c.state = CState::Waiting {
                    reason: "PodInitializing".into(),
                    message: String::new(),
                };
            }
            self.start_container(uid, 0);
        }
        self.write_status(uid);
    }

    fn mount_problem(&self, uid: &str, key: &Key) -> Option<String> {
        let st = lock(&self.shared.store);
        let pod = st.get(Kind::Pod, key).filter(|p| meta::uid_of(p) == uid)?;
        configmap::mount_problem(&st, pod)
    }

    /// A ConfigMap of `ns` changed: pods waiting for it to mount, and containers whose
    /// environment could not be built, try again (the real kubelet does within seconds).
    pub(super) fn config_map_changed(&mut self, ns: &str) {
        let waiting: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, run)| run.key.0 == ns)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in waiting {
            if self.blocked.contains(&uid) {
                self.kubelet_start(&uid);
                continue;
            }
            let Some(run) = self.pods.get(&uid) else {
                continue;
            };
            let stuck: Vec<usize> = (0..run.containers.len())
                .filter(|i| {
                    matches!(&run.containers[*i].state,
                        CState::Waiting { reason, .. } if reason == "CreateContainerConfigError")
                })
                .collect();
            for i in &stuck {
                self.start_container(&uid, *i);
            }
            if !stuck.is_empty() {
                self.write_status(&uid);
            }
        }
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
        let st = lock(&shared.store);
        let Some(pod) = st.get(Kind::Pod, &key).cloned() else {
            return;
        };
        if let Some(message) = configmap::env_problem(&st, &pod, &c.spec) {
            c.state = CState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message,
            };
            return;
        }
        if let Some(reason) = c.fate.waiting.clone().filter(|_| !c.real) {
            c.state = waiting(&reason, &c.image);
            if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                let (uid, container) = (uid.to_string(), i);
                let flip = Timer::PullFlip {
                    uid,
                    container,
                    epoch,
                };
                self.after(Duration::from_millis(300), flip);
            }
            return;
        }
        c.ever_started = true;
        let real = c.real;
        drop(st);
        if real {
            self.spawn_real(uid, i, &pod);
        } else {
            self.run_simulated(uid, i, &pod);
        }
    }

    /// A simulated container runs: its log, then its exit when its time is up (or released).
    fn run_simulated(&mut self, uid: &str, i: usize, pod: &Value) {
        let shared = self.shared.clone();
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        let lines = c
            .fate
            .log
            .clone()
            .unwrap_or_else(|| vec![format!("hello from {}", meta::name_of(pod))]);
        start_logs(&mut lock(&shared.store), uid, &c.name, lines);
        c.state = CState::Running {
            since: meta::now_time(),
        };
        let epoch = c.epoch;
        match c.fate.hold.clone() {
            Some(name) if !self.released.contains(&name) => {
                let held = (uid.to_string(), i, epoch);
                self.holds.entry(name).or_default().push(held);
            }
            // `FAKE_INSTANT`: it ends before its running state is ever written.
            _ if c.fate.instant => self.simulated_exit(uid, i, epoch, None),
            _ => {
                let (after, uid, container) = (c.fate.run, uid.to_string(), i);
                self.after(
                    after,
                    Timer::Exit {
                        uid,
                        container,
                        epoch,
                    },
                );
            }
        }
    }

    /// A container of jobherd's image runs the real binary (`process.rs`).
    fn spawn_real(&mut self, uid: &str, i: usize, pod: &Value) {
        let shared = self.shared.clone();
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let c = &mut run.containers[i];
        let now = meta::now_time();
        let mut st = lock(&shared.store);
        let env = process::container_env(&st, pod, &c.spec);
        let log_gen = start_logs(&mut st, uid, &c.name, Vec::new());
        drop(st);
        match process::spawn(&shared, pod, &c.spec, env, (i, c.epoch, log_gen)) {
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
                self.after_end(uid, i);
            }
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
        // Only a message template needs the environment (resolving it reads volumes).
        let env = st
            .get(Kind::Pod, &run.key)
            .filter(|_| !c.real && c.fate.message.is_some())
            .map(|pod| process::container_env(&st, pod, &c.spec))
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
        let init = c.init;
        // An init container runs again only after a failure, and never in a `Never` pod.
        let restart = !terminating
            && match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => !init || code != 0,
            };
        if !restart {
            if init && code == 0 && !terminating {
                self.after_init(uid, i);
            }
            self.write_status(uid);
            self.maybe_finish(uid);
            return;
        }
        // The terminated state is reported before the kubelet acts on it.
        self.write_status(uid);
        self.crash_loop(uid, i, &key);
    }

    /// A failed container starts again: at once the first time, then after CrashLoopBackOff.
    fn crash_loop(&mut self, uid: &str, i: usize, key: &Key) {
        let scale = self.shared.config.time_scale;
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

    /// Init container `i` completed: the next one starts, or after the last, the others.
    fn after_init(&mut self, uid: &str, i: usize) {
        let Some(run) = self.pods.get(uid) else {
            return;
        };
        let next = if i + 1 < run.inits {
            i + 1..i + 2
        } else {
            run.inits..run.containers.len()
        };
        for j in next {
            self.start_container(uid, j);
        }
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
        self.kubelet_stop(uid, KubeletStop::Evicted);
    }

    /// The pod's `activeDeadlineSeconds` (counted from its `startTime`) passed: the kubelet
    /// stops it the same way; it ends `Failed`, reason `DeadlineExceeded`.
    pub(super) fn kubelet_deadline(&mut self, uid: &str) {
        self.kubelet_stop(uid, KubeletStop::Deadline);
    }

    fn kubelet_stop(&mut self, uid: &str, why: KubeletStop) {
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
        if run.terminating || run.ended || matches!(run.phase(), "Succeeded" | "Failed") {
            return;
        }
        run.stopped_by = Some(why);
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

/// What the kubelet runs of a new pod: its init containers (simulated, whatever their image),
/// then the others.
fn new_run(key: &Key, pod: &Value, attempt_base: u32) -> PodRun {
    let index = fate::index_of(pod);
    let spec = &pod["spec"];
    let ctr = |c: &Value, init: bool| Ctr {
        name: c["name"].as_str().unwrap_or("").to_string(),
        image: c["image"].as_str().unwrap_or("").to_string(),
        fate: Fate::of_container(c, index),
        real: !init && process::is_jobherd_image(c["image"].as_str().unwrap_or("")),
        init,
        spec: c.clone(),
        epoch: 0,
        restarts: 0,
        state: CState::Creating,
        last: json!({}),
        pid: None,
        ever_started: false,
        stopped: false,
    };
    let inits = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mains = spec["containers"].as_array().cloned().unwrap_or_default();
    let containers: Vec<Ctr> = (inits.iter().map(|c| ctr(c, true)))
        .chain(mains.iter().map(|c| ctr(c, false)))
        .collect();
    PodRun {
        key: key.clone(),
        attempt_base,
        policy: spec["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string(),
        containers,
        inits: inits.len(),
        sandbox: false,
        terminating: false,
        kill_at: None,
        ended: false,
        stopped_by: None,
    }
}

/// An Event the kubelet records about a pod (core/v1, as client-go's recorder).
fn kubelet_event(st: &mut Store, key: &Key, reason: &str, message: &str) {
    let Some(pod) = st.get(Kind::Pod, key) else {
        return;
    };
    let now = meta::now_time();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{:x}", key.1, fastrand::u64(..)), "namespace": key.0},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": key.1, "namespace": key.0,
            "uid": meta::uid_of(pod), "resourceVersion": pod["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "source": {"component": "kubelet", "host": NODE},
        "firstTimestamp": now, "lastTimestamp": now, "reportingComponent": "kubelet",
        "reportingInstance": NODE,
    });
    let _ = st.create(Kind::CoreEvent, event);
}
