#![allow(dead_code, unused_imports)]
//! Test support shared by every integration test and benchmark: a fake Kubernetes cluster
//! ([`fake::FakeCluster`]) and a runner for the real `jobherd` binary ([`jobherd`]).
//!
//! ```ignore
//! mod support;
//! use support::*;
//!
//! let cluster = FakeCluster::start();
//! let out = cluster.jobherd().env("JOBHERD_IMAGE", "busybox").env("JOBHERD_COUNT", "3").run();
//! assert_eq!(out.code, Some(0), "{out}");
//! ```
//!
//! # The fake cluster
//! kube-apiserver's HTTP/JSON API on `127.0.0.1:<random port>` (plain http; the kubeconfig
//! from [`fake::FakeCluster::kubeconfig_path`] points at it) for batch/v1 Jobs and CronJobs,
//! v1 Pods (with `log`), events.k8s.io/v1 and v1 Events, with create (generateName, dryRun),
//! get, list (selectors, limit/continue), watch (resourceVersion, bookmarks, timeoutSeconds,
//! 410 Expired), update, merge/strategic/JSON/apply patch, delete (propagationPolicy) and
//! deletecollection. Behind it run a Job controller (Kubernetes 1.33 semantics, or pre-1.31
//! conditions with `FakeCluster::builder().pre_131_conditions(true)`), a kubelet, the
//! garbage collector and the TTL-after-finished controller, all in real time.
//!
//! # A child's fate is written in the child
//! The kubelet reads the environment (`value` only) of a pod's **first container**:
//!
//! | variable | effect | default |
//! |---|---|---|
//! | `FAKE_PENDING_MS` | time in Pending (ContainerCreating) before Running | `10` |
//! | `FAKE_RUN_MS` | how long each attempt runs | `50` |
//! | `FAKE_EXIT` | exit code per attempt, comma-separated; the last one repeats (`1,1,0`) | `0` |
//! | `FAKE_LOG` | log lines of every attempt, separated by a newline or a literal `\n` | `hello from <pod>` |
//! | `FAKE_WAITING` | stay Pending with this waiting reason (`ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`, ...) | none |
//! | `FAKE_UNSCHEDULABLE` | `1`: stay Pending with `PodScheduled=False`, reason `Unschedulable` | none |
//!
//! An image starting with `fake-missing/` behaves like `FAKE_WAITING=ErrImagePull`.
//! ErrImagePull and ImagePullBackOff alternate every 300 ms, as a real kubelet's retries do.
//!
//! An *attempt* is a pod with `restartPolicy: Never` (attempt N = the Job's N-th pod, counted by
//! its failed pods when the pod was created), and a container restart with `OnFailure`
//! (attempt N = restartCount N). A failing attempt logs a last line `exit code N`.
//! With jobherd, set these through `JOBHERD_ENV` (`{"FAKE_EXIT":"1,0"}`) or `JOBHERD_PARAMS`.
//!
//! Objects annotated `fake.jobherd.io/unmanaged` are left alone by the Job controller and the
//! kubelet ([`fake::FakeCluster::create_parent`] uses this for jobherd's own Job and Pod).

pub mod fake;
pub mod jobherd;

pub use fake::{FakeCluster, Kind, Parent, Propagation, Request};
pub use jobherd::{Jobherd, Output, Running};

use std::time::Duration;

/// Shorthand for test timeouts.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
