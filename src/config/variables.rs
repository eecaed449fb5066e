//! The `JOBHERD_*` variables: one table declares each (type, default, allowed values, meaning,
//! whether the trigger keeps it), and the typo guard, the parser, trigger mode and the reference
//! all read it. Each is parsed into the typed `Config` or `TriggerConfig` with its name on errors.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde::Deserialize;

use super::{
    CHILD_PREFIX, Cleanup, Config, ConfigError, DEFAULT_PACK_SIZE, DryRun, EnvMap, FanOut,
    ITEM_VAR, LAST_FAILED, LogFormat, LogsMode, MAX_PACK_SIZE, PREFIX, Pack, PlanSource, Progress,
    RESULT_PREFIX, RateLimit, RestartPolicy, RetryFrom, StepSettings, TriggerConfig,
    check_dns_label, env_from_json, job_from_json, nearest, params_from_json, parse_bool,
    parse_duration, parse_json, parse_positive_duration, parse_queue, string_array_from_json,
};

/// `JOBHERD_HEARTBEAT` when unset: a quiet run shows it lives once a minute, often enough
/// for idle-connection timeouts of `kubectl logs -f` and CI consoles.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Kubernetes' default `terminationMessagePath`.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// One `JOBHERD_*` variable: what the typo guard knows, what the parser reads, and what the
/// reference (`jobherd --help-all`, `docs/reference.md`) says about it.
#[derive(Debug)]
pub struct Variable {
    /// The variable without `JOBHERD_`, lowercased: its field in `RawVars`, as envy names it.
    pub field: &'static str,
    /// What its value is (`duration`, `JSON array of strings`, ...).
    pub kind: &'static str,
    /// The only values it takes, when they are a fixed set.
    pub values: &'static [&'static str],
    /// Its value when unset, when that is a value it takes (setting it changes nothing).
    pub default: &'static str,
    /// What happens when it is unset, in words, when that is no single value.
    pub unset: &'static str,
    /// What it does, in a sentence or two (Markdown).
    pub meaning: &'static str,
    /// In trigger mode the trigger keeps it for itself; every other variable is passed on to
    /// the triggered parent as an override.
    pub trigger_own: bool,
}

impl Variable {
    /// What an entry of the table leaves out.
    const BLANK: Variable = Variable {
        field: "",
        kind: "string",
        values: &[],
        default: "",
        unset: "",
        meaning: "",
        trigger_own: false,
    };

    /// The variable as it is written: `JOBHERD_BACKOFF_LIMIT`.
    pub fn name(&self) -> String {
        format!("{PREFIX}{}", self.bare())
    }

    /// Its default as the reference and `--help` show it: the value, or words, or "none".
    pub fn default_text(&self) -> String {
        match (self.default, self.unset) {
            ("", "") => "none".to_string(),
            ("", words) => words.to_string(),
            (value, _) => format!("`{value}`"),
        }
    }

    /// The variable without the prefix: `BACKOFF_LIMIT`.
    fn bare(&self) -> String {
        self.field.to_ascii_uppercase()
    }
}

/// Declares every variable once, as one entry of the table: `field { key: value, ... }`, the
/// field being the variable without `JOBHERD_`, lowercased, and the keys those of `Variable`
/// (left out: `Variable::BLANK`'s). It makes the table and a field of `RawVars` for each.
macro_rules! variables {
    ($($field:ident { $($key:ident: $value:expr),* $(,)? })*) => {
        /// The variables as strings, exactly as envy reads them. Typed parsing happens in
        /// `into_config` so that each error can name its variable and show its value.
        #[derive(Debug, Default, Deserialize)]
        pub(super) struct RawVars {
            $($field: Option<String>,)*
        }

        /// Every variable jobherd reads, in the order the reference lists them.
        #[allow(clippy::needless_update)]
        pub const VARIABLES: &[Variable] = &[$(Variable {
            field: stringify!($field),
            $($key: $value,)*
            ..Variable::BLANK
        }),*];
    };
}

const DURATION: &str = "duration";
const POSITIVE_DURATION: &str = "duration greater than 0";
const POSITIVE: &str = "whole number greater than 0";
const STRINGS: &str = "JSON array of strings";
const LABEL: &str = "DNS-1123 label";
const PATH: &str = "path";

