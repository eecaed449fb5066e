//! `JOBHERD_PUSHGATEWAY`: the run's metrics, pushed to a Prometheus Pushgateway on each
//! heartbeat and at the end, the Pushgateway's way for batch jobs (a run is gone before
//! Prometheus could scrape it). Grouped by `job` (the CronJob, else the name prefix) and
//! `namespace`; pushed with POST, which replaces only the metrics a push carries: a failed run
//! carries no `jobherd_last_success_timestamp_seconds`, so the last success's stays. The text
//! is Prometheus' own Rust client's (`prometheus-client`); a push that fails is a warning.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::{Client, ResourceExt};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{Counts, duration};
use crate::cluster::{self, Parent};
use crate::run::Run;

/// How long one push may take before it is given up (a warning).
const PUSH_WITHIN: Duration = Duration::from_secs(10);
/// The children's durations, in seconds: from a few seconds to a day.
const DURATION_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0,
];
/// The Prometheus text format, which every Pushgateway reads.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a run ended, for the push at its end.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub exit_code: i32,
    pub at: Timestamp,
}

/// The metrics of a run as the Pushgateway takes them. While it goes on (`ended: None`) the
/// exit code and the completion and success times are left out, so those of the last run that
/// ended stay; at its end the success time is there only when it succeeded.
pub fn exposition(run: &Run, elapsed: Duration, ended: Option<Ended>) -> String {
    let mut registry = Registry::default();
    let children = Family::<Vec<(String, String)>, Gauge>::default();
    registry.register(
        "jobherd_children",
        "Children of the run in each state",
        children.clone(),
    );
    for (state, n) in Counts::of(run).by_state() {
        let labels = vec![("state".to_string(), state.to_string())];
        children.get_or_create(&labels).set(as_i64(n));
    }
    let seconds = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    seconds(
        &mut registry,
        "jobherd_run_duration_seconds",
        "How long the run has taken so far, or took",
        elapsed.as_secs_f64(),
    );
    children_metrics(&mut registry, run);
    if let Some(ended) = ended {
        let at = ended.at.as_millisecond() as f64 / 1000.0;
        let code = Gauge::<i64>::default();
        code.set(ended.exit_code.into());
        registry.register(
            "jobherd_exit_code",
            "The exit code of the last run that ended (0: every child succeeded)",
            code,
        );
        seconds(
            &mut registry,
            "jobherd_last_completion_timestamp_seconds",
            "When the last run ended, whatever its outcome (Unix time)",
            at,
        );
        if ended.exit_code == 0 {
            seconds(
                &mut registry,
                "jobherd_last_success_timestamp_seconds",
                "When the last run that succeeded ended (Unix time)",
                at,
            );
        }
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// Retries, preemptions and time in queues summed over the children, and the children's
/// durations (as the table's DURATION) as a histogram.
fn children_metrics(registry: &mut Registry, run: &Run) {
    let (mut retries, mut preemptions, mut queued) = (0u64, 0u64, Duration::ZERO);
    let histogram = Histogram::new(DURATION_BUCKETS);
    for i in 0..run.total() {
        let state = run.state(i);
        retries += u64::from(state.attempts.saturating_sub(1));
        preemptions += u64::from(state.preemptions());
        queued += run.time_queued(i);
        if state.earlier_run.is_none()
            && let Some(d) = duration(state.started(), state.finished())
        {
            histogram.observe(d.as_secs_f64());
        }
    }
    let count = |registry: &mut Registry, name: &str, help: &str, n: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        registry.register(name, help, gauge);
    };
    count(
        registry,
        "jobherd_child_retries",
        "Attempts beyond each child's first, summed over the run's children",
        retries,
    );
    count(
        registry,
        "jobherd_child_preemptions",
        "Preemptions of the run's children (suspended again by a queue once admitted)",
        preemptions,
    );
    let waited = Gauge::<f64, AtomicU64>::default();
    waited.set(queued.as_secs_f64());
    registry.register(
        "jobherd_child_queued_seconds",
        "Time the run's children waited in queues, summed",
        waited,
    );
    registry.register(
        "jobherd_child_duration_seconds",
        "How long the run's children ran, from their Job's start to its end",
        histogram,
    );
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Where the metrics go: one group of one Pushgateway.
pub struct Pushgateway {
    /// `<base>/metrics/job/<job>/namespace/<namespace>`.
    url: String,
    client: HttpClient<Https, Full<Bytes>>,
    /// One push at a time, in order: a heartbeat's must not land after the end's.
    busy: tokio::sync::Mutex<()>,
}

impl Pushgateway {
    /// `base` is `JOBHERD_PUSHGATEWAY` (checked by the configuration: http or https, a host).
    pub fn new(base: &str, job: &str, namespace: &str) -> Pushgateway {
        Pushgateway {
            url: group_url(base, job, namespace),
            client: HttpClient::builder(TokioExecutor::new()).build(connector()),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pushes, after any push under way; the error says what went wrong.
    pub async fn push(&self, body: String) -> Result<(), String> {
        let _turn = self.busy.lock().await;
        self.send_within(body).await
    }

    /// A heartbeat's push, in the background; skipped while another is under way.
    pub fn push_in_background(self: &Arc<Self>, body: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.clone();
        runtime.spawn(async move {
            let Ok(_turn) = me.busy.try_lock() else {
                return;
            };
            if let Err(e) = me.send_within(body).await {
                warn(&me.url, &e);
            }
        });
    }

    async fn send_within(&self, body: String) -> Result<(), String> {
        tokio::time::timeout(PUSH_WITHIN, self.send(body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", PUSH_WITHIN.as_secs())))
    }

    async fn send(&self, body: String) -> Result<(), String> {
        let request = hyper::Request::post(&self.url)
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let said = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        Err(format!("{status}: {said}"))
    }
}

/// Says a push failed; the run goes on.
pub fn warn(url: &str, error: &str) {
    tracing::warn!("could not push the run's metrics to {url}: {error}");
}

/// HTTP, and HTTPS with the system's certificate authorities (the image has them).
fn connector() -> Https {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    match builder.with_native_roots() {
        Ok(b) => b.https_or_http().enable_http1().build(),
        Err(e) => {
            tracing::warn!("no certificate authorities for an https Pushgateway: {e}");
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .build()
        }
    }
}

/// The grouping key in the path: `job`, then `namespace` (DNS names, safe in a path).
pub fn group_url(base: &str, job: &str, namespace: &str) -> String {
    format!(
        "{}/metrics/job/{job}/namespace/{namespace}",
        base.trim_end_matches('/')
    )
}

/// The `job` the metrics are grouped by: the CronJob that made the parent Job (scheduled or
/// `kubectl create job --from=cronjob`, the trigger too), else the child name prefix.
pub async fn job_name(client: &Client, parent: Option<&Parent>, prefix: &str) -> String {
    let Some(parent) = parent.filter(|p| p.kind == "Job") else {
        return prefix.to_string();
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), &parent.namespace);
    match jobs.get(&parent.name).await {
        Ok(job) => job
            .owner_references()
            .iter()
            .find(|o| o.kind == "CronJob")
            .map_or_else(|| prefix.to_string(), |o| o.name.clone()),
        Err(e) => {
            tracing::warn!(
                "could not read the parent Job for its CronJob ({}); the metrics are grouped by job={prefix}",
                cluster::describe(&e)
            );
            prefix.to_string()
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
