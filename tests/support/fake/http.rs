//! The HTTP face of the fake cluster: kube-apiserver's paths, verbs, status codes, `Status`
//! errors, chunked watch streams and pod logs, plus fault injection and request recording.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::defaults;
use super::disruption::{self, Disruption};
use super::kueue;
use super::meta::{self, ApiError, FieldSelector, Kind, LabelSelector};
use super::store::{self, Key, Propagation, WatchMsg, WatchSpec};
use super::versions::{self, Schema};
use super::{Request, Shared, lock};

/// Accepts connections until aborted; aborting drops the listener and every connection with it
/// (the JoinSet aborts its tasks on drop), which is what `FakeCluster::stop` relies on.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Where a request goes, as kube-apiserver's RequestInfo resolver sees it.
#[derive(Debug, Clone, Default)]
struct Route {
    verb: &'static str,
    kind: Option<Kind>,
    group: String,
    resource: String,
    sub: String,
    ns: Option<String>,
    name: Option<String>,
}

impl Route {
    fn parse(method: &Method, path: &str, query: &BTreeMap<String, String>) -> Route {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => ("", "", &segs[..0]),
        };
        let (ns, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (resource, name, sub) = match rest {
            [r] => (*r, None, ""),
            [r, n] => (*r, Some(n.to_string()), ""),
            [r, n, s] => (*r, Some(n.to_string()), *s),
            _ => ("", None, ""),
        };
        let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
        let verb = match (method, &name) {
            (&Method::GET, None) if watch => "watch",
            (&Method::GET, None) => "list",
            (&Method::GET, Some(_)) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, None) => "deletecollection",
            (&Method::DELETE, Some(_)) => "delete",
            _ => "unknown",
        };
        Route {
            verb,
            kind: Kind::from_path(group, version, resource),
            group: group.to_string(),
            resource: resource.to_string(),
            sub: sub.to_string(),
            ns,
            name,
        }
    }
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Response<Body> {
    let at = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query_raw = req.uri().query().unwrap_or("").to_string();
    let query = meta::parse_query(&query_raw);
    let route = Route::parse(&method, &path, &query);
    // Who asked: the bearer token, which the fake hands out as the identity's name.
    let user = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();

    let (stall, fault) = lock(&shared.faults).take(
        route.verb,
        &route.group,
        &route.resource,
        &route.sub,
        route.ns.as_deref(),
    );
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let resp = match fault {
        Some(err) => error(&err),
        None => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let answer = if body.len() > store::MAX_REQUEST_BODY {
                Err(ApiError::too_large(store::MAX_REQUEST_BODY))
            } else {
                dispatch(&shared, &route, &path, &query, &content_type, body).await
            };
            match answer {
                Ok(r) => r,
                Err(e) => error(&e),
            }
        }
    };
    lock(&shared.requests).push(Request {
        method: method.to_string(),
        path,
        query: query_raw,
        verb: route.verb,
        group: route.group,
        resource: route.resource,
        subresource: route.sub,
        namespace: route.ns.unwrap_or_default(),
        name: route.name.unwrap_or_default(),
        status: resp.status().as_u16(),
        at,
        user,
    });
    resp
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default()
}

