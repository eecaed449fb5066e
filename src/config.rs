//! Configuration: what the `JOBHERD_*` variables mean, as typed values; `variables.rs` reads
//! them once. Nothing past this module sees a raw string; every bad value names its variable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;

mod values;
mod variables;

pub use variables::{VARIABLES, Variable};

pub use values::{
    check_dns_label, env_from_json, human, job_from_json, nearest, params_from_json, parse_bool,
    parse_duration, parse_json, parse_positive_duration, parse_queue, string_array_from_json,
};

/// Every variable jobherd reads starts with this.
pub const PREFIX: &str = "JOBHERD_";
/// Variables a parent sets on its children; a nested jobherd must not reject them.
pub const CHILD_PREFIX: &str = "JOBHERD_CHILD_";
/// The results of the steps a child's step depends on: `JOBHERD_RESULT_<STEP>` (SPEC §8).
pub const RESULT_PREFIX: &str = "JOBHERD_RESULT_";
/// The element of a result a `params_from` child was made for, when it is not an object.
pub const ITEM_VAR: &str = "JOBHERD_ITEM";

/// Environment variables for a child, in a stable order.
pub type EnvMap = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        var: String,
        value: String,
        expected: String,
    },
    #[error("{var} is required: {why}")]
    Missing { var: String, why: String },
    #[error("{first} and {second} cannot be used together: {why}")]
    Conflict {
        first: String,
        second: String,
        why: String,
    },
    #[error("unknown variable {var}{hint}")]
    Unknown { var: String, hint: String },
    #[error("{0}")]
    Plan(String),
}

impl ConfigError {
    fn invalid(var: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: format!("{PREFIX}{}", var.to_uppercase()),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// `restartPolicy` of a child's pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "OnFailure" => Ok(RestartPolicy::OnFailure),
            "Never" => Ok(RestartPolicy::Never),
            _ => Err("expected OnFailure or Never".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

/// `JOBHERD_PACK` (a step's `pack`): whether a fan-out's children are Jobs of their own, or
/// packed into Indexed Jobs (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pack {
    #[default]
    Off,
    Indexed,
}

impl Pack {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Pack::Off),
            "indexed" => Ok(Pack::Indexed),
            _ => Err("expected off or indexed".into()),
        }
    }
}

/// `JOBHERD_PACK_SIZE` unset: the most children one packed Job holds.
pub const DEFAULT_PACK_SIZE: u32 = 10_000;
/// The Job API's limit on completions with `backoffLimitPerIndex`.
pub const MAX_PACK_SIZE: u32 = 100_000;

/// How many children one step (or the whole run without a plan) fans out to.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum FanOut {
    #[default]
    Single,
    /// N children with `JOBHERD_CHILD_INDEX` and `JOBHERD_CHILD_COUNT`.
    Count(u32),
    /// One child per element; its entries become the child's env vars.
    Params(Vec<EnvMap>),
    /// One child per element of a plan step's result, known once that step has succeeded.
    From(String),
}

/// What makes up a child: the variables give the defaults, a plan step may override each field.
/// `None` means "not set here", so layers can be merged (see `child::build_job`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepSettings {
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub shell: Option<String>,
    pub env: EnvMap,
    pub fan_out: FanOut,
    pub backoff_limit: Option<i32>,
    pub restart_policy: Option<RestartPolicy>,
    pub child_timeout: Option<Duration>,
    pub ttl: Option<Duration>,
    /// A Kueue LocalQueue that admits the children (`JOBHERD_QUEUE`, a step's `queue`).
    pub queue: Option<String>,
    /// Packs a fan-out's children into Indexed Jobs (`JOBHERD_PACK`, a step's `pack`).
    pub pack: Option<Pack>,
    /// A full batch/v1 Job used as the base of the child.
    pub job: Option<Job>,
}

/// `JOBHERD_CLEANUP`: which finished children are deleted at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cleanup {
    #[default]
    Never,
    Succeeded,
    Always,
}

impl Cleanup {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Cleanup::Never),
            "succeeded" => Ok(Cleanup::Succeeded),
            "always" => Ok(Cleanup::Always),
            _ => Err("expected never, succeeded or always".into()),
        }
    }
}

/// `JOBHERD_LOGS`: which children's logs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogsMode {
    #[default]
    Failed,
    All,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Print the Jobs, touch no cluster.
    Client,
    /// Submit with `dryRun=All`.
    Server,
}

/// `JOBHERD_PROGRESS`: a line per child state change, or counts lines and a line per failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// Lines up to `report::LINES_UP_TO` children, counts above.
    #[default]
    Auto,
    Lines,
    Counts,
}

