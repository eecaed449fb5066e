//! Object-metadata rules of the fake API server: resource table, `Status` errors, selectors,
//! name validation, patches and timestamps, shared by the HTTP layer and the controllers.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The resources the fake serves. Both event APIs are kept apart, as their schemas differ.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    Job,
    CronJob,
    Pod,
    Event,
    CoreEvent,
    ConfigMap,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Job,
        Kind::CronJob,
        Kind::Pod,
        Kind::Event,
        Kind::CoreEvent,
        Kind::ConfigMap,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_path(group: &str, version: &str, resource: &str) -> Option<Kind> {
        Some(match (group, version, resource) {
            ("batch", "v1", "jobs") => Kind::Job,
            ("batch", "v1", "cronjobs") => Kind::CronJob,
            ("", "v1", "pods") => Kind::Pod,
            ("events.k8s.io", "v1", "events") => Kind::Event,
            ("", "v1", "events") => Kind::CoreEvent,
            ("", "v1", "configmaps") => Kind::ConfigMap,
            _ => return None,
        })
    }

    pub fn group(self) -> &'static str {
        match self {
            Kind::Job | Kind::CronJob => "batch",
            Kind::Pod | Kind::CoreEvent | Kind::ConfigMap => "",
            Kind::Event => "events.k8s.io",
        }
    }

    pub fn resource(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Pod => "pods",
            Kind::Event | Kind::CoreEvent => "events",
            Kind::ConfigMap => "configmaps",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Pod => "Pod",
            Kind::Event | Kind::CoreEvent => "Event",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Pod | Kind::CoreEvent | Kind::ConfigMap => "v1",
            Kind::Event => "events.k8s.io/v1",
        }
    }

    /// `jobs.batch`, `pods`: how kube-apiserver names a resource in messages.
    pub fn group_resource(self) -> String {
        if self.group().is_empty() {
            self.resource().to_string()
        } else {
            format!("{}.{}", self.resource(), self.group())
        }
    }

    /// `Job.batch`, `Pod`: how validation messages name a kind.
    pub fn group_kind(self) -> String {
        if self.group().is_empty() {
            self.kind().to_string()
        } else {
            format!("{}.{}", self.kind(), self.group())
        }
    }

    /// Resources whose `status` is only writable through the `/status` subresource.
    pub fn has_status(self) -> bool {
        matches!(self, Kind::Job | Kind::CronJob | Kind::Pod)
    }
}

/// An error answered as a kube-apiserver `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, kind: Kind, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": kind.resource()});
        if !kind.group().is_empty() {
            d["group"] = json!(kind.group());
        }
        self.details = Some(d);
        self
    }

    pub fn not_found(kind: Kind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.group_resource()),
        )
        .with_details(kind, name)
    }

    pub fn already_exists(kind: Kind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.group_resource()),
        )
        .with_details(kind, name)
    }

    pub fn conflict(kind: Kind, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.group_resource()
            ),
        )
        .with_details(kind, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 with one cause per invalid field, worded like kube-apiserver's validation.
    pub fn invalid(kind: Kind, name: &str, causes: Vec<(String, String)>) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = if text.len() == 1 {
            format!("{} \"{name}\" is invalid: {}", kind.group_kind(), text[0])
        } else {
            format!(
                "{} \"{name}\" is invalid: [{}]",
                kind.group_kind(),
                text.join(", ")
            )
        };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, message)| json!({"reason": cause_type(&message), "message": message, "field": field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind.kind(), "causes": causes});
        if !kind.group().is_empty() {
            details["group"] = json!(kind.group());
        }
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: Some(details),
            retry_after: None,
        }
    }

    /// 413, as kube-apiserver answers a request body over its limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// RBAC's answer; `resource` may be `pods/log`.
    pub fn forbidden(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        let mut e = Self::new(
            403,
            "Forbidden",
            format!(
                "{gr} is forbidden: User \"system:serviceaccount:default:jobherd\" cannot {verb} \
                 resource \"{resource}\" in API group \"{group}\" {scope}",
                gr = if group.is_empty() {
                    resource.to_string()
                } else {
                    format!("{resource}.{group}")
                },
            ),
        );
        let mut d = json!({"kind": resource});
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        e.details = Some(d);
        e
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(o) = s.as_object_mut()
        {
            // StatusReasonUnknown is the empty string, which the Status omits.
            o.remove("reason");
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(secs) = self.retry_after {
            if s.get("details").is_none() {
                s["details"] = json!({});
            }
            s["details"]["retryAfterSeconds"] = json!(secs);
        }
        s
    }
}

/// A validation cause's type, from the words `field.Error` starts its message with.
fn cause_type(message: &str) -> &'static str {
    [
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Too long", "FieldValueTooLong"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
    ]
    .iter()
    .find(|(words, _)| message.starts_with(words))
    .map_or("FieldValueInvalid", |(_, ty)| ty)
}

/// Seconds-precision RFC 3339, as `metav1.Time` serialises.
pub fn now_time() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// `now_time()` plus `secs` seconds (a graceful deletion's `deletionTimestamp`).
pub fn time_in(secs: i64) -> String {
    let now = jiff::Timestamp::now().as_second() + secs.max(0);
    jiff::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_time())
}

/// RFC 3339 with nanoseconds, as the kubelet prefixes log lines with `timestamps=true`.
pub fn now_nanos() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid_of(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The uid of the owner marked `controller: true`, which is how the Job controller finds its pods.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str())
}

pub fn labels_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj["metadata"]["labels"].as_object()
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// Object reference used in `ownerReferences`.
pub fn owner_ref(kind: Kind, obj: &Value, controller: bool) -> Value {
    json!({
        "apiVersion": kind.api_version(), "kind": kind.kind(), "name": name_of(obj),
        "uid": uid_of(obj), "controller": controller, "blockOwnerDeletion": true,
    })
}

