//! What differs between the Kubernetes versions the fake can be (1.21 to 1.33): which behaviours
//! of the controllers are on, and which fields each version's API knows. A field the configured
//! version does not know is pruned (before 1.25), or warned about or refused (server-side field
//! validation, 1.25+), exactly where that version's kube-apiserver would.

use serde_json::Value;

use super::meta::{ApiError, Kind};

pub const OLDEST: u32 = 21;
pub const NEWEST: u32 = 33;

/// A Kubernetes minor version (`1.<minor>`) with the behaviours the fake derives from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version(pub u32);

impl Version {
    /// The Job controller writes `SuccessCriteriaMet`/`FailureTarget` in an update before
    /// `Complete`/`Failed`, and the final condition waits until no pod is terminating (1.31).
    pub fn interim_conditions(self) -> bool {
        self.0 >= 31
    }

    /// Job pods carry the `batch.kubernetes.io/job-tracking` finalizer and the Job's status
    /// passes through `uncountedTerminatedPods` (JobTrackingWithFinalizers, GA in 1.26).
    pub fn tracking_finalizers(self) -> bool {
        self.0 >= 26
    }

    /// `status.ready` of a Job (JobReadyPods, beta and on from 1.24).
    pub fn job_ready(self) -> bool {
        self.0 >= 24
    }

    /// `status.terminating` of a Job and `spec.podReplacementPolicy` (beta and on from 1.29).
    pub fn job_terminating(self) -> bool {
        self.0 >= 29
    }

    /// A `FailureTarget` condition for podFailurePolicy `FailJob` rules (1.26, before 1.31 made
    /// every failure go through it).
    pub fn pod_failure_policy(self) -> bool {
        self.0 >= 26
    }

    /// `completionMode` and `suspend` (IndexedJob, SuspendJob: alpha, off in 1.21).
    pub fn indexed_and_suspend(self) -> bool {
        self.0 >= 22
    }

    /// An Indexed Job's pods carry their index as a label too, and `JOB_COMPLETION_INDEX`
    /// reads it (PodIndexLabel, beta and on from 1.28).
    pub fn pod_index_label(self) -> bool {
        self.0 >= 28
    }

    /// `backoffLimitPerIndex`, `maxFailedIndexes` and the `FailIndex` action
    /// (JobBackoffLimitPerIndex, alpha and off in 1.28, beta and on from 1.29).
    pub fn backoff_limit_per_index(self) -> bool {
        self.0 >= 29
    }

    /// Job labels and selector under `batch.kubernetes.io/` besides the legacy ones (1.27).
    pub fn batch_labels(self) -> bool {
        self.0 >= 27
    }

    /// The `PodReadyToStartContainers` pod condition (beta and on from 1.29).
    pub fn pod_ready_to_start(self) -> bool {
        self.0 >= 29
    }

    /// `DisruptionTarget` pod conditions (PodDisruptionConditions, beta and on from 1.26).
    pub fn disruption_target(self) -> bool {
        self.0 >= 26
    }

    /// Server-side field validation: `fieldValidation=Strict|Warn|Ignore` (beta and on, 1.25).
    pub fn field_validation(self) -> bool {
        self.0 >= 25
    }

    /// `field.TooLong`'s wording, which apimachinery changed in 1.32.
    pub fn too_long(self, max: usize) -> String {
        if self.0 >= 32 {
            format!("may not be more than {max} bytes")
        } else {
            format!("must have at most {max} bytes")
        }
    }

    /// `git version` as `/version` reports it.
    pub fn git_version(self) -> String {
        format!("v1.{}.0-fake", self.0)
    }
}

/// Where a group of fields lives in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    JobSpec,
    CronJobSpec,
    PodSpec,
    Container,
    PodSecurityContext,
    SecurityContext,
    LifecycleHandler,
    NetworkPolicyPort,
}

