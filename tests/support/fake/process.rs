//! Containers of jobherd's own image run the real binary, as a kubelet would run the image:
//! its entrypoint (`/jobherd`) with the container's args, the container's env (values and the
//! downward API), `HOSTNAME`, a kubeconfig pointing back at the fake (where a real pod has its
//! service account), a fresh `HOME`, and a termination-log file. Output becomes the pod's log,
//! the exit code the container's; signals are real. Every process is killed with the cluster.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::configmap;
use super::kubelet::{NODE, append_log};
use super::meta;
use super::pod_run::pod_ip;
use super::sim::Control;
use super::store::Store;
use super::{Shared, lock};

/// The path of jobherd's entrypoint in its image.
const ENTRYPOINT: &str = "/jobherd";

/// `jobherd`, `jobherd:0.1.0`, `registry.example.com/x/jobherd@sha256:...`.
pub fn is_jobherd_image(image: &str) -> bool {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split(['@', ':']).next().unwrap_or(last);
    name == "jobherd"
}

/// Where a container's files live: its termination log and its HOME.
fn container_dir(shared: &Shared, uid: &str, container: &str) -> PathBuf {
    shared.config.scratch.join("pods").join(uid).join(container)
}

/// What the container wrote to its termination-message file.
pub fn read_termination_log(shared: &Shared, uid: &str, container: &str) -> String {
    std::fs::read_to_string(container_dir(shared, uid, container).join("termination-log"))
        .unwrap_or_default()
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this cluster started; no memory is touched.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Starts the container's process; returns its pid, or containerd's message when the command
/// is not jobherd's entrypoint (the image has nothing else).
pub fn spawn(
    shared: &Arc<Shared>,
    pod: &Value,
    container: &Value,
    env: Vec<(String, String)>,
    (index, epoch, log_gen): (usize, u64, usize),
) -> Result<u32, String> {
    let uid = meta::uid_of(pod).to_string();
    let name = container["name"].as_str().unwrap_or("").to_string();
    let expand = |s: &Value| expand(s.as_str().unwrap_or(""), &env);
    let mut argv: Vec<String> = container["command"]
        .as_array()
        .map(|c| c.iter().map(expand).collect())
        .unwrap_or_default();
    if let Some(cmd) = argv.first()
        && cmd != ENTRYPOINT
    {
        return Err(format!(
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{cmd}\": executable file not found in $PATH: unknown"
        ));
    }
    if !argv.is_empty() {
        argv.remove(0);
    }
    argv.extend(
        container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(expand),
    );
    let dir = container_dir(shared, &uid, &name);
    let home = dir.join("home");
    let term_log = dir.join("termination-log");
    std::fs::create_dir_all(&home).map_err(|e| format!("container directory: {e}"))?;
    std::fs::write(&term_log, "").map_err(|e| format!("termination log: {e}"))?;
    // The pod's ServiceAccount is its identity: the token names it, as the fake records it.
    let account = format!(
        "system:serviceaccount:{}:{}",
        meta::namespace_of(pod),
        pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
    );
    let kubeconfig = dir.join("kubeconfig");
    let config = std::fs::read_to_string(&shared.config.kubeconfig)
        .map_err(|e| format!("kubeconfig: {e}"))?
        .replace("token: fake-token", &format!("token: {account}"));
    std::fs::write(&kubeconfig, config).map_err(|e| format!("kubeconfig: {e}"))?;

    let mut cmd = tokio::process::Command::new(&shared.config.jobherd_bin);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", &home)
        .env("JOBHERD_TERMINATION_LOG", &term_log)
        .args(&argv)
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start {ENTRYPOINT}: {e}"))?;
    let pid = child.id().ok_or("the process ended before it started")?;
    lock(&shared.processes).insert(pid);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let shared = shared.clone();
    tokio::spawn(async move {
        let out = pipe_to_log(shared.clone(), stdout, &uid, &name, log_gen);
        let err = pipe_to_log(shared.clone(), stderr, &uid, &name, log_gen);
        let (_, _, status) = tokio::join!(out, err, child.wait());
        lock(&shared.processes).remove(&pid);
        let code = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
            }
            Err(_) => 137,
        };
        let _ = shared.control.send(Control::Exited {
            uid,
            container: index,
            epoch,
            code,
        });
    });
    Ok(pid)
}

/// Appends each line of a pipe to the container's log while this attempt is current.
async fn pipe_to_log(
    shared: Arc<Shared>,
    pipe: Option<impl AsyncRead + Unpin>,
    uid: &str,
    container: &str,
    log_gen: usize,
) {
    let Some(pipe) = pipe else { return };
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut st = lock(&shared.store);
        let current = st
            .logs
            .get(uid)
            .and_then(|l| l.get(container))
            .is_some_and(|l| l.generation == log_gen);
        if current {
            append_log(&mut st, uid, container, &line);
        }
    }
}

