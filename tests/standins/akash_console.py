#!/usr/bin/env python3
"""Stand-in for the Akash Console API and a provider's lease-status endpoint.

Replays the shapes in shared/reference/akash/ (console-deployment.json,
lease-status.json, lease-status-pending.json) over plain HTTP/1.1 on 127.0.0.1.

    python3 tests/standins/akash_console.py --dir DIR [--api-key KEY | --api-key-env VAR] [--max-seconds S]

* Binds 127.0.0.1, port 0 (the OS picks); once listening writes the port number
  to DIR/port (atomically: DIR/port.tmp then os.replace).
* Appends one JSON line per request to DIR/requests.jsonl:
    {"method", "path", "api_key_ok", "api_key_sent", "key_in_request", "body", "t"}
  api_key_ok is true when x-api-key matches --api-key (always true when no
  --api-key was given); api_key_sent says whether the header was there at all.
  The API key value itself is never written anywhere: if it appears in the
  path or body it is replaced by "<redacted-api-key>" and "key_in_request"
  is true (so a test can assert a client never leaks it outside the header).
* Behaviour comes from DIR/state.json, re-read on EVERY request (tests change
  it mid-run; write it atomically). See README.md for its fields.
* Exits by itself after --max-seconds (default 600) and on SIGTERM / SIGINT.

Python 3.11 standard library only.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_FORWARDED = {
    "host": "provider.europlots.com",
    "externalPort": 31877,
    "port": 7072,
    "service": "node",
}
DEFAULT_OWNER = "akash1x"
DEFAULT_PROVIDER = "akash1p"
DEFAULT_READY_AFTER = 2  # for "late" / "error500-then-ready" when state omits it
MAX_BODY = 10 * 1024 * 1024
REDACTED = "<redacted-api-key>"
SCENARIOS = {
    "ready", "pending", "late", "error500", "error500-then-ready",
    "hang", "bad-json", "unknown-shape", "bogus-host",
}

DEPLOYMENT_RE = re.compile(r"^/v1/deployments/([^/]+)$")
LEASE_RE = re.compile(r"^/lease/([^/]+)/([^/]+)/([^/]+)/status$")


def atomic_write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StateError(Exception):
    pass


class Standin:
    def __init__(self, directory, api_key, stop):
        self.dir = directory
        self.api_key = api_key
        self.stop = stop
        self.lock = threading.Lock()  # guards state.json writes, counters, requests.jsonl
        self.counters = {}  # dseq -> number of status GETs since start / last PUT
        self.state_path = os.path.join(directory, "state.json")
        self.counters_path = os.path.join(directory, "counters.json")
        self.requests_path = os.path.join(directory, "requests.jsonl")

    # ---- state -----------------------------------------------------------
    def read_state(self):
        try:
            with open(self.state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise StateError(f"state.json unreadable: {e}")
        if not isinstance(state, dict):
            raise StateError("state.json is not a JSON object")
        return state

    def redact(self, text):
        if self.api_key and self.api_key in text:
            return text.replace(self.api_key, REDACTED), True
        return text, False

    def log_request(self, method, path, api_key_ok, api_key_sent, raw_body):
        path, leaked_path = self.redact(path)
        body = None
        leaked_body = False
        if raw_body:
            text = raw_body.decode("utf-8", errors="replace")
            text, leaked_body = self.redact(text)
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        rec = {
            "method": method,
            "path": path,
            "api_key_ok": api_key_ok,
            "api_key_sent": api_key_sent,
            "key_in_request": leaked_path or leaked_body,
            "body": body,
            "t": time.time(),
        }
        line = json.dumps(rec, sort_keys=True) + "\n"
        with self.lock:
            with open(self.requests_path, "a") as f:
                f.write(line)

    def bump(self, dseq):
        """Count one status GET for dseq; return the count BEFORE this one."""
        with self.lock:
            n = self.counters.get(dseq, 0)
            self.counters[dseq] = n + 1
            self._save_counters()
            return n

    def reset(self, dseq):
        with self.lock:
            self.counters[dseq] = 0
            self._save_counters()

    def _save_counters(self):
        atomic_write(self.counters_path, json.dumps(self.counters, sort_keys=True))

    def external_change(self, dseq):
        with self.lock:
            state = self.read_state()
            dep = state["deployments"][dseq]
            dep["sdl"] = (dep.get("sdl") or "") + "\n# changed by another writer\n"
            dep["changed_by_another_writer"] = True
            atomic_write(self.state_path, json.dumps(state, indent=2, sort_keys=True))

    def store_sdl(self, dseq, sdl):
        with self.lock:
            state = self.read_state()
            deps = state.setdefault("deployments", {})
            dep = deps.setdefault(dseq, {})
            dep["sdl"] = self.redact(sdl)[0]  # the key is never written anywhere
            atomic_write(self.state_path, json.dumps(state, indent=2, sort_keys=True))


# ---- shapes ----------------------------------------------------------------

def sdl_services(sdl):
    """The service names of an SDL's top-level `services:` block (two-space
    indented keys), without a YAML parser."""
    names, inside = [], False
    for line in (sdl or "").splitlines():
        if re.match(r"^\S", line):
            inside = line.rstrip() == "services:"
            continue
        m = re.match(r"^  ([A-Za-z0-9][A-Za-z0-9_-]*):\s*$", line)
        if inside and m:
            names.append(m.group(1))
    return names


def lease_status(state, ready, host_override=None, sdl=None):
    """A provider lease status: every service of the deployment's SDL (the
    forwarded one when the SDL names none), the forwarded port on the
    forwarded service."""
    fwd = dict(DEFAULT_FORWARDED)
    fwd.update(state.get("forwarded") or {})
    service = str(fwd.get("service") or "node")
    names = sdl_services(sdl) or [service]

    def svc(name):
        return {
            "name": name, "available": 1 if ready else 0, "total": 1, "uris": None,
            "observed_generation": 1, "replicas": 1, "updated_replicas": 1,
            "ready_replicas": 1 if ready else 0, "available_replicas": 1 if ready else 0,
        }

    forwarded_ports = {}
    if ready and service in names:
        forwarded_ports[service] = [{
            "host": host_override or fwd.get("host"),
            "port": fwd.get("port"),
            "externalPort": fwd.get("externalPort"),
            "proto": "TCP",
            "name": service,
            "available": 1,
        }]
    return {"services": {n: svc(n) for n in names}, "forwarded_ports": forwarded_ports, "ips": None}


def manifest_hash(sdl):
    """The deployment's `hash`: the Console answers the on-chain manifest
    version, base64 of a SHA-256 (deployment-writer.service.ts compares
    `Buffer.from(manifestVersion).toString("base64")` with it). The stand-in
    hashes the SDL text: the same SDL gives the same hash, another SDL
    another one, which is all a client can rely on."""
    return base64.b64encode(hashlib.sha256(sdl.encode()).digest()).decode()


def console_lease_status(status):
    """A provider lease status as the Console's LeaseStatusResponseSchema
    has it: `uris` and `ips` never null, forwarded ports with only `port`,
    `externalPort`, `host`, `available` (zod strips `proto` and `name`)."""
    services = {}
    for name, svc in (status.get("services") or {}).items():
        svc = dict(svc)
        svc["uris"] = svc.get("uris") or []
        services[name] = svc
    forwarded = {}
    for name, ports in (status.get("forwarded_ports") or {}).items():
        forwarded[name] = [
            {k: p[k] for k in ("port", "externalPort", "host", "available") if k in p}
            for p in (ports or [])
        ]
    return {"forwarded_ports": forwarded, "ips": status.get("ips") or {}, "services": services}


def console_deployment(state, dseq, dep, status):
    """GetDeploymentResponseSchema / UpdateDeploymentResponseSchema, and
    nothing else: the real API never answers the SDL (see
    tests/data/akash/console-api.schema.json, which a test validates every
    answer against)."""
    sdl = dep.get("sdl") or ""
    owner = state.get("owner") or DEFAULT_OWNER
    provider = dep.get("provider") or DEFAULT_PROVIDER
    created = "2026-01-05T10:00:00.000Z"
    return {"data": {
        "deployment": {
            "id": {"owner": owner, "dseq": str(dseq)},
            "state": dep.get("state") or "active",
            "hash": manifest_hash(sdl),
            "created_at": created,
        },
        "leases": [{
            "id": {"owner": owner, "dseq": str(dseq), "gseq": 1, "oseq": 1,
                   "provider": provider, "bseq": 1},
            "state": dep.get("lease_state") or "active",
            "price": {"denom": "uakt", "amount": "2.75"},
            "created_at": created,
            "closed_on": "0",
            "status": None if status is None else console_lease_status(status),
        }],
        "escrow_account": {
            "id": {"scope": "deployment", "xid": f"{owner}/{dseq}"},
            "state": {
                "owner": owner,
                "state": "open",
                "transferred": [{"denom": "uakt", "amount": "100"}],
                "settled_at": "1234567",
                "funds": [{"denom": "uakt", "amount": "5000000"}],
                "deposits": [{"owner": owner, "height": "1234000", "source": "balance",
                              "balance": {"denom": "uakt", "amount": "5000000"}}],
            },
        },
    }}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "akash-console-standin/1"
    sys_version = ""

    @property
    def s(self):
        return self.server.standin

    def log_message(self, fmt, *args):  # quiet: requests.jsonl is the log
        pass

    # ---- plumbing ----------------------------------------------------------
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            for _ in range(100000):
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    for _ in range(100):
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def send_raw(self, code, body_bytes, content_type="application/json"):
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body_bytes)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body_bytes)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_json(self, code, obj):
        self.send_raw(code, json.dumps(obj).encode())

    def not_found(self):
        self.send_json(404, {"error": "NotFound", "message": f"no route for {self.command} {self.path.split('?')[0]}"})

    # ---- dispatch ------------------------------------------------------------
    def handle_any(self):
        try:
            raw = self.read_body()
        except ValueError as e:
            self.close_connection = True
            self.send_json(400, {"error": "BadRequest", "message": str(e)})
            return
        path = self.path.split("?", 1)[0]
        given = self.headers.get("x-api-key")
        if self.s.api_key is None:
            key_ok = True
        else:
            key_ok = given is not None and given == self.s.api_key
        self.s.log_request(self.command, self.path, key_ok, given is not None, raw)

        if path.startswith("/v1/") and not key_ok:
            self.send_json(401, {"error": "Unauthorized", "message": "Invalid API key"})
            return
        try:
            state = self.s.read_state()
        except StateError as e:
            print(f"akash_console standin: {e}", file=sys.stderr)
            self.send_json(500, {"error": "StandinError", "message": str(e)})
            return

        m = DEPLOYMENT_RE.match(path)
        if m and self.command == "GET":
            return self.get_deployment(state, m.group(1))
        if m and self.command == "PUT":
            return self.put_deployment(state, m.group(1), raw)
        m = LEASE_RE.match(path)
        if m and self.command == "GET":
            return self.get_lease(state, m.group(1))
        self.not_found()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_any

    # ---- routes --------------------------------------------------------------
    def status_or_answered(self, state, dseq, bad_json_body):
        """Apply the scenario. Returns (status_dict, host_is_bogus) or None when
        the response has already been sent (error / hang-then-ready / garbage)."""
        scenario = state.get("scenario") or "ready"
        if scenario not in SCENARIOS:
            self.send_json(500, {"error": "StandinError", "message": f"unknown scenario {scenario!r}"})
            return None
        n = self.s.bump(dseq)  # GETs before this one since start / last PUT
        ready_after = int(state.get("ready_after", DEFAULT_READY_AFTER))
        if scenario == "error500":
            self.send_json(500, {"error": "InternalServerError", "message": "Internal Server Error", "code": "internal_server_error", "type": "server_error"})
            return None
        if scenario == "error500-then-ready" and n < ready_after:
            self.send_json(500, {"error": "InternalServerError", "message": "Internal Server Error", "code": "internal_server_error", "type": "server_error"})
            return None
        if scenario == "bad-json":
            self.send_raw(200, bad_json_body)
            return None
        if scenario == "unknown-shape":
            self.send_json(200, {"hello": "world"})
            return None
        if scenario == "hang":
            secs = float(state.get("hang_seconds", 30))
            secs = max(0.0, min(secs, self.server.max_seconds))
            # bounded, and cut short when the server stops
            self.s.stop.wait(secs)
            if self.s.stop.is_set():
                self.close_connection = True
                return None
        sdl = ((state.get("deployments") or {}).get(dseq) or {}).get("sdl")
        if scenario == "pending" or (scenario == "late" and n < ready_after):
            return lease_status(state, ready=False, sdl=sdl)
        if scenario == "bogus-host":
            return lease_status(state, ready=True, host_override="10.0.0.1", sdl=sdl)
        return lease_status(state, ready=True, sdl=sdl)

    def get_deployment(self, state, dseq):
        dep = (state.get("deployments") or {}).get(dseq)
        if dep is None:
            self.send_json(404, {"error": "NotFound", "message": "Deployment not found"})
            return
        status = self.status_or_answered(state, dseq, b'{"data": {"leases": [')
        if status is None:
            return
        after = dep.get("changed_by_another_writer_after")
        if after is not None and self.s.counters.get(dseq, 0) >= int(after) and not dep.get("changed_by_another_writer"):
            # Someone else (a person in the Console, another tool) updates the
            # deployment between runbook's read and its write.
            self.s.external_change(dseq)
            state = self.s.read_state()
            dep = state["deployments"][dseq]
        self.send_json(200, console_deployment(state, dseq, dep, status))

    def get_lease(self, state, dseq):
        # The real provider authenticates this with the tenant's certificate /
        # JWT; the stand-in does not check anything. Unknown dseq -> 404.
        dep = (state.get("deployments") or {}).get(dseq)
        if dep is None:
            self.send_json(404, {"error": "NotFound", "message": "lease not found"})
            return
        status = self.status_or_answered(state, dseq, b'{"services": {"node": {')
        if status is None:
            return
        self.send_json(200, status)

    def put_deployment(self, state, dseq, raw):
        if dseq not in (state.get("deployments") or {}):
            self.send_json(404, {"error": "NotFound", "message": "Deployment not found"})
            return
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            self.send_json(400, {"error": "BadRequest", "message": "body is not valid JSON"})
            return
        sdl = body.get("data", {}).get("sdl") if isinstance(body, dict) and isinstance(body.get("data"), dict) else None
        if not isinstance(sdl, str) or not sdl:
            self.send_json(400, {"error": "BadRequest", "message": "data.sdl is required"})
            return
        hang = float(state.get("put_hang_seconds", 0) or 0)
        if hang > 0:
            self.s.stop.wait(max(0.0, min(hang, self.server.max_seconds)))
            if self.s.stop.is_set():
                self.close_connection = True
                return
        code = int(state.get("put_status", 200))
        if 200 <= code < 300:
            if not state.get("put_ignored"):
                # put_ignored: a provider that acknowledges the update but
                # keeps the old manifest (the hash does not move), the failure
                # a read-back must catch.
                try:
                    self.s.store_sdl(dseq, sdl)
                    state = self.s.read_state()
                except StateError as e:
                    self.send_json(500, {"error": "StandinError", "message": str(e)})
                    return
                self.s.reset(dseq)  # like the real provider: ports appear late again
            dep = state["deployments"][dseq]
            # UpdateDeploymentResponseSchema: the deployment as re-read after
            # the manifest was sent; its services are not up yet.
            self.send_json(code, console_deployment(state, dseq, dep, lease_status(state, ready=False, sdl=dep.get("sdl"))))
        else:
            # Rejected: the SDL is NOT stored and the counter is not reset.
            self.send_json(code, {"error": "UpstreamError",
                                  "message": "provider rejected manifest: insufficient funds"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="working folder: port, state.json, requests.jsonl")
    ap.add_argument("--api-key", default=None, help="require this x-api-key on /v1/*")
    ap.add_argument("--api-key-env", default=None, metavar="VAR",
                    help="like --api-key, but read the key from env var VAR (keeps it out of ps)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long (default 600)")
    args = ap.parse_args()

    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    stop = threading.Event()
    api_key = args.api_key
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            ap.error(f"--api-key-env: environment variable {args.api_key_env} is not set or empty")
    standin = Standin(directory, api_key or None, stop)

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # tests fire bursts of concurrent requests

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.standin = standin
    server.max_seconds = args.max_seconds

    got_signal = []

    def on_signal(signum, frame):  # only note it; the main loop below acts
        got_signal.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()

    port = server.server_address[1]
    tmp = os.path.join(directory, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(port))  # no newline: parse it as-is
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, "port"))

    deadline = time.monotonic() + args.max_seconds
    while not got_signal and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()  # wakes handlers sleeping in "hang"
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
