//! The simulated control plane's event loop: it routes store changes to the Job controller
//! (`jobs.rs`), the kubelet (`kubelet.rs`), the garbage collector and the TTL controller (here),
//! and runs their timers.
//!
//! One task reacts to every store change (batched, so a burst of writes costs one reconcile per
//! Job), to a timer heap (pod phases, back-offs, deadlines, TTLs) and to control messages (real
//! processes that exited, held containers released). Nothing polls, so thousands of Jobs cost
//! work only when something happens to them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::jobs::JobTrack;
use super::meta::{self, Kind};
use super::pod_run::PodRun;
use super::store::{self, Change, Key, Propagation, Store};
use super::{Shared, lock};

/// Annotation that makes the Job controller and the kubelet leave an object alone (parents).
pub const UNMANAGED: &str = "fake.jobherd.io/unmanaged";

/// What the controllers are told besides store changes.
#[derive(Debug)]
pub enum Control {
    /// `FakeCluster::release`: containers holding on this name exit now.
    Release(String),
    /// The kubelet evicts this pod under node pressure (`FakeCluster::disrupt`).
    Evict { uid: String },
    /// A real process (a container running jobherd) ended, its output fully read.
    Exited {
        uid: String,
        container: usize,
        epoch: u64,
        code: i32,
    },
}

#[derive(Debug)]
pub enum Timer {
    /// The pod's sandbox is ready: start its containers.
    Start {
        uid: String,
    },
    /// A simulated container's attempt ends by itself.
    Exit {
        uid: String,
        container: usize,
        epoch: u64,
    },
    /// A simulated container reacts to SIGTERM (or to SIGKILL at the end of the grace period).
    Term {
        uid: String,
        container: usize,
        epoch: u64,
        code: i32,
    },
    /// CrashLoopBackOff is over: start the container again.
    Restart {
        uid: String,
        container: usize,
        epoch: u64,
    },
    /// The kubelet retries a pull: ErrImagePull and ImagePullBackOff alternate.
    PullFlip {
        uid: String,
        container: usize,
        epoch: u64,
    },
    /// The grace period of a pod being deleted is over: SIGKILL what still runs.
    Kill {
        uid: String,
    },
    /// The pod's own `activeDeadlineSeconds` is over: the kubelet stops it.
    PodDeadline {
        uid: String,
    },
    Reconcile(Key),
    Ttl {
        key: Key,
        uid: String,
    },
}

