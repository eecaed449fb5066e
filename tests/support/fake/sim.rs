//! The simulated control plane: Job controller, kubelet, garbage collector and TTL controller.
//!
//! One task reacts to every store change (batched, so a burst of writes costs one reconcile per
//! Job) and to a timer heap (pod phases, deadlines, TTLs). Nothing polls, so thousands of Jobs
//! cost work only when something happens to them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::meta::{self, Kind};
use super::store::{self, Change, Key, Propagation, Store};
use super::{Shared, lock};

/// Annotation that makes the Job controller and the kubelet leave an object alone (parents).
pub const UNMANAGED: &str = "fake.jobherd.io/unmanaged";

const NODE: &str = "fake-node-1";

/// How a pod's first container behaves; read from its env and image (see the support module doc).
#[derive(Debug, Clone)]
pub struct Fate {
    pub pending: Duration,
    pub run: Duration,
    pub exits: Vec<i32>,
    pub log: Option<Vec<String>>,
    pub waiting: Option<String>,
    pub unschedulable: bool,
}

impl Fate {
    pub fn of(pod: &Value) -> Fate {
        let c = &pod["spec"]["containers"][0];
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
        let exits: Vec<i32> = env
            .get("FAKE_EXIT")
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        let image = c["image"].as_str().unwrap_or("");
        let waiting = env
            .get("FAKE_WAITING")
            .filter(|w| !w.is_empty())
            .map(|w| w.to_string())
            .or_else(|| {
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
        }
    }

    pub fn exit_code(&self, attempt: u32) -> i32 {
        let i = (attempt as usize).min(self.exits.len() - 1);
        self.exits[i]
    }
}

#[derive(Debug)]
enum Timer {
    Start { key: Key, uid: String },
    Exit { key: Key, uid: String, attempt: u32 },
    PullFlip { key: Key, uid: String },
    Reconcile(Key),
    Ttl { key: Key, uid: String },
}

#[derive(Default)]
struct JobTrack {
    succeeded: u32,
    failed: u32,
    counted: HashSet<String>,
    /// Pods the controller deleted itself and must not count again when they disappear.
    expected_gone: HashSet<String>,
    deadline_armed: bool,
    ttl_armed: bool,
}

pub struct Sim {
    shared: Arc<Shared>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_data: HashMap<u64, Timer>,
    seq: u64,
    jobs: HashMap<String, JobTrack>,
    /// pod uid -> index of its first attempt (failed pods of its Job before it was created).
    attempt_base: HashMap<String, u32>,
    /// pods the kubelet has picked up.
    kubelet: HashSet<String>,
    dirty: HashSet<Key>,
}

impl Sim {
    pub fn new(shared: Arc<Shared>) -> Self {
        Sim {
            shared,
            timers: BinaryHeap::new(),
            timer_data: HashMap::new(),
            seq: 0,
            jobs: HashMap::new(),
            attempt_base: HashMap::new(),
            kubelet: HashSet::new(),
            dirty: HashSet::new(),
        }
    }

