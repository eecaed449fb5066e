//! The fake API server's state: objects, the resourceVersion counter, watch history and
//! subscribers, the owner index the garbage collector walks, and pod logs.
//!
//! Everything lives behind one `std::sync::Mutex` so that a write, its resourceVersion and its
//! delivery to every watcher happen atomically and in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::meta::{self, ApiError, FieldSelector, Kind, LabelSelector};

/// `(namespace, name)`.
pub type Key = (String, String);

pub fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

struct HistoryEvent {
    rv: u64,
    kind: Kind,
    ty: EventType,
    prev: Option<Arc<Value>>,
    obj: Arc<Value>,
}

/// What a watch stream receives: one encoded line, or the order to cut the connection.
pub enum WatchMsg {
    Line(Bytes),
    Abort,
}

struct Watcher {
    id: u64,
    kind: Kind,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

/// What a watch asks for.
pub struct WatchSpec {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
    /// `None` (or "0"): synthetic ADDED events for the current state first.
    pub resource_version: Option<u64>,
    /// `sendInitialEvents=true`: the initial state ends with a bookmark annotated
    /// `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
}

/// A change the simulated controllers react to.
#[derive(Debug, Clone)]
pub enum Change {
    Upsert { kind: Kind, key: Key },
    Deleted { kind: Kind, obj: Arc<Value> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Orphan" => Some(Propagation::Orphan),
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            _ => None,
        }
    }

    /// batch/v1 Jobs still orphan their pods by default through the API; everything else cascades.
    pub fn default_for(kind: Kind) -> Self {
        if kind == Kind::Job {
            Propagation::Orphan
        } else {
            Propagation::Background
        }
    }
}

/// One version of an object as the store committed it (history recording, opt-in).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub rv: u64,
    pub at: Instant,
    pub time: jiff::Timestamp,
    pub kind: Kind,
    pub ty: EventType,
    pub obj: Arc<Value>,
}

/// One container's log lines, per attempt. A container keeps its current and previous attempts.
#[derive(Default)]
pub struct PodLogs {
    pub attempts: Vec<Vec<(jiff::Timestamp, String)>>,
    /// How many attempts have started in total (`attempts` keeps only the last two).
    pub generation: usize,
    /// The current attempt's container is running (more lines may come).
    pub running: bool,
    pub notify: Arc<Notify>,
}

pub const FOREGROUND: &str = "foregroundDeletion";

/// kube-apiserver's own limit on a request body (`MaxRequestBodyBytes`, 3 MiB): past it, 413.
pub const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;
/// etcd's default `--max-request-bytes` (1.5 MiB).
const ETCD_MAX_REQUEST: usize = 1536 * 1024;
/// etcd's Go client's default `MaxCallSendMsgSize` (2 MiB), which kube-apiserver keeps.
const ETCD_CLIENT_MAX_SEND: usize = 2 * 1024 * 1024;

/// Whether etcd takes the object. kube-apiserver does not map etcd's refusal to a status of
/// its own (`isTooLargeError` in `endpoints/handlers/rest.go` only retries without
/// `managedFields`), so the client gets a 500 whose message is etcd's, without a reason. The
/// object's compact JSON stands for its protobuf encoding, which is a little smaller.
pub fn fits_in_etcd(obj: &Value) -> Result<(), ApiError> {
    let size = serde_json::to_vec(obj).map_or(0, |v| v.len());
    let message = if size > ETCD_CLIENT_MAX_SEND {
        format!(
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max \
             ({size} vs. {ETCD_CLIENT_MAX_SEND})"
        )
    } else if size > ETCD_MAX_REQUEST {
        "etcdserver: request is too large".to_string()
    } else {
        return Ok(());
    };
    Err(ApiError::new(500, "", message))
}

/// pod uid -> container name -> logs.
pub type LogMap = HashMap<String, BTreeMap<String, PodLogs>>;

pub struct Store {
    rv: u64,
    objects: [BTreeMap<Key, Value>; Kind::ALL.len()],
    uids: HashMap<String, (Kind, Key)>,
    /// owner uid -> objects naming it in `ownerReferences` (kept even after the owner is gone,
    /// which is exactly what the garbage collector needs).
    dependents: HashMap<String, BTreeSet<(Kind, Key)>>,
    history: VecDeque<HistoryEvent>,
    /// Watches from a resourceVersion older than this answer 410 Expired.
    compacted_rv: u64,
    window: usize,
    watchers: Vec<Watcher>,
    next_watcher: u64,
    changes: mpsc::UnboundedSender<Change>,
    /// Every committed version, when the cluster records history.
    recorded: Option<Vec<Recorded>>,
    /// pod uid -> container -> logs; removed with the pod, so reading them afterwards is a 404.
    pub logs: LogMap,
    /// The logs of deleted pods, kept for tests when history is recorded (the API serves none).
    pub retired_logs: LogMap,
}