/// Random suffix alphabet of `generateName` (no vowels, no confusable digits), as apimachinery.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

pub fn new_uid() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:x}", fastrand::u8(..16)))
            .collect()
    };
    format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
}

// ---------------------------------------------------------------------------------------------
// Validation

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Errors for a label value: at most 63 characters, alphanumerics with `-_.` inside.
pub fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = v.as_bytes();
    let ok = b.is_empty()
        || (b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
    if !ok {
        errs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
             'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns1123_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Validation of metadata common to every kind: name and labels.
pub fn validate_meta(obj: &Value, path: &str, causes: &mut Vec<(String, String)>) {
    let name = name_of(obj);
    if path == "metadata" && !is_dns1123_subdomain(name) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {DNS1123_SUBDOMAIN_MSG}"),
        ));
    }
    if let Some(labels) = obj["metadata"]["labels"]
        .as_object()
        .or(obj["labels"].as_object())
    {
        for (k, v) in labels {
            if !label_key_ok(k) {
                causes.push((
                    format!("{path}.labels"),
                    format!("Invalid value: \"{k}\": name part must be valid"),
                ));
            }
            let v = v.as_str().unwrap_or("");
            for e in label_value_errors(v) {
                causes.push((
                    format!("{path}.labels"),
                    format!("Invalid value: \"{v}\": {e}"),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Selectors

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed `labelSelector`: every requirement must hold (comma = AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let bad =
                || ApiError::bad_request(format!("unable to parse requirement: found '{part}'"));
            if let Some(k) = part.strip_prefix('!') {
                reqs.push((k.trim().to_string(), Op::NotExists));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push((k.trim().to_string(), Op::NotEq(v.trim().to_string())));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push((k.trim().to_string(), Op::Eq(v.trim().to_string())));
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                reqs.push((k, Op::NotIn(parse_set(rest).ok_or_else(bad)?)));
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                reqs.push((k, Op::In(parse_set(rest).ok_or_else(bad)?)));
            } else if part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
            {
                reqs.push((part.to_string(), Op::Exists));
            } else {
                return Err(bad());
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(k, op)| match op {
            Op::Eq(v) => get(k) == Some(v),
            Op::NotEq(v) => get(k) != Some(v),
            Op::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Op::Exists => get(k).is_some(),
            Op::NotExists => get(k).is_none(),
        })
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set_op<'a>(part: &'a str, op: &str) -> Option<(String, &'a str)> {
    part.split_once(op)
        .map(|(k, rest)| (k.trim().to_string(), rest.trim()))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// A parsed `fieldSelector` over the few fields kube-apiserver indexes for these kinds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !matches!(
                field,
                "metadata.name"
                    | "metadata.namespace"
                    | "status.phase"
                    | "spec.nodeName"
                    | "involvedObject.name"
                    | "regarding.name"
            ) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let ptr = format!("/{}", field.replace('.', "/"));
            let actual = obj.pointer(&ptr).and_then(Value::as_str).unwrap_or("");
            (actual == value) == *eq
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Patches

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        if let Value::Object(t) = target {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// The merge key of a list field in the strategic-merge-patch schema of Jobs and Pods.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" | "volumeMounts" | "ports"
        | "imagePullSecrets" => Some("name"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Strategic merge patch for the schema parts jobherd touches: maps merge, keyed lists merge by
/// their merge key, `$patch: delete` removes a keyed list element, other lists are replaced.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    for (k, v) in p {
        if k.starts_with("$") {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), t.get_mut(k), v) {
            (Some(key), Some(Value::Array(base)), Value::Array(items)) => {
                for item in items {
                    let id = &item[key];
                    let pos = base.iter().position(|b| &b[key] == id);
                    let delete = item["$patch"].as_str() == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            base.remove(i);
                        }
                        (Some(i), false) => strategic_merge_patch(&mut base[i], item),
                        (None, false) => base.push(item.clone()),
                        (None, true) => {}
                    }
                }
            }
            (_, Some(existing), _) if existing.is_object() && v.is_object() => {
                strategic_merge_patch(existing, v)
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test, copy, move).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("json patch must be an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("missing path")?;
        match op["op"].as_str() {
            Some("add") => pointer_set(target, path, op["value"].clone(), true)?,
            Some("replace") => pointer_set(target, path, op["value"].clone(), false)?,
            Some("remove") => {
                pointer_remove(target, path)?;
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            Some("copy") | Some("move") => {
                let from = op["from"].as_str().ok_or("missing from")?;
                let v = if op["op"] == "move" {
                    pointer_remove(target, from)?
                } else {
                    target.pointer(from).cloned().ok_or("missing from value")?
                };
                pointer_set(target, path, v, true)?;
            }
            _ => return Err("unknown op".into()),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or("invalid path")?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn pointer_set(target: &mut Value, path: &str, v: Value, add: bool) -> Result<(), String> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            if !add && !m.contains_key(&last) {
                return Err(format!(
                    "replace operation does not apply: doc is missing key: {path}"
                ));
            }
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            if last == "-" {
                a.push(v);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| "invalid index")?;
            match (add, i <= a.len(), i < a.len()) {
                (true, true, _) => a.insert(i, v),
                (false, _, true) => a[i] = v,
                _ => return Err("index out of range".into()),
            }
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

fn pointer_remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| format!("doc is missing key: {path}")),
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| "invalid index")?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err("index out of range".into())
            }
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

/// Parses a query string into a map (last value wins), percent-decoding keys and values.
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