    pub async fn run(mut self, mut changes: mpsc::UnboundedReceiver<Change>) {
        let mut bookmarks = tokio::time::interval(self.shared.config.bookmark_interval);
        bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self
                .timers
                .peek()
                .map(|t| t.0.0)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                msg = changes.recv() => {
                    let Some(msg) = msg else { return };
                    let mut batch = vec![msg];
                    while let Ok(m) = changes.try_recv() {
                        batch.push(m);
                        if batch.len() > 4096 { break; }
                    }
                    self.on_changes(batch);
                }
                _ = tokio::time::sleep_until(next) => self.fire_timers(),
                _ = bookmarks.tick() => lock(&self.shared.store).send_bookmarks(),
            }
            self.reconcile_dirty();
        }
    }

    fn after(&mut self, delay: Duration, t: Timer) {
        self.seq += 1;
        self.timers
            .push(Reverse((Instant::now() + delay, self.seq)));
        self.timer_data.insert(self.seq, t);
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(t) = self.timer_data.remove(&id) {
                due.push(t);
            }
        }
        for t in due {
            match t {
                Timer::Start { key, uid } => self.kubelet_start(&key, &uid),
                Timer::Exit { key, uid, attempt } => self.kubelet_exit(&key, &uid, attempt),
                Timer::PullFlip { key, uid } => self.pull_flip(&key, &uid),
                Timer::Reconcile(key) => {
                    self.dirty.insert(key);
                }
                Timer::Ttl { key, uid } => {
                    let mut st = lock(&self.shared.store);
                    if st
                        .get(Kind::Job, &key)
                        .is_some_and(|j| meta::uid_of(j) == uid)
                    {
                        st.delete(Kind::Job, &key, Propagation::Background);
                    }
                }
            }
        }
    }

    fn on_changes(&mut self, batch: Vec<Change>) {
        for change in batch {
            match change {
                Change::Upsert { kind, key } => self.on_upsert(kind, key),
                Change::Deleted { kind, obj } => self.on_deleted(kind, &obj),
            }
        }
    }

    fn on_upsert(&mut self, kind: Kind, key: Key) {
        let shared = self.shared.clone();
        let st = lock(&shared.store);
        let Some(obj) = st.get(kind, &key) else {
            return;
        };
        let uid = meta::uid_of(obj).to_string();
        if is_foreground_pending(obj) {
            drop(st);
            self.foreground_step(&uid);
            return;
        }
        match kind {
            Kind::Job => {
                self.dirty.insert(key.clone());
            }
            Kind::Pod => {
                if let Some(job_key) = owning_job(&st, obj) {
                    self.dirty.insert(job_key);
                }
                let managed = meta::annotation(obj, UNMANAGED).is_none();
                let phase = obj["status"]["phase"].as_str().unwrap_or("Pending");
                if managed && !self.kubelet.contains(&uid) && matches!(phase, "Pending" | "") {
                    self.kubelet.insert(uid.clone());
                    drop(st);
                    self.kubelet_begin(&key, &uid);
                }
            }
            _ => {}
        }
    }

    fn on_deleted(&mut self, kind: Kind, obj: &Value) {
        let uid = meta::uid_of(obj).to_string();
        if kind == Kind::Pod {
            self.kubelet.remove(&uid);
            let base = self.attempt_base.remove(&uid);
            if let Some(job_uid) = meta::controller_uid(obj) {
                let phase = obj["status"]["phase"].as_str().unwrap_or("");
                if let Some(track) = self.jobs.get_mut(job_uid) {
                    // A pod that vanishes before finishing counts as failed, as with job tracking
                    // finalizers; unless the controller removed it itself.
                    if !track.expected_gone.remove(&uid)
                        && base.is_some()
                        && !track.counted.contains(&uid)
                    {
                        track.counted.insert(uid.clone());
                        match phase {
                            "Succeeded" => track.succeeded += 1,
                            _ => track.failed += 1,
                        }
                    }
                }
            }
        }
        if kind == Kind::Job {
            self.jobs.remove(&uid);
        }
        let mut st = lock(&self.shared.store);
        if let Some(job_key) = owning_job(&st, obj) {
            self.dirty.insert(job_key);
        }
        // Background garbage collection: dependents whose owners are all gone are deleted.
        for (dkind, dkey) in st.dependents(&uid) {
            let Some(dep) = st.get(dkind, &dkey).cloned() else {
                continue;
            };
            if meta::owner_uids(&dep).iter().any(|o| st.exists_uid(o)) {
                let mut dep = dep;
                store::remove_owner_ref(&mut dep, &uid);
                st.put(dkind, dep);
            } else {
                st.delete(dkind, &dkey, Propagation::Background);
            }
        }
        // Foreground deletion of an owner waits for this dependent.
        let owners = meta::owner_uids(obj);
        drop(st);
        for o in owners {
            let pending = lock(&self.shared.store)
                .by_uid(&o)
                .is_some_and(|(_, v)| is_foreground_pending(v));
            if pending {
                self.foreground_step(&o);
            }
        }
    }

    /// Foreground deletion: delete dependents first; when none is left, drop the finalizer,
    /// which removes the owner.
    fn foreground_step(&mut self, uid: &str) {
        let mut st = lock(&self.shared.store);
        let deps = st.dependents(uid);
        if deps.is_empty() {
            if let Some((kind, owner)) = st.by_uid(uid).map(|(k, v)| (k, v.clone())) {
                let mut owner = owner;
                if let Some(f) = owner["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != store::FOREGROUND);
                }
                st.put(kind, owner);
            }
            return;
        }
        for (dkind, dkey) in deps {
            let pending = st
                .get(dkind, &dkey)
                .is_some_and(|d| !d["metadata"]["deletionTimestamp"].is_null());
            if !pending {
                st.delete(dkind, &dkey, Propagation::Foreground);
            }
        }
    }

    fn reconcile_dirty(&mut self) {
        let dirty: Vec<Key> = self.dirty.drain().collect();
        for key in dirty {
            self.reconcile_job(&key);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Job controller

    fn reconcile_job(&mut self, key: &Key) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(job) = st.get(Kind::Job, key).cloned() else {
            return;
        };
        if meta::annotation(&job, UNMANAGED).is_some()
            || !job["metadata"]["deletionTimestamp"].is_null()
        {
            return;
        }
        let uid = meta::uid_of(&job).to_string();
        let pre_131 = shared.config.pre_131_conditions;
        let spec = &job["spec"];
        let mut status = if job["status"].is_object() {
            job["status"].clone()
        } else {
            json!({})
        };
        let track = self.jobs.entry(uid.clone()).or_insert_with(|| JobTrack {
            succeeded: status["succeeded"].as_u64().unwrap_or(0) as u32,
            failed: status["failed"].as_u64().unwrap_or(0) as u32,
            ..Default::default()
        });

        if finished(&status) {
            if let Some(ttl) = spec["ttlSecondsAfterFinished"].as_u64()
                && !track.ttl_armed
            {
                track.ttl_armed = true;
                drop(st);
                let timer = Timer::Ttl {
                    key: key.clone(),
                    uid,
                };
                self.after(Duration::from_secs(ttl), timer);
            }
            return;
        }

        let pods: Vec<Value> = st
            .dependents(&uid)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Pod)
            .filter_map(|(_, k)| st.get(Kind::Pod, &k).cloned())
            .filter(|p| meta::controller_uid(p) == Some(uid.as_str()))
            .collect();
        for p in &pods {
            let phase = p["status"]["phase"].as_str().unwrap_or("");
            if matches!(phase, "Succeeded" | "Failed")
                && track.counted.insert(meta::uid_of(p).to_string())
            {
                if phase == "Succeeded" {
                    track.succeeded += 1;
                } else {
                    track.failed += 1;
                }
            }
        }
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                matches!(
                    p["status"]["phase"].as_str().unwrap_or("Pending"),
                    "Pending" | "Running"
                )
            })
            .collect();
        let now = meta::now_time();
        let mut active_count = active.len();
        let delete_active = |st: &mut Store, track: &mut JobTrack, count_failed: bool| {
            for p in &active {
                let puid = meta::uid_of(p).to_string();
                track.expected_gone.insert(puid.clone());
                if count_failed && track.counted.insert(puid) {
                    track.failed += 1;
                }
                st.delete(
                    Kind::Pod,
                    &store::key(meta::namespace_of(p), meta::name_of(p)),
                    Propagation::Background,
                );
            }
        };

        let mut pending_timer = None;
        if let Some((reason, message)) = condition_true(&status, "FailureTarget") {
            delete_active(&mut st, track, true);
            active_count = 0;
            add_condition(&mut status, "Failed", &reason, &message, &now);
        } else if let Some((reason, message)) = condition_true(&status, "SuccessCriteriaMet") {
            delete_active(&mut st, track, false);
            active_count = 0;
            add_condition(&mut status, "Complete", &reason, &message, &now);
            status["completionTime"] = json!(now);
        } else if spec["suspend"].as_bool() == Some(true) {
            delete_active(&mut st, track, false);
            active_count = 0;
            if condition_true(&status, "Suspended").is_none() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    &now,
                );
            }
            if let Some(s) = status.as_object_mut() {
                s.remove("startTime");
            }
            track.deadline_armed = false;
        } else {
            if condition_true(&status, "Suspended").is_some() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    &now,
                );
            }
            if status["startTime"].is_null() {
                status["startTime"] = json!(now);
            }
            let limit = spec["backoffLimit"].as_u64().unwrap_or(6) as u32;
            let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
            let restarts: u32 = active
                .iter()
                .flat_map(|p| {
                    p["status"]["containerStatuses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                })
                .map(|c| c["restartCount"].as_u64().unwrap_or(0) as u32)
                .sum();
            let past_on_failure = on_failure
                && if limit == 0 {
                    restarts > 0
                } else {
                    restarts >= limit
                };
            let deadline_exceeded = match (
                spec["activeDeadlineSeconds"].as_u64(),
                parse_time(&status["startTime"]),
            ) {
                (Some(secs), Some(start)) => {
                    let left = start.as_millisecond() + secs as i64 * 1000
                        - jiff::Timestamp::now().as_millisecond();
                    if left <= 0 {
                        true
                    } else {
                        if !track.deadline_armed {
                            track.deadline_armed = true;
                            pending_timer = Some(Duration::from_millis(left as u64));
                        }
                        false
                    }
                }
                _ => false,
            };
            let failure = if deadline_exceeded {
                Some((
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ))
            } else if track.failed > limit || past_on_failure {
                Some((
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ))
            } else {
                None
            };
            let completions = spec["completions"].as_u64().map(|c| c as u32);
            let parallelism = spec["parallelism"].as_u64().unwrap_or(1) as u32;
            let succeeded = track.succeeded;
            let complete = match completions {
                Some(c) => succeeded >= c,
                None => succeeded >= 1 && active.is_empty(),
            };
            if let Some((reason, message)) = failure {
                delete_active(&mut st, track, true);
                active_count = 0;
                let ty = if pre_131 { "Failed" } else { "FailureTarget" };
                add_condition(&mut status, ty, reason, message, &now);
            } else if complete {
                delete_active(&mut st, track, false);
                active_count = 0;
                let message = "Reached expected number of succeeded pods";
                if pre_131 {
                    add_condition(&mut status, "Complete", "", "", &now);
                    status["completionTime"] = json!(now);
                } else {
                    add_condition(
                        &mut status,
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        message,
                        &now,
                    );
                }
            } else {
                let want = match completions {
                    Some(c) => parallelism.min(c.saturating_sub(succeeded)),
                    None if succeeded > 0 => 0,
                    None => parallelism,
                } as usize;
                for _ in active.len()..want {
                    let pod = pod_from_template(&st, &job);
                    if let Ok(created) = st.create(Kind::Pod, pod) {
                        self.attempt_base
                            .insert(meta::uid_of(&created).to_string(), track.failed);
                        active_count += 1;
                    }
                }
            }
        }
        let ready = pods
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["containerStatuses"][0]["ready"] == true
            })
            .count();
        status["active"] = json!(active_count);
        status["ready"] = json!(if active_count == 0 { 0 } else { ready });
        status["succeeded"] = json!(track.succeeded);
        status["failed"] = json!(track.failed);
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
        for zero in ["active", "succeeded", "failed"] {
            if status[zero] == 0
                && let Some(s) = status.as_object_mut()
            {
                s.remove(zero);
            }
        }
        if status != job["status"] {
            let mut job = job;
            job["status"] = status;
            st.put(Kind::Job, job);
        }
        drop(st);
        if let Some(d) = pending_timer {
            self.after(d, Timer::Reconcile(key.clone()));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Kubelet (and scheduler)

    fn kubelet_begin(&mut self, key: &Key, uid: &str) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st.get(Kind::Pod, key).cloned() else {
            return;
        };
        let fate = Fate::of(&pod);
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
            return;
        }
        pod["spec"]["nodeName"] = json!(NODE);
        let waiting = json!({"waiting": {"reason": "ContainerCreating"}});
        pod["status"] = json!({
            "phase": "Pending",
            "conditions": [
                cond("PodReadyToStartContainers", "False", &now),
                cond("Initialized", "True", &now),
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": now, "reason": "ContainersNotReady", "message": "containers with unready status: [main]"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": now, "reason": "ContainersNotReady", "message": "containers with unready status: [main]"},
                cond("PodScheduled", "True", &now),
            ],
            "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
            "startTime": now,
            "containerStatuses": container_statuses(&pod, waiting, None, 0, false),
            "qosClass": "BestEffort",
        });
        st.put(Kind::Pod, pod);
        drop(st);
        self.after(
            fate.pending,
            Timer::Start {
                key: key.clone(),
                uid: uid.to_string(),
            },
        );
    }

    fn kubelet_start(&mut self, key: &Key, uid: &str) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st
            .get(Kind::Pod, key)
            .filter(|p| meta::uid_of(p) == uid)
            .cloned()
        else {
            return;
        };
        let fate = Fate::of(&pod);
        if let Some(reason) = &fate.waiting {
            let image = pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string();
            set_waiting(&mut pod, reason, &image);
            st.put(Kind::Pod, pod);
            drop(st);
            if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                self.after(
                    Duration::from_millis(300),
                    Timer::PullFlip {
                        key: key.clone(),
                        uid: uid.to_string(),
                    },
                );
            }
            return;
        }
        let attempt = self.attempt_base.get(uid).copied().unwrap_or(0);
        let now = meta::now_time();
        let running = json!({"running": {"startedAt": now}});
        pod["status"]["phase"] = json!("Running");
        pod["status"]["podIP"] = json!(pod_ip(uid));
        pod["status"]["podIPs"] = json!([{"ip": pod_ip(uid)}]);
        pod["status"]["containerStatuses"] = container_statuses(&pod, running, None, 0, true);
        for c in pod["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            c["status"] = json!("True");
            c["lastTransitionTime"] = json!(now);
            if let Some(o) = c.as_object_mut() {
                o.remove("reason");
                o.remove("message");
            }
        }
        start_logs(&mut st, &pod, &fate);
        st.put(Kind::Pod, pod);
        drop(st);
        self.after(
            fate.run,
            Timer::Exit {
                key: key.clone(),
                uid: uid.to_string(),
                attempt,
            },
        );
    }

    fn kubelet_exit(&mut self, key: &Key, uid: &str, attempt: u32) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st
            .get(Kind::Pod, key)
            .filter(|p| meta::uid_of(p) == uid)
            .cloned()
        else {
            return;
        };
        let fate = Fate::of(&pod);
        let code = fate.exit_code(attempt);
        if let Some(logs) = st.logs.get_mut(uid) {
            if code != 0
                && let Some(cur) = logs.attempts.last_mut()
            {
                cur.push((meta::now_nanos(), format!("exit code {code}")));
            }
            logs.running = false;
            logs.notify.notify_waiters();
        }
        let now = meta::now_time();
        let started =
            pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].clone();
        let terminated = json!({"terminated": {
            "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": started, "finishedAt": now, "containerID": format!("containerd://{uid}-{attempt}"),
        }});
        let restart_count = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        let restart = match pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if restart {
            let running = json!({"running": {"startedAt": now}});
            pod["status"]["containerStatuses"] =
                container_statuses(&pod, running, Some(terminated), restart_count + 1, true);
            start_logs(&mut st, &pod, &fate);
            st.put(Kind::Pod, pod);
            drop(st);
            self.after(
                fate.run,
                Timer::Exit {
                    key: key.clone(),
                    uid: uid.to_string(),
                    attempt: attempt + 1,
                },
            );
            return;
        }
        pod["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
        pod["status"]["containerStatuses"] =
            container_statuses(&pod, terminated, None, restart_count, false);
        for c in pod["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if matches!(
                c["type"].as_str(),
                Some("Ready" | "ContainersReady" | "PodReadyToStartContainers")
            ) {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(now);
                if c["type"] != "PodReadyToStartContainers" {
                    c["reason"] = json!("PodCompleted");
                }
            }
        }
        st.put(Kind::Pod, pod);
    }

    /// Real kubelets alternate ErrImagePull and ImagePullBackOff while they retry.
    fn pull_flip(&mut self, key: &Key, uid: &str) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(mut pod) = st
            .get(Kind::Pod, key)
            .filter(|p| meta::uid_of(p) == uid)
            .cloned()
        else {
            return;
        };
        let current = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("");
        let next = if current == "ErrImagePull" {
            "ImagePullBackOff"
        } else {
            "ErrImagePull"
        };
        let image = pod["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string();
        set_waiting(&mut pod, next, &image);
        st.put(Kind::Pod, pod);
        drop(st);
        self.after(
            Duration::from_millis(300),
            Timer::PullFlip {
                key: key.clone(),
                uid: uid.to_string(),
            },
        );
    }
}

