//! jobherd: runs as the parent Job of a CronJob, fans out child Jobs, follows them through the
//! Kubernetes API and exits with the aggregate result.
//!
//! A run flows: `config` (variables) → `plan` (steps and dependencies) → `child` (the Jobs) →
//! `cluster` (connect, find the parent) → `retry` (what an earlier run already did) → `herd`
//! (one event loop driving the `run` state machine; `disruption` says what a SIGTERM means) →
//! `report` (every line and file the user sees) → `record` (the outcome left on the parent). `trigger` is the other mode: it starts a
//! CronJob's run and follows it from outside. `main.rs` only wires logging and exit.
//! `cli` reads the arguments (`--help`, `--version`), `reference` renders the reference from the
//! definitions the program uses (variables, plan fields, `exit` codes, labels).

pub mod child;
pub mod cli;
pub mod cluster;
pub mod conditions;
pub mod config;
pub mod disruption;
pub mod exit;
pub mod herd;
pub mod outputs;
pub mod pack;
pub mod plan;
pub mod record;
pub mod reference;
pub mod report;
pub mod retry;
pub mod run;
pub mod trigger;

use std::time::{Duration, Instant};

use config::{Config, DryRun};
use exit::Exit;
use report::Reporter;

/// Everything that ends a run early, and the one place that maps it to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Retry(#[from] retry::RetryError),
    #[error(transparent)]
    Trigger(#[from] trigger::TriggerError),
}

impl Error {
    /// SPEC §5: 2 for configuration, plans and unusable earlier runs (nothing was created),
    /// 4 for the API.
    pub fn exit_code(&self) -> i32 {
        let exit = match self {
            Error::Config(_) | Error::Plan(_) => Exit::Invalid,
            Error::Retry(retry::RetryError::Unusable { .. }) => Exit::Invalid,
            Error::Trigger(trigger::TriggerError::Unusable { .. }) => Exit::Invalid,
            Error::Cluster(_)
            | Error::Retry(retry::RetryError::Cluster(_))
            | Error::Trigger(trigger::TriggerError::Cluster(_)) => Exit::Api,
        };
        exit.code()
    }
}

/// What a run needs once it knows where it runs.
struct Setup {
    client: kube::Client,
    identity: child::Identity,
    parent: Option<cluster::Parent>,
    /// In a pod with a parent: read back when a SIGTERM comes.
    own_pod: Option<disruption::OwnPod>,
    children: child::Children,
    options: plan::PlanOptions,
    /// The jobherd image packed children copy its entrypoint from, when any step is packed.
    pack_image: Option<String>,
}

/// How long a child's Job and pods must outlive its end for jobherd to read what it wrote:
/// the pod watch's grace, then a pod list with its retries.
const RESULT_READ_WINDOW: Duration = Duration::from_secs(10);

/// Runs jobherd with a parsed configuration; returns the exit code of a run that happened.
pub async fn run(config: Config) -> Result<i32, Error> {
    let started = Instant::now();
    let Some(mut setup) = set_up(&config).await? else {
        return Ok(Exit::Succeeded.code());
    };
    let mut reporter = Reporter::new(
        std::io::stdout(),
        config.progress,
        config.heartbeat,
        setup.children.len(),
        Instant::now(),
    );
    let at_start = match &setup.parent {
        Some(parent) => record::at_start(&setup.client, parent).await,
        None => record::AtStart::default(),
    };
    if let Some((record, summary)) = &at_start.record
        && let Some(code) = record.final_answer()
    {
        reporter.note(&format!("jobherd: this parent Job already ran to its end ({summary}); a retried parent exits {code} again instead of running anew"));
        return Ok(code);
    }
    let outputs = report::Outputs::set_up(
        &config,
        &setup.client,
        setup.parent.as_ref(),
        &setup.identity,
        Instant::now(),
    );
    if let Some(outputs) = outputs.await {
        reporter.show(outputs);
    }
    let earlier = earlier_run(&config, &setup).await?;
    reporter.start(&header(&setup));
    warn_short_ttl(&config, &setup.children);
    let deadline = deadline(config.timeout, at_start.created, started);
    let children = std::mem::replace(&mut setup.children, child::Children::named(Vec::new()));
    let run = start_run(
        &config,
        &setup,
        children,
        (earlier, at_start),
        &mut reporter,
    )
    .with_limits(deadline, setup.own_pod.is_some())
    .with_packing(config.pack_size as usize, setup.pack_image.clone());
    let settings = herd::Settings {
        rate: config.rate,
        cleanup: config.cleanup.or(setup.options.cleanup).unwrap_or_default(),
        own_pod: setup.own_pod.clone(),
    };
    let api = herd::ChildApi::new(setup.client.clone(), &setup.identity);
    let run = herd::execute(api, run, &mut reporter, &settings).await?;
    finish(&run, &mut reporter, &setup, &config, started.elapsed()).await;
    Ok(run.exit_code())
}