variables! {
    image {
        kind: "image reference",
        unset: "required, unless a plan or `JOBHERD_JOB_TEMPLATE` gives every child an image",
        meaning: "The container image every child runs.",
    }
    command {
        kind: STRINGS,
        unset: "the image's entrypoint",
        meaning: "The child's command, exec form: `[\"perl\",\"-e\",\"print 1\"]`. Excludes `JOBHERD_SHELL`.",
    }
    args {
        kind: STRINGS,
        meaning: "The child's arguments. Excludes `JOBHERD_SHELL`.",
    }
    shell {
        meaning: "A string the child runs as `[\"/bin/sh\",\"-c\",STRING]`, so it reads variables as `$NAME`; the image needs a shell. Excludes `JOBHERD_COMMAND` and `JOBHERD_ARGS`.",
    }
    env {
        kind: "JSON object",
        meaning: "Environment variables for every child (values: strings, numbers or booleans). A child's own variables (`JOBHERD_CHILD_INDEX`, its params, `JOBHERD_ITEM`, `JOBHERD_RESULT_*`) come first in its env list, so these may refer to them as `$(JOBHERD_CHILD_INDEX)`.",
    }
    params {
        kind: "JSON array of objects",
        unset: "one child",
        meaning: "One child per element: the element's entries become that child's environment variables (over `JOBHERD_ENV`), beside `JOBHERD_CHILD_INDEX` and `JOBHERD_CHILD_COUNT`. Excludes `JOBHERD_COUNT` and a plan (give a step `params`).",
    }
    count {
        kind: POSITIVE,
        unset: "one child",
        meaning: "N children, each with `JOBHERD_CHILD_INDEX` (0 to N-1) and `JOBHERD_CHILD_COUNT` (N). Excludes `JOBHERD_PARAMS` and a plan (give a step `count`).",
    }
    parallelism {
        kind: POSITIVE,
        unset: "no limit (a Jobernetes model's `parallelization`, when it has one)",
        meaning: "The most children active at once (created and not finished, queued ones included); the others are created as these finish.",
    }
    backoff_limit {
        kind: "whole number, 0 or more",
        default: "6",
        meaning: "The child Job's `spec.backoffLimit`: how many failed attempts it retries before it fails with `BackoffLimitExceeded`.",
    }
    restart_policy {
        kind: "one of",
        values: &["OnFailure", "Never"],
        default: "OnFailure",
        meaning: "The child pod's `restartPolicy`: `OnFailure` restarts the failed container in its pod (as `kubectl run --restart=OnFailure`), `Never` makes a new pod for each attempt (what a `podFailurePolicy` needs).",
    }
    child_timeout {
        kind: POSITIVE_DURATION,
        meaning: "The child Job's `spec.activeDeadlineSeconds`: a child running longer fails with `DeadlineExceeded`.",
    }
    timeout {
        kind: POSITIVE_DURATION,
        meaning: "The deadline of the whole run, counted from the parent Job's creation across its attempts: then the active children are deleted, nothing more is created, and jobherd exits 3.",
    }
    fail_fast {
        kind: "boolean",
        values: &["true", "false"],
        default: "false",
        meaning: "`true`: the first failed child cancels the active children and skips those not started yet (`when: failed` and `always` steps still run).",
    }
    cleanup {
        kind: "one of",
        values: &["never", "succeeded", "always"],
        default: "never",
        meaning: "Which finished children are deleted when the run ends: none, the succeeded ones (failed ones stay for their logs), or all. A Jobernetes model's `cleanup: true` is `succeeded`; the variable wins.",
    }
    ttl {
        kind: DURATION,
        meaning: "The child Job's `spec.ttlSecondsAfterFinished`: Kubernetes deletes a finished child that long after it finished.",
    }
    namespace {
        kind: LABEL,
        unset: "the parent's; outside a pod, the kubeconfig context's",
        meaning: "The namespace of the children. In trigger mode, the CronJob's namespace.",
        trigger_own: true,
    }
    name_prefix {
        kind: LABEL,
        unset: "the parent Job's name; outside a pod, `jobherd-<run id>`",
        meaning: "Children are named `<prefix>-<index>`, or `<prefix>-<step>` and `<prefix>-<step>-<index>` with a plan.",
    }
    job_template {
        kind: "JSON: a batch/v1 Job",
        meaning: "The base of every child (resources, volumes, nodeSelector, serviceAccountName, podFailurePolicy, ...); the variables are applied on top, and unset ones keep its values. The output of `kubectl get job NAME -o json` will do: server-set fields are dropped.",
    }
    plan {
        kind: "JSON or YAML",
        meaning: "A dependency plan (`steps`, `phases` or a Jobernetes model), inline; relative `job_file` paths are taken from the current directory. Excludes `JOBHERD_PLAN_FILE`, `JOBHERD_COUNT` and `JOBHERD_PARAMS`.",
    }
    plan_file {
        kind: PATH,
        meaning: "A file holding the plan (JSON or YAML), typically a mounted ConfigMap; relative `job_file` and `job_path` paths are taken from its directory.",
    }
    stuck_timeout {
        kind: POSITIVE_DURATION,
        default: "2m",
        meaning: "How long a child's pod may wait in a state that does not resolve itself (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, `ErrImageNeverPull`, `CreateContainerConfigError`, `CreateContainerError`) before the child fails with that reason, and is deleted. A queued child has no pod and is never stuck.",
    }
    logs {
        kind: "one of",
        values: &["failed", "all", "none"],
        default: "failed",
        meaning: "Which children's logs jobherd prints: the last 20 lines of each failed child, every child's log as it comes (each line prefixed with the child's name), or none.",
    }
    report_file {
        kind: PATH,
        meaning: "Write the JSON report there at the end. In trigger mode it is written on the caller's side, from what the cluster holds.",
        trigger_own: true,
    }
    junit_file {
        kind: PATH,
        meaning: "Write a JUnit XML report there at the end: one testcase per child. In trigger mode it is written on the caller's side.",
        trigger_own: true,
    }
    dry_run {
        kind: "one of",
        values: &["client", "server"],
        meaning: "`client`: print the child Jobs as a JSON `v1` `List` and exit 0, with no cluster needed; `server`: submit them with `dryRun=All` and print what the API server returned. In trigger mode: print the Job the trigger would create.",
        trigger_own: true,
    }
    log_format {
        kind: "one of",
        values: &["text", "json"],
        default: "text",
        meaning: "The format of jobherd's own log lines on stderr (warnings, retries); `RUST_LOG` sets their levels.",
        trigger_own: true,
    }
    termination_log {
        kind: PATH,
        default: "/dev/termination-log",
        meaning: "The file the summary line is written to, when it exists, for `kubectl describe pod`: set it when jobherd's container has a `terminationMessagePath` of its own.",
        trigger_own: true,
    }
    qps {
        kind: "number greater than 0, at most 10000",
        default: "20",
        meaning: "The client-side limit on jobherd's own writes (creates and deletes), in requests per second; fractions are allowed (`0.5`).",
    }
    burst {
        kind: POSITIVE,
        default: "40",
        meaning: "How many writes may go at once after a quiet spell, before `JOBHERD_QPS` paces them; also the most creates in flight (at most 64).",
    }
    heartbeat {
        kind: DURATION,
        default: "1m",
        meaning: "After this long with nothing printed, one line of counts and the child running longest; `0` turns it off.",
    }
    progress {
        kind: "one of",
        values: &["auto", "lines", "counts"],
        default: "auto",
        meaning: "`lines`: a line per child state change; `counts`: a counts line every 10 s while things change, and a line per failure; `auto`: `lines` up to 100 children, `counts` above.",
    }
    retry {
        kind: "a parent Job's name, or `last-failed`",
        meaning: "Run only what did not succeed in that earlier run, taking over its results; `last-failed` is the newest failed run of the same CronJob.",
        trigger_own: true,
    }
    trigger {
        kind: "`cronjob/NAME`",
        meaning: "Trigger mode: create a Job from that CronJob as `kubectl create job --from=cronjob/NAME` does, follow it, and exit with its exit code. The variables that are not the trigger's own are set on the created parent as overrides.",
        trigger_own: true,
    }
    trigger_name {
        kind: LABEL,
        unset: "`<cronjob>-<8 random characters>`",
        meaning: "Trigger mode: the name of the Job to create; it must not exist yet.",
        trigger_own: true,
    }
    trigger_timeout {
        kind: POSITIVE_DURATION,
        unset: "no limit (the parent's own `activeDeadlineSeconds` still applies)",
        meaning: "Trigger mode: how long to follow the parent; then it is deleted with its children, and the trigger exits 3.",
        trigger_own: true,
    }
    pack {
        kind: "one of",
        values: &["off", "indexed"],
        default: "off",
        meaning: "`indexed`: every fan-out (`JOBHERD_COUNT`, `JOBHERD_PARAMS`, a step's `count`, `params` or `params_from`) is packed into Indexed Jobs, one completion index per child, instead of a Job per child: the cluster's Job controller spends about a third as much on a big herd. Needs Kubernetes 1.29 or newer; packed children run with `restartPolicy: Never`. A plan step's `pack` wins. See `docs/big-herds.md`.",
    }
    pack_size {
        kind: "whole number, 1 to 100000",
        default: "10000",
        meaning: "The most children one packed Job holds; a bigger fan-out becomes several. A pack also holds fewer when its children's own variables would take more than 900 KiB of its ConfigMap.",
    }
    pack_image {
        kind: "image reference",
        unset: "in a pod, jobherd's own image; outside one, required when a packed child needs jobherd's entrypoint",
        meaning: "The jobherd image that an init container of a packed child copies jobherd's entrypoint from, when the child needs its own variables set (params, `JOBHERD_ITEM`, a pack past the first of a `count` step, a retry).",
    }
    queue {
        kind: "a Kueue LocalQueue's name",
        meaning: "A Kueue LocalQueue in the children's namespace: every child Job (not its pod template) gets the label `kueue.x-k8s.io/queue-name` with this value, so Kueue admits each child against its quota; a plan step's `queue` wins.",
    }
    html_file {
        kind: PATH,
        meaning: "A self-contained HTML page of the run (a timeline of every child, the plan's graph with each step's state, the table and the failed children's log tails), written at the end and refreshed while the run goes; safe under Jenkins' default Content-Security-Policy. In trigger mode it is written on the caller's side. See `docs/see-a-run.md`.",
        trigger_own: true,
    }
    pushgateway {
        kind: "URL (http or https)",
        meaning: "A Prometheus Pushgateway: the run's metrics are pushed there while it goes and at its end, grouped by `job` (the CronJob, or the name prefix outside one) and `namespace`; a failed push is a warning. See `docs/see-a-run.md`.",
    }
}