/// Fields that appeared after 1.21, with the version whose API first has them (as an alpha
/// field behind a feature gate that is off) and the version from which the gate is on by
/// default. Before `added` the field is unknown; from `added` to `on` it is known but dropped
/// silently, as kube-apiserver's `dropDisabledFields` does.
const FIELDS: &[(Scope, &str, u32, u32)] = &[
    (Scope::JobSpec, "completionMode", 21, 22),
    (Scope::JobSpec, "suspend", 21, 22),
    (Scope::JobSpec, "podFailurePolicy", 25, 26),
    (Scope::JobSpec, "backoffLimitPerIndex", 28, 29),
    (Scope::JobSpec, "maxFailedIndexes", 28, 29),
    (Scope::JobSpec, "podReplacementPolicy", 28, 29),
    (Scope::JobSpec, "successPolicy", 30, 31),
    (Scope::JobSpec, "managedBy", 30, 32),
    (Scope::CronJobSpec, "timeZone", 24, 25),
    (Scope::PodSpec, "os", 23, 24),
    (Scope::PodSpec, "hostUsers", 25, 33),
    (Scope::PodSpec, "schedulingGates", 26, 27),
    (Scope::PodSpec, "resourceClaims", 26, 34),
    (Scope::PodSpec, "resources", 32, 34),
    (Scope::Container, "resizePolicy", 27, 33),
    (Scope::Container, "restartPolicy", 28, 29),
    (Scope::PodSecurityContext, "appArmorProfile", 30, 30),
    (
        Scope::PodSecurityContext,
        "supplementalGroupsPolicy",
        31,
        33,
    ),
    (Scope::SecurityContext, "appArmorProfile", 30, 30),
    (Scope::LifecycleHandler, "sleep", 29, 30),
    (Scope::NetworkPolicyPort, "endPort", 21, 22),
];

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub type Path = Vec<Seg>;

/// `spec.template.spec.containers[0].resizePolicy`, as the strict decoding error prints it.
pub fn dotted(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The kinds whose fields the fake checks: the served ones, plus those only `kubectl_apply`
/// accepts (validated and pruned, never stored or served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    Served(Kind),
    ServiceAccount,
    Role,
    RoleBinding,
    NetworkPolicy,
}

impl Schema {
    pub fn kind(self) -> &'static str {
        match self {
            Schema::Served(k) => k.kind(),
            Schema::ServiceAccount => "ServiceAccount",
            Schema::Role => "Role",
            Schema::RoleBinding => "RoleBinding",
            Schema::NetworkPolicy => "NetworkPolicy",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Schema::Served(k) => k.api_version(),
            Schema::ServiceAccount => "v1",
            Schema::Role | Schema::RoleBinding => "rbac.authorization.k8s.io/v1",
            Schema::NetworkPolicy => "networking.k8s.io/v1",
        }
    }

    /// The OpenAPI name of the kind, as kubectl's validation messages print it.
    fn type_name(self) -> &'static str {
        match self {
            Schema::Served(Kind::Job) => "io.k8s.api.batch.v1.Job",
            Schema::Served(Kind::CronJob) => "io.k8s.api.batch.v1.CronJob",
            Schema::Served(Kind::Pod) => "io.k8s.api.core.v1.Pod",
            Schema::Served(Kind::Event) => "io.k8s.api.events.v1.Event",
            Schema::Served(Kind::CoreEvent) => "io.k8s.api.core.v1.Event",
            Schema::ServiceAccount => "io.k8s.api.core.v1.ServiceAccount",
            Schema::Role => "io.k8s.api.rbac.v1.Role",
            Schema::RoleBinding => "io.k8s.api.rbac.v1.RoleBinding",
            Schema::NetworkPolicy => "io.k8s.api.networking.v1.NetworkPolicy",
            Schema::Served(Kind::ConfigMap) => "io.k8s.api.core.v1.ConfigMap",
        }
    }

    pub fn from_type(api_version: &str, kind: &str) -> Option<Schema> {
        Some(match (api_version, kind) {
            ("batch/v1", "Job") => Schema::Served(Kind::Job),
            ("batch/v1", "CronJob") => Schema::Served(Kind::CronJob),
            ("v1", "Pod") => Schema::Served(Kind::Pod),
            ("v1", "ServiceAccount") => Schema::ServiceAccount,
            ("v1", "ConfigMap") => Schema::Served(Kind::ConfigMap),
            ("rbac.authorization.k8s.io/v1", "Role") => Schema::Role,
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => Schema::RoleBinding,
            ("networking.k8s.io/v1", "NetworkPolicy") => Schema::NetworkPolicy,
            _ => return None,
        })
    }
}