/// Client-side limit on jobherd's own writes (creates, deletes): kube has none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub qps: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            qps: 20.0,
            burst: 40,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `JOBHERD_RETRY=last-failed`: the newest failed run of the same CronJob.
pub const LAST_FAILED: &str = "last-failed";
/// `JOBHERD_RETRY`: which earlier run to retry (SPEC §7, see `retry.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryFrom {
    /// An earlier parent Job, by name.
    Job(String),
    /// The newest failed Job of the CronJob that made this run's parent.
    LastFailed,
}

/// Where a plan comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanSource {
    Inline(String),
    File(PathBuf),
}

/// The whole parsed configuration of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Defaults for every child (and, without a plan, the single implicit step).
    pub defaults: StepSettings,
    pub parallelism: Option<u32>,
    pub timeout: Option<Duration>,
    pub fail_fast: bool,
    pub cleanup: Option<Cleanup>,
    pub namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub plan: Option<PlanSource>,
    pub stuck_timeout: Duration,
    pub logs: LogsMode,
    pub report_file: Option<PathBuf>,
    pub junit_file: Option<PathBuf>,
    /// `JOBHERD_HTML_FILE`: the page of the run, refreshed on each heartbeat.
    pub html_file: Option<PathBuf>,
    /// `JOBHERD_PACK_SIZE`: the most children one packed Job holds.
    pub pack_size: u32,
    /// `JOBHERD_PACK_IMAGE`: the image whose jobherd an init container copies into packed
    /// children that need its entrypoint; in a pod, jobherd's own image when unset.
    pub pack_image: Option<String>,
    /// `JOBHERD_PUSHGATEWAY`: a Pushgateway's base URL (`http(s)://host:port[/path]`, no
    /// trailing `/`), where the run's metrics are pushed.
    pub pushgateway: Option<String>,
    pub dry_run: Option<DryRun>,
    pub log_format: LogFormat,
    pub rate: RateLimit,
    /// After this long with nothing printed, a line of counts; `None` turns it off.
    pub heartbeat: Option<Duration>,
    pub progress: Progress,
    /// `JOBHERD_RETRY`: the earlier run whose succeeded children this run takes over.
    pub retry: Option<RetryFrom>,
    /// Where the summary goes for `kubectl describe pod`: the container's
    /// `terminationMessagePath`, `/dev/termination-log` unless the pod changes it.
    pub termination_log: PathBuf,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Parses `JOBHERD_*` variables out of any list of environment variables.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        variables::read_raw(variables::known_vars(vars)?)?.into_config()
    }
}

/// What jobherd was asked to do: run a herd, or trigger one from a CronJob (SPEC §7).
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Run(Box<Config>),
    Trigger(Box<TriggerConfig>),
}

impl Mode {
    pub fn from_env() -> Result<Mode, ConfigError> {
        Mode::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Mode, ConfigError> {
        let ours = variables::known_vars(vars)?;
        if ours.iter().any(|(k, _)| k == &format!("{PREFIX}TRIGGER")) {
            variables::trigger_config(ours).map(|t| Mode::Trigger(Box::new(t)))
        } else {
            variables::read_raw(ours)?
                .into_config()
                .map(|c| Mode::Run(Box::new(c)))
        }
    }

    pub fn log_format(&self) -> LogFormat {
        match self {
            Mode::Run(c) => c.log_format,
            Mode::Trigger(t) => t.log_format,
        }
    }
}

/// `JOBHERD_TRIGGER=cronjob/NAME`: the trigger's own settings, and the overrides it passes on.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerConfig {
    /// The CronJob's name.
    pub cronjob: String,
    /// `JOBHERD_TRIGGER_NAME`: the Job to create; a unique one by default.
    pub name: Option<String>,
    /// The CronJob's namespace.
    pub namespace: Option<String>,
    /// `JOBHERD_TRIGGER_TIMEOUT`: how long to follow the parent before deleting it (exit 3).
    pub timeout: Option<Duration>,
    pub report_file: Option<PathBuf>,
    pub junit_file: Option<PathBuf>,
    /// `JOBHERD_HTML_FILE`, written on the caller's side.
    pub html_file: Option<PathBuf>,
    pub dry_run: Option<DryRun>,
    pub log_format: LogFormat,
    pub retry: Option<RetryFrom>,
    /// Every other variable, set on the triggered parent over the CronJob's values.
    pub overrides: Vec<(String, String)>,
}
