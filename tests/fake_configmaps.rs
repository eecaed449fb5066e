//! The fake cluster's ConfigMaps: the v1 API (every verb, as for Jobs and pods), garbage
//! collection through `ownerReferences`, the 1 MiB limit, and what a pod gets from one (a
//! `configMap` volume it waits for, `configMapKeyRef` values). Plus the size limits every write
//! meets: kube-apiserver's 3 MiB request body and etcd's 1.5 MiB.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};
use support::*;

fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "cfg"}},
        "data": data,
    }))
    .expect("configmap json")
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[test]
fn config_maps_answer_every_verb_like_the_other_kinds() {
    let cluster = FakeCluster::start();
    cluster.with_client(|client| async move {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let made = cms
            .create(
                &PostParams::default(),
                &config_map("one", json!({"a": "1"})),
            )
            .await
            .expect("create");
        assert!(made.metadata.uid.is_some() && made.metadata.resource_version.is_some());
        cms.create(&PostParams::default(), &config_map("two", json!({})))
            .await
            .expect("create two");
        let (code, reason, message) = api_error(
            cms.create(&PostParams::default(), &config_map("one", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (409, "AlreadyExists", "configmaps \"one\" already exists")
        );
        let listed = cms
            .list(&ListParams::default().labels("app=cfg"))
            .await
            .expect("list");
        assert_eq!(listed.items.len(), 2);

        let mut got = cms.get("one").await.expect("get");
        got.data
            .get_or_insert_default()
            .insert("b".into(), "2".into());
        let replaced = cms
            .replace("one", &PostParams::default(), &got)
            .await
            .expect("update");
        assert_eq!(replaced.data.expect("data").len(), 2);
        let patched = cms
            .patch(
                "one",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"a": null}})),
            )
            .await
            .expect("patch");
        assert_eq!(
            patched.data.expect("data").into_iter().collect::<Vec<_>>(),
            [("b".to_string(), "2".to_string())]
        );

        // A watch from the list's resourceVersion sees the delete.
        let rv = listed.metadata.resource_version.expect("rv");
        cms.delete("two", &DeleteParams::default())
            .await
            .expect("delete");
        let mut seen = Vec::new();
        let stream = cms
            .watch(&WatchParams::default().timeout(1), &rv)
            .await
            .expect("watch");
        use futures::StreamExt;
        let mut stream = Box::pin(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if let kube::api::WatchEvent::Deleted(cm) = ev {
                seen.push(cm.metadata.name.unwrap_or_default());
            }
        }
        assert_eq!(seen, ["two"]);
        cms.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .expect("deletecollection");
        assert!(
            cms.list(&ListParams::default())
                .await
                .expect("list")
                .items
                .is_empty()
        );
    });
    assert_eq!(cluster.count_requests("deletecollection", "configmaps"), 1);
}

#[test]
fn config_maps_go_with_the_job_that_owns_them() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent("default", "packed");
    let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": parent.job_name,
        "uid": parent.job_uid, "controller": true}]);
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "packed-items", "ownerReferences": owner}, "data": {"0": "a"}}),
    );
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "unowned"}, "data": {}}),
    );
    assert!(cluster.delete(Kind::Job, "default", "packed", Propagation::Background));
    assert!(cluster.wait_until(secs(5), |c| {
        c.object(Kind::ConfigMap, "default", "packed-items")
            .is_none()
    }));
    assert!(
        cluster
            .object(Kind::ConfigMap, "default", "unowned")
            .is_some()
    );
}

