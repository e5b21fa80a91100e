#!/usr/bin/env python3
"""Validate Kubernetes API answers against the Kubernetes OpenAPI schemas
(v1.30, strict: no field the real API does not have), as bundled by the
kubernetes-validate package (ci/requirements-k8s.txt), the same schemas
ci/k8s_validate.py lints manifests with.

    validate_k8s.py FILE.json    # [[label, object], ...]

Typed objects (Lease, ConfigMap, Deployment, lists, ...) go through
kubernetes_validate; `Status`, `/version`'s Info and watch events, which it
has no top-level schema for, through their definitions in _definitions.json.
Prints one line per failure; exit 1 when any. Python 3.11 + the venv."""

import json
import os
import sys

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils

VERSION = "1.30.0"


def definitions():
    base = os.path.dirname(kubernetes_validate.__file__)
    path = os.path.join(base, "kubernetes-json-schema", f"v{VERSION}-local-strict", "_definitions.json")
    with open(path) as f:
        return json.load(f)


def by_definition(defs, name, obj):
    schema = {"$ref": f"#/$defs/{name}", "$defs": defs["$defs"]}
    jsonschema.validate(obj, schema)


def main():
    with open(sys.argv[1]) as f:
        items = json.load(f)
    defs = definitions()
    bad = []
    for label, obj in items:
        try:
            if label.startswith("version"):
                by_definition(defs, "io.k8s.apimachinery.pkg.version.Info", obj)
            elif label.startswith("watch"):
                if obj.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"):
                    raise ValueError(f"watch event type {obj.get('type')!r}")
                if set(obj) != {"type", "object"}:
                    raise ValueError(f"watch event keys {sorted(obj)}")
                kubernetes_validate.validate(obj["object"], VERSION, strict=True)
            elif obj.get("kind") == "Status":
                by_definition(defs, "io.k8s.apimachinery.pkg.apis.meta.v1.Status", obj)
            else:
                kubernetes_validate.validate(obj, VERSION, strict=True)
        except (jsonschema.ValidationError, utils.ValidationError, utils.SchemaNotFoundError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            bad.append(f"{label}: {first}")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