impl Store {
    pub fn new(window: usize, changes: mpsc::UnboundedSender<Change>, record: bool) -> Self {
        Store {
            rv: 1,
            objects: Default::default(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            history: VecDeque::new(),
            compacted_rv: 0,
            window: window.max(1),
            watchers: Vec::new(),
            next_watcher: 0,
            changes,
            recorded: record.then(Vec::new),
            logs: HashMap::new(),
            retired_logs: HashMap::new(),
        }
    }

    /// Whether every version is recorded.
    pub fn records(&self) -> bool {
        self.recorded.is_some()
    }

    /// Recorded versions (empty unless the cluster records history).
    pub fn recorded(&self) -> &[Recorded] {
        self.recorded.as_deref().unwrap_or_default()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    pub fn get(&self, kind: Kind, key: &Key) -> Option<&Value> {
        self.objects[kind.index()].get(key)
    }

    pub fn by_uid(&self, uid: &str) -> Option<(Kind, &Value)> {
        let (kind, key) = self.uids.get(uid)?;
        self.get(*kind, key).map(|o| (*kind, o))
    }

    pub fn exists_uid(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// Objects of a kind, in one namespace or all, ordered by namespace then name (list order).
    pub fn list<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Value)> + 'a> {
        let map = &self.objects[kind.index()];
        match namespace {
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |(k, _)| k.0 == ns),
            ),
            None => Box::new(map.iter()),
        }
    }

    /// Objects of a kind after `after` (exclusive), for paginated lists.
    pub fn list_after<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
        after: &Key,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Value)> + 'a> {
        use std::ops::Bound;
        let map = &self.objects[kind.index()];
        let it = map.range((Bound::Excluded(after.clone()), Bound::Unbounded));
        match namespace {
            Some(ns) => Box::new(it.take_while(move |(k, _)| k.0 == ns)),
            None => Box::new(it),
        }
    }

    pub fn dependents(&self, owner_uid: &str) -> Vec<(Kind, Key)> {
        self.dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores a new object: uid, creationTimestamp, generation and resourceVersion are set here.
    pub fn create(&mut self, kind: Kind, mut obj: Value) -> Result<Value, ApiError> {
        let key = key(meta::namespace_of(&obj), meta::name_of(&obj));
        if self.objects[kind.index()].contains_key(&key) {
            return Err(ApiError::already_exists(kind, &key.1));
        }
        stamp_new(kind, &mut obj);
        Ok(self.commit(kind, key, EventType::Added, obj))
    }

    /// Replaces an existing object. An object marked for deletion whose last finalizer is gone
    /// and whose grace period is over (0) is removed, as kube-apiserver does.
    pub fn put(&mut self, kind: Kind, obj: Value) -> Value {
        let key = key(meta::namespace_of(&obj), meta::name_of(&obj));
        let finalized = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && obj["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                == 0;
        let stored = self.commit(kind, key.clone(), EventType::Modified, obj);
        if finalized {
            self.remove(kind, &key);
        }
        stored
    }

    pub fn remove(&mut self, kind: Kind, key: &Key) -> Option<Value> {
        let obj = self.objects[kind.index()].get(key)?.clone();
        Some(self.commit(kind, key.clone(), EventType::Deleted, obj))
    }

    /// Deletes with a propagation policy and, for pods, a grace period (`None`: the pod's
    /// `terminationGracePeriodSeconds`); returns the object as the DELETE call answers it.
    ///
    /// As kube-apiserver: an object with finalizers, or a pod with a grace period, is only marked
    /// (`deletionTimestamp`, `deletionGracePeriodSeconds`) and stays until its finalizers are gone
    /// and the kubelet confirmed the end with a grace period of 0. A pod that is not scheduled
    /// or already terminal has no grace period. A second delete may only shorten the grace.
    pub fn delete(
        &mut self,
        kind: Kind,
        key: &Key,
        policy: Propagation,
        grace: Option<i64>,
    ) -> Option<Value> {
        let obj = self.get(kind, key)?.clone();
        let uid = meta::uid_of(&obj).to_string();
        if policy == Propagation::Orphan {
            for (dkind, dkey) in self.dependents(&uid) {
                if let Some(mut dep) = self.get(dkind, &dkey).cloned() {
                    remove_owner_ref(&mut dep, &uid);
                    self.put(dkind, dep);
                }
            }
        }
        let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if policy == Propagation::Foreground
            && !self.dependents(&uid).is_empty()
            && !finalizers.iter().any(|f| f == FOREGROUND)
        {
            finalizers.push(json!(FOREGROUND));
        }
        let grace = if kind == Kind::Pod {
            pod_grace(&obj, grace)
        } else {
            0
        };
        let m = &obj["metadata"];
        if !m["deletionTimestamp"].is_null() {
            let current = m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
            let known = m["finalizers"].as_array().map_or(0, Vec::len);
            if grace >= current && finalizers.len() == known {
                return Some(obj);
            }
            if grace == 0 && finalizers.is_empty() {
                return self.remove(kind, key);
            }
            let mut marked = obj;
            if grace < current {
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                marked["metadata"]["deletionTimestamp"] = json!(meta::time_in(grace));
            }
            set_finalizers(&mut marked, finalizers);
            return Some(self.put(kind, marked));
        }
        if grace == 0 && finalizers.is_empty() {
            return self.remove(kind, key);
        }
        let mut marked = obj;
        let m = &mut marked["metadata"];
        m["deletionTimestamp"] = json!(meta::time_in(grace));
        m["deletionGracePeriodSeconds"] = json!(grace);
        if kind == Kind::Pod && grace > 0 {
            m["generation"] = json!(m["generation"].as_i64().unwrap_or(1) + 1);
        }
        set_finalizers(&mut marked, finalizers);
        Some(self.put(kind, marked))
    }

    fn commit(&mut self, kind: Kind, key: Key, ty: EventType, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let uid = meta::uid_of(&obj).to_string();
        let prev = match ty {
            EventType::Deleted => {
                self.objects[kind.index()].remove(&key);
                self.uids.remove(&uid);
                None
            }
            _ => self.objects[kind.index()].insert(key.clone(), obj.clone()),
        };
        // Keep the owner index in step with ownerReferences.
        let old_owners = prev.as_ref().map(meta::owner_uids).unwrap_or_default();
        let new_owners = if ty == EventType::Deleted {
            Vec::new()
        } else {
            meta::owner_uids(&obj)
        };
        if ty == EventType::Deleted {
            for o in meta::owner_uids(&obj) {
                self.unindex(&o, kind, &key);
            }
            if kind == Kind::Pod
                && let Some(logs) = self.logs.remove(&uid)
            {
                for l in logs.values() {
                    l.notify.notify_waiters();
                }
                if self.records() {
                    self.retired_logs.insert(uid.clone(), logs);
                }
            }
        } else {
            self.uids.insert(uid, (kind, key.clone()));
            for o in old_owners.iter().filter(|o| !new_owners.contains(o)) {
                self.unindex(o, kind, &key);
            }
            for o in new_owners {
                self.dependents
                    .entry(o)
                    .or_default()
                    .insert((kind, key.clone()));
            }
        }
        let obj = Arc::new(obj);
        let prev = prev.map(Arc::new);
        self.dispatch(kind, ty, prev.as_deref(), &obj);
        let change = match ty {
            EventType::Deleted => Change::Deleted {
                kind,
                obj: obj.clone(),
            },
            _ => Change::Upsert { kind, key },
        };
        // The simulation may be gone while the cluster shuts down; nothing to tell it then.
        let _ = self.changes.send(change);
        if let Some(rec) = &mut self.recorded {
            rec.push(Recorded {
                rv: self.rv,
                at: Instant::now(),
                time: jiff::Timestamp::now(),
                kind,
                ty,
                obj: obj.clone(),
            });
        }
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            kind,
            ty,
            prev,
            obj: obj.clone(),
        });
        while self.history.len() > self.window {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        Arc::unwrap_or_clone(obj)
    }

    fn unindex(&mut self, owner: &str, kind: Kind, key: &Key) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(&(kind, key.clone()));
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    fn dispatch(&mut self, kind: Kind, ty: EventType, prev: Option<&Value>, obj: &Value) {
        let mut closed = false;
        for w in self.watchers.iter().filter(|w| w.kind == kind) {
            if let Some(line) = event_for(w, ty, prev, obj) {
                closed |= w.tx.send(WatchMsg::Line(line)).is_err();
            }
        }
        if closed {
            self.watchers.retain(|w| !w.tx.is_closed());
        }
    }

    /// Registers a watch and queues what it must replay, atomically with respect to writes.
    pub fn watch(
        &mut self,
        spec: WatchSpec,
    ) -> Result<(u64, mpsc::UnboundedReceiver<WatchMsg>), ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Watcher {
            id: self.next_watcher,
            kind: spec.kind,
            namespace: spec.namespace,
            labels: spec.labels,
            fields: spec.fields,
            bookmarks: spec.bookmarks,
            tx,
        };
        self.next_watcher += 1;
        match spec.resource_version.filter(|rv| *rv != 0) {
            Some(rv) if rv < self.compacted_rv => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted_rv + 1
                )));
            }
            Some(rv) => {
                for ev in self
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.kind == w.kind)
                {
                    if let Some(line) = event_for(&w, ev.ty, ev.prev.as_deref(), &ev.obj) {
                        let _ = w.tx.send(WatchMsg::Line(line));
                    }
                }
            }
            None => {
                let ns = w.namespace.clone();
                for (_, obj) in self.list(w.kind, ns.as_deref()) {
                    if let Some(line) = event_for(&w, EventType::Added, None, obj) {
                        let _ = w.tx.send(WatchMsg::Line(line));
                    }
                }
                if spec.send_initial_events {
                    let _ = w.tx.send(WatchMsg::Line(bookmark(w.kind, self.rv, true)));
                }
            }
        }
        let id = w.id;
        self.watchers.push(w);
        Ok((id, rx))
    }

    pub fn unwatch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    /// Cuts every watch connection (the client sees the stream break, not a clean end).
    pub fn drop_watches(&mut self) {
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(WatchMsg::Abort);
        }
    }

    pub fn watch_count(&self) -> usize {
        self.watchers.len()
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that asked for them.
    pub fn send_bookmarks(&mut self) {
        for w in self.watchers.iter().filter(|w| w.bookmarks) {
            let _ = w.tx.send(WatchMsg::Line(bookmark(w.kind, self.rv, false)));
        }
    }

    /// Forgets all history and moves past every resourceVersion handed out so far, so any watch
    /// resuming from one of them gets 410 Expired.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted_rv = self.rv;
        self.history.clear();
    }
}

