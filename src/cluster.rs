//! Talking to the Kubernetes API: connecting the way kubectl does, finding the parent, and
//! turning API failures into errors a user can act on (which verb, which resource, which rule).

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, Resource, ResourceExt};

use crate::child::{Identity, fnv1a};
use crate::config::Config;

const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to the Kubernetes API: {0}")]
    Connect(String),
    #[error(
        "forbidden: cannot {verb} {resource} in namespace {namespace} ({message}); grant `{verb}` on `{resource}` in the Role bound to this identity (see rbac.yaml, or k8s/trigger-rbac.yaml for JOBHERD_TRIGGER)"
    )]
    Forbidden {
        verb: String,
        resource: String,
        namespace: String,
        message: String,
    },
    #[error("{action}: {message}")]
    Api { action: String, message: String },
}

impl ClusterError {
    /// Wraps a kube error from `verb` on `resource`, recognising RBAC refusals.
    pub fn from_kube(verb: &str, resource: &str, namespace: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                verb: verb.into(),
                resource: resource.into(),
                namespace: namespace.into(),
                message: status.message.clone(),
            },
            other => ClusterError::Api {
                action: format!("{verb} {resource} in namespace {namespace}"),
                message: describe(&other),
            },
        }
    }
}

/// A kube error in one line, with the API's own message when there is one.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        }
    }
}

pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Connects like kubectl: `KUBECONFIG`/`~/.kube/config` first, then the service account.
pub async fn connect() -> Result<Client, ClusterError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))?;
    Client::try_from(config).map_err(|e| ClusterError::Connect(describe(&e)))
}

/// Where jobherd itself runs, from the downward API or, failing that, the pod's hostname and
/// service-account namespace file. Both `None` outside a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Whereabouts {
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

impl Whereabouts {
    pub fn from_env() -> Self {
        let sa_namespace = std::fs::read_to_string(SA_NAMESPACE_FILE)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // HOSTNAME is the pod name only inside a pod; the service-account file tells us we are in one.
        let pod_name =
            env("POD_NAME").or_else(|| sa_namespace.as_ref().and_then(|_| env("HOSTNAME")));
        Whereabouts {
            pod_name,
            pod_namespace: env("POD_NAMESPACE").or(sa_namespace),
        }
    }
}

/// A fresh run id for a run without a parent object: short, lowercase, DNS-safe.
pub fn generated_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = fnv1a(&format!("{nanos}-{}", std::process::id()));
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let c = alphabet[(n % 36) as usize] as char;
            n /= 36;
            c
        })
        .collect()
}

/// The identity of a client dry run: no cluster is asked anything.
pub fn offline_identity(
    config: &Config,
    here: &Whereabouts,
    namespace: Option<String>,
) -> Identity {
    let run_id = generated_run_id();
    Identity {
        prefix: config
            .name_prefix
            .clone()
            .unwrap_or_else(|| format!("jobherd-{run_id}")),
        run_id,
        namespace: config
            .namespace
            .clone()
            .or(namespace)
            .or_else(|| here.pod_namespace.clone()),
        owner: None,
    }
}

/// The parent object, as far as one was found.
#[derive(Debug, Clone)]
pub struct Parent {
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Parent {
    fn owner_reference(&self) -> OwnerReference {
        let (api_version, kind) = match self.kind {
            "Job" => ("batch/v1", "Job"),
            _ => ("v1", "Pod"),
        };
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            // Without blockOwnerDeletion: setting it needs `update` on the parent's finalizers.
            block_owner_deletion: None,
            controller: None,
        }
    }
}

/// The image jobherd's own pod runs it from (its only container, or the one named `jobherd`),
/// for packed children to copy jobherd's entrypoint from; `None` outside a pod.
pub async fn own_image(client: &Client, here: &Whereabouts) -> Option<String> {
    let (name, namespace) = (here.pod_name.as_ref()?, here.pod_namespace.as_ref()?);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods.get_opt(name).await.ok()??;
    let containers = pod.spec?.containers;
    let own = match containers.as_slice() {
        [only] => Some(only),
        many => many.iter().find(|c| c.name == "jobherd"),
    };
    own.and_then(|c| c.image.clone())
}

