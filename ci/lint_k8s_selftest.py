#!/usr/bin/env python3
"""Prove that every check in ci/lint-k8s.sh can fail.

For each case: copy ci/, k8s/ and images/ into a temporary folder, break one
file in one known way, run the copy's ci/lint-k8s.sh, and require that it
exits 1, that the expected step is reported as FAIL and that the expected
message is printed. A case whose text to break is no longer in the file is a
failure too (so the self-test cannot rot into a no-op). Also runs the lint
on the untouched copy first, which must pass.

Usage: lint_k8s_selftest.py [NAME_SUBSTRING...]   (run only matching cases)
Needs the same tools on PATH as ci/lint-k8s.sh. Exit 0 when every case behaves.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = "k8s/charts/habit-tracker"

# name, file, text to find, replacement, step that must FAIL, text the output must contain
# (or: name, file, [(find, replacement), ...], None, step, text)
CASES = [
    ("yamllint: trailing spaces", f"{CHART}/values.yaml",
     'nameOverride: ""\n', 'nameOverride: ""   \n',
     "yamllint k8s/", "trailing-spaces"),
    ("yamllint: duplicate key", "k8s/base/configmap.yaml",
     '  LOG_LEVEL: "INFO"\n', '  LOG_LEVEL: "INFO"\n  LOG_LEVEL: "DEBUG"\n',
     "yamllint k8s/", "key-duplicates"),
    ("hadolint: base image latest", "images/backend/Dockerfile",
     "FROM python:3.11.9-slim-bookworm AS runtime", "FROM python:latest AS runtime",
     "hadolint images/*/Dockerfile", "DL3007"),
    ("hadolint: runs as root", "images/frontend/Dockerfile",
     "USER 10001:10001", "USER root",
     "hadolint images/*/Dockerfile", "DL3002"),
    # DL3042 needs both the --no-cache-dir flag and PIP_NO_CACHE_DIR gone: two edits.
    ("hadolint: pip cache", "images/backend/Dockerfile",
     [("    PIP_NO_CACHE_DIR=1 \\\n", ""), (" --no-cache-dir", "")], None,
     "hadolint images/*/Dockerfile", "DL3042"),
    ("schema: replicas is a string", "k8s/base/backend-deployment.yaml",
     "  replicas: 1\n", '  replicas: "one"\n',
     "schema k8s/base/*.yaml", "'one' is not of type 'integer'"),
    ("schema: misspelled field", "k8s/base/frontend-deployment.yaml",
     "          readinessProbe:\n", "          readinesProbe:\n",
     "schema k8s/base/*.yaml", "'readinesProbe' was unexpected"),
    ("schema: misspelled kind", "k8s/base/backend-service.yaml",
     "kind: Service\n", "kind: Servce\n",
     "schema k8s/base/*.yaml", "Couldn't find schema for kind Servce"),
    ("kustomize: missing resource", "k8s/base/kustomization.yaml",
     "  - frontend-service.yaml\n", "  - frontend-svc.yaml\n",
     "kustomize k8s/base", "frontend-svc.yaml"),
    ("chart: template syntax error", f"{CHART}/templates/backend-service.yaml",
     "port: {{ .Values.backend.service.port }}", "port: {{ .Values.backend.service.port }",
     "helm lint + render chart", "render failed"),
    ("chart: values tag latest", f"{CHART}/values.yaml",
     'tag: "0.1.0"', 'tag: "latest"',
     "helm lint + render chart", "/backend/image/tag"),
    ("helm lint: invalid object name", f"{CHART}/values.yaml",
     'fullnameOverride: ""', 'fullnameOverride: "Habit_Tracker"',
     "helm lint + render chart", "naming requirements"),
    ("rendered schema: misspelled field", f"{CHART}/templates/frontend-deployment.yaml",
     "imagePullPolicy:", "imagePulPolicy:",
     "schema rendered chart", "'imagePulPolicy' was unexpected"),
    ("policy: over the memory budget", f"{CHART}/values.yaml",
     "    limits:\n      cpu: 500m\n      memory: 512Mi\n", "    limits:\n      cpu: 500m\n      memory: 1536Mi\n",
     "policy (check_chart.py)", "over the 2048Mi budget"),
    ("policy: over the CPU budget", "k8s/base/frontend-deployment.yaml",
     "  replicas: 1\n", "  replicas: 4\n",
     "policy (check_chart.py)", "over the 2-core budget"),
    ("policy: NodePort moved", f"{CHART}/values.yaml",
     "nodePort: 30080", "nodePort: 30081",
     "policy (check_chart.py)", "must be 30080"),
    ("policy: latest in k8s/base", "k8s/base/backend-deployment.yaml",
     "habit-tracker-backend:0.1.0", "habit-tracker-backend:latest",
     "policy (check_chart.py)", "uses 'latest'"),
    ("policy: privilege escalation", "k8s/base/frontend-deployment.yaml",
     "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true",
     "policy (check_chart.py)", "allowPrivilegeEscalation is not false"),
    ("policy: image user not 10001", "images/backend/Dockerfile",
     "USER 10001:10001", "USER 1000:1000",
     "policy (check_chart.py)", "last USER"),
    ("policy: floating base image", "images/frontend/Dockerfile",
     "FROM node:20.15.1-bookworm-slim AS build", "FROM node:20-bookworm-slim AS build",
     "policy (check_chart.py)", "exact X.Y.Z version"),
]

def copy_tree(dst: str) -> None:
    for sub in ("ci", "k8s", "images"):
        shutil.copytree(os.path.join(ROOT, sub), os.path.join(dst, sub))


# One lint run takes about 3 s; a run that hangs (a tool waiting on
# something) is reported as a failure of its case instead of stalling CI.
LINT_TIMEOUT_S = 120


def run_lint(tree: str) -> tuple[int, str, float]:
    start = time.monotonic()
    # Its own process group, so a timeout kills the tools it started too
    # (one of them holding the pipe open would block the read).
    proc = subprocess.Popen(["bash", os.path.join(tree, "ci", "lint-k8s.sh")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"},
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=LINT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -1, f"{out}\nlint-k8s.sh did not finish within {LINT_TIMEOUT_S}s", time.monotonic() - start
    return proc.returncode, out, time.monotonic() - start


def run_case(tmp: str, i: int, case: tuple) -> tuple[bool, str]:
    """Breaks one copy of the tree as the case says; returns (behaved, report)."""
    name, rel, find, replace, step, expect = case
    tree = os.path.join(tmp, f"case{i}")
    copy_tree(tree)
    path = os.path.join(tree, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    edits = find if isinstance(find, list) else [(find, replace)]
    missing = [old for old, _ in edits if old not in text]
    if missing:
        return False, f"FAIL  {name}: {rel} no longer contains {missing[0]!r}: update the self-test"
    for old, new in edits:
        text = text.replace(old, new, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    rc, out, secs = run_lint(tree)
    problems = []
    if rc != 1:
        problems.append(f"exit {rc}, expected 1")
    if f"FAIL  {step} (" not in out:
        problems.append(f"step {step!r} did not fail")
    if expect not in out:
        problems.append(f"output lacks {expect!r}")
    if problems:
        return False, f"{out}\nFAIL  {name}: {'; '.join(problems)} ({secs:.1f}s)"
    failing = [ln.split("FAIL  ", 1)[1].rsplit(" (", 1)[0]
               for ln in out.splitlines() if ln.startswith("    FAIL  ")]
    return True, f"ok    {name}: caught by {', '.join(failing)} ({secs:.1f}s)"


def main(argv: list[str]) -> int:
    cases = [c for c in CASES if not argv or any(a.lower() in c[0].lower() for a in argv)]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean")
        copy_tree(clean)
        rc, out, secs = run_lint(clean)
        if rc != 0:
            print(out)
            print(f"FAIL  untouched tree: lint-k8s.sh exited {rc}, must pass ({secs:.1f}s)")
            failed += 1
        else:
            print(f"ok    untouched tree passes ({secs:.1f}s)")
            passed += 1

        jobs = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(lambda ic: run_case(tmp, *ic), enumerate(cases)))
        for ok, report in results:
            print(report)
            passed += ok
            failed += not ok
    print(f"lint_k8s_selftest: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
