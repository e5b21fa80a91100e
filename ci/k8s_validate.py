#!/usr/bin/env python3
"""Validate Kubernetes manifests against the Kubernetes OpenAPI schemas, offline.

Uses the JSON schemas that the PyPI package `kubernetes-validate` ships
(generated from the Kubernetes OpenAPI spec, one set per minor release), in
their *strict* form: an unknown or misspelled field is an error, as is a wrong
type (`replicas: "one"`) or a missing required field.

Stricter than the `kubernetes-validate` CLI on purpose:
  * a document whose kind/apiVersion has no schema is an ERROR (the CLI only
    warns, so `kind: Deplyment` would pass);
  * every file is checked against each --kube-version (default: the oldest
    version the chart supports, 1.28, and the newest the package ships), so a
    removed or not-yet-available API fails too.

Kustomize files (apiVersion kustomize.config.k8s.io/*) are not Kubernetes
objects: they are skipped here (ci/lint-k8s.sh builds them with
`kubectl kustomize` when kubectl is installed).

Usage: k8s_validate.py [--kube-version X.Y.Z ...] FILE... ("-" reads stdin)
Exit: 0 all valid, 1 a document is invalid, 2 usage or unreadable input.
"""
from __future__ import annotations

import argparse
import sys

import yaml

try:
    from kubernetes_validate import utils as kv
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("k8s_validate.py: the PyPI package kubernetes-validate is not installed "
             "(pip install -r ci/requirements-k8s.txt)")

DEFAULT_MIN_VERSION = "1.28.0"


def load_documents(path: str) -> list[dict]:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        print(f"ERROR {path}: cannot read: {e}")
        raise SystemExit(2)
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        print(f"ERROR {path}: not valid YAML: {e}")
        return [None]  # counted as one invalid document
    return [d for d in docs if d is not None]


def describe(doc: dict) -> str:
    kind = doc.get("kind", "?")
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{kind}/{name}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--kube-version", action="append", dest="versions",
                    help="Kubernetes version to validate against (repeatable); "
                         f"default {DEFAULT_MIN_VERSION} and the newest shipped")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)

    versions = args.versions or [DEFAULT_MIN_VERSION, kv.latest_version()]
    failures = 0
    checked = 0
    for path in args.files:
        for doc in load_documents(path):
            if not isinstance(doc, dict):
                print(f"ERROR {path}: a YAML document is not a mapping (got {type(doc).__name__})")
                failures += 1
                continue
            api_version = doc.get("apiVersion")
            kind = doc.get("kind")
            if not isinstance(api_version, str) or not isinstance(kind, str):
                print(f"ERROR {path}: document without apiVersion/kind: {describe(doc)}")
                failures += 1
                continue
            if api_version.startswith("kustomize.config.k8s.io/"):
                print(f"SKIP  {path}: {kind} (kustomize file, not a Kubernetes object)")
                continue
            checked += 1
            for version in versions:
                try:
                    kv.validate(doc, version, strict=True)
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path) or "(top level)"
                    print(f"ERROR {path}: {describe(doc)} against Kubernetes {e.version}: "
                          f"{where}: {e.message}")
                    failures += 1
                except kv.SchemaNotFoundError as e:
                    print(f"ERROR {path}: {describe(doc)}: {e.message} "
                          f"(misspelled kind or apiVersion?)")
                    failures += 1
                except kv.VersionNotSupportedError as e:
                    print(f"ERROR kubernetes-validate {kv.__version__} has no schemas for "
                          f"Kubernetes {e.version}")
                    return 2
                else:
                    print(f"ok    {path}: {describe(doc)} (Kubernetes {kv.major_minor(version)}, strict)")
    if checked == 0 and failures == 0:
        print("ERROR no Kubernetes object found in the given files")
        return 1
    print(f"k8s_validate: {checked} object(s), {len(versions)} version(s), {failures} error(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
