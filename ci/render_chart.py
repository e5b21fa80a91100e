#!/usr/bin/env python3
"""Lint and render the habit-tracker Helm chart offline, without a helm binary.

Uses the PyPI package `helm-python-sdk` (import name `helm_python`), which
bundles Helm's own Go SDK (Helm v4) as a shared library: the same template
engine and linter `helm lint` / `helm template` use, with no download.

For each scenario below it runs the Helm linter (strict: warnings fail) and
renders the chart as `helm template habit-tracker CHART -n habit-tracker -f
...` would, writing one multi-document YAML file per scenario into OUTDIR for
ci/k8s_validate.py and ci/check_chart.py to check. The "must fail" scenarios
prove the chart's guards work (values.schema.json first, the templates' own
`fail` calls behind it): a `latest` or empty image tag, a NodePort outside
30000-32767, a non-integer replica count, a malformed quantity and a
misspelled top-level key must all stop the render.

Usage: render_chart.py [--chart DIR] OUTDIR
Exit: 0 all scenarios behaved, 1 otherwise, 2 usage or missing package.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import yaml

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("render_chart.py: the PyPI package helm-python-sdk is not installed "
             "(pip install -r ci/requirements-k8s.txt)")

RELEASE = "habit-tracker"
NAMESPACE = "habit-tracker"
KUBE_VERSION = "v1.28.0"  # the oldest version Chart.yaml's kubeVersion allows

# Placeholder values, only to render the Secret with every key set.
TEST_SECRETS = {"secrets": {
    "DATABASE_URL": "postgresql://user:pass@db.invalid:5432/habits",
    "JWT_SECRET": "test-only-not-a-secret-0123456789abcdef",
    "GEMINI_API_KEY": "test-only-key",
}}


def scenarios(chart: str):
    local = os.path.join(chart, "values-local.yaml")
    # name, values files, inline overrides, expected to render?, what the failure must
    # mention (any one of)
    return [
        ("default", [], {}, True, None),
        ("local", [local], {}, True, None),
        ("local-secrets", [local], TEST_SECRETS, True, None),
        ("existing-secret", [local], {"secrets": {"existingSecret": "my-secrets"}}, True, None),
        ("replicas-2", [local], {"backend": {"replicaCount": 2}, "frontend": {"replicaCount": 2}}, True, None),
        # Refused by values.schema.json (and, past it, by the templates' own guards):
        ("bad-tag-latest", [local], {"backend": {"image": {"tag": "latest"}}}, False,
         ("/backend/image/tag", 'never "latest"')),
        ("bad-tag-empty", [local], {"frontend": {"image": {"tag": ""}}}, False,
         ("/frontend/image/tag", "needs a concrete tag")),
        ("bad-nodeport", [local], {"frontend": {"service": {"nodePort": 8080}}}, False,
         ("/frontend/service/nodePort", "NodePort range")),
        ("bad-replicas", [local], {"backend": {"replicaCount": "two"}}, False,
         ("/backend/replicaCount",)),
        ("bad-memory", [local], {"backend": {"resources": {"limits": {"memory": "512 MB"}}}}, False,
         ("/backend/resources/limits/memory",)),
        ("bad-misspelled-key", [local], {"secret": {"JWT_SECRET": "x"}}, False,
         ("additional properties 'secret' not allowed",)),
    ]


def deep_merge(base: dict, override: dict) -> dict:
    """Merge like successive `helm -f` files: maps merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(files: list[str], inline: dict) -> dict:
    values: dict = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            values = deep_merge(values, yaml.safe_load(f) or {})
    return deep_merge(values, inline)


def render(chart: str, values: dict) -> str:
    """Render like `helm template`: every manifest, in file order, with a Source comment."""
    with helm.Chart.load(chart) as ch:
        manifests = ch.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    parts = []
    for source in sorted(manifests):
        body = manifests[source]
        if source.endswith("NOTES.txt") or not body.strip():
            continue
        parts.append(f"---\n# Source: {source}\n{body.strip()}\n")
    return "".join(parts)


def lint(chart: str, values: dict) -> list[str]:
    report = helm.lint(chart, values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)
    problems = list(report.get("errors") or [])
    for msg in report.get("messages") or []:
        if msg.get("severity", 0) >= 2:  # 2 warning, 3 error (info is fine)
            problems.append(f"{msg.get('path')}: {msg.get('error')}")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--chart", default="k8s/charts/habit-tracker")
    ap.add_argument("outdir")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)

    print(f"render_chart: Helm SDK {helm.helm_sdk_version()} (helm-python-sdk, libhelm_c {helm.helm_c_version()})")
    failures = 0
    for name, files, inline, should_render, must_mention in scenarios(args.chart):
        values = load_values(files, inline)
        label = f"{name} ({' + '.join(['values.yaml'] + [os.path.basename(f) for f in files])}" \
                f"{' + overrides' if inline else ''})"
        try:
            text = render(args.chart, values)
        except helm.HelmError as e:
            if should_render:
                print(f"FAIL  {label}: render failed: {e}")
                failures += 1
            elif must_mention and not any(m in str(e) for m in must_mention):
                print(f"FAIL  {label}: failed as expected, but not with the chart's message "
                      f"({' or '.join(must_mention)}): {e}")
                failures += 1
            else:
                first = next((ln.strip() for ln in str(e).splitlines() if ln.strip().startswith("- at")),
                             str(e).splitlines()[0])
                print(f"ok    {label}: refused as it must be: {first}")
            continue
        if not should_render:
            print(f"FAIL  {label}: rendered, but the chart must refuse these values")
            failures += 1
            continue
        problems = lint(args.chart, values)
        if problems:
            for p in problems:
                print(f"FAIL  {label}: helm lint: {p}")
            failures += 1
            continue
        out = os.path.join(args.outdir, f"{name}.yaml")
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"ok    {label}: lint clean, rendered {text.count('# Source:')} manifests -> {out}")
    print(f"render_chart: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