/// Variables a jobherd may find set that are not meant for it: a parent sets
/// `JOBHERD_CHILD_*`, `JOBHERD_RESULT_*` and `JOBHERD_ITEM` on its children, which may be jobherd
/// parents themselves. Entries ending in `_` are prefixes; a known variable that starts the same
/// (`JOBHERD_CHILD_TIMEOUT`) is still read and checked.
const NOT_OURS: &[&str] = &[CHILD_PREFIX, RESULT_PREFIX, ITEM_VAR];

/// The `JOBHERD_*` variables, each known (a typo is an error with a "did you mean"), without
/// the empty ones.
pub(super) fn known_vars(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ours: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .filter(|(k, _)| is_known(k) || !is_not_ours(k))
        .collect();
    for (key, _) in &ours {
        let bare = &key[PREFIX.len()..];
        if !is_known(key) {
            let hint = closest(bare)
                .map(|k| format!(" (did you mean {PREFIX}{k}?)"))
                .unwrap_or_default();
            return Err(ConfigError::Unknown {
                var: key.clone(),
                hint,
            });
        }
    }
    // Empty values count as unset, as they do for most Kubernetes tooling and in
    // manifests where a variable is templated to "".
    Ok(ours
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect())
}

fn is_known(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|bare| known().any(|k| k == bare))
}

fn is_not_ours(key: &str) -> bool {
    NOT_OURS.iter().any(|n| {
        if n.ends_with('_') {
            key.starts_with(n)
        } else {
            key == *n
        }
    })
}

/// The known variables without the prefix, as they are written (`BACKOFF_LIMIT`).
fn known() -> impl Iterator<Item = String> {
    VARIABLES.iter().map(Variable::bare)
}

/// The known variable nearest to a misspelt one, if it is close enough to be a typo.
fn closest(bare: &str) -> Option<String> {
    let known: Vec<String> = known().collect();
    nearest(bare, known.iter().map(String::as_str)).map(str::to_string)
}

pub(super) fn read_raw(vars: Vec<(String, String)>) -> Result<RawVars, ConfigError> {
    envy::prefixed(PREFIX)
        .from_iter(vars)
        .map_err(|e| ConfigError::Plan(format!("reading {PREFIX}* variables: {e}")))
}

