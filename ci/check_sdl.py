#!/usr/bin/env python3
"""Contract checks on the two Akash SDL files of the split deploy.

- both infra/akash-banano/deploy.yaml and infra/akash-api/deploy.yaml are SDL
  version "2.0" (the string: an unquoted 2.0 is a float and Akash rejects it);
- the Banano service `node` exposes port 7072, proto tcp, to global (the RPC
  port whose forwarded external port the pipeline discovers);
- the API service `api` lists BANANO_RPC_ENDPOINT in its env (the endpoint is
  injected there at deploy time);
- no image anywhere uses the `latest` tag or no tag at all;
- every deployment entry names a compute profile and a placement that prices
  it (an SDL the provider would refuse fails here, not on deploy).

Usage: python3 ci/check_sdl.py [REPO_ROOT]   (default: this file's ../)
Exit 0 when every check holds; 1, with one line per broken rule, otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - environment problem, say so plainly
    sys.exit("check_sdl: FAIL PyYAML is not installed: pip install -r ci/requirements-lint.txt")

BANANO_SDL = "infra/akash-banano/deploy.yaml"
API_SDL = "infra/akash-api/deploy.yaml"
RPC_PORT = 7072

errors: list[str] = []


def fail(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def load(root: Path, rel: str):
    path = root / rel
    if not path.is_file():
        fail(rel, "file is missing")
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        fail(rel, f"is not valid YAML: {exc}")
        return None
    if not isinstance(doc, dict):
        fail(rel, "is not a YAML mapping (an SDL document)")
        return None
    return doc


def image_tag_problem(image) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@sha256:" in image:
        return None  # pinned by digest: immutable
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (that means latest)"
    tag = last.split(":", 1)[1]
    if not tag:
        return f"image {image!r} has an empty tag"
    if tag.lower() == "latest":
        return f"image {image!r} uses the mutable tag latest; pin a version or a commit SHA"
    return None


def check_common(rel: str, doc: dict) -> dict:
    version = doc.get("version")
    if version != "2.0":
        fail(rel, f'version must be the string "2.0", found {version!r}')
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        fail(rel, "has no services")
        return {}
    for name, svc in services.items():
        problem = image_tag_problem((svc or {}).get("image"))
        if problem:
            fail(rel, f"services.{name}: {problem}")

    profiles = doc.get("profiles") or {}
    compute = profiles.get("compute") or {}
    placement = profiles.get("placement") or {}
    deployment = doc.get("deployment") or {}
    for name in services:
        if name not in deployment:
            fail(rel, f"services.{name} is not deployed (no deployment.{name})")
    for name, groups in deployment.items():
        if name not in services:
            fail(rel, f"deployment.{name} names no service")
        for group, spec in (groups or {}).items():
            profile = (spec or {}).get("profile")
            if profile not in compute:
                fail(rel, f"deployment.{name}.{group}.profile {profile!r} is not in profiles.compute")
            price = (((placement.get(group) or {}).get("pricing")) or {}).get(profile)
            if not price:
                fail(rel, f"profiles.placement.{group}.pricing has no price for profile {profile!r}")
            elif price.get("denom") != "uakt" or not isinstance(price.get("amount"), (int, float)):
                fail(rel, f"profiles.placement.{group}.pricing.{profile} must be {{denom: uakt, amount: <number>}}, found {price!r}")
            count = (spec or {}).get("count")
            if not isinstance(count, int) or count < 1:
                fail(rel, f"deployment.{name}.{group}.count must be a positive integer, found {count!r}")
    return services


def exposes_global_tcp(svc: dict, port: int) -> bool:
    for entry in svc.get("expose") or []:
        if not isinstance(entry, dict) or entry.get("port") != port:
            continue
        if str(entry.get("proto", "tcp")).lower() != "tcp":
            continue
        if any(isinstance(t, dict) and t.get("global") is True for t in entry.get("to") or []):
            return True
    return False


def check_banano(root: Path) -> None:
    doc = load(root, BANANO_SDL)
    if doc is None:
        return
    services = check_common(BANANO_SDL, doc)
    node = services.get("node")
    if not isinstance(node, dict):
        fail(BANANO_SDL, "has no service `node`")
        return
    if not str(node.get("image", "")).startswith("bananocoin/banano:"):
        fail(BANANO_SDL, f"services.node.image must be bananocoin/banano:<version>, found {node.get('image')!r}")
    if not exposes_global_tcp(node, RPC_PORT):
        fail(BANANO_SDL, f"services.node must expose port {RPC_PORT} with proto tcp to [{{global: true}}] (the RPC port discovery looks for)")


def check_api(root: Path) -> None:
    doc = load(root, API_SDL)
    if doc is None:
        return
    services = check_common(API_SDL, doc)
    api = services.get("api")
    if not isinstance(api, dict):
        fail(API_SDL, "has no service `api`")
        return
    env = api.get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        fail(API_SDL, "services.api.env must be a list of NAME=value strings")
    elif not any(e.split("=", 1)[0] == "BANANO_RPC_ENDPOINT" for e in env):
        fail(API_SDL, "services.api.env must contain BANANO_RPC_ENDPOINT= (injected at deploy time)")


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    check_banano(root)
    check_api(root)
    if errors:
        for e in errors:
            print(f"check_sdl: FAIL {e}", file=sys.stderr)
        print(f"check_sdl: {len(errors)} problem(s) in the Akash SDL files", file=sys.stderr)
        return 1
    print(f"check_sdl: OK ({BANANO_SDL}, {API_SDL})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