pub fn error(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn dispatch(
    shared: &Arc<Shared>,
    route: &Route,
    path: &str,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    if let Some(r) = discovery(path, shared.config.version) {
        return Ok(r);
    }
    let validation = query.get("fieldValidation").map(String::as_str);
    let Some(kind) = route.kind else {
        if route.resource == "namespaces" && route.verb == "get" {
            let ns = route.name.clone().unwrap_or_default();
            return Ok(json_response(
                200,
                &json!({
                    "kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": ns, "uid": format!("ns-{ns}"), "resourceVersion": "1", "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
                }),
            ));
        }
        return Err(not_found_path());
    };
    let ns = route.ns.as_deref();
    match (route.verb, route.name.as_deref(), route.sub.as_str()) {
        ("list", None, _) => list(shared, kind, ns, query),
        ("watch", None, _) => watch(shared, kind, ns, query),
        ("get", Some(name), "log") if kind == Kind::Pod => {
            logs(shared, ns.unwrap_or("default"), name, query)
        }
        ("get", Some(name), "" | "status") => {
            let ns = ns.ok_or_else(not_found_path)?;
            let st = lock(&shared.store);
            let obj = st
                .get(kind, &store::key(ns, name))
                .ok_or_else(|| ApiError::not_found(kind, name))?;
            Ok(json_response(200, obj))
        }
        ("create", Some(name), "eviction") if kind == Kind::Pod => {
            let ns = ns.ok_or_else(not_found_path)?;
            let v = shared.config.version;
            let dry = query.get("dryRun").is_some_and(|d| d == "All");
            let request =
                disruption::eviction_request(v, ns, name, &parse_body(&body)?, dry, validation)?;
            let mut st = lock(&shared.store);
            disruption::mark_and_delete(
                &mut st,
                v,
                Disruption::EvictionApi,
                ns,
                name,
                request.grace,
                request.dry,
            )?;
            Ok(warn(
                json_response(201, &disruption::success()),
                &request.warnings,
            ))
        }
        ("create", None, _) => {
            let ns = ns.ok_or_else(not_found_path)?;
            let obj = parse_body(&body)?;
            let dry = query.get("dryRun").is_some_and(|d| d == "All");
            let (created, warnings) = create(shared, kind, ns, obj, dry, validation)?;
            Ok(warn(json_response(201, &created), &warnings))
        }
        ("update", Some(name), sub @ ("" | "status")) => {
            let ns = ns.ok_or_else(not_found_path)?;
            let obj = parse_body(&body)?;
            if meta::name_of(&obj) != name {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            let dry = query.get("dryRun").is_some_and(|d| d == "All");
            write_existing(
                shared,
                kind,
                &store::key(ns, name),
                sub == "status",
                dry,
                validation,
                |_| Ok(obj),
            )
            .map(|(v, w)| warn(json_response(200, &v), &w))
        }
        ("patch", Some(name), sub @ ("" | "status")) => {
            let ns = ns.ok_or_else(not_found_path)?;
            let patch = parse_body(&body)?;
            let key = store::key(ns, name);
            let dry = query.get("dryRun").is_some_and(|d| d == "All");
            let ct = content_type.split(';').next().unwrap_or("").trim();
            if ct == "application/apply-patch+yaml" {
                if query.get("fieldManager").is_none_or(|f| f.is_empty()) {
                    return Err(ApiError::invalid(
                        kind,
                        name,
                        vec![(
                            "fieldManager".into(),
                            "Required value: is required for apply patch".into(),
                        )],
                    ));
                }
                let exists = lock(&shared.store).get(kind, &key).is_some();
                if !exists {
                    return create(shared, kind, ns, patch, dry, validation)
                        .map(|(v, w)| warn(json_response(201, &v), &w));
                }
            }
            write_existing(shared, kind, &key, sub == "status", dry, validation, |old| {
                let mut new = old.clone();
                match ct {
                    "application/merge-patch+json" => meta::merge_patch(&mut new, &patch),
                    "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
                        meta::strategic_merge_patch(&mut new, &patch)
                    }
                    "application/json-patch+json" => meta::json_patch(&mut new, &patch)
                        .map_err(|e| ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}")))?,
                    other => {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other:?}"),
                        ));
                    }
                }
                Ok(new)
            })
            .map(|(v, w)| warn(json_response(200, &v), &w))
        }
        ("delete", Some(name), "") => {
            let ns = ns.ok_or_else(not_found_path)?;
            let (policy, dry, grace) = delete_options(kind, query, &body)?;
            let mut st = lock(&shared.store);
            let key = store::key(ns, name);
            let obj = if dry {
                st.get(kind, &key).cloned()
            } else {
                st.delete(kind, &key, policy, grace)
            };
            obj.map(|o| json_response(200, &o))
                .ok_or_else(|| ApiError::not_found(kind, name))
        }
        ("deletecollection", None, "") => {
            let ns = ns.ok_or_else(not_found_path)?;
            let (policy, dry, grace) = delete_options(kind, query, &body)?;
            let labels =
                LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
            let fields =
                FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
            let mut st = lock(&shared.store);
            let keys: Vec<Key> = st
                .list(kind, Some(ns))
                .filter(|(_, o)| labels.matches(meta::labels_of(o)) && fields.matches(o))
                .map(|(k, _)| k.clone())
                .collect();
            let mut items = Vec::new();
            for k in keys {
                let obj = if dry {
                    st.get(kind, &k).cloned()
                } else {
                    st.delete(kind, &k, policy, grace)
                };
                items.extend(obj.map(strip_type));
            }
            Ok(json_response(
                200,
                &list_body(kind, st.resource_version(), None, items),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type JSON): {e}"
        ))
    })
}