/// The trigger's own settings, and every other variable as an override for the triggered parent.
pub(super) fn trigger_config(ours: Vec<(String, String)>) -> Result<TriggerConfig, ConfigError> {
    let own = |k: &str| {
        let bare = &k[PREFIX.len()..];
        VARIABLES.iter().any(|v| v.trigger_own && v.bare() == bare)
    };
    let (mine, overrides): (Vec<_>, Vec<_>) = ours.into_iter().partition(|(k, _)| own(k));
    let raw = read_raw(mine)?;
    let cronjob = opt(&raw.trigger, "trigger", parse_trigger)?.unwrap_or_default();
    let label = |v: &str| check_dns_label(v).map(|()| v.to_string());
    Ok(TriggerConfig {
        cronjob,
        name: opt(&raw.trigger_name, "trigger_name", label)?,
        namespace: opt(&raw.namespace, "namespace", label)?,
        timeout: opt(
            &raw.trigger_timeout,
            "trigger_timeout",
            parse_positive_duration,
        )?,
        report_file: raw.report_file.clone().map(PathBuf::from),
        junit_file: raw.junit_file.clone().map(PathBuf::from),
        html_file: raw.html_file.clone().map(PathBuf::from),
        dry_run: opt(&raw.dry_run, "dry_run", parse_dry_run)?,
        log_format: opt(&raw.log_format, "log_format", parse_log_format)?.unwrap_or_default(),
        retry: opt(&raw.retry, "retry", parse_retry)?,
        overrides,
    })
}

impl RawVars {
    pub(super) fn into_config(self) -> Result<Config, ConfigError> {
        self.check_run_mode()?;
        let defaults = self.defaults()?;
        let plan = self.plan(&defaults)?;
        let label = |s: &str| check_dns_label(s).map(|()| s.to_string());
        Ok(Config {
            defaults,
            parallelism: opt(&self.parallelism, "parallelism", parse_positive)?,
            timeout: opt(&self.timeout, "timeout", parse_positive_duration)?,
            fail_fast: opt(&self.fail_fast, "fail_fast", parse_bool)?.unwrap_or(false),
            cleanup: opt(&self.cleanup, "cleanup", Cleanup::parse)?,
            namespace: opt(&self.namespace, "namespace", label)?,
            name_prefix: opt(&self.name_prefix, "name_prefix", label)?,
            plan,
            stuck_timeout: opt(
                &self.stuck_timeout,
                "stuck_timeout",
                parse_positive_duration,
            )?
            .unwrap_or(Duration::from_secs(120)),
            logs: opt(&self.logs, "logs", parse_logs)?.unwrap_or_default(),
            report_file: self.report_file.clone().map(PathBuf::from),
            junit_file: self.junit_file.clone().map(PathBuf::from),
            html_file: self.html_file.clone().map(PathBuf::from),
            pushgateway: opt(&self.pushgateway, "pushgateway", parse_pushgateway)?,
            pack_size: opt(&self.pack_size, "pack_size", parse_pack_size)?
                .unwrap_or(DEFAULT_PACK_SIZE),
            pack_image: self.pack_image.clone(),
            dry_run: opt(&self.dry_run, "dry_run", parse_dry_run)?,
            log_format: opt(&self.log_format, "log_format", parse_log_format)?.unwrap_or_default(),
            rate: RateLimit {
                qps: opt(&self.qps, "qps", parse_qps)?.unwrap_or(RateLimit::default().qps),
                burst: opt(&self.burst, "burst", parse_positive)?
                    .unwrap_or(RateLimit::default().burst),
            },
            heartbeat: opt(&self.heartbeat, "heartbeat", parse_duration)?
                .map_or(Some(DEFAULT_HEARTBEAT), |d| (!d.is_zero()).then_some(d)),
            progress: opt(&self.progress, "progress", parse_progress)?.unwrap_or_default(),
            retry: opt(&self.retry, "retry", parse_retry)?,
            termination_log: self
                .termination_log
                .clone()
                .map_or_else(|| PathBuf::from(TERMINATION_LOG), PathBuf::from),
        })
    }

