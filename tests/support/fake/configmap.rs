//! ConfigMaps: what the API checks in one (key names, the 1 MiB of `data` and `binaryData`,
//! `immutable`), and what the kubelet makes of one for a pod: the files of a `configMap` volume
//! and the values of `configMapKeyRef`/`envFrom`.

use serde_json::Value;

use super::meta::{self, Kind};
use super::store::{self, Store};
use super::versions::Version;

/// `core.MaxSecretSize`: what a ConfigMap's `data` and `binaryData` may hold together.
pub const MAX_SIZE: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or \
    '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
    '[-._a-zA-Z0-9]+')";

/// `ValidateConfigMap`: valid keys, no key in both bags, at most 1 MiB in all.
pub fn validate(obj: &Value, v: Version, causes: &mut Vec<(String, String)>) {
    let mut total = 0;
    for (bag, other) in [("data", "binaryData"), ("binaryData", "data")] {
        for (key, value) in obj[bag].as_object().into_iter().flatten() {
            for problem in key_problems(key) {
                causes.push((
                    format!("{bag}[{key}]"),
                    format!("Invalid value: \"{key}\": {problem}"),
                ));
            }
            if bag == "data" && obj[other].get(key).is_some() {
                causes.push((
                    format!("data[{key}]"),
                    format!("Invalid value: \"{key}\": duplicate of key present in {other}"),
                ));
            }
            total += match bag {
                "data" => value.as_str().map_or(0, str::len),
                _ => decode(value).map_or(0, |b| b.len()),
            };
        }
    }
    if total > MAX_SIZE {
        causes.push(("[]".into(), format!("Too long: {}", v.too_long(MAX_SIZE))));
    }
}

/// `ValidateConfigMapUpdate`: an immutable ConfigMap keeps its data and stays immutable.
pub fn check_update(old: &Value, new: &Value, causes: &mut Vec<(String, String)>) {
    if old["immutable"].as_bool() != Some(true) {
        return;
    }
    let forbidden = "Forbidden: field is immutable when `immutable` is set";
    if new["immutable"].as_bool() != Some(true) {
        causes.push(("immutable".into(), forbidden.into()));
    }
    for bag in ["data", "binaryData"] {
        if old[bag] != new[bag] {
            causes.push((bag.into(), forbidden.into()));
        }
    }
}

/// `IsConfigMapKey`.
fn key_problems(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    let charset = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if key.is_empty() || !key.chars().all(charset) {
        out.push(KEY_MSG.to_string());
    }
    match key {
        "." => out.push("must not be '.'".into()),
        ".." => out.push("must not be '..'".into()),
        k if k.starts_with("..") => out.push("must not start with '..'".into()),
        _ => {}
    }
    out
}

/// A `binaryData` value: base64 as the API serves it.
fn decode(value: &Value) -> Option<Vec<u8>> {
    serde_json::from_value::<k8s_openapi::ByteString>(value.clone())
        .ok()
        .map(|b| b.0)
}

/// The value of one key, from `data` or (decoded) `binaryData`.
pub fn value_of(cm: &Value, key: &str) -> Option<Vec<u8>> {
    match cm["data"][key].as_str() {
        Some(s) => Some(s.as_bytes().to_vec()),
        None => decode(cm["binaryData"].get(key)?),
    }
}

/// Why the kubelet cannot build a container's environment (`CreateContainerConfigError`): a
/// `configMapKeyRef`/`envFrom` ConfigMap (or key) that is missing and not `optional`, or any
/// required Secret (the fake serves none).
pub fn env_problem(st: &Store, pod: &Value, c: &Value) -> Option<String> {
    let ns = meta::namespace_of(pod);
    for e in c["env"].as_array().into_iter().flatten() {
        let from = &e["valueFrom"];
        let (cm, secret) = (&from["configMapKeyRef"], &from["secretKeyRef"]);
        if secret.is_object() && secret["optional"].as_bool() != Some(true) {
            return Some(format!(
                "secret \"{}\" not found",
                secret["name"].as_str().unwrap_or("")
            ));
        }
        if !cm.is_object() || cm["optional"].as_bool() == Some(true) {
            continue;
        }
        let name = cm["name"].as_str().unwrap_or("");
        let key = cm["key"].as_str().unwrap_or("");
        match lookup(st, pod, name) {
            None => return Some(format!("configmap \"{name}\" not found")),
            Some(found) if value_of(found, key).is_none() => {
                return Some(format!("couldn't find key {key} in ConfigMap {ns}/{name}"));
            }
            Some(_) => {}
        }
    }
    for e in c["envFrom"].as_array().into_iter().flatten() {
        for (r, what) in [
            (&e["configMapRef"], "configmap"),
            (&e["secretRef"], "secret"),
        ] {
            let name = r["name"].as_str().unwrap_or("");
            let missing = what == "secret" || lookup(st, pod, name).is_none();
            if r.is_object() && r["optional"].as_bool() != Some(true) && missing {
                return Some(format!("{what} \"{name}\" not found"));
            }
        }
    }
    None
}