/// Adds one `Warning` header per warning, as kube-apiserver does.
fn warn(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = text.parse() {
            r.headers_mut().append("warning", v);
        }
    }
    r
}

/// Propagation policy, dryRun and gracePeriodSeconds of a DELETE (query or DeleteOptions body).
fn delete_options(
    kind: Kind,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> Result<(Propagation, bool, Option<i64>), ApiError> {
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(body)?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or(opts["propagationPolicy"].as_str());
    let policy = match policy {
        Some(p) => Propagation::parse(p).ok_or_else(|| {
            ApiError::bad_request(format!("propagationPolicy: Unsupported value: \"{p}\""))
        })?,
        None => match opts["orphanDependents"]
            .as_bool()
            .or(query.get("orphanDependents").map(|v| v == "true"))
        {
            Some(true) => Propagation::Orphan,
            Some(false) => Propagation::Background,
            None => Propagation::default_for(kind),
        },
    };
    let dry = query.get("dryRun").is_some_and(|d| d == "All")
        || opts["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let grace = query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok())
        .or(opts["gracePeriodSeconds"].as_i64());
    Ok((policy, dry, grace))
}

/// Create through the API: namespace and name rules, generateName, the configured version's
/// fields and defaults, dryRun. Returns the object and the warnings to send.
pub fn create(
    shared: &Shared,
    kind: Kind,
    ns: &str,
    mut obj: Value,
    dry: bool,
    validation: Option<&str>,
) -> Result<(Value, Vec<String>), ApiError> {
    if obj["apiVersion"]
        .as_str()
        .is_some_and(|v| v != kind.api_version())
        || obj["kind"].as_str().is_some_and(|k| k != kind.kind())
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            obj["apiVersion"].as_str().unwrap_or(""),
            kind.api_version()
        )));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match obj["metadata"]["namespace"].as_str() {
        Some(n) if !n.is_empty() && n != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => obj["metadata"]["namespace"] = json!(ns),
    }
    let mut st = lock(&shared.store);
    if meta::name_of(&obj).is_empty()
        && let Some(generate) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|g| !g.is_empty())
    {
        let generate = generate.to_string();
        let mut name = format!("{generate}{}", meta::random_suffix(5));
        while st.get(kind, &store::key(ns, &name)).is_some() {
            name = format!("{generate}{}", meta::random_suffix(5));
        }
        obj["metadata"]["name"] = json!(name);
    }
    obj["metadata"]["uid"] = json!(meta::new_uid());
    let version = shared.config.version;
    let warnings = versions::admit(Schema::Served(kind), &mut obj, version, validation)?;
    defaults::admit_create(kind, &mut obj, true, version)?;
    if shared.config.kueue {
        kueue::webhook(kind, &mut obj);
    }
    if dry {
        let name = meta::name_of(&obj).to_string();
        if st.get(kind, &store::key(ns, &name)).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        obj["kind"] = json!(kind.kind());
        obj["apiVersion"] = json!(kind.api_version());
        obj["metadata"]["creationTimestamp"] = json!(meta::now_time());
        return Ok((obj, warnings));
    }
    store::fits_in_etcd(&obj)?;
    st.create(kind, obj).map(|o| (o, warnings))
}

