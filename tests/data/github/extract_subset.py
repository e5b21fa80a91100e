#!/usr/bin/env python3
"""Cut tests/data/github/rest-api-subset.json out of GitHub's OpenAPI description.

    python3 tests/data/github/extract_subset.py DESCRIPTION.json SOURCE-NOTE > tests/data/github/rest-api-subset.json

DESCRIPTION.json is descriptions/api.github.com/api.github.com.json of
github/rest-api-description (or its republication in the npm package
@octokit/openapi, generated/api.github.com.json, which adds only `x-octokit`
keys: they are dropped here). SOURCE-NOTE goes into the `$comment`.

Keeps the request and response schemas of exactly the operations runbook's
github backend uses, and every schema they reference, translated from
OpenAPI 3.0 to JSON Schema 2020-12: `nullable: true` becomes a `null` type,
`$ref`s point into `$defs`, and descriptions, examples and `x-*` keys go.
Objects with `properties` and no `additionalProperties` get
`additionalProperties: false`, so an answer with a field GitHub does not
describe fails (a stand-in must not invent one). Python 3.11 stdlib only.
"""

import json
import sys

OPERATIONS = [
    "git/create-ref",
    "git/get-ref",
    "git/update-ref",
    "git/create-commit",
    "git/get-commit",
    "repos/create-deployment",
    "repos/list-deployments",
    "repos/create-deployment-status",
    "repos/list-deployment-statuses",
]
# The error answers of any endpoint (401, 403, 404, rate limits): basic-error.
ERROR_RESPONSES = ["requires_authentication", "forbidden", "not_found", "validation_failed"]
DROP = {"description", "example", "examples", "externalDocs", "title"}


def convert(node, refs):
    """OpenAPI 3.0 schema -> JSON Schema 2020-12; collects referenced names."""
    if isinstance(node, list):
        return [convert(x, refs) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in DROP or k.startswith("x-") or k == "nullable":
            continue
        if k == "$ref":
            name = v.rsplit("/", 1)[-1]
            refs.add(name)
            out[k] = f"#/$defs/{name}"
        elif k in ("properties", "$defs"):
            out[k] = {pk: convert(pv, refs) for pk, pv in v.items()}
        else:
            out[k] = convert(v, refs)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
            if "enum" in out:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def schema_of(content):
    return (content or {}).get("application/json", {}).get("schema")


def main():
    src, note = sys.argv[1], sys.argv[2]
    d = json.load(open(src))
    comps = d["components"]
    refs = set()
    ops = {}
    for path, item in d["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or op.get("operationId") not in OPERATIONS:
                continue
            entry = {"method": method.upper(), "path": path, "responses": {}}
            body = schema_of((op.get("requestBody") or {}).get("content"))
            if body is not None:
                entry["request"] = convert(body, refs)
            for code, r in op["responses"].items():
                if "$ref" in r:
                    r = comps["responses"][r["$ref"].rsplit("/", 1)[-1]]
                s = schema_of(r.get("content"))
                entry["responses"][code] = convert(s, refs) if s is not None else None
            ops[op["operationId"]] = entry
    missing = [o for o in OPERATIONS if o not in ops]
    if missing:
        sys.exit(f"not in the description: {missing}")
    errors = {}
    for name in ERROR_RESPONSES:
        errors[name] = convert(schema_of(comps["responses"][name]["content"]), refs)
    defs = {}
    todo = sorted(refs)
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        more = set()
        defs[name] = convert(comps["schemas"][name], more)
        todo.extend(sorted(more - set(defs)))
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": note,
        "operations": {k: ops[k] for k in OPERATIONS},
        "errors": errors,
        "$defs": dict(sorted(defs.items())),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
