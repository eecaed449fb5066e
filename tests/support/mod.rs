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
//! v1 Pods (with `log` and `eviction`), v1 ConfigMaps, events.k8s.io/v1 and v1 Events, with
//! create (generateName, dryRun, fieldValidation), get, list (selectors, limit/continue), watch
//! (resourceVersion, bookmarks, timeoutSeconds, 410 Expired), update, merge/strategic/JSON/apply
//! patch, delete (propagationPolicy, gracePeriodSeconds) and deletecollection. Behind it run a Job
//! controller, a kubelet, the garbage collector (any kind, through `ownerReferences`) and the
//! TTL-after-finished controller, in real time; the control plane's own back-offs are scaled
//! (below).
//!
//! Sizes are refused where the real API refuses them: a request body over 3 MiB gets 413
//! `RequestEntityTooLarge` ("Request entity too large: limit is 3145728", kube-apiserver's
//! `MaxRequestBodyBytes`); an object etcd would not take (over its default `--max-request-bytes`,
//! 1.5 MiB) gets **500** with etcd's message and no reason, `etcdserver: request is too large`
//! (past etcd's client send limit, 2 MiB: `rpc error: code = ResourceExhausted desc = trying to
//! send message larger than max (N vs. 2097152)`), as kube-apiserver passes etcd's error on
//! (`isTooLargeError` in `endpoints/handlers/rest.go` only retries without `managedFields`,
//! then `responsewriters.ErrorToAPIStatus` makes any error that is not a `Status` a 500). A
//! ConfigMap whose `data` and `binaryData` hold more than 1 MiB gets 422 first:
//! `[]: Too long: may not be more than 1048576 bytes` (`must have at most` before 1.32).
//!
//! # Which Kubernetes: `FakeCluster::builder().version(minor)`
//! 1.21 to 1.33, default 1.33 (what `/version` reports). As recorded in
//! `/work/shared/KUBERNETES.md` and the Kubernetes changelogs:
//!
//! | from | behaviour |
//! |---|---|
//! | all | graceful pod deletion; `Complete`/`Failed`; `failed` ends at `backoffLimit + 1` for `Never` |
//! | 1.22 | `completionMode` (Indexed Jobs), `suspend` (alpha and dropped in 1.21) |
//! | 1.24 | Job `status.ready` |
//! | 1.25 | server-side field validation: unknown fields warned about (`Warning: 299`) or, with `fieldValidation=Strict`, refused (400); before, pruned silently |
//! | 1.26 | `batch.kubernetes.io/job-tracking` pod finalizer and `uncountedTerminatedPods`; `podFailurePolicy` (with `FailureTarget`); `DisruptionTarget` on evictions |
//! | 1.27 | `batch.kubernetes.io/` Job labels and selector besides `controller-uid`/`job-name` |
//! | 1.28 | an Indexed Job's pods carry their index as a label too, and `JOB_COMPLETION_INDEX` reads the label; its name must leave `<name>-<last index>` a DNS label; `backoffLimitPerIndex`/`maxFailedIndexes` known but alpha and off: dropped silently, `FailIndex` rules with them (before 1.28 the fields are unknown and `FailIndex` an unsupported action) |
//! | 1.29 | `backoffLimitPerIndex`, `maxFailedIndexes`, `FailIndex` (below); Job `status.terminating`, `podReplacementPolicy` (`Failed` when a podFailurePolicy is set) |
//! | 1.31 | `SuccessCriteriaMet`/`FailureTarget` in an update before `Complete`/`Failed`, which waits until no pod is terminating |
//! | 1.32 | validation messages say `Too long: may not be more than N bytes` |
//!
//! Fields newer than the version (podFailurePolicy, successPolicy, managedBy, CronJob
//! `timeZone`, PodSpec `os`/`schedulingGates`/`hostUsers`, Container `resizePolicy`/
//! `restartPolicy`, `appArmorProfile`, ...: the table in `fake/versions.rs`) are unknown there;
//! fields whose feature gate is off by default are dropped silently. `pre_131_conditions(true)`
//! is `version(30)`. [`fake::FakeCluster::kubectl_apply`] applies a YAML manifest as that
//! version's kubectl would (client-side validation before 1.25, `fieldValidation=Strict` after).
//!
//! # Time
//! The Job controller replaces a failed `Never` pod (even one a `podFailurePolicy` rule ignores)
//! after 10 s, doubling up to 6 min; the kubelet restarts an `OnFailure` container at once,
//! then after 10 s, doubling up to 5 min (`CrashLoopBackOff` meanwhile). These delays take `time_scale` of real time (default 0.01:
//! 100 ms, 200 ms, ...). What a user writes (`activeDeadlineSeconds`, `ttlSecondsAfterFinished`,
//! grace periods) and the fates below are real time.
//! [`fake::FakeCluster::backdate`] makes an object look older, standing for time that passed
//! (a parent Job whose `JOBHERD_TIMEOUT` ran out while its pod was away).
//!
//! # History
//! `builder().record_history(true)` keeps every version of every object:
//! [`fake::FakeCluster::history`] returns them in resourceVersion order (the order every
//! watcher saw), with the time each was committed; [`fake::peak`] counts the most objects in
//! some state at once. Tests assert on that instead of sampling the cluster. [`herd`] reads a
//! run from it: the shipped CronJob's parent Job run by the kubelet (each pod an attempt: its
//! log, exit code and termination message), its record, and the child Jobs created, deleted,
//! and what each was given.
//!
//! # Disruptions
//! `POST pods/NAME/eviction` (policy/v1 from 1.22, policy/v1beta1, or a body without a type as
//! kube-rs sends it; `deleteOptions.gracePeriodSeconds`, dryRun) answers 201 with a `Success`
//! `Status` and, as kube-apiserver's `addConditionAndDeletePod`, writes the pod condition
//! `DisruptionTarget=True` (`EvictionByEvictionAPI`, from 1.26) and, in the very next
//! resourceVersion, the graceful delete: a watcher sees the condition one event before the
//! `deletionTimestamp`, and every version from the delete on carries both, so a process that
//! gets SIGTERM and reads its pod sees why. [`fake::FakeCluster::evict`] does the same without a
//! request; [`fake::FakeCluster::disrupt`] does it for `PreemptionByScheduler` and
//! `DeletionByTaintManager`, and for `TerminationByKubelet` stops the pod like the kubelet's
//! node-pressure eviction: SIGTERM with no delete and, while it stops, no condition either; then
//! `Failed`, reason `Evicted`, and the condition in the same write; the pod stays. A
//! `podFailurePolicy` rule `Ignore` on `DisruptionTarget` keeps such pods out of
//! `status.failed`, but their replacement still waits for the pod-failure back-off. kube-rs's
//! `Api::evict` sends its delete options as `delete_options`, a field the API does not know: a
//! `Warning` from 1.25, and its grace period is not read (as on a real cluster).
//!
//! # Indexed Jobs
//! As KUBERNETES.md records them at 1.32 ("Indexed Jobs that pack many children"). A pod per
//! index, named `<job>-<index>-<5 chars>`, hostname `<job>-<index>`, with its index as the
//! annotation and label `batch.kubernetes.io/job-completion-index`, and `JOB_COMPLETION_INDEX`
//! (from the downward API) added to every container, init containers too, that does not set
//! it. `completedIndexes`/`failedIndexes` are written as the Job controller prints them:
//! `0-2,4`, two in a row as `0,1`.
//!
//! With `backoffLimitPerIndex` (the API defaults `backoffLimit` to 2147483647 then): each
//! index is retried on its own after its own pod-failure back-off, its pods carry
//! `batch.kubernetes.io/job-index-failure-count` (and `...-ignored-failure-count` for failures
//! an `Ignore` rule ignored), and an index whose pod fails with as many failures before it as
//! the limit allows, or by a `FailIndex` rule, is in `failedIndexes` and not retried. A failed
//! pod whose index will run again keeps its finalizer and is not in `status.failed` until its
//! replacement exists (the real controller holds it to carry the count over). The Job ends once
//! every index succeeded or failed: `Failed` (`FailureTarget` first), reason `FailedIndexes`,
//! if any failed. More failed indexes than `maxFailedIndexes`: `FailureTarget`
//! (`MaxFailedIndexesExceeded`), the running indexes' pods deleted and counted as failed,
//! `Failed` once they are gone. `FailJob` ends the Job at the first such failure; `Ignore` and
//! `Count` work as for other Jobs. The API refuses what the real validation refuses (the field
//! without `completionMode: Indexed`, `maxFailedIndexes` without it or above `completions`,
//! above 100,000 completions without `maxFailedIndexes` ≤ 10,000 and `parallelism` ≤ 10,000,
//! `FailIndex` without `backoffLimitPerIndex`, an Indexed Job without `completions`), with its
//! messages. It does **not** refuse `restartPolicy: OnFailure`: the field's documentation asks
//! for `Never`, the validation does not check it (and with `OnFailure` the per-index limit
//! never applies: failed containers restart in place).
//!
//! A pod's own `spec.activeDeadlineSeconds` (from its `startTime`): the kubelet stops it
//! (SIGTERM, the containers exit 143 by default) and reports it `Failed`, reason
//! `DeadlineExceeded`, message `Pod was active on the node longer than the specified deadline`;
//! the pod stays, without `DisruptionTarget`.
//!
//! # The Job controller's requests: [`fake::FakeCluster::controller_requests`]
//! The fake's Job controller writes the store directly; a model beside it (`fake/cost.rs`)
//! counts what the real one would have sent for the same work ([`fake::ControllerRequests`],
//! also per Job with `controller_requests_of`, from zero again with
//! `reset_controller_requests`). Exact, one request each: pod creates, pod deletes (when the
//! Job fails, succeeds early or is suspended), and the patches removing the job-tracking
//! finalizer (adding it is part of the create). Modelled: Events (`SuccessfulCreate` and
//! `SuccessfulDelete` per pod, the finish and suspend Events), each a request until client-go's
//! spam filter stops them (25 per Job, then one per 5 minutes); and `jobs/status` updates by
//! the real controller's syncs: one at once when a Job is created or its spec changes and when
//! a back-off it waited for is over, otherwise one per `syncJobBatchPeriod` (1 s, real time: it
//! is compared with the pods' own durations) that sees changes, up to 500 pods counted or
//! created each (`MaxUncountedPods`, `MaxPodCreateDeletePerSync`); and a final condition that
//! waited for terminating pods in a sync of its own. A sync writes the status once if anything
//! changed, and a second time when pods went through `uncountedTerminatedPods` (failed ones;
//! succeeded ones of a NonIndexed Job) or the Job finished. Calibrated on KUBERNETES.md's audit
//! at 1.32: a single-pod Job costs 7 (a create, a patch, 3 updates, 2 Events), KUBERNETES.md's
//! four Indexed Jobs of 15 pods 15 creates, 15 patches, 17 updates, 22 Events (3 deletes
//! besides), one Indexed Job of 1,000 completions 2,029 to 2,031 (the lab: 2,029). The
//! controller's client limit (20/s by default) decides how long they take, not how many there
//! are: `ControllerRequests::seconds_at(20.0)`.
//!
//! # ConfigMaps
//! Served like the other kinds (validated: key names, 1 MiB, `immutable`). A pod's
//! `configMap` volume (`items`, `optional`, `subPath`) that cannot be mounted (the ConfigMap or
//! a key its `items` name is missing) keeps the pod `Pending`, its containers waiting
//! `ContainerCreating`, with a `FailedMount` Warning Event, until the ConfigMap is there.
//! `configMapKeyRef` and `envFrom` `configMapRef` give their values (a missing one:
//! `CreateContainerConfigError` until it exists). [`fake::FakeCluster::volume_file`] (and in the
//! fake `configmap::volume_file`) reads a file as a container sees it at a path under a mount.
//!
//! # Suspended Jobs and Kueue
//! The Job controller treats `spec.suspend` as 1.32 does (KUBERNETES.md's table): a suspended
//! Job has `Suspended=True` (`JobSuspended`) and no pods; resuming writes `Suspended=False`
//! (`JobResumed`), a pod and a fresh `startTime` in one update; suspending a running Job
//! deletes its pods without counting them (`terminating` until they are gone); `Suspended` and
//! `Resumed` Events. `builder().kueue(true)` adds Kueue's webhook: the API creates every Job
//! labelled `kueue.x-k8s.io/queue-name` suspended (others are untouched), and
//! [`fake::FakeCluster::admit`] / [`fake::FakeCluster::preempt`] update `spec.suspend` as
//! Kueue's controller does, when the test says so.
//!
//! # A child's fate is written in the child
//! The kubelet reads each container's environment (`value` only). Pod-wide settings
//! (`FAKE_PENDING_MS`, `FAKE_UNSCHEDULABLE`) come from the first container. In a pod of an
//! Indexed Job, `FAKE_<NAME>_<index>` stands in for `FAKE_<NAME>` (`FAKE_EXIT_2=3`: index 2
//! exits 3, the others 0); so it does in a child Job of a jobherd fan-out, by its
//! `JOBHERD_CHILD_INDEX`, so that one configuration fails the same child packed or not. A
//! container that runs jobherd's entrypoint (`/jobherd-pack/bin/jobherd entrypoint -- ...`,
//! a packed child that needs its own variables) gets what the entrypoint sets: its member's
//! variables from the values file its pack's ConfigMap mounts. Init containers run one after the other before the others, each
//! with its own fate (by default: exit 0 after 50 ms); the pod is `Pending` meanwhile
//! (`initContainerStatuses`, the others waiting `PodInitializing`, `Initialized=False`,
//! kubectl's `Init:N/M`); one that fails fails a `Never` pod, and restarts with
//! CrashLoopBackOff otherwise. An init container of jobherd's image does not run jobherd: it is
//! a plain container that succeeds.
//!
//! | variable | effect | default |
//! |---|---|---|
//! | `FAKE_PENDING_MS` | time in Pending (ContainerCreating) before the containers start | `10` |
//! | `FAKE_RUN_MS` | how long each attempt runs | `50` |
//! | `FAKE_EXIT` | exit code per attempt, comma-separated; the last one repeats (`1,1,0`) | `0` |
//! | `FAKE_LOG` | log lines of every attempt, separated by a newline or a literal `\n` | `hello from <pod>` |
//! | `FAKE_HOLD` | run until `FakeCluster::release(NAME)`, then exit with the attempt's code | none |
//! | `FAKE_TERM_MS` | how long it takes to exit after SIGTERM (pod deleted); beyond the grace period it is SIGKILLed (137) | `100` |
//! | `FAKE_TERM_EXIT` | exit code after SIGTERM | `143` |
//! | `FAKE_MESSAGE` | what it writes to its termination-message file when it exits; `${NAME}` is the container's variable as the kubelet resolved it (`value` with `$(VAR)`, downward API, `HOSTNAME`, `JOB_COMPLETION_INDEX`, what jobherd adds such as `JOBHERD_CHILD_INDEX` or `JOBHERD_ITEM`), empty when undefined | none |
//! | `FAKE_MESSAGE_REPEAT` | writes the expanded `FAKE_MESSAGE` N times (past the kubelet's 4096 bytes) | `1` |
//! | `FAKE_WAITING` | stay Pending with this waiting reason (`ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`, ...) | none |
//! | `FAKE_UNSCHEDULABLE` | `1`: stay Pending with `PodScheduled=False`, reason `Unschedulable` | none |
//! | `FAKE_INSTANT` | `1`: start and end in one moment: the pod goes from Pending straight to `Succeeded` (or `Failed`) in one write, never reported Running, and its Job ends right after (a child done before anyone saw it run); `FAKE_HOLD` still holds it, running | none |
//!
//! An image starting with `fake-missing/` behaves like `FAKE_WAITING=ErrImagePull`.
//! ErrImagePull and ImagePullBackOff alternate every 300 ms, as a real kubelet's retries do.
//! A required `secretKeyRef`/`secretRef` gives `CreateContainerConfigError` (the fake serves no
//! Secrets), as does a missing ConfigMap (above).
//!
//! A container's `state.terminated.message` appears once it has terminated, never before: the
//! end of its termination-message file (the kubelet reads at most the last 4096 bytes), or, with
//! `terminationMessagePolicy: FallbackToLogsOnError`, a failure and an empty file, the log's
//! last 80 lines (each ending in a newline), at most their last 2048 bytes. A container of
//! jobherd's image is judged by the file its process wrote (`JOBHERD_TERMINATION_LOG`).
//! One template gives each child of a fan-out its own message:
//! `JOBHERD_ENV='{"FAKE_MESSAGE":"{\"rows\":${JOBHERD_CHILD_INDEX}}"}'`.
//!
//! An *attempt* is a pod with `restartPolicy: Never` (attempt N = the Job's N-th pod, counted by
//! its failed pods when the pod was created; with `backoffLimitPerIndex`, the index's N-th pod),
//! and a container restart with `OnFailure` (attempt N = restartCount N). A failing attempt
//! logs a last line `exit code N`.
//! With jobherd, set these through `JOBHERD_ENV` (`{"FAKE_EXIT":"1,0"}`) or `JOBHERD_PARAMS`.
//!
//! A container whose image is jobherd's (`jobherd`, `jobherd:0.1.0`,
//! `registry/x/jobherd@sha256:...`) runs the real binary instead: see `fake/process.rs`.
//!
//! Objects annotated `fake.jobherd.io/unmanaged` are left alone by the Job controller and the
//! kubelet ([`fake::FakeCluster::create_parent`] uses this for jobherd's own Job and Pod).
//!
//! # Where the fake still differs from a real cluster, and why
//! - No CronJob controller: CronJobs are stored, never scheduled (jobherd never waits for one).
//! - `successPolicy` and `managedBy` are stored, not acted on (jobherd builds neither).
//! - The Job controller's pod-failure back-off doubles up to 6 minutes, as it did when the fake
//!   was written; the current Job controller's `MaxJobPodFailureBackOff` is 10 minutes.
//! - One node, no scheduler constraints, no probes; a pod is Ready when all its containers
//!   run; QoS is always BestEffort. jobherd reads none of it. An init container with
//!   `restartPolicy: Always` (a sidecar, 1.28+) is run as a plain init container.
//! - No Secrets (references to one fail as if it were missing); no volumes but `configMap`
//!   ones (the others are ignored). A `configMap` volume shows the ConfigMap as it is now
//!   (a real kubelet updates mounted files within a minute or so, never under `subPath`); file
//!   modes are ignored. The kubelet retries a pod waiting for a ConfigMap the moment one of its
//!   namespace changes (the real one within seconds) and writes its `FailedMount` Event once
//!   (the real one repeats it about every two minutes).
//! - The size etcd sees is the object's compact JSON; etcd stores protobuf, a little smaller,
//!   so an object just under the limit may be refused here and not on a real cluster.
//! - The Job controller's requests are a model (above), not requests: the fake stores only the
//!   finish and suspend Events (not `SuccessfulCreate`/`SuccessfulDelete`), even where the spam
//!   filter would have dropped them; the model groups changes by time, so a machine slow enough to stretch
//!   what a real sync would see in one batch period over two counts one update more; one Job's
//!   syncs are not delayed by the others' (the real controller shares one client and five
//!   workers between all Jobs).
//! - Controllers see each write at once (no informer lag) and watchers get events of every kind
//!   in one global order; real ones only order per resource. Both only make races rarer.
//! - Before 1.27 a real kubelet could remove a deleted `OnFailure` pod without a terminal phase;
//!   the fake always writes `Failed`/`Succeeded` first.
//! - `compact()` moves the revision past every resourceVersion handed out, as a real cluster's
//!   constant writes (leases, other namespaces) do before any compaction.
//! - The only Events stored are the Job controller's `Suspended`, `Resumed`, and on finish
//!   (`Completed`, `BackoffLimitExceeded`, `DeadlineExceeded`, `PodFailurePolicy`,
//!   `FailedIndexes`, `MaxFailedIndexesExceeded`), and the kubelet's `FailedMount`; RBAC is
//!   `forbid()`, no real authorization.
//! - Kueue is only its webhook and the two spec updates: no queues, quotas, Workload objects
//!   or admission order, no "ancestor already queued" rule, and on preemption none of the
//!   extras of its controller (it also clears `status.startTime`, annotates the Job and may
//!   change the pod template's node selectors).
//! - No PodDisruptionBudgets: every eviction is allowed (never 429); no eviction preconditions.
//!   No node ever goes away, so no `DeletionByPodGC`.

pub mod debian;
pub mod fake;
pub mod herd;
pub mod jobherd;

pub use fake::{
    ControllerRequests, FakeCluster, Kind, Parent, Propagation, Request, Revision, TRACKING, peak,
};
pub use jobherd::{Jobherd, Output, Running};

use std::time::Duration;

/// Shorthand for test timeouts.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