/// Finds the parent (owning Job, else the pod) and decides run id, prefix and namespace.
pub async fn identify(
    client: &Client,
    config: &Config,
    here: &Whereabouts,
    plan_namespace: Option<String>,
) -> Result<(Identity, Option<Parent>), ClusterError> {
    let parent = match (&here.pod_name, &here.pod_namespace) {
        (Some(name), Some(namespace)) => find_parent(client, name, namespace).await?,
        _ => None,
    };
    let namespace = config
        .namespace
        .clone()
        .or(plan_namespace)
        .or_else(|| parent.as_ref().map(|p| p.namespace.clone()))
        .or_else(|| here.pod_namespace.clone())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let run_id = parent
        .as_ref()
        .map(|p| p.uid.clone())
        .unwrap_or_else(generated_run_id);
    let prefix = config.name_prefix.clone().unwrap_or_else(|| match &parent {
        Some(p) => p.name.clone(),
        None => format!("jobherd-{run_id}"),
    });
    // Owner references cannot cross namespaces: children elsewhere are not garbage-collected
    // with the parent, which docs/configuration.md says.
    let owner = parent
        .as_ref()
        .filter(|p| p.namespace == namespace)
        .map(Parent::owner_reference);
    if parent.is_some() && owner.is_none() {
        tracing::warn!(
            namespace,
            "children run in another namespace than the parent: no ownerReferences, deleting the parent will not delete them"
        );
    }
    Ok((
        Identity {
            run_id,
            prefix,
            namespace: Some(namespace),
            owner,
        },
        parent,
    ))
}

async fn find_parent(
    client: &Client,
    pod_name: &str,
    namespace: &str,
) -> Result<Option<Parent>, ClusterError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = match pods.get_opt(pod_name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            tracing::warn!(
                pod = pod_name,
                namespace,
                "own pod not found; running without a parent"
            );
            return Ok(None);
        }
        Err(e) => return Err(ClusterError::from_kube("get", "pods", namespace, e)),
    };
    let job_owner = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "Job" && o.api_version.starts_with("batch/"))
        .cloned();
    Ok(Some(match job_owner {
        Some(o) => Parent {
            kind: "Job",
            name: o.name,
            namespace: namespace.into(),
            uid: o.uid,
        },
        None => Parent {
            kind: "Pod",
            name: pod.name_any(),
            namespace: namespace.into(),
            uid: pod.uid().unwrap_or_default(),
        },
    }))
}

/// A container's log (the container's, or the pod's only one), line by line as it comes,
/// until the container ends. Fails only when the log cannot be opened.
pub async fn follow_log(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<String>,
) -> Result<impl futures::Stream<Item = std::io::Result<String>> + Unpin, kube::Error> {
    use futures::AsyncBufReadExt;
    let params = kube::api::LogParams {
        follow: true,
        container,
        ..Default::default()
    };
    Ok(pods.log_stream(pod, &params).await?.lines())
}

/// Deletes a child so its pods go too. A child already gone is not an error.
pub async fn delete_child(jobs: &Api<Job>, name: &str) -> Result<(), kube::Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Records the run's summary and outcome on the parent Job, where `kubectl describe job` shows
/// them and a later run's `JOBHERD_RETRY` reads them.
pub async fn annotate_parent(
    client: &Client,
    parent: &Parent,
    annotations: &[(&str, String)],
) -> Result<(), kube::Error> {
    if parent.kind != "Job" {
        return Ok(());
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &parent.namespace);
    let values: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().into()))
        .collect();
    let patch = serde_json::json!({"metadata": {"annotations": values}});
    jobs.patch(&parent.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Publishes an Event on the parent (shown by `kubectl describe`).
pub async fn event_on_parent(
    client: &Client,
    parent: &Parent,
    warning: bool,
    reason: &str,
    note: &str,
) -> Result<(), kube::Error> {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let reference = match parent.kind {
        "Job" => {
            let mut job = Job::default();
            job.metadata.name = Some(parent.name.clone());
            job.metadata.namespace = Some(parent.namespace.clone());
            job.metadata.uid = Some(parent.uid.clone());
            job.object_ref(&())
        }
        _ => {
            let mut pod = Pod::default();
            pod.metadata.name = Some(parent.name.clone());
            pod.metadata.namespace = Some(parent.namespace.clone());
            pod.metadata.uid = Some(parent.uid.clone());
            pod.object_ref(&())
        }
    };
    let reporter = Reporter {
        controller: "jobherd".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut note = note.to_string();
    note.truncate(1000);
    recorder
        .publish(
            &Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: reason.into(),
                note: Some(note),
                action: "Run".into(),
                secondary: None,
            },
            &reference,
        )
        .await
}

/// Writes the summary where `kubectl describe pod` shows it as the termination message.
pub fn write_termination_log(path: &Path, summary: &str) {
    // The kubelet creates the file in a container; elsewhere it does not exist and must not be made.
    if path.exists() {
        let _ = std::fs::write(path, summary);
    }
}