/// The run's first line: its id, children, namespace and parent.
fn header(setup: &Setup) -> String {
    let namespace = setup.identity.namespace.as_deref().unwrap_or_default();
    let parent_text = setup.parent.as_ref().map_or("no parent".to_string(), |p| {
        format!("parent {} {}", p.kind, p.name)
    });
    let fanning_out: Vec<&str> = setup.children.fanning_out().map(|(s, _)| s).collect();
    let and_later = match fanning_out.as_slice() {
        [] => String::new(),
        [one] => format!(", and those step {one} fans out to,"),
        many => format!(", and those steps {} fan out to,", many.join(", ")),
    };
    format!(
        "jobherd run {}: {} children{and_later} in namespace {namespace} ({parent_text})",
        setup.identity.run_id,
        setup.children.len()
    )
}

/// `JOBHERD_TIMEOUT` is the deadline of the whole run across its attempts: counted from the
/// parent Job's creation (by the server's clock, against this machine's), else from the start
/// of this process. An attempt that starts past it ends at once.
fn deadline(
    timeout: Option<Duration>,
    created: Option<jiff::Timestamp>,
    started: Instant,
) -> Option<Instant> {
    let timeout = timeout?;
    let Some(created) = created else {
        return Some(started + timeout);
    };
    let passed = jiff::Timestamp::now().duration_since(created);
    let passed = Duration::try_from(passed).unwrap_or_default();
    Some(Instant::now() + timeout.saturating_sub(passed))
}

/// A TTL shorter than it takes to read a child's result deletes what the steps after it need.
fn warn_short_ttl(config: &Config, children: &child::Children) {
    let passes_results = children.steps().iter().any(|s| !s.depends_on.is_empty());
    if let Some(ttl) = config.defaults.ttl
        && ttl < RESULT_READ_WINDOW
        && passes_results
    {
        tracing::warn!(
            "JOBHERD_TTL is {}s: a child's Job and pods may be deleted before jobherd has read what it wrote (up to {}s after it succeeds), and the steps after it then fail with BadResult; set JOBHERD_TTL to {}s or more",
            ttl.as_secs(),
            RESULT_READ_WINDOW.as_secs(),
            RESULT_READ_WINDOW.as_secs()
        );
    }
}

/// The end of a run: the table and summary, the reports and the record, within the time a
/// stopping pod has left (a hanging API costs that time, never the summary).
async fn finish<W: std::io::Write>(
    run: &run::Run,
    reporter: &mut Reporter<W>,
    setup: &Setup,
    config: &Config,
    elapsed: Duration,
) {
    let namespace = setup.identity.namespace.clone().unwrap_or_default();
    let ending = report::Ending {
        elapsed,
        run_id: &setup.identity.run_id,
        namespace: &namespace,
        parent: setup.parent.as_ref(),
        prefix: &setup.identity.prefix,
        report_file: config.report_file.as_deref(),
        junit_file: config.junit_file.as_deref(),
        termination_log: &config.termination_log,
    };
    if run.moving().is_some() {
        reporter.publish_move(run, &setup.client, &ending).await;
        return;
    }
    let summary = reporter.finish(run, elapsed);
    let hard = run.stop_reason().is_some_and(run::Stop::is_hard);
    reporter
        .publish(run, &summary, Some(&setup.client), &ending, hard)
        .await;
}