pub struct Sim {
    pub(super) shared: Arc<Shared>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_data: HashMap<u64, Timer>,
    seq: u64,
    pub(super) jobs: HashMap<String, JobTrack>,
    /// pod uid -> index of its first attempt (failed pods of its Job before it was created).
    pub(super) attempt_base: HashMap<String, u32>,
    /// What the kubelet runs, by pod uid.
    pub(super) pods: HashMap<String, PodRun>,
    /// Hold name -> containers waiting for `release`.
    pub(super) holds: HashMap<String, Vec<(String, usize, u64)>>,
    pub(super) released: HashSet<String>,
    /// Pods whose `configMap` volumes cannot be mounted yet.
    pub(super) blocked: HashSet<String>,
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
            pods: HashMap::new(),
            holds: HashMap::new(),
            released: HashSet::new(),
            blocked: HashSet::new(),
            dirty: HashSet::new(),
        }
    }

    pub async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<Change>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
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
                msg = control.recv() => {
                    let Some(msg) = msg else { return };
                    self.on_control(msg);
                }
                _ = tokio::time::sleep_until(next) => self.fire_timers(),
                _ = bookmarks.tick() => lock(&self.shared.store).send_bookmarks(),
            }
            // Writes made while reacting are changes too; drain them before the next select so
            // that one event's consequences settle together.
            while let Ok(m) = changes.try_recv() {
                self.on_changes(vec![m]);
            }
            self.reconcile_dirty();
        }
    }

    pub(super) fn after(&mut self, delay: Duration, t: Timer) {
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
                Timer::Start { uid } => self.kubelet_start(&uid),
                Timer::Exit {
                    uid,
                    container,
                    epoch,
                } => self.simulated_exit(&uid, container, epoch, None),
                Timer::Term {
                    uid,
                    container,
                    epoch,
                    code,
                } => self.simulated_exit(&uid, container, epoch, Some(code)),
                Timer::Restart {
                    uid,
                    container,
                    epoch,
                } => self.restart_container(&uid, container, epoch),
                Timer::PullFlip {
                    uid,
                    container,
                    epoch,
                } => self.pull_flip(&uid, container, epoch),
                Timer::Kill { uid } => self.kill_pod(&uid),
                Timer::PodDeadline { uid } => self.kubelet_deadline(&uid),
                Timer::Reconcile(key) => {
                    self.dirty.insert(key);
                }
                Timer::Ttl { key, uid } => {
                    let mut st = lock(&self.shared.store);
                    if st
                        .get(Kind::Job, &key)
                        .is_some_and(|j| meta::uid_of(j) == uid)
                    {
                        // The TTL-after-finished controller deletes in the foreground.
                        st.delete(Kind::Job, &key, Propagation::Foreground, None);
                    }
                }
            }
        }
    }

    fn on_control(&mut self, msg: Control) {
        match msg {
            Control::Release(name) => self.release(&name),
            Control::Evict { uid } => self.kubelet_evict(&uid),
            Control::Exited {
                uid,
                container,
                epoch,
                code,
            } => self.container_exited(&uid, container, epoch, code),
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
                let pending = matches!(
                    obj["status"]["phase"].as_str().unwrap_or("Pending"),
                    "Pending" | ""
                );
                let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
                let known = self.pods.contains_key(&uid);
                drop(st);
                if deleting {
                    self.kubelet_terminate(&key, &uid);
                } else if managed && !known && pending {
                    self.kubelet_admit(&key, &uid);
                }
            }
            Kind::ConfigMap => {
                let ns = key.0.clone();
                drop(st);
                self.config_map_changed(&ns);
            }
            _ => {}
        }
    }

    fn on_deleted(&mut self, kind: Kind, obj: &Value) {
        let uid = meta::uid_of(obj).to_string();
        if kind == Kind::Pod {
            self.kubelet_forget(&uid);
            self.blocked.remove(&uid);
            self.attempt_base.remove(&uid);
            if let Some(job_uid) = meta::controller_uid(obj) {
                let job_uid = job_uid.to_string();
                self.pod_vanished(&job_uid, &uid, obj);
            }
        }
        if kind == Kind::Job {
            self.jobs.remove(&uid);
            lock(&self.shared.cost).forget(&uid);
        }
        let mut st = lock(&self.shared.store);
        if let Some(job_key) = owning_job(&st, obj) {
            self.dirty.insert(job_key);
        }
        // Background garbage collection: dependents whose owners are all gone are deleted
        // (pods gracefully, with their own grace period).
        let dependents = st.dependents(&uid);
        for (dkind, dkey) in &dependents {
            let Some(dep) = st.get(*dkind, dkey).cloned() else {
                continue;
            };
            if meta::owner_uids(&dep).iter().any(|o| st.exists_uid(o)) {
                let mut dep = dep;
                store::remove_owner_ref(&mut dep, &uid);
                st.put(*dkind, dep);
            } else {
                st.delete(*dkind, dkey, Propagation::Background, None);
            }
        }
        if kind == Kind::Job {
            // The Job controller lets the pods of a Job that is gone go: their job-tracking
            // finalizer no longer protects any count.
            let pods: Vec<Value> = dependents
                .iter()
                .filter(|(k, _)| *k == Kind::Pod)
                .filter_map(|(_, k)| st.get(Kind::Pod, k).cloned())
                .filter(|p| meta::controller_uid(p) == Some(uid.as_str()))
                .collect();
            let released = super::job_pods::strip_tracking(&mut st, &pods);
            lock(&self.shared.cost).released_orphans(released);
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
        let mut pods = Vec::new();
        for (dkind, dkey) in deps {
            let pending = st
                .get(dkind, &dkey)
                .is_some_and(|d| !d["metadata"]["deletionTimestamp"].is_null());
            if !pending {
                st.delete(dkind, &dkey, Propagation::Foreground, None);
            }
            if dkind == Kind::Pod
                && let Some(p) = st.get(Kind::Pod, &dkey)
            {
                pods.push(p.clone());
            }
        }
        // The Job controller lets the pods of a Job being deleted go (see reconcile_job).
        let released = super::job_pods::strip_tracking(&mut st, &pods);
        lock(&self.shared.cost).released_orphans(released);
    }

    fn reconcile_dirty(&mut self) {
        let dirty: Vec<Key> = self.dirty.drain().collect();
        for key in dirty {
            self.reconcile_job(&key);
        }
    }
}

pub(super) fn cond(ty: &str, status: &str, now: &str) -> Value {
    json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now})
}

pub(super) fn is_foreground_pending(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
        && obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == store::FOREGROUND))
}

pub(super) fn owning_job(st: &Store, obj: &Value) -> Option<Key> {
    let uid = meta::controller_uid(obj)?;
    match st.by_uid(uid) {
        Some((Kind::Job, job)) => Some(store::key(meta::namespace_of(job), meta::name_of(job))),
        _ => None,
    }
}
