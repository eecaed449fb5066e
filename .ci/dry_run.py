#!/usr/bin/env python3
"""Checks jobherd's `JOBHERD_DRY_RUN=client` output from the outside.

  dry_run.py validate NAME < list.json
      The output must be a JSON `v1` `List` of batch/v1 Jobs carrying the
      labels SPEC section 3 fixes; every item must pass kubernetes-validate
      --strict for the Kubernetes version of k8s-openapi's feature (1.33).

  dry_run.py examples MANIFEST...
      Runs jobherd in client dry-run with the JOBHERD_* variables of every
      jobherd container in the manifests (a mounted ConfigMap, such as a plan
      file, is written to a temporary directory first) and validates each
      output as above. This proves that the shipped examples are accepted by
      the jobherd in this checkout, not only by the Kubernetes schema.

kubernetes-validate is taken from this Python's virtualenv, else from PATH.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

K8S_VERSION = "1.33.0"
KUBERNETES_VALIDATE = (shutil.which("kubernetes-validate", path=os.path.dirname(sys.executable))
                       or "kubernetes-validate")
# The binary the README's dry-run command just built (.ci/run passes its path);
# `cargo run` when run by hand.
JOBHERD = ([os.environ["DRY_RUN_BINARY"]] if os.environ.get("DRY_RUN_BINARY")
           else ["cargo", "run", "--release", "--quiet"])
REQUIRED_LABELS = ("app.kubernetes.io/managed-by", "jobherd.io/run", "jobherd.io/step")


def fail(name, msg):
    print(f"FAIL {name}: {msg}", file=sys.stderr)
    return False


def validate(name, text):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        head = text.strip().splitlines()[:3]
        return fail(name, f"stdout is not JSON ({e}); it starts with: {head}")
    if not isinstance(doc, dict) or doc.get("apiVersion") != "v1" or doc.get("kind") != "List":
        return fail(name, "stdout is not a JSON object with apiVersion v1, kind List")
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        return fail(name, "the List has no items")
    ok = True
    with tempfile.TemporaryDirectory(prefix="jobherd-dry-run-") as tmp:
        paths = []
        for i, item in enumerate(items):
            meta = item.get("metadata") or {}
            label = f"{name} item {i} ({meta.get('name', '?')})"
            if item.get("apiVersion") != "batch/v1" or item.get("kind") != "Job":
                ok = fail(label, "is not a batch/v1 Job")
                continue
            tmpl_meta = ((item.get("spec") or {}).get("template") or {}).get("metadata") or {}
            for where, labels in (("metadata", meta.get("labels") or {}),
                                  ("spec.template.metadata", tmpl_meta.get("labels") or {})):
                missing = [k for k in REQUIRED_LABELS if k not in labels]
                if missing:
                    ok = fail(label, f"{where}.labels lacks {', '.join(missing)}")
            path = os.path.join(tmp, f"item-{i}.json")
            with open(path, "w") as f:
                json.dump(item, f)
            paths.append(path)
        if paths:
            r = subprocess.run([KUBERNETES_VALIDATE, "--strict", "--quiet",
                                "-k", K8S_VERSION, *paths])
            if r.returncode != 0:
                ok = fail(name, f"kubernetes-validate --strict -k {K8S_VERSION} failed")
    if ok:
        print(f"ok   {name}: {len(items)} batch/v1 Jobs, valid for Kubernetes {K8S_VERSION}")
    return ok


def pod_spec(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def is_jobherd(image):
    """registry.example.com:5000/platform/jobherd:0.1.0@sha256:... -> True"""
    last = image.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":")[0] == "jobherd"


def example_runs(manifest, tmp):
    """Yields (name, env) for every jobherd container of a manifest file."""
    with open(manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {d["metadata"]["name"]: d.get("data") or {}
                  for d in docs if d.get("kind") == "ConfigMap"}
    for doc in docs:
        if doc.get("kind") not in ("Job", "CronJob"):
            continue
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for c in spec.get("containers") or []:
            if not is_jobherd(c.get("image", "")):
                continue
            env = {e["name"]: e["value"] for e in c.get("env") or []
                   if e["name"].startswith("JOBHERD_") and "value" in e}
            # Stand in for the ConfigMap volumes with real files.
            for m in c.get("volumeMounts") or []:
                cm = (volumes.get(m["name"]) or {}).get("configMap")
                if cm is None:
                    continue
                data = configmaps.get(cm["name"])
                if data is None:
                    raise SystemExit(f"{manifest}: ConfigMap {cm['name']} is not in the same file")
                local = os.path.join(tmp, doc["metadata"]["name"], m["name"])
                os.makedirs(local, exist_ok=True)
                items = cm.get("items") or [{"key": k, "path": k} for k in data]
                for it in items:
                    with open(os.path.join(local, it["path"]), "w") as f:
                        f.write(data[it["key"]])
                for k, v in env.items():
                    if v.startswith(m["mountPath"].rstrip("/") + "/"):
                        env[k] = local + v[len(m["mountPath"].rstrip("/")):]
            yield f"{manifest}: {doc['kind']}/{doc['metadata']['name']}", env


def examples(manifests):
    ok = True
    with tempfile.TemporaryDirectory(prefix="jobherd-examples-") as tmp:
        for manifest in manifests:
            for name, env in example_runs(manifest, tmp):
                base = {k: v for k, v in os.environ.items()
                        if not k.startswith(("JOBHERD_", "POD_", "KUBERNETES_"))}
                base.update(env)
                base["JOBHERD_DRY_RUN"] = "client"
                r = subprocess.run(JOBHERD, env=base, stdout=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    ok = fail(name, f"jobherd exited {r.returncode} in client dry-run")
                    continue
                ok = validate(name, r.stdout) and ok
    return ok


def main(argv):
    if len(argv) == 2 and argv[0] == "validate":
        return validate(argv[1], sys.stdin.read())
    if len(argv) >= 2 and argv[0] == "examples":
        return examples(argv[1:])
    print(__doc__, file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