/// Reads the plan, builds the children, connects and finds the parent; handles the dry runs
/// (`None`: nothing more to do).
async fn set_up(config: &Config) -> Result<Option<Setup>, Error> {
    let plan = config.plan.as_ref().map(plan::load).transpose()?;
    let options = plan.as_ref().map(|p| p.options.clone()).unwrap_or_default();
    for note in &options.notes {
        tracing::info!("plan: {note}");
    }
    let here = cluster::Whereabouts::from_env();
    // Children are built once before connecting, so a bad plan or template exits 2 with
    // nothing created, with or without a cluster.
    let offline = cluster::offline_identity(config, &here, options.namespace.clone());
    let children = child::children(&config.defaults, plan.as_ref(), &offline)?;
    if config.dry_run == Some(DryRun::Client) {
        for (step, source) in children.fanning_out() {
            tracing::info!(
                "plan: step {step} fans out over the result of step {source}, known only at run time: its Job template is shown once, named as its only child would be"
            );
        }
        let image = config.pack_image.as_deref().unwrap_or(OFFLINE_PACK_IMAGE);
        print_list(
            children
                .dry_run_jobs(dry_run_packing(config, Some(image)))
                .into_iter(),
        );
        return Ok(None);
    }
    // Built again with the run's identity below: a herd of 100,000 keeps one copy.
    drop(children);
    let client = cluster::connect().await?;
    let (identity, parent) =
        cluster::identify(&client, config, &here, options.namespace.clone()).await?;
    let children = child::children(&config.defaults, plan.as_ref(), &identity)?;
    let pack_image = packing(&client, config, &children, &here).await?;
    if config.dry_run == Some(DryRun::Server) {
        let namespace = identity.namespace.clone().unwrap_or_default();
        let how = dry_run_packing(config, pack_image.as_deref());
        let jobs = herd::server_dry_run(client, &namespace, &children.dry_run_jobs(how)).await?;
        print_list(jobs.into_iter());
        return Ok(None);
    }
    let own_pod = match (here.pod_name, here.pod_namespace, &parent) {
        (Some(pod), Some(namespace), Some(parent)) => Some(disruption::OwnPod {
            client: client.clone(),
            pod,
            namespace,
            parent: parent.clone(),
        }),
        _ => None,
    };
    Ok(Some(Setup {
        client,
        identity,
        parent,
        own_pod,
        children,
        options,
        pack_image,
    }))
}

/// The image a dry run's packed children copy jobherd's entrypoint from when it is not known.
const OFFLINE_PACK_IMAGE: &str = concat!("jobherd:", env!("CARGO_PKG_VERSION"));

fn dry_run_packing<'a>(config: &Config, image: Option<&'a str>) -> (usize, child::PackHow<'a>) {
    let how = child::PackHow {
        image,
        parallelism: 0,
        fail_fast: config.fail_fast,
    };
    (config.pack_size as usize, how)
}

