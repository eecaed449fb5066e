//! `kubectl apply -f FILE` against the fake, as the kubectl that matches the cluster's version
//! does it: so a test can prove that a shipped manifest applies on the oldest Kubernetes it
//! claims, or see the error a user there would get.
//!
//! kubectl before 1.25 validates every document against the server's OpenAPI schema and
//! applies nothing when a field is unknown (`error validating data: ValidationError(...)`);
//! from 1.25 it sends `fieldValidation=Strict` and the server refuses an object with an unknown
//! field. ServiceAccount, Role, RoleBinding and NetworkPolicy, which the fake does
//! not serve, are validated and pruned the same way and returned, never stored.

use serde_json::{Value, json};

use super::http;
use super::meta::{self, ApiError};
use super::store;
use super::versions::{self, Schema};
use super::{FakeCluster, lock};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl FakeCluster {
    /// Applies a multi-document YAML manifest (`file` names it in messages) to namespace
    /// `default` as `kubectl apply -f` would. Returns the objects as stored (served kinds) or
    /// as they would be (the others), or the text kubectl prints on error.
    pub fn kubectl_apply(&self, file: &str, yaml: &str) -> Result<Vec<Value>, String> {
        let v = self.shared.config.version;
        let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(yaml)
            .map_err(|e| format!("error: error parsing {file}: {e}"))?
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let mut objects = Vec::new();
        for doc in docs {
            let api = doc["apiVersion"].as_str().unwrap_or("");
            let kind = doc["kind"].as_str().unwrap_or("");
            let Some(schema) = Schema::from_type(api, kind) else {
                return Err(format!(
                    "error: resource mapping not found for name: \"{}\" namespace: \"\" from \"{file}\": no matches for kind \"{kind}\" in version \"{api}\"\nensure CRDs are installed first",
                    meta::name_of(&doc)
                ));
            };
            objects.push((schema, doc));
        }
        if !v.field_validation() {
            let errors: Vec<String> = objects
                .iter()
                .filter_map(|(schema, obj)| versions::kubectl_validation(*schema, obj, v))
                .map(|e| {
                    format!(
                        "error: error validating \"{file}\": error validating data: {e}; if you choose to ignore these errors, turn validation off with --validate=false"
                    )
                })
                .collect();
            if !errors.is_empty() {
                return Err(errors.join("\n"));
            }
        }
        let validation = v.field_validation().then_some("Strict");
        let mut applied = Vec::new();
        let mut errors = Vec::new();
        for (schema, mut obj) in objects {
            let manifest = serde_json::to_string(&obj).unwrap_or_default();
            if !obj["metadata"]["annotations"].is_object() {
                obj["metadata"]["annotations"] = json!({});
            }
            obj["metadata"]["annotations"][LAST_APPLIED] = json!(format!("{manifest}\n"));
            if obj["metadata"]["namespace"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                obj["metadata"]["namespace"] = json!("default");
            }
            let result = match schema {
                Schema::Served(kind) => {
                    let ns = meta::namespace_of(&obj).to_string();
                    let key = store::key(&ns, meta::name_of(&obj));
                    let exists = lock(&self.shared.store).get(kind, &key).is_some();
                    let what = if exists { "patching" } else { "creating" };
                    let done = if exists {
                        http::write_existing(
                            &self.shared,
                            kind,
                            &key,
                            false,
                            false,
                            validation,
                            |old| {
                                let mut new = old.clone();
                                meta::strategic_merge_patch(&mut new, &obj);
                                Ok(new)
                            },
                        )
                    } else {
                        http::create(&self.shared, kind, &ns, obj, false, validation)
                    };
                    done.map(|(o, _)| o).map_err(|e| (what, e))
                }
                other => versions::admit(other, &mut obj, v, validation)
                    .map(|_| obj)
                    .map_err(|e| ("creating", e)),
            };
            match result {
                Ok(o) => applied.push(o),
                Err((what, e)) => errors.push(server_error(file, what, &e)),
            }
        }
        if errors.is_empty() {
            Ok(applied)
        } else {
            Err(errors.join("\n"))
        }
    }
}

fn server_error(file: &str, what: &str, e: &ApiError) -> String {
    format!(
        "Error from server ({}): error when {what} \"{file}\": {}",
        e.reason, e.message
    )
}
