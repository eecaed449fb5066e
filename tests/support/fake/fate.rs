//! A container's fate, written in its env (the support module's table): how long it pends,
//! runs and takes to stop, its exit codes, log, termination message, and what keeps it waiting.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::indexed;
use super::process;

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
    /// The fate of one container (a container spec); in a pod of an Indexed Job (`index`),
    /// `FAKE_<NAME>_<index>` stands in for `FAKE_<NAME>`.
    pub fn of_container(c: &Value, index: Option<u32>) -> Fate {
        let env = fate_env(c, index);
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
        Self::of_container(&pod["spec"]["containers"][0], index_of(pod))
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

/// The container's `value` variables, with `FAKE_<NAME>_<index>` in place of `FAKE_<NAME>`
/// for the pod of that index.
fn fate_env(c: &Value, index: Option<u32>) -> HashMap<&str, &str> {
    let mut env: HashMap<&str, &str> = c["env"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|v| Some((v["name"].as_str()?, v["value"].as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    if let Some(i) = index {
        let suffix = format!("_{i}");
        let own: Vec<(&str, &str)> = env
            .iter()
            .filter(|(k, _)| k.starts_with("FAKE_"))
            .filter_map(|(k, v)| Some((k.strip_suffix(suffix.as_str())?, *v)))
            .collect();
        env.extend(own);
    }
    env
}

/// Which `FAKE_<NAME>_<index>` a pod's containers follow: its completion index, or its child
/// index in a jobherd fan-out.
pub fn index_of(pod: &Value) -> Option<u32> {
    indexed::index_of(pod).or_else(|| child_index(&pod["spec"]["containers"][0]))
}

/// A child of a jobherd fan-out that is a Job of its own: its `JOBHERD_CHILD_INDEX` (as
/// jobherd sets it, a plain value), so `FAKE_<NAME>_<index>` means the same child packed or
/// not.
fn child_index(container: &Value) -> Option<u32> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == "JOBHERD_CHILD_INDEX")?["value"]
        .as_str()?
        .parse()
        .ok()
}