#[test]
fn config_maps_over_one_mebibyte_or_with_bad_keys_are_refused() {
    for (version, wording) in [
        (31, "must have at most 1048576 bytes"),
        (32, "may not be more than 1048576 bytes"),
    ] {
        let cluster = FakeCluster::builder().version(version).start();
        // data and binaryData count together: 1 MiB of data plus one byte of binaryData.
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"a": "x".repeat(1024 * 1024)}, "binaryData": {"b": "eA=="}});
        let (code, _, status) =
            cluster.raw_request("POST", "/api/v1/namespaces/default/configmaps", &body);
        assert_eq!(code, 422, "{status}");
        assert_eq!(
            status["message"],
            format!("ConfigMap \"big\" is invalid: []: Too long: {wording}")
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueTooLong"
        );
        let exact = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "exact"}, "data": {"a": "x".repeat(1024 * 1024)}});
        let (code, _, _) =
            cluster.raw_request("POST", "/api/v1/namespaces/default/configmaps", &exact);
        assert_eq!(code, 201, "exactly 1 MiB is allowed");
    }
    let cluster = FakeCluster::start();
    let (code, _, status) = cluster.raw_request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "keys"}, "data": {"a b": "1", "ok": "2"},
            "binaryData": {"ok": "eA=="}}),
    );
    assert_eq!(code, 422);
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.contains("data[a b]: Invalid value: \"a b\": a valid config key must consist")
            && message.contains(
                "data[ok]: Invalid value: \"ok\": duplicate of key present in binaryData"
            ),
        "{message}"
    );
}

#[test]
fn an_immutable_config_map_keeps_its_data() {
    let cluster = FakeCluster::start();
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": true}),
    );
    let refused = cluster.with_client(|client| async move {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap_err()
    });
    let (code, _, message) = api_error(refused);
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
}

#[test]
fn request_bodies_over_three_mebibytes_get_413_and_objects_over_etcds_limit_get_500() {
    let cluster = FakeCluster::start();
    let job = |name: &str, size: usize| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": "busybox",
                "env": [{"name": "BIG", "value": "x".repeat(size)}]}]}}}})
    };
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let (code, _, status) = cluster.raw_request("POST", jobs, &job("huge", 3 * 1024 * 1024));
    assert_eq!(code, 413);
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(
        status["message"],
        "Request entity too large: limit is 3145728"
    );

    // Under the body limit but over etcd's 1.5 MiB: kube-apiserver passes etcd's error on.
    let (code, _, status) = cluster.raw_request("POST", jobs, &job("big", 1600 * 1024));
    assert_eq!(code, 500, "{status}");
    assert_eq!(status["message"], "etcdserver: request is too large");
    assert!(status.get("reason").is_none(), "{status}");
    // Past etcd's client send limit (2 MiB) the message is gRPC's.
    let (code, _, status) = cluster.raw_request("POST", jobs, &job("bigger", 2200 * 1024));
    assert_eq!(code, 500);
    assert!(
        status["message"].as_str().is_some_and(|m| m.starts_with(
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max ("
        ) && m.ends_with(" vs. 2097152)")),
        "{status}"
    );
    let (code, _, _) = cluster.raw_request("POST", jobs, &job("fits", 1400 * 1024));
    assert_eq!(code, 201);
    assert_eq!(cluster.job_names("default"), ["fits"]);
    // An update that grows an object past the limit is refused the same way.
    let (code, _, status) = cluster.raw_request("PUT", &format!("{jobs}/fits"), &{
        let mut j = cluster.object(Kind::Job, "default", "fits").expect("fits");
        j["metadata"]["annotations"] = json!({"grow": "y".repeat(300 * 1024)});
        // No resourceVersion: the Job controller writes the Job meanwhile.
        j["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        j
    });
    assert_eq!(
        (code, status["message"].clone()),
        (500, json!("etcdserver: request is too large"))
    );
}

// ---------------------------------------------------------------------------------------------
// What a pod gets from a ConfigMap.

/// A Job whose pod mounts ConfigMap `cm` (keys renamed by `items`, or all of them) at
/// `/etc/cfg`, and runs by `env`.
fn mounting(name: &str, cm: &str, items: Option<Value>, env: Value) -> Value {
    let mut source = json!({"name": cm});
    if let Some(items) = items {
        source["items"] = items;
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "volumes": [{"name": "cfg", "configMap": source}],
            "containers": [{"name": "main", "image": "busybox", "env": env,
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}]}}}})
}

