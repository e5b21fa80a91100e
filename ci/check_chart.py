#!/usr/bin/env python3
"""Policy checks for the habit-tracker chart and the plain manifests.

Checks the chart's values.yaml (and values.yaml + values-local.yaml):
  * every container has CPU and memory requests and limits, requests <= limits;
  * the release fits the Minikube budget: the sum over components of
    limits x replicaCount is at most 2 CPU and 2Gi;
  * no image tag is empty or "latest";
  * the frontend Service is a NodePort on 30080 and the backend a ClusterIP
    on 8000 by default.
Then the same rules, plus the security settings (non-root uid 10001, no
privilege escalation, all capabilities dropped, RuntimeDefault seccomp,
liveness and readiness probes), on real manifests: every file in k8s/base/
and, with --rendered DIR, every YAML file ci/render_chart.py rendered.
Finally, k8s/base/ and the chart must deploy the same images, and every
FROM in images/*/Dockerfile names a base image by an exact X.Y.Z version
(hadolint only refuses `latest` and untagged images; `node:20` passes it).

Usage: check_chart.py [--chart DIR] [--base DIR] [--rendered DIR]
Exit: 0 all checks pass, 1 a check failed.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from decimal import Decimal, InvalidOperation

import yaml

MAX_CPU = Decimal("2")             # cores
MAX_MEMORY = Decimal(2 * 1024**3)  # bytes (2Gi)
FRONTEND_NODEPORT = 30080
BACKEND_PORT = 8000
FRONTEND_PORT = 3000
UID = 10001
COMPONENTS = ("backend", "frontend")

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


class Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.passed = 0

    def check(self, ok: bool, where: str, message: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.errors.append(f"{where}: {message}")
        return ok


def cpu_cores(q) -> Decimal:
    """'500m' -> 0.5, '1' -> 1, 0.25 -> 0.25."""
    s = str(q).strip()
    try:
        if s.endswith("m"):
            return Decimal(s[:-1]) / 1000
        return Decimal(s)
    except InvalidOperation:
        raise ValueError(f"not a CPU quantity: {q!r}") from None


def memory_bytes(q) -> Decimal:
    """'512Mi' -> 536870912, '1G' -> 10**9, 1024 -> 1024."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q).strip())
    if not m:
        raise ValueError(f"not a memory quantity: {q!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]


def fmt_mem(b: Decimal) -> str:
    return f"{b / 2**20:.0f}Mi"


def image_tag(image: str) -> str:
    """The tag of an image reference ('' when there is none, or only a digest)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def check_tag(c: Checker, where: str, image: str) -> None:
    tag = image_tag(image)
    c.check(tag != "" or "@sha256:" in image, where, f"image {image!r} has no tag: pin a version")
    c.check(tag.lower() != "latest", where, f"image {image!r} uses 'latest': pin a version")


def check_resources(c: Checker, where: str, resources) -> tuple[Decimal, Decimal]:
    """Checks requests/limits; returns the limits (cores, bytes) or zeros."""
    resources = resources or {}
    req, lim = resources.get("requests") or {}, resources.get("limits") or {}
    cpu_lim = mem_lim = Decimal(0)
    for key in ("cpu", "memory"):
        if not c.check(key in req, where, f"resources.requests.{key} is missing"):
            continue
        if not c.check(key in lim, where, f"resources.limits.{key} is missing"):
            continue
        parse = cpu_cores if key == "cpu" else memory_bytes
        try:
            r, l = parse(req[key]), parse(lim[key])
        except ValueError as e:
            c.check(False, where, str(e))
            continue
        c.check(r <= l, where, f"resources.requests.{key} {req[key]} is above the limit {lim[key]}")
        if key == "cpu":
            cpu_lim = l
        else:
            mem_lim = l
    return cpu_lim, mem_lim


def check_budget(c: Checker, where: str, cpu: Decimal, mem: Decimal) -> None:
    c.check(cpu <= MAX_CPU, where,
            f"CPU limits x replicas add up to {cpu} cores, over the {MAX_CPU}-core budget")
    c.check(mem <= MAX_MEMORY, where,
            f"memory limits x replicas add up to {fmt_mem(mem)}, over the {fmt_mem(MAX_MEMORY)} budget")


# --------------------------------------------------------------------------- values

def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_values(c: Checker, where: str, values: dict) -> None:
    total_cpu = total_mem = Decimal(0)
    for comp in COMPONENTS:
        cv = values.get(comp)
        if not c.check(isinstance(cv, dict), where, f"no '{comp}:' section"):
            continue
        w = f"{where}: {comp}"
        image = cv.get("image") or {}
        repo, tag = image.get("repository", ""), str(image.get("tag", "") or "")
        c.check(bool(repo), w, "image.repository is empty")
        c.check(tag != "", w, "image.tag is empty: pin a version")
        c.check(tag.lower() != "latest", w, f"image.tag is {tag!r}: pin a version, never latest")
        replicas = cv.get("replicaCount", 1)
        c.check(isinstance(replicas, int) and replicas >= 1, w, f"replicaCount {replicas!r} is not a positive integer")
        cpu, mem = check_resources(c, w, cv.get("resources"))
        if isinstance(replicas, int):
            total_cpu += cpu * replicas
            total_mem += mem * replicas
    check_budget(c, where, total_cpu, total_mem)
    print(f"      {where}: limits x replicas = {total_cpu} CPU, {fmt_mem(total_mem)}")

    fe_svc = (values.get("frontend") or {}).get("service") or {}
    c.check(fe_svc.get("type") == "NodePort", where,
            f"frontend.service.type is {fe_svc.get('type')!r}, must be NodePort")
    c.check(fe_svc.get("nodePort") == FRONTEND_NODEPORT, where,
            f"frontend.service.nodePort is {fe_svc.get('nodePort')!r}, must be {FRONTEND_NODEPORT}")
    c.check(fe_svc.get("port") == FRONTEND_PORT, where,
            f"frontend.service.port is {fe_svc.get('port')!r}, must be {FRONTEND_PORT}")
    be_svc = (values.get("backend") or {}).get("service") or {}
    c.check(be_svc.get("type") == "ClusterIP", where,
            f"backend.service.type is {be_svc.get('type')!r}, must be ClusterIP")
    c.check(be_svc.get("port") == BACKEND_PORT, where,
            f"backend.service.port is {be_svc.get('port')!r}, must be {BACKEND_PORT}")
    for key in ("DATABASE_URL", "JWT_SECRET", "GEMINI_API_KEY"):
        c.check(key in (values.get("secrets") or {}), where, f"secrets.{key} is not declared")


# ------------------------------------------------------------------------ manifests

def load_docs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def component_of(obj: dict) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component", "?")


def check_container(c: Checker, where: str, ctr: dict, pod_sc: dict) -> None:
    sc = ctr.get("securityContext") or {}

    def effective(key):
        return sc.get(key, pod_sc.get(key))

    c.check(effective("runAsNonRoot") is True, where, "runAsNonRoot is not true")
    c.check(effective("runAsUser") == UID, where, f"runAsUser is {effective('runAsUser')!r}, must be {UID}")
    c.check(sc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation is not false")
    c.check(sc.get("privileged") in (None, False), where, "privileged is true")
    c.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), where,
            "capabilities.drop does not contain ALL")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    c.check(seccomp == "RuntimeDefault", where, f"seccompProfile.type is {seccomp!r}, must be RuntimeDefault")
    for probe in ("livenessProbe", "readinessProbe"):
        c.check(bool((ctr.get(probe) or {}).get("httpGet")), where, f"{probe} (httpGet) is missing")
    if sc.get("readOnlyRootFilesystem") is True:
        mounts = {m.get("mountPath") for m in ctr.get("volumeMounts") or []}
        c.check("/tmp" in mounts, where, "readOnlyRootFilesystem without a writable /tmp volume")


def check_manifests(c: Checker, label: str, files: list[str]) -> set[str]:
    """Checks every Deployment/Service in the files; returns the images seen."""
    images: set[str] = set()
    total_cpu = total_mem = Decimal(0)
    kinds: dict[str, set[str]] = {}
    for path in files:
        for obj in load_docs(path):
            kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name", "?")
            kinds.setdefault(kind, set()).add(component_of(obj))
            where = f"{path}: {kind}/{name}"
            if kind == "Deployment":
                spec = obj.get("spec") or {}
                replicas = spec.get("replicas", 1)
                pod = (spec.get("template") or {}).get("spec") or {}
                pod_sc = pod.get("securityContext") or {}
                for ctr in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                    w = f"{where}: container {ctr.get('name')}"
                    image = ctr.get("image", "")
                    images.add(image)
                    check_tag(c, w, image)
                    cpu, mem = check_resources(c, w, ctr.get("resources"))
                    total_cpu += cpu * (replicas if isinstance(replicas, int) else 1)
                    total_mem += mem * (replicas if isinstance(replicas, int) else 1)
                    check_container(c, w, ctr, pod_sc)
            elif kind == "Service":
                spec = obj.get("spec") or {}
                ports = spec.get("ports") or [{}]
                if component_of(obj) == "frontend":
                    c.check(spec.get("type") == "NodePort", where, f"type is {spec.get('type')!r}, must be NodePort")
                    c.check(ports[0].get("nodePort") == FRONTEND_NODEPORT, where,
                            f"nodePort is {ports[0].get('nodePort')!r}, must be {FRONTEND_NODEPORT}")
                    c.check(ports[0].get("port") == FRONTEND_PORT, where, f"port must be {FRONTEND_PORT}")
                elif component_of(obj) == "backend":
                    c.check(spec.get("type", "ClusterIP") == "ClusterIP", where, "backend Service must be ClusterIP")
                    c.check(ports[0].get("port") == BACKEND_PORT, where, f"port must be {BACKEND_PORT}")
    for comp in COMPONENTS:
        c.check(comp in kinds.get("Deployment", set()), label, f"no {comp} Deployment")
        c.check(comp in kinds.get("Service", set()), label, f"no {comp} Service")
    c.check("ConfigMap" in kinds, label, "no ConfigMap")
    check_budget(c, label, total_cpu, total_mem)
    print(f"      {label}: limits x replicas = {total_cpu} CPU, {fmt_mem(total_mem)}")
    return images


# ---------------------------------------------------------------------- Dockerfiles

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_USER = re.compile(r"^\s*USER\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_EXACT = re.compile(r"(^|[^0-9.])[0-9]+\.[0-9]+\.[0-9]+([^0-9.]|$)")


def check_dockerfiles(c: Checker, pattern: str) -> None:
    files = sorted(glob.glob(pattern))
    c.check(bool(files), pattern, "no Dockerfile found")
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        stages: set[str] = set()
        for m in _FROM.finditer(text):
            image = m.group(1)
            rest = text[m.end():].split("\n", 1)[0].split()
            if len(rest) >= 2 and rest[0].upper() == "AS":
                stages.add(rest[1].lower())
            if image.lower() in stages or image.lower() == "scratch":
                continue
            c.check("$" not in image, path,
                    f"FROM {image}: write the base image out, an ARG hides it from hadolint")
            c.check("@sha256:" in image or bool(_EXACT.search(image_tag(image))), path,
                    f"FROM {image}: pin the base image to an exact X.Y.Z version (or a digest)")
        users = _USER.findall(text)
        last = users[-1] if users else None
        c.check(last in (str(UID), f"{UID}:{UID}"), path,
                f"last USER is {last!r}: must be the numeric {UID}:{UID} the chart's runAsUser expects")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--chart", default="k8s/charts/habit-tracker")
    ap.add_argument("--base", default="k8s/base")
    ap.add_argument("--rendered", help="folder of manifests rendered by ci/render_chart.py")
    ap.add_argument("--dockerfiles", default="images/*/Dockerfile", help="glob of Dockerfiles")
    args = ap.parse_args(argv)
    c = Checker()

    with open(os.path.join(args.chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    check_values(c, "values.yaml", values)
    local_path = os.path.join(args.chart, "values-local.yaml")
    if c.check(os.path.exists(local_path), local_path, "missing"):
        with open(local_path, encoding="utf-8") as f:
            local = yaml.safe_load(f) or {}
        check_values(c, "values.yaml + values-local.yaml", deep_merge(values, local))
        for comp in COMPONENTS:
            policy = ((local.get(comp) or {}).get("image") or {}).get("pullPolicy")
            c.check(policy == "IfNotPresent", local_path,
                    f"{comp}.image.pullPolicy is {policy!r}: Minikube needs IfNotPresent for loaded images")

    base_files = sorted(glob.glob(os.path.join(args.base, "*.yaml")))
    base_images = check_manifests(c, args.base, base_files)
    chart_images = {f"{values[comp]['image']['repository']}:{values[comp]['image']['tag']}"
                    for comp in COMPONENTS if isinstance(values.get(comp), dict)}
    c.check(base_images == chart_images, args.base,
            f"deploys {sorted(base_images)} but the chart deploys {sorted(chart_images)}: keep them in step")

    if args.rendered:
        rendered = sorted(glob.glob(os.path.join(args.rendered, "*.yaml")))
        c.check(bool(rendered), args.rendered, "no rendered manifests (run ci/render_chart.py first)")
        for path in rendered:
            check_manifests(c, path, [path])

    check_dockerfiles(c, args.dockerfiles)

    for e in c.errors:
        print(f"FAIL  {e}")
    print(f"check_chart: {c.passed} passed, {len(c.errors)} failed")
    return 1 if c.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
