//! jobherd: runs as the parent Job of a CronJob, fans out child Jobs, follows them through the
//! Kubernetes API and exits with the aggregate result.
//!
//! A run flows: `config` (variables) → `plan` (steps and dependencies) → `child` (the Jobs) →
//! `cluster` (connect, find the parent) → `retry` (what an earlier run already did) → `herd`
//! (one event loop driving the `run` state machine; `disruption` says what a SIGTERM means) →
//! `report` (every line and file the user sees) → `record` (the outcome left on the parent). `trigger` is the other mode: it starts a
//! CronJob's run and follows it from outside. `main.rs` only wires logging and exit.

pub mod child;
pub mod cluster;
pub mod config;
pub mod disruption;
pub mod herd;
pub mod plan;
pub mod record;
pub mod report;
pub mod results;
pub mod retry;
pub mod run;
pub mod trigger;

use std::sync::Arc;
use std::time::Instant;

use config::{Config, DryRun};
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
        match self {
            Error::Config(_) | Error::Plan(_) => 2,
            Error::Retry(retry::RetryError::Unusable { .. }) => 2,
            Error::Trigger(trigger::TriggerError::Unusable { .. }) => 2,
            Error::Cluster(_)
            | Error::Retry(retry::RetryError::Cluster(_))
            | Error::Trigger(trigger::TriggerError::Cluster(_)) => 4,
        }
    }
}

/// What a run needs once it knows where it runs.
struct Setup {
    client: kube::Client,
    identity: child::Identity,
    parent: Option<cluster::Parent>,
    /// In a pod with a parent: read back when a SIGTERM comes.
    own_pod: Option<disruption::OwnPod>,
    children: Arc<child::Children>,
    options: plan::PlanOptions,
}

/// Runs jobherd with a parsed configuration; returns the exit code of a run that happened.
pub async fn run(config: Config) -> Result<i32, Error> {
    let started = Instant::now();
    let Some(setup) = set_up(&config).await? else {
        return Ok(0);
    };
    let namespace = setup.identity.namespace.clone().unwrap_or_default();
    let mut reporter = Reporter::new(
        std::io::stdout(),
        config.progress,
        config.heartbeat,
        setup.children.len(),
        Instant::now(),
    );
    if let Some(parent) = &setup.parent
        && let Some((code, summary)) = retry::recorded_before(&setup.client, parent).await
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
    let parent_text = setup.parent.as_ref().map_or("no parent".to_string(), |p| {
        format!("parent {} {}", p.kind, p.name)
    });
    let fanning_out: Vec<&str> = setup.children.fanning_out().map(|(s, _)| s).collect();
    let and_later = match fanning_out.as_slice() {
        [] => String::new(),
        [one] => format!(", and those step {one} fans out to,"),
        many => format!(", and those steps {} fan out to,", many.join(", ")),
    };
    reporter.start(&format!(
        "jobherd run {}: {} children{and_later} in namespace {namespace} ({parent_text})",
        setup.identity.run_id,
        setup.children.len()
    ));
    let run = start_run(&config, &setup, earlier, &mut reporter);
    let settings = herd::Settings {
        timeout: config.timeout,
        rate: config.rate,
        cleanup: config.cleanup.or(setup.options.cleanup).unwrap_or_default(),
        own_pod: setup.own_pod.clone(),
    };
    let api = herd::ChildApi::new(setup.client.clone(), &setup.identity);
    let run = herd::execute(api, run, &mut reporter, &settings).await?;
    let elapsed = started.elapsed();
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
        reporter.publish_move(&run, &setup.client, &ending).await;
        return Ok(run.exit_code());
    }
    let summary = reporter.finish(&run, elapsed);
    reporter
        .publish(&run, &summary, Some(&setup.client), &ending)
        .await;
    Ok(run.exit_code())
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
        print_list(children.dry_run_jobs().into_iter());
        return Ok(None);
    }
    let client = cluster::connect().await?;
    let (identity, parent) =
        cluster::identify(&client, config, &here, options.namespace.clone()).await?;
    let children = Arc::new(child::children(&config.defaults, plan.as_ref(), &identity)?);
    if config.dry_run == Some(DryRun::Server) {
        let namespace = identity.namespace.clone().unwrap_or_default();
        let jobs = herd::server_dry_run(client, &namespace, &children).await?;
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
    }))
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

/// The run's state machine, with what an earlier run did already.
fn start_run<W: std::io::Write>(
    config: &Config,
    setup: &Setup,
    earlier: Option<retry::Inherited>,
    reporter: &mut Reporter<W>,
) -> run::Run {
    let rules = run::Rules {
        parallelism: config.parallelism.or(setup.options.parallelism),
        fail_fast: config.fail_fast,
        stuck_timeout: config.stuck_timeout,
        logs: config.logs,
    };
    let mut run = run::Run::new(
        setup.children.clone(),
        &rules,
        &setup.identity.run_id,
        Instant::now(),
    );
    if let Some(earlier) = earlier {
        // The children of steps that fan out over a result are not counted yet.
        let of = if setup.children.fanning_out().next().is_some() {
            String::new()
        } else {
            format!(" of {}", setup.children.len())
        };
        reporter.note(&format!(
            "retrying run {}: {}{of} children succeeded there and are not run again",
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
