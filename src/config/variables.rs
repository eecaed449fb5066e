//! Reading the `JOBHERD_*` variables: the ones jobherd knows (anything else is a typo, with a
//! "did you mean"), each parsed into the typed `Config` or `TriggerConfig` with its name on errors.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use serde::Deserialize;

use super::{
    CHILD_PREFIX, Cleanup, Config, ConfigError, DryRun, EnvMap, FanOut, ITEM_VAR, LAST_FAILED,
    LogFormat, LogsMode, PREFIX, PlanSource, Progress, RESULT_PREFIX, RateLimit, RestartPolicy,
    RetryFrom, StepSettings, TriggerConfig, check_dns_label, env_from_json, job_from_json, nearest,
    params_from_json, parse_bool, parse_duration, parse_json, parse_positive_duration, parse_queue,
    string_array_from_json,
};

/// `JOBHERD_HEARTBEAT` when unset: a quiet run shows it lives once a minute, often enough
/// for idle-connection timeouts of `kubectl logs -f` and CI consoles.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Kubernetes' default `terminationMessagePath`.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Declares every variable once, by the name envy gives it (the variable without `JOBHERD_`,
/// lowercased): a field of `RawVars`, and a name the typo guard knows.
macro_rules! variables {
    ($($name:ident,)*) => {
        /// The variables as strings, exactly as envy reads them. Typed parsing happens in
        /// `into_config` so that each error can name its variable and show its value.
        #[derive(Debug, Default, Deserialize)]
        pub(super) struct RawVars {
            $($name: Option<String>,)*
        }

        /// The variables jobherd knows, as `RawVars` names them.
        const KNOWN: &[&str] = &[$(stringify!($name)),*];
    };
}

variables! {
    image,
    command,
    args,
    shell,
    env,
    params,
    count,
    parallelism,
    backoff_limit,
    restart_policy,
    child_timeout,
    timeout,
    fail_fast,
    cleanup,
    ttl,
    namespace,
    name_prefix,
    job_template,
    plan,
    plan_file,
    stuck_timeout,
    logs,
    report_file,
    junit_file,
    dry_run,
    log_format,
    termination_log,
    qps,
    burst,
    heartbeat,
    progress,
    retry,
    trigger,
    trigger_name,
    trigger_timeout,
    queue,
    html_file,
    pushgateway,
}

/// Variables a jobherd may find set that are not meant for it: a parent sets
/// `JOBHERD_CHILD_*`, `JOBHERD_RESULT_*` and `JOBHERD_ITEM` on its children, which may be jobherd
/// parents themselves. Entries ending in `_` are prefixes; a known variable that starts the same
/// (`JOBHERD_CHILD_TIMEOUT`) is still read and checked.
const NOT_OURS: &[&str] = &[CHILD_PREFIX, RESULT_PREFIX, ITEM_VAR];

/// In trigger mode, the variables that are the trigger's own; every other one is passed on to
/// the triggered parent.
const TRIGGER_OWN: &[&str] = &[
    "TRIGGER",
    "TRIGGER_NAME",
    "TRIGGER_TIMEOUT",
    "NAMESPACE",
    "REPORT_FILE",
    "JUNIT_FILE",
    "HTML_FILE",
    "DRY_RUN",
    "LOG_FORMAT",
    "RETRY",
    "TERMINATION_LOG",
];

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
    KNOWN.iter().map(|k| k.to_ascii_uppercase())
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
    let own = |k: &str| TRIGGER_OWN.contains(&&k[PREFIX.len()..]);
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