/// The value of a `configMapKeyRef` (none when an optional one is missing).
pub fn key_ref(st: &Store, pod: &Value, r: &Value) -> Option<String> {
    let cm = lookup(st, pod, r["name"].as_str()?)?;
    let bytes = value_of(cm, r["key"].as_str()?)?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The variables an `envFrom` `configMapRef` gives: every key (after `prefix`) that is a valid
/// variable name, as the kubelet takes them.
pub fn env_from(st: &Store, pod: &Value, e: &Value) -> Vec<(String, String)> {
    let Some(cm) = e["configMapRef"]["name"]
        .as_str()
        .and_then(|n| lookup(st, pod, n))
    else {
        return Vec::new();
    };
    let prefix = e["prefix"].as_str().unwrap_or("");
    cm["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (format!("{prefix}{k}"), v.as_str().unwrap_or("").to_string()))
        .filter(|(k, _)| {
            !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
        .collect()
}

/// A ConfigMap of the pod's namespace.
pub fn lookup<'a>(st: &'a Store, pod: &Value, name: &str) -> Option<&'a Value> {
    st.get(Kind::ConfigMap, &store::key(meta::namespace_of(pod), name))
}

/// Why the kubelet cannot mount a pod's `configMap` volumes yet (the ConfigMap or one of the
/// keys its `items` name is missing and the volume is not `optional`), as its `FailedMount`
/// Event says it; `None` when every one can be mounted.
pub fn mount_problem(st: &Store, pod: &Value) -> Option<String> {
    for vol in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let cm = &vol["configMap"];
        if !cm.is_object() || cm["optional"].as_bool() == Some(true) {
            continue;
        }
        let name = cm["name"].as_str().unwrap_or("");
        let volume = vol["name"].as_str().unwrap_or("");
        let prefix = format!("MountVolume.SetUp failed for volume \"{volume}\" : ");
        let Some(found) = lookup(st, pod, name) else {
            return Some(format!("{prefix}configmap \"{name}\" not found"));
        };
        for item in cm["items"].as_array().into_iter().flatten() {
            let key = item["key"].as_str().unwrap_or("");
            if value_of(found, key).is_none() {
                return Some(format!(
                    "{prefix}configmap references non-existent config key: {key}"
                ));
            }
        }
    }
    None
}

/// The contents of the file at `path` in container `container` of `pod`, as a `configMap`
/// volume shows it (the ConfigMap as it is now; `items` rename keys, `subPath` mounts one
/// file); `None` when no such file is there.
pub fn volume_file(st: &Store, pod: &Value, container: &str, path: &str) -> Option<Vec<u8>> {
    let spec = &pod["spec"];
    let ctr = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten())
        .find(|c| c["name"] == container)?;
    // The deepest mount holding the path wins, as the filesystem resolves it.
    let (mount, rest) = ctr["volumeMounts"]
        .as_array()?
        .iter()
        .filter_map(|m| {
            let at = m["mountPath"].as_str()?.trim_end_matches('/');
            let rest = path.strip_prefix(at)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((m, rest.trim_start_matches('/')))
        })
        .max_by_key(|(m, _)| m["mountPath"].as_str().map_or(0, str::len))?;
    let vol = spec["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let cm = lookup(st, pod, vol["configMap"]["name"].as_str()?)?;
    let file = match mount["subPath"].as_str().filter(|s| !s.is_empty()) {
        Some(sub) if rest.is_empty() => sub.to_string(),
        Some(sub) => format!("{sub}/{rest}"),
        None => rest.to_string(),
    };
    key_for_file(&vol["configMap"], &file).and_then(|key| value_of(cm, &key))
}

/// Which key a file of the volume shows: `items` map keys to paths (and hide the others).
fn key_for_file(source: &Value, file: &str) -> Option<String> {
    match source["items"].as_array() {
        Some(items) => items
            .iter()
            .find(|i| i["path"] == file)
            .and_then(|i| i["key"].as_str())
            .map(str::to_string),
        None => Some(file.to_string()),
    }
}