/// Update and patch share this: optimistic concurrency, status-subresource split, the
/// configured version's fields, immutable fields, generation bump on spec change.
pub fn write_existing(
    shared: &Shared,
    kind: Kind,
    key: &Key,
    status_only: bool,
    dry: bool,
    validation: Option<&str>,
    f: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut st = lock(&shared.store);
    let old = st
        .get(kind, key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind, &key.1))?;
    let mut new = f(&old)?;
    if let Some(rv) = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(kind, &key.1));
    }
    if meta::name_of(&new) != key.1 || meta::namespace_of(&new).is_empty() && !key.0.is_empty() {
        new["metadata"]["name"] = json!(key.1);
        new["metadata"]["namespace"] = json!(key.0);
    }
    // Fields the server owns.
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    new["kind"] = json!(kind.kind());
    new["apiVersion"] = json!(kind.api_version());
    if kind.has_status() {
        if status_only {
            let status = new["status"].clone();
            new = old.clone();
            new["status"] = status;
        } else {
            new["status"] = old["status"].clone();
        }
    }
    if let Some(m) = new["metadata"].as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let warnings = if status_only {
        Vec::new()
    } else {
        versions::admit(
            Schema::Served(kind),
            &mut new,
            shared.config.version,
            validation,
        )?
    };
    let mut causes = Vec::new();
    meta::validate_meta(&new, "metadata", &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::invalid(kind, &key.1, causes));
    }
    defaults::check_update(kind, &old, &new, shared.config.version)?;
    if new["spec"] != old["spec"] {
        new["metadata"]["generation"] =
            json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }
    if dry {
        return Ok((new, warnings));
    }
    store::fits_in_etcd(&new)?;
    Ok((st.put(kind, new), warnings))
}

fn strip_type(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    v
}

fn list_body(kind: Kind, rv: u64, cont: Option<String>, items: Vec<Value>) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": metadata, "items": items})
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

fn list(
    shared: &Shared,
    kind: Kind,
    ns: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let labels =
        LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields =
        FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let st = lock(&shared.store);
    let (rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.split('.');
            let parsed = (|| {
                let rv: u64 = parts.next()?.parse().ok()?;
                Some((rv, (unhex(parts.next()?)?, unhex(parts.next()?)?)))
            })();
            let (rv, after) =
                parsed.ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if rv < st.compacted_rv() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some(after))
        }
        None => (st.resource_version(), None),
    };
    let iter = match &after {
        Some(a) => st.list_after(kind, ns, a),
        None => st.list(kind, ns),
    };
    let mut items = Vec::new();
    let mut last = None;
    let mut cont = None;
    for (k, obj) in iter.filter(|(_, o)| labels.matches(meta::labels_of(o)) && fields.matches(o)) {
        if limit.is_some_and(|l| items.len() >= l) {
            cont = last
                .map(|(ns, name): (String, String)| format!("{rv}.{}.{}", hex(&ns), hex(&name)));
            break;
        }
        last = Some(k.clone());
        items.push(strip_type(obj.clone()));
    }
    Ok(json_response(200, &list_body(kind, rv, cont, items)))
}

/// Removes the watcher when its HTTP stream goes away (client gone, timeout, connection cut).
struct WatchGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        lock(&self.shared.store).unwatch(self.id);
    }
}