fn cond(ty: &str, status: &str, now: &str) -> Value {
    json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now})
}

fn pod_ip(uid: &str) -> String {
    let h = uid
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
}

/// Status of every container (all share the first container's fate).
fn container_statuses(
    pod: &Value,
    state: Value,
    last: Option<Value>,
    restarts: u64,
    ready: bool,
) -> Value {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let uid = meta::uid_of(pod);
    json!(containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c["name"], "image": c["image"],
                "imageID": format!("docker.io/library/{}@sha256:0000", c["image"].as_str().unwrap_or("")),
                "ready": ready, "restartCount": restarts, "started": state.get("running").is_some(),
                "state": state, "lastState": last.clone().unwrap_or_else(|| json!({})),
            });
            if state.get("waiting").is_none() {
                s["containerID"] = json!(format!("containerd://{uid}-{restarts}"));
            }
            s
        })
        .collect::<Vec<_>>())
}

fn set_waiting(pod: &mut Value, reason: &str, image: &str) {
    let message = match reason {
        "ErrImagePull" => format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
        ),
        "ImagePullBackOff" => format!("Back-off pulling image \"{image}\""),
        "CreateContainerConfigError" => "secret \"missing\" not found".to_string(),
        "CrashLoopBackOff" => "back-off 10s restarting failed container".to_string(),
        other => format!("{other} (simulated)"),
    };
    let waiting = json!({"waiting": {"reason": reason, "message": message}});
    pod["status"]["containerStatuses"] = container_statuses(pod, waiting, None, 0, false);
}