/// What a container's process finds in its environment: the container's variables as the
/// kubelet resolves them (ConfigMaps from `st`), and `HOSTNAME` (the pod's `spec.hostname`,
/// else its name).
pub fn container_env(st: &Store, pod: &Value, container: &Value) -> Vec<(String, String)> {
    let mut env = environment(st, pod, container);
    entrypoint_values(st, pod, container, &mut env);
    let hostname = pod["spec"]["hostname"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or(meta::name_of(pod));
    env.retain(|(k, _)| k != "HOSTNAME");
    env.push(("HOSTNAME".to_string(), hostname.to_string()));
    env
}

/// Where a packed child's container runs jobherd's entrypoint (`/jobherd-pack/bin/jobherd
/// entrypoint -- COMMAND`), what the entrypoint sets before it runs COMMAND: the member's own
/// variables from the values file its pack's ConfigMap mounts (`/jobherd-pack/values/
/// values.json`, a JSON array in completion-index order), and `$(NAME)` references to them
/// expanded in the other variables. (jobherd's own entrypoint does the same: `src/pack.rs`.)
fn entrypoint_values(st: &Store, pod: &Value, container: &Value, env: &mut Vec<(String, String)>) {
    let command = container["command"].as_array();
    let runs_it = command.is_some_and(|c| {
        c.first().and_then(Value::as_str) == Some("/jobherd-pack/bin/jobherd")
            && c.get(1).and_then(Value::as_str) == Some("entrypoint")
    });
    if !runs_it {
        return;
    }
    let name = container["name"].as_str().unwrap_or_default();
    let path = "/jobherd-pack/values/values.json";
    let Some(file) = configmap::volume_file(st, pod, name, path) else {
        return;
    };
    let index: usize = env
        .iter()
        .find(|(k, _)| k == "JOB_COMPLETION_INDEX")
        .and_then(|(_, v)| v.parse().ok())
        .or_else(|| {
            pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let members: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(&file).unwrap_or_default();
    let Some(own) = members.get(index) else {
        return;
    };
    for (_, v) in env.iter_mut() {
        for (name, value) in own {
            *v = v.replace(&format!("$({name})"), value.as_str().unwrap_or_default());
        }
    }
    for (name, value) in own {
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), value.as_str().unwrap_or_default().to_string()));
    }
}

/// The container's environment as the kubelet builds it: `envFrom` ConfigMaps first, then
/// `env`: `value` (with `$(VAR)` references to earlier variables expanded),
/// `valueFrom.fieldRef` (the downward API) and `configMapKeyRef`.
fn environment(st: &Store, pod: &Value, container: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    };
    for e in container["envFrom"].as_array().into_iter().flatten() {
        for (name, value) in configmap::env_from(st, pod, e) {
            set(&mut env, name, value);
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let from = &e["valueFrom"];
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            field_ref(pod, path)
        } else if let Some(v) = configmap::key_ref(st, pod, &from["configMapKeyRef"]) {
            v
        } else {
            // A missing reference was refused before start (CreateContainerConfigError) unless
            // optional: an optional missing key leaves the variable out.
            continue;
        };
        set(&mut env, name.to_string(), value);
    }
    env
}

/// The downward API's `fieldRef` values.
fn field_ref(pod: &Value, path: &str) -> String {
    let m = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    match path {
        "metadata.name" => text(&m["name"]),
        "metadata.namespace" => text(&m["namespace"]),
        "metadata.uid" => text(&m["uid"]),
        "spec.nodeName" => pod["spec"]["nodeName"].as_str().unwrap_or(NODE).to_string(),
        "spec.serviceAccountName" => pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        "status.podIP" => pod_ip(meta::uid_of(pod)),
        "status.hostIP" => "10.0.0.1".to_string(),
        other => {
            let label = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix("['"))
                    .and_then(|r| r.strip_suffix("']"))
                    .map(str::to_string)
            };
            if let Some(k) = label("metadata.labels") {
                text(&m["labels"][k])
            } else if let Some(k) = label("metadata.annotations") {
                text(&m["annotations"][k])
            } else {
                String::new()
            }
        }
    }
}

/// What a shell in the container makes of `${NAME}`: the variable's value, empty when it is
/// not defined. Anything else stays as written.
pub fn expand_braces(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                out.push_str(v);
            }
        } else {
            out.push_str(&rest[i..i + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `$(VAR)` becomes the variable's value when it is defined, `$$` a `$`; anything else stays.
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