    /// The trigger's own settings make no sense without trigger mode.
    fn check_run_mode(&self) -> Result<(), ConfigError> {
        for (name, set) in [
            ("TRIGGER_NAME", &self.trigger_name),
            ("TRIGGER_TIMEOUT", &self.trigger_timeout),
        ] {
            if set.is_some() {
                return Err(ConfigError::Missing {
                    var: format!("{PREFIX}TRIGGER"),
                    why: format!(
                        "{PREFIX}{name} only goes with trigger mode (JOBHERD_TRIGGER=cronjob/NAME)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// What every child gets, unless a plan step sets its own.
    fn defaults(&self) -> Result<StepSettings, ConfigError> {
        let env = match &self.env {
            Some(v) => parse_json(v)
                .and_then(|j| env_from_json(&j))
                .map_err(|e| ConfigError::invalid("env", v, e))?,
            None => EnvMap::new(),
        };
        if self.shell.is_some() {
            for (name, set) in [("COMMAND", &self.command), ("ARGS", &self.args)] {
                if set.is_some() {
                    return Err(conflict(
                        "SHELL",
                        name,
                        "SHELL runs [\"/bin/sh\",\"-c\",SHELL]; use either SHELL or COMMAND/ARGS",
                    ));
                }
            }
        }
        let job = opt(&self.job_template, "job_template", |v| {
            parse_json(v).and_then(job_from_json)
        })?;
        Ok(StepSettings {
            image: self.image.clone(),
            command: opt(&self.command, "command", parse_string_array)?,
            args: opt(&self.args, "args", parse_string_array)?,
            shell: self.shell.clone(),
            env,
            fan_out: self.fan_out()?,
            backoff_limit: opt(&self.backoff_limit, "backoff_limit", parse_backoff_limit)?,
            restart_policy: opt(&self.restart_policy, "restart_policy", RestartPolicy::parse)?,
            child_timeout: opt(
                &self.child_timeout,
                "child_timeout",
                parse_positive_duration,
            )?,
            ttl: opt(&self.ttl, "ttl", parse_duration)?,
            queue: opt(&self.queue, "queue", parse_queue)?,
            pack: opt(&self.pack, "pack", Pack::parse)?,
            job,
        })
    }

    fn fan_out(&self) -> Result<FanOut, ConfigError> {
        Ok(match (&self.count, &self.params) {
            (Some(_), Some(_)) => {
                return Err(conflict(
                    "COUNT",
                    "PARAMS",
                    "give either a number of children or one parameter object per child",
                ));
            }
            (Some(c), None) => {
                FanOut::Count(parse_positive(c).map_err(|e| ConfigError::invalid("count", c, e))?)
            }
            (None, Some(p)) => FanOut::Params(
                parse_json(p)
                    .and_then(|j| params_from_json(&j))
                    .map_err(|e| ConfigError::invalid("params", p, e))?,
            ),
            (None, None) => FanOut::Single,
        })
    }

    /// The plan, if any; without one, every child needs an image from somewhere.
    fn plan(&self, defaults: &StepSettings) -> Result<Option<PlanSource>, ConfigError> {
        let plan = match (&self.plan, &self.plan_file) {
            (Some(_), Some(_)) => {
                return Err(conflict(
                    "PLAN",
                    "PLAN_FILE",
                    "give the plan inline or as a file, not both",
                ));
            }
            (Some(p), None) => Some(PlanSource::Inline(p.clone())),
            (None, Some(f)) => Some(PlanSource::File(PathBuf::from(f))),
            (None, None) => None,
        };
        if plan.is_some() {
            let which = if self.plan.is_some() {
                "PLAN"
            } else {
                "PLAN_FILE"
            };
            for (name, set) in [("COUNT", &self.count), ("PARAMS", &self.params)] {
                if set.is_some() {
                    return Err(conflict(
                        which,
                        name,
                        "with a plan, set `count` or `params` on the steps that fan out",
                    ));
                }
            }
        } else if defaults.image.is_none() && !template_has_image(defaults.job.as_ref()) {
            return Err(ConfigError::Missing {
                var: format!("{PREFIX}IMAGE"),
                why: "the image every child runs (or a JOBHERD_JOB_TEMPLATE whose container has one, or a plan)".into(),
            });
        }
        Ok(plan)
    }
}

fn parse_dry_run(s: &str) -> Result<DryRun, String> {
    match s {
        "client" => Ok(DryRun::Client),
        "server" => Ok(DryRun::Server),
        _ => Err("expected client or server".to_string()),
    }
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_string()),
    }
}

fn parse_retry(s: &str) -> Result<RetryFrom, String> {
    if s == LAST_FAILED {
        return Ok(RetryFrom::LastFailed);
    }
    check_dns_label(s)
        .map(|()| RetryFrom::Job(s.to_string()))
        .map_err(|e| format!("expected an earlier parent Job's name or {LAST_FAILED}: {e}"))
}

/// `cronjob/NAME`, as kubectl writes a resource (`cronjobs/NAME`, `cronjob.batch/NAME` too).
fn parse_trigger(s: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected cronjob/NAME";
    let (kind, name) = s.split_once('/').ok_or(EXPECTED)?;
    if !matches!(
        kind,
        "cronjob" | "cronjobs" | "cronjob.batch" | "cronjobs.batch"
    ) {
        return Err(EXPECTED.into());
    }
    check_dns_label(name).map_err(|e| format!("{EXPECTED}: {e}"))?;
    Ok(name.to_string())
}

/// A Pushgateway's base URL: `http://` or `https://`, a host, perhaps a path; no query.
fn parse_pushgateway(s: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected a Pushgateway URL such as http://pushgateway.monitoring:9091";
    let uri: hyper::Uri = s.trim().parse().map_err(|e| format!("{EXPECTED}: {e}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err(EXPECTED.into());
    }
    Ok(s.trim().trim_end_matches('/').to_string())
}

fn parse_backoff_limit(s: &str) -> Result<i32, String> {
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| "expected a whole number, 0 or more".to_string())
}

fn parse_logs(s: &str) -> Result<LogsMode, String> {
    match s {
        "failed" => Ok(LogsMode::Failed),
        "all" => Ok(LogsMode::All),
        "none" => Ok(LogsMode::None),
        _ => Err("expected failed, all or none".to_string()),
    }
}

fn parse_progress(s: &str) -> Result<Progress, String> {
    match s {
        "auto" => Ok(Progress::Auto),
        "lines" => Ok(Progress::Lines),
        "counts" => Ok(Progress::Counts),
        _ => Err("expected auto, lines or counts".to_string()),
    }
}

fn parse_string_array(s: &str) -> Result<Vec<String>, String> {
    let value = parse_json(s).map_err(|e| format!("expected a JSON array of strings: {e}"))?;
    string_array_from_json(&value)
}

/// Requests per second: a positive number, fractions allowed (`0.5` is one every two seconds).
fn parse_qps(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|q| q.is_finite() && *q > 0.0 && *q <= 10_000.0)
        .ok_or_else(|| "expected requests per second, a number greater than 0 (e.g. 20 or 0.5) and at most 10000".into())
}

fn parse_positive(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a whole number greater than 0".into())
}

fn parse_pack_size(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PACK_SIZE).contains(n))
        .ok_or_else(|| {
            format!("expected a whole number from 1 to {MAX_PACK_SIZE} (the Job API's most completions with backoffLimitPerIndex)")
        })
}

fn conflict(first: &str, second: &str, why: &str) -> ConfigError {
    ConfigError::Conflict {
        first: format!("{PREFIX}{first}"),
        second: format!("{PREFIX}{second}"),
        why: why.into(),
    }
}

/// Parses an optional variable, attaching the variable's name and value to any error.
fn opt<T>(
    value: &Option<String>,
    var: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value
        .as_deref()
        .map(|v| parse(v.trim()).map_err(|e| ConfigError::invalid(var, v, e)))
        .transpose()
}

fn template_has_image(job: Option<&Job>) -> bool {
    job.and_then(|j| j.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .is_some_and(|c| c.image.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars(pairs))
    }

    /// What a configuration does: the Jobs it builds and the rest of it (an unset cleanup is
    /// `never` unless a plan says otherwise; there is none here).
    fn effect(pairs: &[(&str, &str)]) -> (Vec<Job>, Config) {
        let mut c = parse(pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        let id = crate::child::Identity {
            run_id: "r".into(),
            prefix: "p".into(),
            namespace: None,
            owner: None,
        };
        let jobs = crate::child::children(&c.defaults, None, &id)
            .unwrap()
            .dry_run_jobs((
                1,
                crate::child::PackHow {
                    image: None,
                    parallelism: 1,
                    fail_fast: false,
                },
            ));
        c.cleanup = Some(c.cleanup.unwrap_or_default());
        c.defaults = StepSettings::default();
        (jobs, c)
    }

    #[test]
    fn every_documented_default_is_what_leaving_the_variable_unset_does() {
        let unset = effect(&[("JOBHERD_IMAGE", "x")]);
        let documented: Vec<&Variable> =
            VARIABLES.iter().filter(|v| !v.default.is_empty()).collect();
        assert!(documented.len() > 10, "{documented:?}");
        for v in documented {
            let name = v.name();
            let set = effect(&[("JOBHERD_IMAGE", "x"), (&name, v.default)]);
            assert_eq!(
                set, unset,
                "{name}={} is documented as the default",
                v.default
            );
        }
    }

    #[test]
    fn every_allowed_value_is_accepted_and_a_wrong_one_lists_them_all() {
        for v in VARIABLES.iter().filter(|v| !v.values.is_empty()) {
            let name = v.name();
            let mode = |value: &str| {
                let mut pairs = vec![("JOBHERD_IMAGE", "x"), (name.as_str(), value)];
                if v.field.starts_with("trigger_") {
                    pairs.push(("JOBHERD_TRIGGER", "cronjob/nightly"));
                }
                Mode::from_vars(vars(&pairs))
            };
            for value in v.values {
                assert!(mode(value).is_ok(), "{name}={value}: {:?}", mode(value));
            }
            let msg = mode("neither").unwrap_err().to_string();
            for value in v.values {
                assert!(msg.contains(value), "{name}: {msg} does not name {value}");
            }
        }
    }

    #[test]
    fn every_variable_is_documented() {
        for v in VARIABLES {
            assert!(!v.meaning.is_empty() && !v.kind.is_empty(), "{v:?}");
            assert!(
                v.default.is_empty() || v.unset.is_empty(),
                "{}: a default value or words for unset, not both",
                v.name()
            );
        }
    }

    #[test]
    fn the_stuck_timeout_names_every_reason_it_applies_to() {
        let stuck = VARIABLES.iter().find(|v| v.field == "stuck_timeout");
        let meaning = stuck.map_or("", |v| v.meaning);
        for reason in crate::run::STUCK_REASONS {
            assert!(meaning.contains(&format!("`{reason}`")), "{reason}");
        }
    }

    #[test]
    fn the_trigger_keeps_its_own_settings_and_no_others() {
        let own: Vec<String> = VARIABLES
            .iter()
            .filter(|v| v.trigger_own)
            .map(Variable::name)
            .collect();
        assert_eq!(
            own,
            [
                "JOBHERD_NAMESPACE",
                "JOBHERD_REPORT_FILE",
                "JOBHERD_JUNIT_FILE",
                "JOBHERD_DRY_RUN",
                "JOBHERD_LOG_FORMAT",
                "JOBHERD_TERMINATION_LOG",
                "JOBHERD_RETRY",
                "JOBHERD_TRIGGER",
                "JOBHERD_TRIGGER_NAME",
                "JOBHERD_TRIGGER_TIMEOUT",
                "JOBHERD_HTML_FILE",
            ]
        );
    }

    #[test]
    fn minimal_config_has_spec_defaults() {
        let c = parse(&[("JOBHERD_IMAGE", "busybox")]).unwrap();
        assert_eq!(c.defaults.image.as_deref(), Some("busybox"));
        assert_eq!(c.defaults.fan_out, FanOut::Single);
        assert_eq!(c.stuck_timeout, Duration::from_secs(120));
        assert_eq!(c.logs, LogsMode::Failed);
        assert!(!c.fail_fast);
        assert_eq!(c.dry_run, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.termination_log, PathBuf::from("/dev/termination-log"));
        assert_eq!(
            c.rate,
            RateLimit {
                qps: 20.0,
                burst: 40
            }
        );
        assert_eq!(c.heartbeat, Some(Duration::from_secs(60)));
        assert_eq!(c.progress, Progress::Auto);
    }

    #[test]
    fn rate_heartbeat_and_progress_are_parsed() {
        let c = parse(&[
            ("JOBHERD_IMAGE", "x"),
            ("JOBHERD_QPS", "0.5"),
            ("JOBHERD_BURST", "200"),
            ("JOBHERD_HEARTBEAT", "5m"),
            ("JOBHERD_PROGRESS", "counts"),
        ])
        .unwrap();
        assert_eq!(
            c.rate,
            RateLimit {
                qps: 0.5,
                burst: 200
            }
        );
        assert_eq!(c.heartbeat, Some(Duration::from_secs(300)));
        assert_eq!(c.progress, Progress::Counts);
        let retry = |v: &str| parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_RETRY", v)]);
        assert_eq!(
            retry("nightly-28434560").unwrap().retry,
            Some(RetryFrom::Job("nightly-28434560".into()))
        );
        assert_eq!(
            retry("last-failed").unwrap().retry,
            Some(RetryFrom::LastFailed)
        );
        let msg = retry("Nightly_1").unwrap_err().to_string();
        assert!(
            msg.contains("JOBHERD_RETRY") && msg.contains("last-failed"),
            "{msg}"
        );
        let off = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_HEARTBEAT", "0")]).unwrap();
        assert_eq!(off.heartbeat, None, "0 turns the heartbeat off");
        for (var, bad, expected) in [
            ("JOBHERD_QPS", "0", "greater than 0"),
            ("JOBHERD_QPS", "-5", "greater than 0"),
            ("JOBHERD_QPS", "fast", "requests per second"),
            ("JOBHERD_QPS", "inf", "greater than 0"),
            ("JOBHERD_BURST", "0", "whole number greater than 0"),
            ("JOBHERD_BURST", "1.5", "whole number"),
            ("JOBHERD_HEARTBEAT", "often", "duration"),
            ("JOBHERD_PROGRESS", "all", "auto, lines or counts"),
        ] {
            let msg = parse(&[("JOBHERD_IMAGE", "x"), (var, bad)])
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(var) && msg.contains(bad) && msg.contains(expected),
                "{var}={bad}: {msg}"
            );
        }
    }

    #[test]
    fn every_variable_is_parsed_into_its_type() {
        let c = parse(&[
            ("JOBHERD_IMAGE", "perl:5"),
            ("JOBHERD_COMMAND", r#"["perl","-e","print 1"]"#),
            ("JOBHERD_ARGS", r#"["x"]"#),
            ("JOBHERD_ENV", r#"{"A":"1","B":2,"C":true}"#),
            ("JOBHERD_COUNT", "3"),
            ("JOBHERD_PARALLELISM", "2"),
            ("JOBHERD_BACKOFF_LIMIT", "0"),
            ("JOBHERD_RESTART_POLICY", "Never"),
            ("JOBHERD_CHILD_TIMEOUT", "5m"),
            ("JOBHERD_TIMEOUT", "1h"),
            ("JOBHERD_FAIL_FAST", "true"),
            ("JOBHERD_CLEANUP", "succeeded"),
            ("JOBHERD_TTL", "3600"),
            ("JOBHERD_NAMESPACE", "batch"),
            ("JOBHERD_NAME_PREFIX", "nightly"),
            ("JOBHERD_STUCK_TIMEOUT", "30s"),
            ("JOBHERD_LOGS", "all"),
            ("JOBHERD_REPORT_FILE", "/tmp/r.json"),
            ("JOBHERD_JUNIT_FILE", "/tmp/j.xml"),
            ("JOBHERD_DRY_RUN", "server"),
            ("JOBHERD_LOG_FORMAT", "json"),
            ("JOBHERD_TERMINATION_LOG", "/tmp/message"),
        ])
        .unwrap();
        let d = &c.defaults;
        assert_eq!(d.command.as_ref().unwrap(), &["perl", "-e", "print 1"]);
        assert_eq!(d.args.as_ref().unwrap(), &["x"]);
        assert_eq!(d.env["B"], "2");
        assert_eq!(d.env["C"], "true");
        assert_eq!(d.fan_out, FanOut::Count(3));
        assert_eq!(d.backoff_limit, Some(0));
        assert_eq!(d.restart_policy, Some(RestartPolicy::Never));
        assert_eq!(d.child_timeout, Some(Duration::from_secs(300)));
        assert_eq!(d.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(c.parallelism, Some(2));
        assert_eq!(c.timeout, Some(Duration::from_secs(3600)));
        assert!(c.fail_fast);
        assert_eq!(c.cleanup, Some(Cleanup::Succeeded));
        assert_eq!(c.namespace.as_deref(), Some("batch"));
        assert_eq!(c.name_prefix.as_deref(), Some("nightly"));
        assert_eq!(c.stuck_timeout, Duration::from_secs(30));
        assert_eq!(c.logs, LogsMode::All);
        assert_eq!(c.dry_run, Some(DryRun::Server));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.termination_log, PathBuf::from("/tmp/message"));
    }

    #[test]
    fn bad_values_name_the_variable_and_show_the_value() {
        let err = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_COUNT", "three")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("JOBHERD_COUNT"), "{msg}");
        assert!(msg.contains("three"), "{msg}");
        assert!(msg.contains("whole number"), "{msg}");

        let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_COMMAND", "echo hi")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("JOBHERD_COMMAND") && msg.contains("JSON array"),
            "{msg}"
        );

        let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_QUEUE", "Team A")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("JOBHERD_QUEUE=\"Team A\"") && msg.contains("LocalQueue"),
            "{msg}"
        );

        let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_TIMEOUT", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("JOBHERD_TIMEOUT") && msg.contains("1h30m"),
            "{msg}"
        );

        let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_PARAMS", r#"[{"A":{}}]"#)])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("JOBHERD_PARAMS") && msg.contains("element 0"),
            "{msg}"
        );

