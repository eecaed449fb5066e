//! jobherd: runs as the parent Job of a CronJob, fans out child Jobs, follows them through the
//! Kubernetes API and exits with the aggregate result.
//!
//! A run flows: `config` (variables) → `plan` (steps and dependencies) → `child` (the Jobs) →
//! `cluster` (connect, find the parent) → `herd` (create and watch, driving the `run` state
//! machine) → `report` (progress, table, JSON, JUnit). `main.rs` only wires logging and exit.

pub mod child;
pub mod cluster;
pub mod config;
pub mod herd;
pub mod plan;
pub mod report;
pub mod run;

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
}

impl Error {
    /// SPEC §5: 2 for configuration and plans (nothing was created), 4 for the API.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Plan(_) => 2,
            Error::Cluster(_) => 4,
        }
    }
}

/// Runs jobherd with a parsed configuration; returns the exit code of a run that happened.
pub async fn run(config: Config) -> Result<i32, Error> {
    let started = Instant::now();
    let plan = config.plan.as_ref().map(plan::load).transpose()?;
    let plan_options = plan.as_ref().map(|p| p.options.clone()).unwrap_or_default();
    for note in &plan_options.notes {
        tracing::info!("plan: {note}");
    }
    let here = cluster::Whereabouts::from_env();
    // Children are built once before connecting, so a bad plan or template exits 2 with
    // nothing created, with or without a cluster.
    let offline = cluster::offline_identity(&config, &here, plan_options.namespace.clone());
    let children = child::children(&config.defaults, plan.as_ref(), &offline)?;
    if config.dry_run == Some(DryRun::Client) {
        print_list((0..children.len()).map(|i| children.job(i)));
        return Ok(0);
    }

    let client = cluster::connect().await?;
    let (identity, parent) =
        cluster::identify(&client, &config, &here, plan_options.namespace.clone()).await?;
    let children = Arc::new(child::children(&config.defaults, plan.as_ref(), &identity)?);
    let namespace = identity.namespace.clone().unwrap_or_default();
    if config.dry_run == Some(DryRun::Server) {
        let jobs = herd::server_dry_run(client, &namespace, &children).await?;
        print_list(jobs.into_iter());
        return Ok(0);
    }

    let parent_text = parent.as_ref().map_or("no parent".to_string(), |p| {
        format!("parent {} {}", p.kind, p.name)
    });
    let mut reporter = Reporter::new(
        std::io::stdout(),
        config.progress,
        config.heartbeat,
        children.len(),
        Instant::now(),
    );
    reporter.start(&format!(
        "jobherd run {}: {} children in namespace {namespace} ({parent_text})",
        identity.run_id,
        children.len()
    ));
    let rules = run::Rules {
        parallelism: config.parallelism.or(plan_options.parallelism),
        fail_fast: config.fail_fast,
        stuck_timeout: config.stuck_timeout,
        logs: config.logs,
    };
    let run = run::Run::new(children, &rules, &identity.run_id, Instant::now());
    let settings = herd::Settings {
        timeout: config.timeout,
        rate: config.rate,
        cleanup: config.cleanup.or(plan_options.cleanup).unwrap_or_default(),
    };
    let api = herd::ChildApi::new(client.clone(), &identity);
    let run = herd::execute(api, run, &mut reporter, &settings).await?;

    let elapsed = started.elapsed();
    let summary = reporter.finish(&run, elapsed);
    let ending = report::Ending {
        elapsed,
        run_id: &identity.run_id,
        namespace: &namespace,
        parent: parent.as_ref(),
        suite: &identity.prefix,
        report_file: config.report_file.as_deref(),
        junit_file: config.junit_file.as_deref(),
        termination_log: &config.termination_log,
    };
    reporter
        .publish(&run, &summary, Some(&client), &ending)
        .await;
    Ok(run.exit_code())
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