/// A field of an object that the configured version's API does not take.
#[derive(Clone, Debug)]
pub struct FieldIssue {
    pub path: Path,
    /// Unknown to this version's schema (else: known but behind a gate that is off).
    pub unknown: bool,
}

/// Fields of `obj` the API of `version` does not keep: unknown to every Kubernetes (what
/// k8s-openapi's types drop when the object goes through them), newer than `version`, or behind
/// a feature gate that is off there.
pub fn issues(schema: Schema, obj: &Value, version: Version) -> Vec<FieldIssue> {
    let mut out: Vec<FieldIssue> = unknown_to_all(schema, obj)
        .into_iter()
        .map(|path| FieldIssue {
            path,
            unknown: true,
        })
        .collect();
    for (scope, base) in scopes(schema, obj) {
        let Some(at) = get(obj, &base).and_then(Value::as_object) else {
            continue;
        };
        for (_, field, added, on) in FIELDS.iter().filter(|f| f.0 == scope) {
            if at.get(*field).is_none_or(Value::is_null) || version.0 >= *on {
                continue;
            }
            let mut path = base.clone();
            path.push(Seg::Key(field.to_string()));
            out.push(FieldIssue {
                path,
                unknown: version.0 < *added,
            });
        }
    }
    out
}

/// Removes the fields at `paths` (deepest first does not matter: paths never nest).
pub fn prune(obj: &mut Value, paths: &[&Path]) {
    for path in paths {
        let Some((Seg::Key(last), parent)) = path.split_last() else {
            continue;
        };
        if let Some(Value::Object(m)) = get_mut(obj, parent) {
            m.remove(last);
        }
    }
}

/// What the API does with the issues of a write: drop them all, and for unknown fields warn
/// (`Warn`, the default from 1.25) or refuse the write (`Strict`). Before 1.25 the server has no
/// field validation and prunes silently. Returns the warnings to send as `Warning` headers.
pub fn admit(
    schema: Schema,
    obj: &mut Value,
    version: Version,
    field_validation: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let found = issues(schema, obj, version);
    let unknown: Vec<&FieldIssue> = found.iter().filter(|i| i.unknown).collect();
    let mode = if version.field_validation() {
        field_validation.unwrap_or("Warn")
    } else {
        "Ignore"
    };
    if mode == "Strict" && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|i| format!("unknown field \"{}\"", dotted(&i.path)))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            fields.join(", "),
            kind = schema.kind(),
            v = schema.api_version().rsplit('/').next().unwrap_or("v1"),
        )));
    }
    let warnings = if mode == "Warn" {
        unknown
            .iter()
            .map(|i| format!("unknown field \"{}\"", dotted(&i.path)))
            .collect()
    } else {
        Vec::new()
    };
    let paths: Vec<&Path> = found.iter().map(|i| &i.path).collect();
    prune(obj, &paths);
    Ok(warnings)
}

/// kubectl's client-side schema validation (kubectl against a server before 1.25): one
/// `ValidationError(...)` per unknown field, or `None` when the object is valid.
pub fn kubectl_validation(schema: Schema, obj: &Value, version: Version) -> Option<String> {
    let errors: Vec<String> = issues(schema, obj, version)
        .into_iter()
        .filter(|i| i.unknown)
        .filter_map(|i| {
            let (Seg::Key(field), parent) = i.path.split_last()? else {
                return None;
            };
            let mut at = schema.kind().to_string();
            for seg in parent {
                match seg {
                    Seg::Key(k) => {
                        at.push('.');
                        at.push_str(k);
                    }
                    Seg::Index(n) => at.push_str(&format!("[{n}]")),
                }
            }
            let ty = type_at(schema, parent, version);
            Some(format!(
                "ValidationError({at}): unknown field \"{field}\" in {ty}"
            ))
        })
        .collect();
    match errors.len() {
        0 => None,
        1 => Some(errors[0].clone()),
        _ => Some(format!("[{}]", errors.join(", "))),
    }
}