        let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_RESTART_POLICY", "Always")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("OnFailure or Never"), "{msg}");

        let msg = parse(&[
            ("JOBHERD_IMAGE", "x"),
            ("JOBHERD_NAME_PREFIX", "Nightly_Run"),
        ])
        .unwrap_err()
        .to_string();
        assert!(msg.contains("DNS-1123"), "{msg}");
    }

    #[test]
    fn conflicting_pairs_are_rejected() {
        let err = parse(&[
            ("JOBHERD_IMAGE", "x"),
            ("JOBHERD_COUNT", "2"),
            ("JOBHERD_PARAMS", "[{}]"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
        let msg = parse(&[
            ("JOBHERD_IMAGE", "x"),
            ("JOBHERD_SHELL", "echo"),
            ("JOBHERD_COMMAND", r#"["a"]"#),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("JOBHERD_SHELL") && msg.contains("JOBHERD_COMMAND"),
            "{msg}"
        );
        let msg = parse(&[("JOBHERD_PLAN", "{}"), ("JOBHERD_COUNT", "2")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("JOBHERD_PLAN") && msg.contains("count"),
            "{msg}"
        );
    }

    #[test]
    fn image_is_required_without_plan_or_template() {
        let err = parse(&[]).unwrap_err();
        assert!(
            err.to_string().contains("JOBHERD_IMAGE is required"),
            "{err}"
        );
        let template = r#"{"apiVersion":"batch/v1","kind":"Job","spec":{"template":{"spec":{"containers":[{"name":"c","image":"alpine"}]}}}}"#;
        assert!(parse(&[("JOBHERD_JOB_TEMPLATE", template)]).is_ok());
        assert!(parse(&[("JOBHERD_PLAN", "{}")]).is_ok());
    }

    #[test]
    fn job_template_must_be_a_batch_v1_job() {
        let msg = parse(&[
            ("JOBHERD_IMAGE", "x"),
            (
                "JOBHERD_JOB_TEMPLATE",
                r#"{"apiVersion":"v1","kind":"Pod"}"#,
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("JOBHERD_JOB_TEMPLATE") && msg.contains("found v1 Pod"),
            "{msg}"
        );
    }

    #[test]
    fn trigger_mode_keeps_its_own_settings_and_passes_on_the_rest() {
        let mode = Mode::from_vars(vars(&[
            ("JOBHERD_TRIGGER", "cronjob/nightly"),
            ("JOBHERD_TRIGGER_NAME", "build-42"),
            ("JOBHERD_TRIGGER_TIMEOUT", "30m"),
            ("JOBHERD_JUNIT_FILE", "reports/jobherd.xml"),
            ("JOBHERD_RETRY", "last-failed"),
            ("JOBHERD_PARAMS", r#"[{"REGION":"eu"}]"#),
            ("JOBHERD_TIMEOUT", "1h"),
            ("JOBHERD_FAIL_FAST", ""),
        ]))
        .unwrap();
        let Mode::Trigger(t) = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(t.cronjob, "nightly");
        assert_eq!(t.name.as_deref(), Some("build-42"));
        assert_eq!(t.timeout, Some(Duration::from_secs(1800)));
        assert_eq!(t.junit_file, Some(PathBuf::from("reports/jobherd.xml")));
        assert_eq!(t.retry, Some(RetryFrom::LastFailed));
        assert_eq!(
            t.overrides,
            vars(&[
                ("JOBHERD_PARAMS", r#"[{"REGION":"eu"}]"#),
                ("JOBHERD_TIMEOUT", "1h"),
            ]),
            "an empty value passes nothing on"
        );
        let run = Mode::from_vars(vars(&[("JOBHERD_IMAGE", "x")])).unwrap();
        assert!(matches!(run, Mode::Run(_)));
    }

    #[test]
    fn bad_trigger_settings_name_the_variable() {
        for (pairs, expected) in [
            (
                &[("JOBHERD_TRIGGER", "deployment/web")][..],
                "expected cronjob/NAME",
            ),
            (&[("JOBHERD_TRIGGER", "cronjob/Nightly")][..], "DNS-1123"),
            (
                &[
                    ("JOBHERD_TRIGGER", "cronjob/n"),
                    ("JOBHERD_TRIGGER_NAME", "Build 42"),
                ][..],
                "JOBHERD_TRIGGER_NAME",
            ),
            (
                &[
                    ("JOBHERD_TRIGGER", "cronjob/n"),
                    ("JOBHERD_TRIGGER_TIMEOUT", "soon"),
                ][..],
                "JOBHERD_TRIGGER_TIMEOUT",
            ),
            (
                &[("JOBHERD_TRIGGER", "cronjob/n"), ("JOBHERD_PARAMZ", "[]")][..],
                "did you mean JOBHERD_PARAMS",
            ),
            (
                &[("JOBHERD_IMAGE", "x"), ("JOBHERD_TRIGGER_NAME", "b")][..],
                "only goes with trigger mode",
            ),
        ] {
            let msg = Mode::from_vars(vars(pairs)).unwrap_err().to_string();
            assert!(msg.contains(expected), "{pairs:?}: {msg}");
        }
    }

    #[test]
    fn unknown_variables_are_typos_with_a_suggestion() {
        let err = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_PARALELISM", "2")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown variable JOBHERD_PARALELISM (did you mean JOBHERD_PARALLELISM?)"
        );
        // Children of a parent carry JOBHERD_CHILD_*; a nested jobherd must accept them.
        assert!(
            parse(&[
                ("JOBHERD_IMAGE", "x"),
                ("JOBHERD_CHILD_INDEX", "0"),
                ("JOBHERD_CHILD_COUNT", "1"),
            ])
            .is_ok()
        );
        // ...and the results and items of the steps before theirs (SPEC §8).
        assert!(
            parse(&[
                ("JOBHERD_IMAGE", "x"),
                ("JOBHERD_RESULT_LIST", "[1,2]"),
                ("JOBHERD_ITEM", "2026-12-01"),
            ])
            .is_ok()
        );
        // A near miss of those is still a typo.
        let err = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_ITEMS", "a")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown variable JOBHERD_ITEMS"),
            "{err}"
        );
    }

    #[test]
    fn the_page_and_the_pushgateway_are_read_and_the_trigger_keeps_the_page() {
        let c = parse(&[
            ("JOBHERD_IMAGE", "x"),
            ("JOBHERD_HTML_FILE", "out/run.html"),
            ("JOBHERD_PUSHGATEWAY", "https://pg.example:9091/gw/"),
        ])
        .unwrap();
        assert_eq!(c.html_file, Some(PathBuf::from("out/run.html")));
        assert_eq!(c.pushgateway.as_deref(), Some("https://pg.example:9091/gw"));
        for bad in ["pg:9091", "ftp://pg:9091", "http://", "http://pg:9091/?x=1"] {
            let msg = parse(&[("JOBHERD_IMAGE", "x"), ("JOBHERD_PUSHGATEWAY", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("JOBHERD_PUSHGATEWAY")
                    && msg.contains(bad)
                    && msg.contains("Pushgateway URL"),
                "{bad}: {msg}"
            );
        }
        let mode = Mode::from_vars(vars(&[
            ("JOBHERD_TRIGGER", "cronjob/nightly"),
            ("JOBHERD_HTML_FILE", "reports/run.html"),
            ("JOBHERD_PUSHGATEWAY", "http://pg:9091"),
        ]))
        .unwrap();
        let Mode::Trigger(t) = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(t.html_file, Some(PathBuf::from("reports/run.html")));
        assert_eq!(
            t.overrides,
            vars(&[("JOBHERD_PUSHGATEWAY", "http://pg:9091")]),
            "the parent pushes; the caller writes the page"
        );
    }
}