fn start_logs(st: &mut Store, pod: &Value, fate: &Fate) {
    let uid = meta::uid_of(pod).to_string();
    let lines = fate
        .log
        .clone()
        .unwrap_or_else(|| vec![format!("hello from {}", meta::name_of(pod))]);
    let ts = meta::now_nanos();
    let logs = st.logs.entry(uid).or_default();
    logs.attempts
        .push(lines.into_iter().map(|l| (ts, l)).collect());
    logs.generation += 1;
    if logs.attempts.len() > 2 {
        logs.attempts.remove(0);
    }
    logs.running = true;
    logs.notify.notify_waiters();
}

fn is_foreground_pending(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
        && obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == store::FOREGROUND))
}

fn owning_job(st: &Store, obj: &Value) -> Option<Key> {
    let uid = meta::controller_uid(obj)?;
    match st.by_uid(uid) {
        Some((Kind::Job, job)) => Some(store::key(meta::namespace_of(job), meta::name_of(job))),
        _ => None,
    }
}

fn finished(status: &Value) -> bool {
    condition_true(status, "Complete").is_some() || condition_true(status, "Failed").is_some()
}

fn condition_true(status: &Value, ty: &str) -> Option<(String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty && c["status"] == "True")
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn add_condition(status: &mut Value, ty: &str, reason: &str, message: &str, now: &str) {
    set_condition(status, ty, "True", reason, message, now);
}