/// The OpenAPI type at `path` of a `schema` object, for kubectl's messages.
fn type_at(schema: Schema, path: &[Seg], version: Version) -> String {
    const CORE: &str = "io.k8s.api.core.v1.";
    let handler = if version.0 >= 23 {
        "LifecycleHandler"
    } else {
        "Handler"
    };
    let mut ty = schema.type_name().to_string();
    for seg in path {
        let Seg::Key(key) = seg else { continue };
        let short = ty.rsplit('.').next().unwrap_or("").to_string();
        let next = match (short.as_str(), key.as_str()) {
            (_, "metadata") => "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_string(),
            ("Job" | "JobTemplateSpec", "spec") => "io.k8s.api.batch.v1.JobSpec".into(),
            ("CronJob", "spec") => "io.k8s.api.batch.v1.CronJobSpec".into(),
            ("CronJobSpec", "jobTemplate") => "io.k8s.api.batch.v1.JobTemplateSpec".into(),
            ("JobSpec", "template") => format!("{CORE}PodTemplateSpec"),
            ("JobSpec", "podFailurePolicy") => "io.k8s.api.batch.v1.PodFailurePolicy".into(),
            ("PodFailurePolicy", "rules") => "io.k8s.api.batch.v1.PodFailurePolicyRule".into(),
            ("PodFailurePolicyRule", "onExitCodes") => {
                "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement".into()
            }
            ("PodFailurePolicyRule", "onPodConditions") => {
                "io.k8s.api.batch.v1.PodFailurePolicyOnPodConditionsPattern".into()
            }
            ("PodTemplateSpec" | "Pod", "spec") => format!("{CORE}PodSpec"),
            ("PodSpec", "containers" | "initContainers") => format!("{CORE}Container"),
            ("PodSpec", "securityContext") => format!("{CORE}PodSecurityContext"),
            ("PodSpec", "volumes") => format!("{CORE}Volume"),
            ("PodSpec", "tolerations") => format!("{CORE}Toleration"),
            ("PodSpec", "affinity") => format!("{CORE}Affinity"),
            ("Container", "securityContext") => format!("{CORE}SecurityContext"),
            ("Container", "resources") => format!("{CORE}ResourceRequirements"),
            ("Container", "env") => format!("{CORE}EnvVar"),
            ("Container", "ports") => format!("{CORE}ContainerPort"),
            ("Container", "volumeMounts") => format!("{CORE}VolumeMount"),
            ("Container", "lifecycle") => format!("{CORE}Lifecycle"),
            ("Lifecycle", "preStop" | "postStart") => format!("{CORE}{handler}"),
            ("EnvVar", "valueFrom") => format!("{CORE}EnvVarSource"),
            ("EnvVarSource", "fieldRef") => format!("{CORE}ObjectFieldSelector"),
            ("SecurityContext", "capabilities") => format!("{CORE}Capabilities"),
            ("SecurityContext" | "PodSecurityContext", "seccompProfile") => {
                format!("{CORE}SeccompProfile")
            }
            ("NetworkPolicy", "spec") => "io.k8s.api.networking.v1.NetworkPolicySpec".into(),
            ("NetworkPolicySpec", "ingress") => {
                "io.k8s.api.networking.v1.NetworkPolicyIngressRule".into()
            }
            ("NetworkPolicySpec", "egress") => {
                "io.k8s.api.networking.v1.NetworkPolicyEgressRule".into()
            }
            ("NetworkPolicyIngressRule" | "NetworkPolicyEgressRule", "ports") => {
                "io.k8s.api.networking.v1.NetworkPolicyPort".into()
            }
            ("NetworkPolicyIngressRule", "from") | ("NetworkPolicyEgressRule", "to") => {
                "io.k8s.api.networking.v1.NetworkPolicyPeer".into()
            }
            ("Role", "rules") => "io.k8s.api.rbac.v1.PolicyRule".into(),
            ("RoleBinding", "roleRef") => "io.k8s.api.rbac.v1.RoleRef".into(),
            ("RoleBinding", "subjects") => "io.k8s.api.rbac.v1.Subject".into(),
            // Deeper than this table goes: name the last type it knows.
            _ => return ty,
        };
        ty = next;
    }
    ty
}

