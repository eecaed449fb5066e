#!/usr/bin/env python3
"""The oldest Kubernetes each shipped manifest claims, checked against the deploying guide.

  k8s_versions.py FILE...
      Prints "FILE VERSION" for every FILE whose header has a line
      "# Oldest Kubernetes: 1.NN" (VERSION is then 1.NN.0, as kubernetes-validate
      takes it). Fails if a FILE has no such line, or if the table of docs/deploying.md's
      section "Kubernetes versions" does not give the same version for it: a row
      whose first cell names the FILE in backticks (a kustomization.yaml by its
      directory, `k8s/`) and whose second cell is the version.

.ci/run validates each FILE (for a kustomization.yaml, what `kubectl kustomize`
builds from it) against that version and the newest one it has.
"""

import re
import sys

CLAIM = re.compile(r"^# Oldest Kubernetes: (1\.\d+)\b", re.M)
README = "docs/deploying.md"
SECTION = "## Kubernetes versions"


def readme_table():
    """{name in backticks: version} from the guide's table."""
    text = open(README).read()
    start = text.find("\n" + SECTION + "\n")
    if start < 0:
        raise SystemExit(f"{README} has no section '{SECTION}'")
    body = text[start + len(SECTION) + 2:]
    end = re.search(r"^#{1,3} ", body, re.M)
    rows = {}
    for line in body[:end.start() if end else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or not re.fullmatch(r"1\.\d+", cells[1]):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def main(files):
    table = readme_table()
    ok = True
    for f in files:
        with open(f) as fh:
            head = "".join(line for line in fh if line.startswith("#"))
        m = CLAIM.search(head)
        if not m:
            print(f"FAIL {f}: no header line '# Oldest Kubernetes: 1.NN'", file=sys.stderr)
            ok = False
            continue
        name = f[: -len("kustomization.yaml")] if f.endswith("/kustomization.yaml") else f
        if table.get(name) != m.group(1):
            print(f"FAIL {f}: its header says {m.group(1)}, {README}'s table "
                  f"'{SECTION[4:]}' says {table.get(name, 'nothing')} for `{name}`",
                  file=sys.stderr)
            ok = False
        print(f"{f} {m.group(1)}.0")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