fn set_condition(
    status: &mut Value,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let mut c =
        json!({"type": ty, "status": value, "lastProbeTime": now, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(conds) = status["conditions"].as_array_mut() {
        match conds.iter_mut().find(|x| x["type"] == ty) {
            Some(existing) => *existing = c,
            None => conds.push(c),
        }
    }
}

fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

/// A pod as the Job controller creates it: `<job>-<5 chars>`, template labels (which include
/// the controller labels added on Job create), a controller ownerReference.
pub fn pod_from_template(st: &Store, job: &Value) -> Value {
    let ns = meta::namespace_of(job);
    let job_name = meta::name_of(job);
    let tmpl = &job["spec"]["template"];
    let mut name = format!("{job_name}-{}", meta::random_suffix(5));
    while st.get(Kind::Pod, &store::key(ns, &name)).is_some() {
        name = format!("{job_name}-{}", meta::random_suffix(5));
    }
    let mut labels = tmpl["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let uid = meta::uid_of(job);
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", job_name),
        ("controller-uid", uid),
        ("job-name", job_name),
    ] {
        labels[k] = json!(v);
    }
    let mut metadata = json!({
        "name": name, "generateName": format!("{job_name}-"), "namespace": ns, "labels": labels,
        "ownerReferences": [meta::owner_ref(Kind::Job, job, true)],
    });
    if tmpl["metadata"]["annotations"].is_object() {
        metadata["annotations"] = tmpl["metadata"]["annotations"].clone();
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": tmpl["spec"],
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    })
}
