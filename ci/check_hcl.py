#!/usr/bin/env python3
"""Structural checks on the split-deploy Terraform (infra/**/*.tf).

Parses every *.tf under infra/ with python-hcl2 (a parse error fails the
check, naming the file) and asserts the contract the pipeline relies on:

- each stack (infra/akash-banano, infra/akash-api) has main.tf, variables.tf,
  outputs.tf and versions.tf, and pins `required_version = "~> 1.8"`;
- no stack declares a provider: they must `terraform init` with no download;
- the Banano stack outputs banano_rpc_endpoint, sdl and internal_rpc_port
  (= 7072), and takes the discovered endpoint as variable rpc_endpoint
  (default "");
- the API stack takes banano_rpc_endpoint with a validation block applying
  the endpoint rule (the host regex and the 1024-65535 port range), and an
  image variable.

Usage: python3 ci/check_hcl.py [REPO_ROOT]   (default: this file's ../)
Exit 0 when every check holds; 1, with one line per broken rule, otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - environment problem, say so plainly
    sys.exit("check_hcl: FAIL python-hcl2 is not installed: pip install -r ci/requirements-lint.txt")

STACKS = ("akash-banano", "akash-api")
REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
REQUIRED_VERSION = "~> 1.8"
ENDPOINT_REGEX = "^[a-z0-9.-]*[a-z-][a-z0-9.-]*:[0-9]+$"

errors: list[str] = []


def fail(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def unquote(value):
    """python-hcl2 >= 5 keeps the quotes of string literals and block labels;
    older releases strip them. Accept both."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def blocks(doc: dict, kind: str) -> dict[str, dict]:
    """Labelled blocks (variable/output/resource...) as {label: body}."""
    found: dict[str, dict] = {}
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            found[unquote(label)] = body
    return found


def plain(doc: dict, kind: str) -> list[dict]:
    """Unlabelled blocks (terraform/locals) as a list of bodies."""
    return [b for b in doc.get(kind, []) if isinstance(b, dict)]


def parse(tf: Path, root: Path) -> dict | None:
    try:
        with tf.open(encoding="utf-8") as fh:
            return hcl2.load(fh)
    except Exception as exc:  # lark raises many types; all mean "bad HCL"
        where = tf.relative_to(root) if tf.is_relative_to(root) else tf
        first_line = (str(exc).strip().splitlines() or ["?"])[0][:300]
        fail(str(where), f"does not parse as HCL: {type(exc).__name__}: {first_line}")
        return None


def load_stack(stack_dir: Path, root: Path) -> dict[str, list] | None:
    """All *.tf of one stack merged; None when any of them does not parse
    (the parse error is reported; checking the rest would only add noise)."""
    merged: dict[str, list] = {}
    ok = True
    for tf in sorted(stack_dir.glob("*.tf")):
        doc = parse(tf, root)
        if doc is None:
            ok = False
            continue
        for kind, entries in doc.items():
            merged.setdefault(kind, []).extend(entries)
    return merged if ok else None


def check_common(name: str, stack_dir: Path, doc: dict) -> None:
    where = f"infra/{name}"
    for required in REQUIRED_FILES:
        if not (stack_dir / required).is_file():
            fail(where, f"missing {required}")
    versions = [unquote(t.get("required_version")) for t in plain(doc, "terraform")]
    versions = [v for v in versions if v is not None]
    if versions != [REQUIRED_VERSION]:
        fail(where, f'terraform.required_version must be "{REQUIRED_VERSION}" (once), found {versions or "none"}')
    if doc.get("provider"):
        fail(where, "declares a provider block; these stacks must init with no provider download")
    for t in plain(doc, "terraform"):
        if t.get("required_providers"):
            fail(where, "declares required_providers; these stacks must init with no provider download")


def local_value(doc: dict, name: str):
    for body in plain(doc, "locals"):
        if name in body:
            return unquote(body[name])
    return None