fn watch(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let labels =
        LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields =
        FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let resource_version = match query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("")
    {
        "" => None,
        rv => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                kind,
                "",
                vec![("resourceVersion".into(), format!("Invalid value: \"{rv}\""))],
            )
        })?),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let spec = WatchSpec {
        kind,
        namespace: ns.map(str::to_string),
        labels,
        fields,
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true" || v == "1"),
        resource_version,
        send_initial_events: query.get("sendInitialEvents").is_some_and(|v| v == "true"),
    };
    let registered = lock(&shared.store).watch(spec);
    let (id, rx) = match registered {
        Ok(r) => r,
        Err(e) => {
            // kube-apiserver answers an expired watch with 200 and a single ERROR event.
            let line = store::encode_event("ERROR", &e.to_status());
            return Ok(Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(line))
                .unwrap_or_default());
        }
    };
    let guard = WatchGuard {
        shared: shared.clone(),
        id,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(
        (rx, guard, false),
        move |(mut rx, guard, done)| async move {
            if done {
                return None;
            }
            let next: Option<WatchMsg> = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten();
            match next {
                Some(WatchMsg::Line(b)) => {
                    Some((Ok::<Bytes, std::io::Error>(b), (rx, guard, false)))
                }
                Some(WatchMsg::Abort) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "watch dropped by fault injection",
                    )),
                    (rx, guard, true),
                )),
                None => None,
            }
        },
    );
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

