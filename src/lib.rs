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

use std::path::Path;
use std::time::Instant;

use config::{Config, DryRun};

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
    let specs = child::children(&config.defaults, plan.as_ref(), &offline)?;
    if config.dry_run == Some(DryRun::Client) {
        print_list(specs.iter().map(|s| &s.job));
        return Ok(0);
    }

    let client = cluster::connect().await?;
    let (identity, parent) =
        cluster::identify(&client, &config, &here, plan_options.namespace.clone()).await?;
    let specs = child::children(&config.defaults, plan.as_ref(), &identity)?;
    let namespace = identity.namespace.clone().unwrap_or_default();
    let run = run::Run::new(
        specs,
        config.parallelism.or(plan_options.parallelism),
        config.fail_fast,
        &identity.run_id,
    );
    if config.dry_run == Some(DryRun::Server) {
        let jobs = herd::server_dry_run(client, &namespace, &run).await?;
        print_list(jobs.iter());
        return Ok(0);
    }

    let parent_text = parent.as_ref().map_or("no parent".to_string(), |p| {
        format!("parent {} {}", p.kind, p.name)
    });
    println!(
        "jobherd run {}: {} children in namespace {namespace} ({parent_text})",
        identity.run_id,
        run.total()
    );
    let settings = herd::Settings {
        timeout: config.timeout,
        stuck_timeout: config.stuck_timeout,
        logs: config.logs,
        cleanup: config.cleanup.or(plan_options.cleanup).unwrap_or_default(),
    };
    let run = herd::execute(client.clone(), &identity, run, &settings).await?;

    let elapsed = started.elapsed();
    let summary = report::summary(&run, elapsed);
    println!();
    print!("{}", report::table(&run));
    println!("{summary}");
    if let Some(path) = &config.report_file {
        write_file(
            path,
            &report::json(&run, &identity.run_id, Some(&namespace), elapsed),
        );
    }
    if let Some(path) = &config.junit_file {
        let suite = parent
            .as_ref()
            .map_or(identity.prefix.as_str(), |p| p.name.as_str());
        write_file(path, &report::junit(&run, suite, elapsed));
    }
    cluster::write_termination_log(&config.termination_log, &summary);
    if let Some(parent) = &parent {
        let failed = run.exit_code() != 0;
        let reason = if failed { "RunFailed" } else { "RunSucceeded" };
        if let Err(e) = cluster::event_on_parent(&client, parent, failed, reason, &summary).await {
            tracing::warn!(
                "could not post an Event on the parent: {}",
                cluster::describe(&e)
            );
        }
        if let Err(e) = cluster::annotate_parent(&client, parent, &summary).await {
            tracing::warn!("could not annotate the parent: {}", cluster::describe(&e));
        }
    }
    Ok(run.exit_code())
}

/// Prints Jobs as a `v1` `List`, as `kubectl create --dry-run=client -o json` does for many.
fn print_list<'a>(jobs: impl Iterator<Item = &'a k8s_openapi::api::batch::v1::Job>) {
    let items: Vec<serde_json::Value> = jobs
        .map(|j| {
            let mut v = serde_json::to_value(j).unwrap_or_default();
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

fn write_file(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        tracing::warn!(path = %path.display(), "could not write report: {e}");
    }
}
