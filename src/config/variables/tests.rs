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
    let documented: Vec<&Variable> = VARIABLES.iter().filter(|v| !v.default.is_empty()).collect();
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