/// Every place of a `scope` in the object: `(scope, path to the object holding its fields)`.
fn scopes(schema: Schema, obj: &Value) -> Vec<(Scope, Path)> {
    let k = |s: &str| Seg::Key(s.to_string());
    let mut out = Vec::new();
    let pod_spec_at = match schema {
        Schema::Served(Kind::Job) => {
            out.push((Scope::JobSpec, vec![k("spec")]));
            Some(vec![k("spec"), k("template"), k("spec")])
        }
        Schema::Served(Kind::CronJob) => {
            out.push((Scope::CronJobSpec, vec![k("spec")]));
            out.push((Scope::JobSpec, vec![k("spec"), k("jobTemplate"), k("spec")]));
            Some(vec![
                k("spec"),
                k("jobTemplate"),
                k("spec"),
                k("template"),
                k("spec"),
            ])
        }
        Schema::Served(Kind::Pod) => Some(vec![k("spec")]),
        Schema::NetworkPolicy => {
            for rules in ["ingress", "egress"] {
                for (i, rule) in items(obj, &[k("spec"), k(rules)]) {
                    let base = vec![k("spec"), k(rules), Seg::Index(i), k("ports")];
                    for (j, _) in items(rule, &[k("ports")]) {
                        let mut p = base.clone();
                        p.push(Seg::Index(j));
                        out.push((Scope::NetworkPolicyPort, p));
                    }
                }
            }
            None
        }
        _ => None,
    };
    if let Some(spec) = pod_spec_at {
        out.push((Scope::PodSpec, spec.clone()));
        let mut sc = spec.clone();
        sc.push(k("securityContext"));
        out.push((Scope::PodSecurityContext, sc));
        for list in ["containers", "initContainers"] {
            let mut at = spec.clone();
            at.push(k(list));
            for (i, _) in items(obj, &at) {
                let mut c = at.clone();
                c.push(Seg::Index(i));
                out.push((Scope::Container, c.clone()));
                let mut sc = c.clone();
                sc.push(k("securityContext"));
                out.push((Scope::SecurityContext, sc));
                for hook in ["preStop", "postStart"] {
                    let mut h = c.clone();
                    h.extend([k("lifecycle"), k(hook)]);
                    out.push((Scope::LifecycleHandler, h));
                }
            }
        }
    }
    out
}

fn items<'a>(obj: &'a Value, path: &[Seg]) -> Vec<(usize, &'a Value)> {
    get(obj, path)
        .and_then(Value::as_array)
        .map(|a| a.iter().enumerate().collect())
        .unwrap_or_default()
}

fn get<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(obj: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(obj, |v, seg| match seg {
        Seg::Key(k) => v.get_mut(k.as_str()),
        Seg::Index(i) => v.get_mut(*i),
    })
}

/// Paths of fields no Kubernetes (up to 1.33) has: the object goes through k8s-openapi's type
/// for its kind, which ignores unknown fields, and whatever did not come back is unknown. An
/// object that does not fit the type (say a number where k8s-openapi wants a string but the API
/// takes both) is not judged here.
fn unknown_to_all(schema: Schema, obj: &Value) -> Vec<Path> {
    use k8s_openapi::api::{batch, core, events, networking, rbac};
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Option<Value> {
        serde_json::to_value(serde_json::from_value::<T>(v.clone()).ok()?).ok()
    }
    let back = match schema {
        Schema::Served(Kind::Job) => round::<batch::v1::Job>(obj),
        Schema::Served(Kind::CronJob) => round::<batch::v1::CronJob>(obj),
        Schema::Served(Kind::Pod) => round::<core::v1::Pod>(obj),
        Schema::Served(Kind::Event) => round::<events::v1::Event>(obj),
        Schema::Served(Kind::CoreEvent) => round::<core::v1::Event>(obj),
        Schema::ServiceAccount => round::<core::v1::ServiceAccount>(obj),
        Schema::Served(Kind::ConfigMap) => round::<core::v1::ConfigMap>(obj),
        Schema::Role => round::<rbac::v1::Role>(obj),
        Schema::RoleBinding => round::<rbac::v1::RoleBinding>(obj),
        Schema::NetworkPolicy => round::<networking::v1::NetworkPolicy>(obj),
    };
    let Some(back) = back else {
        return Vec::new();
    };
    let mut out = Vec::new();
    dropped(obj, &back, &mut Vec::new(), &mut out);
    out
}

fn dropped(input: &Value, output: &Value, path: &mut Path, out: &mut Vec<Path>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                path.push(Seg::Key(k.clone()));
                match o.get(k) {
                    None => out.push(path.clone()),
                    Some(ov) => dropped(v, ov, path, out),
                }
                path.pop();
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                path.push(Seg::Index(n));
                dropped(iv, ov, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}