fn logs(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let st = lock(&shared.store);
    let pod = st
        .get(Kind::Pod, &store::key(ns, name))
        .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    let names_of = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (names, inits) = (names_of("containers"), names_of("initContainers"));
    let container = match query.get("container") {
        Some(c) if !names.contains(c) && !inits.contains(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        Some(c) => c.clone(),
        None if names.len() > 1 => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            );
            if !inits.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            return Err(ApiError::bad_request(message));
        }
        None => names.first().cloned().unwrap_or_default(),
    };
    let uid = meta::uid_of(pod).to_string();
    let Some(logs) = st.logs.get(&uid).and_then(|l| l.get(&container)) else {
        let reason = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|list| pod["status"][*list].as_array().into_iter().flatten())
            .find(|c| c["name"] == container.as_str())
            .and_then(|c| c["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        let why = match reason {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    };
    let previous = query.get("previous").is_some_and(|p| p == "true");
    let idx = if previous {
        if logs.attempts.len() < 2 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        logs.attempts.len() - 2
    } else {
        logs.attempts.len() - 1
    };
    let timestamps = query.get("timestamps").is_some_and(|t| t == "true");
    let since = query
        .get("sinceSeconds")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| jiff::Timestamp::now().as_millisecond() - s * 1000);
    let lines = &logs.attempts[idx];
    let selected: Vec<&(jiff::Timestamp, String)> = lines
        .iter()
        .filter(|(ts, _)| since.is_none_or(|s| ts.as_millisecond() >= s))
        .collect();
    let tail = query.get("tailLines").and_then(|t| t.parse::<usize>().ok());
    let skip = tail.map(|t| selected.len().saturating_sub(t)).unwrap_or(0);
    let fmt = move |(ts, line): &(jiff::Timestamp, String)| {
        if timestamps {
            format!("{ts} {line}\n")
        } else {
            format!("{line}\n")
        }
    };
    let mut text: String = selected[skip..].iter().map(|l| fmt(l)).collect();
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let follow = query.get("follow").is_some_and(|f| f == "true") && !previous;
    if !follow || !logs.running {
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::from(text))
            .unwrap_or_default());
    }
    // Follow: stream this attempt's new lines until its container terminates or the pod goes.
    let state = FollowState {
        shared: shared.clone(),
        uid,
        container,
        generation: logs.generation,
        next: lines.len(),
        first: Some(text),
        done: false,
    };
    drop(st);
    let stream = futures::stream::unfold(state, move |mut s| async move {
        loop {
            if let Some(first) = s.first.take()
                && !first.is_empty()
            {
                return Some((Ok::<Bytes, std::io::Error>(Bytes::from(first)), s));
            }
            if s.done {
                return None;
            }
            // What the store says now: new text to send, the end, or a notifier to wait on.
            enum Step {
                Send(String, bool),
                End,
                Wait(Arc<tokio::sync::Notify>),
            }
            let step = {
                let st = lock(&s.shared.store);
                match st.logs.get(&s.uid).and_then(|l| l.get(&s.container)) {
                    None => Step::End,
                    Some(logs) => {
                        let behind = logs.generation - s.generation;
                        match logs
                            .attempts
                            .len()
                            .checked_sub(1 + behind)
                            .map(|i| &logs.attempts[i])
                        {
                            None => Step::End,
                            Some(lines) => {
                                let ended = behind > 0 || !logs.running;
                                if s.next < lines.len() {
                                    let chunk: String = lines[s.next..].iter().map(&fmt).collect();
                                    s.next = lines.len();
                                    Step::Send(chunk, ended)
                                } else if ended {
                                    Step::End
                                } else {
                                    Step::Wait(logs.notify.clone())
                                }
                            }
                        }
                    }
                }
            };
            let notify = match step {
                Step::Send(chunk, ended) => {
                    s.done = ended;
                    return Some((Ok(Bytes::from(chunk)), s));
                }
                Step::End => return None,
                Step::Wait(n) => n,
            };
            let notified = notify.notified();
            // Re-check after registering, so an append between unlock and here is not missed.
            let changed = {
                let st = lock(&s.shared.store);
                st.logs
                    .get(&s.uid)
                    .and_then(|l| l.get(&s.container))
                    .is_none_or(|l| {
                        l.generation != s.generation
                            || !l.running
                            || l.attempts.last().is_some_and(|a| a.len() > s.next)
                    })
            };
            if !changed {
                notified.await;
            }
        }
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

struct FollowState {
    shared: Arc<Shared>,
    uid: String,
    container: String,
    generation: usize,
    next: usize,
    first: Option<String>,
    done: bool,
}

/// The handful of discovery documents clients ask for.
fn discovery(path: &str, version: versions::Version) -> Option<Response<Body>> {
    let resources = |list: &[(&str, &str, bool)]| -> Value {
        json!(list.iter().map(|(name, kind, ns)| json!({
            "name": name, "singularName": "", "namespaced": ns, "kind": kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        })).collect::<Vec<_>>())
    };
    let v = match path.trim_end_matches('/') {
        "/version" => {
            json!({"major": "1", "minor": version.0.to_string(), "gitVersion": version.git_version(), "platform": "linux/amd64"})
        }
        "/healthz" | "/readyz" | "/livez" => {
            return Some(
                Response::builder()
                    .status(200)
                    .body(Body::from("ok"))
                    .unwrap_or_default(),
            );
        }
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        }
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}},
            {"name": "events.k8s.io", "versions": [{"groupVersion": "events.k8s.io/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "events.k8s.io/v1", "version": "v1"}},
        ]}),
        "/api/v1" => {
            let mut list = resources(&[
                ("pods", "Pod", true),
                ("pods/log", "Pod", true),
                ("events", "Event", true),
                ("configmaps", "ConfigMap", true),
                ("namespaces", "Namespace", false),
            ]);
            if let Some(l) = list.as_array_mut() {
                l.insert(
                    2,
                    json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                    "group": "policy", "version": if version.0 >= 22 { "v1" } else { "v1beta1" },
                    "kind": "Eviction", "verbs": ["create"]}),
                );
            }
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": list})
        }
        "/apis/batch/v1" => {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1", "resources": resources(&[("jobs", "Job", true), ("jobs/status", "Job", true), ("cronjobs", "CronJob", true)])})
        }
        "/apis/events.k8s.io/v1" => {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "events.k8s.io/v1", "resources": resources(&[("events", "Event", true)])})
        }
        _ => return None,
    };
    Some(json_response(200, &v))
}