fn job_done(cluster: &FakeCluster, name: &str) -> bool {
    cluster
        .job("default", name)
        .and_then(|j| j.status)
        .and_then(|s| s.conditions)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

fn failed_mount(cluster: &FakeCluster) -> Option<Value> {
    cluster
        .events("default")
        .into_iter()
        .find(|e| e["reason"] == "FailedMount")
}

#[test]
fn a_pod_waits_in_container_creating_until_its_config_map_exists() {
    let cluster = FakeCluster::start();
    let items = json!([{"key": "0", "path": "item.json"}]);
    let env = json!([{"name": "FAKE_RUN_MS", "value": "60000"}]);
    cluster.create_raw(Kind::Job, mounting("waits", "items", Some(items), env));
    assert!(cluster.wait_until(secs(10), |c| failed_mount(c).is_some()));
    let event = failed_mount(&cluster).expect("FailedMount");
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["message"],
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"items\" not found"
    );
    let pod = serde_json::to_value(&cluster.pods_of("default", "waits")[0]).expect("pod");
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "items"}, "data": {"0": "{\"n\":0}", "1": "{\"n\":1}"}}),
    );
    assert!(cluster.wait_until(secs(10), |c| {
        c.pod("default", &name)
            .and_then(|p| p.status)
            .and_then(|s| s.phase)
            .as_deref()
            == Some("Running")
    }));
    // The volume shows the items it maps, under their paths, and nothing else.
    let file = |path: &str| cluster.volume_file("default", &name, "main", path);
    assert_eq!(file("/etc/cfg/item.json"), Some(b"{\"n\":0}".to_vec()));
    assert_eq!(file("/etc/cfg/1"), None);
    assert_eq!(file("/etc/other"), None);
}

#[test]
fn a_whole_config_map_mounts_with_every_key_and_an_optional_one_is_not_waited_for() {
    let cluster = FakeCluster::start();
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "all"}, "data": {"plan.yaml": "steps: []"},
            "binaryData": {"blob": "AAEC"}}),
    );
    let env = json!([{"name": "FAKE_HOLD", "value": "go"}]);
    cluster.create_raw(Kind::Job, mounting("whole", "all", None, env));
    let mut optional = mounting("optional", "absent", None, json!([]));
    optional["spec"]["template"]["spec"]["volumes"][0]["configMap"]["optional"] = json!(true);
    cluster.create_raw(Kind::Job, optional);
    assert!(cluster.wait_until(secs(10), |c| job_done(c, "optional")));
    let name = cluster.pods_of("default", "whole")[0]
        .metadata
        .name
        .clone()
        .expect("name");
    assert!(cluster.wait_until(secs(10), |c| {
        c.volume_file("default", &name, "main", "/etc/cfg/plan.yaml")
            .is_some()
    }));
    let file = |path: &str| cluster.volume_file("default", &name, "main", path);
    assert_eq!(file("/etc/cfg/plan.yaml"), Some(b"steps: []".to_vec()));
    assert_eq!(file("/etc/cfg/blob"), Some(vec![0, 1, 2]));
    cluster.release("go");
    assert!(cluster.wait_until(secs(10), |c| job_done(c, "whole")));
    assert!(failed_mount(&cluster).is_none());
}

#[test]
fn config_map_key_refs_resolve_once_the_config_map_and_key_exist() {
    let cluster = FakeCluster::start();
    cluster.create_raw(
        Kind::Job,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "refs"},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "env": [
                    {"name": "ROWS", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "rows"}}},
                    {"name": "FAKE_MESSAGE", "value": "rows=${ROWS} mode=${MODE}"}],
                    "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}}),
    );
    let waiting = |c: &FakeCluster| -> Option<(String, String)> {
        let pod = serde_json::to_value(c.pods_of("default", "refs").first()?).ok()?;
        let w = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        Some((
            w["reason"].as_str()?.to_string(),
            w["message"].as_str()?.to_string(),
        ))
    };
    let config_error = |m: &str| Some(("CreateContainerConfigError".to_string(), m.to_string()));
    assert!(cluster.wait_until(secs(10), |c| waiting(c)
        == config_error("configmap \"settings\" not found")));
    cluster.create_raw(
        Kind::ConfigMap,
        json!({"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}),
    );
    assert!(cluster.wait_until(secs(10), |c| waiting(c)
        == config_error("couldn't find key rows in ConfigMap default/settings")));
    cluster.with_client(|client| async move {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        cms.patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"rows": "12"}})),
        )
        .await
        .expect("patch");
    });
    assert!(cluster.wait_until(secs(10), |c| job_done(c, "refs")));
    let pod = serde_json::to_value(&cluster.pods_of("default", "refs")[0]).expect("pod");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"],
        "rows=12 mode=fast"
    );
}