def check_banano(doc: dict) -> None:
    where = "infra/akash-banano"
    outputs = blocks(doc, "output")
    for out in ("banano_rpc_endpoint", "sdl", "internal_rpc_port"):
        if out not in outputs:
            fail(where, f'missing output "{out}" (the pipeline reads it)')
    if "banano_rpc_endpoint" in outputs:
        value = str(outputs["banano_rpc_endpoint"].get("value", ""))
        if "var.rpc_endpoint" not in value:
            fail(where, 'output "banano_rpc_endpoint" must come from var.rpc_endpoint (filled after discovery)')
    if "internal_rpc_port" in outputs:
        value = unquote(outputs["internal_rpc_port"].get("value"))
        if isinstance(value, str) and value.startswith("${local.") and value.endswith("}"):
            value = local_value(doc, value[len("${local."):-1])
        if value != 7072:
            fail(where, f'output "internal_rpc_port" must be 7072, found {value!r}')
    variables = blocks(doc, "variable")
    if "rpc_endpoint" not in variables:
        fail(where, 'missing variable "rpc_endpoint" (the discovered "host:port")')
    elif unquote(variables["rpc_endpoint"].get("default")) != "":
        fail(where, 'variable "rpc_endpoint" must default to "" (unknown before discovery)')


def check_api(doc: dict) -> None:
    where = "infra/akash-api"
    variables = blocks(doc, "variable")
    if "image" not in variables:
        fail(where, 'missing variable "image"')
    var = variables.get("banano_rpc_endpoint")
    if var is None:
        fail(where, 'missing variable "banano_rpc_endpoint"')
        return
    validations = var.get("validation") or []
    if not validations:
        fail(where, 'variable "banano_rpc_endpoint" has no validation block (host/port rule)')
        return
    conditions = " ".join(str(v.get("condition", "")) for v in validations)
    # The regex sits inside an HCL string, where backslashes and quotes are
    # escaped; compare on the unescaped text.
    if ENDPOINT_REGEX not in conditions.replace('\\"', '"').replace("\\\\", "\\"):
        fail(where, f'banano_rpc_endpoint validation must apply the host rule regex {ENDPOINT_REGEX}')
    for needle, why in (
        ("var.banano_rpc_endpoint", "must test var.banano_rpc_endpoint"),
        ("tonumber(", "must check the port range with tonumber(split(...))"),
        ("1024", "must reject ports below 1024"),
        ("65535", "must reject ports above 65535"),
    ):
        if needle not in conditions:
            fail(where, f"banano_rpc_endpoint validation {why}")
    for v in validations:
        if not unquote(v.get("error_message")):
            fail(where, "banano_rpc_endpoint validation needs an error_message")


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    infra = root / "infra"
    tf_files = sorted(infra.rglob("*.tf"))
    if not tf_files:
        fail(str(infra), "no *.tf files found")
    stacks = {}
    for name in STACKS:
        stack_dir = infra / name
        if not stack_dir.is_dir():
            fail(f"infra/{name}", "stack folder is missing")
            continue
        doc = load_stack(stack_dir, root)
        if doc is not None:
            stacks[name] = doc
            check_common(name, stack_dir, doc)
    # *.tf anywhere else under infra/ must at least parse.
    for tf in tf_files:
        if tf.parent.name not in STACKS or tf.parent.parent != infra:
            parse(tf, root)
    if "akash-banano" in stacks:
        check_banano(stacks["akash-banano"])
    if "akash-api" in stacks:
        check_api(stacks["akash-api"])

    if errors:
        for e in errors:
            print(f"check_hcl: FAIL {e}", file=sys.stderr)
        print(f"check_hcl: {len(errors)} problem(s) in the Terraform under {infra}", file=sys.stderr)
        return 1
    print(f"check_hcl: OK ({len(tf_files)} .tf files, stacks: {', '.join(STACKS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
