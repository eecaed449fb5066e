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
mod tests;