/// Sets what kube-apiserver sets on create.
fn stamp_new(kind: Kind, obj: &mut Value) {
    obj["kind"] = json!(kind.kind());
    obj["apiVersion"] = json!(kind.api_version());
    let m = &mut obj["metadata"];
    if m["uid"].as_str().is_none_or(str::is_empty) {
        m["uid"] = json!(meta::new_uid());
    }
    m["creationTimestamp"] = json!(meta::now_time());
    if kind != Kind::Event && kind != Kind::CoreEvent {
        m["generation"] = json!(1);
    }
    if let Some(o) = m.as_object_mut() {
        o.remove("deletionTimestamp");
        o.remove("resourceVersion");
    }
}

/// The grace period kube-apiserver gives a pod being deleted (the pod strategy's
/// `CheckGracefulDelete`): the request's, else the pod's `terminationGracePeriodSeconds` (30 by
/// default); none for a pod that never got a node or has already finished.
fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let period = requested
        .or(pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || terminal {
        0
    } else {
        period.max(0)
    }
}

fn set_finalizers(obj: &mut Value, finalizers: Vec<Value>) {
    if finalizers.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        obj["metadata"]["finalizers"] = json!(finalizers);
    }
}

pub fn remove_owner_ref(obj: &mut Value, owner_uid: &str) {
    if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
        refs.retain(|r| r["uid"] != owner_uid);
        if refs.is_empty()
            && let Some(m) = obj["metadata"].as_object_mut()
        {
            m.remove("ownerReferences");
        }
    }
}

fn matches(w: &Watcher, obj: &Value) -> bool {
    w.namespace
        .as_deref()
        .is_none_or(|ns| meta::namespace_of(obj) == ns)
        && w.labels.matches(meta::labels_of(obj))
        && w.fields.matches(obj)
}

/// The event a watcher sees: an object entering its selector is ADDED, leaving it is DELETED.
fn event_for(w: &Watcher, ty: EventType, prev: Option<&Value>, obj: &Value) -> Option<Bytes> {
    let now = matches(w, obj);
    let before = prev.is_some_and(|p| matches(w, p));
    let name = match ty {
        EventType::Added if now => "ADDED",
        EventType::Deleted if now => "DELETED",
        EventType::Modified if now && before => "MODIFIED",
        EventType::Modified if now => "ADDED",
        EventType::Modified if before => "DELETED",
        _ => return None,
    };
    Some(encode_event(name, obj))
}

pub fn encode_event(ty: &str, obj: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut obj = json!({
        "kind": kind.kind(), "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null},
    });
    if initial_end {
        obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    encode_event("BOOKMARK", &obj)
}