/// With packed steps (SPEC §10): the cluster must have `backoffLimitPerIndex` (1.29+), checked
/// before anything is created; and the image packed children copy jobherd's entrypoint from
/// (`JOBHERD_PACK_IMAGE`, else jobherd's own in a pod).
async fn packing(
    client: &kube::Client,
    config: &Config,
    children: &child::Children,
    here: &cluster::Whereabouts,
) -> Result<Option<String>, Error> {
    if !children.steps().iter().any(|s| s.packed) {
        return Ok(None);
    }
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| cluster::ClusterError::from_kube("get", "version", "", e))?;
    let minor: u32 = version
        .minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    if version.major == "1" && minor < 29 {
        return Err(Error::Config(config::ConfigError::Invalid {
            var: "JOBHERD_PACK".into(),
            value: "indexed".into(),
            expected: format!(
                "packed fan-outs need Kubernetes 1.29 or newer (backoffLimitPerIndex), and this cluster runs {}.{}: unset JOBHERD_PACK (and any step's pack) to run every child as a Job of its own",
                version.major, version.minor
            ),
        }));
    }
    match &config.pack_image {
        Some(image) => Ok(Some(image.clone())),
        None => Ok(cluster::own_image(client, here).await),
    }
}

/// `JOBHERD_RETRY`: the earlier run this one takes over from, checked before anything starts.
async fn earlier_run(config: &Config, setup: &Setup) -> Result<Option<retry::Inherited>, Error> {
    let Some(wanted) = &config.retry else {
        return Ok(None);
    };
    // Parents live where their CronJob is; outside a pod, in the children's namespace.
    let namespace = setup.parent.as_ref().map_or_else(
        || setup.identity.namespace.clone().unwrap_or_default(),
        |p| p.namespace.clone(),
    );
    let lookup = retry::Lookup {
        client: &setup.client,
        namespace: &namespace,
        parent: setup.parent.as_ref(),
        prefix: &setup.identity.prefix,
    };
    Ok(Some(
        retry::earlier_run(&lookup, wanted, &setup.children).await?,
    ))
}

/// The run's state machine, with what an earlier run (`JOBHERD_RETRY`) and an earlier attempt
/// of this run (its record on the parent) did already.
fn start_run<W: std::io::Write>(
    config: &Config,
    setup: &Setup,
    children: child::Children,
    (earlier, at_start): (Option<retry::Inherited>, record::AtStart),
    reporter: &mut Reporter<W>,
) -> run::Run {
    let rules = run::Rules {
        parallelism: config.parallelism.or(setup.options.parallelism),
        fail_fast: config.fail_fast,
        stuck_timeout: config.stuck_timeout,
        logs: config.logs,
    };
    let resumed = match (&at_start.record, &setup.parent) {
        (Some((record, _)), Some(parent)) => record.resumed(&children, &parent.name),
        _ => Vec::new(),
    };
    let known = if children.fanning_out().next().is_some() {
        String::new()
    } else {
        format!(" of {}", children.len())
    };
    let mut run = run::Run::new(children, &rules, &setup.identity.run_id, run::At::now());
    if !resumed.is_empty() {
        reporter.note(&format!(
            "jobherd: resuming from the record of an earlier attempt of this run ({} children known there)",
            resumed.len()
        ));
        run.resume(resumed);
    }
    if let Some(earlier) = earlier {
        // The children of steps that fan out over a result are not counted yet.
        reporter.note(&format!(
            "retrying run {}: {}{known} children succeeded there and are not run again",
            earlier.from,
            earlier.done.len(),
        ));
        for done in earlier.done {
            let transitions = run.inherit(done);
            reporter.report(&run, &transitions, Instant::now());
        }
    }
    run
}

/// Prints Jobs as a `v1` `List`, as `kubectl create --dry-run=client -o json` does for many.
fn print_list(jobs: impl Iterator<Item = k8s_openapi::api::batch::v1::Job>) {
    let items: Vec<serde_json::Value> = jobs
        .map(|j| {
            let mut v = serde_json::to_value(&j).unwrap_or_default();
            // Lists from the API omit these on items; kubectl and validators want them.
            v["apiVersion"] = "batch/v1".into();
            v["kind"] = "Job".into();
            v
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    println!(
        "{}",
        serde_json::to_string_pretty(&list).unwrap_or_default()
    );
}
