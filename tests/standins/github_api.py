#!/usr/bin/env python3
"""Stand-in for the part of GitHub's REST API runbook's github backend uses:
Git refs and commits (the lock) and Deployments with their statuses (the
ledger), with GitHub's shapes, status codes, atomicity and rate limits.

    python3 tests/standins/github_api.py --dir DIR --token-env VAR [--max-seconds S]

* Binds 127.0.0.1, port 0; once listening writes the port (digits only) to
  DIR/port via DIR/port.tmp + rename.
* Every request needs `Authorization: Bearer <token>` (or `token <token>`),
  the token read from env var VAR (so it stays out of `ps`); else 401.
* Appends one JSON line per request to DIR/requests.jsonl:
    {"method", "path", "query", "auth_ok", "token_in_request", "body", "status", "answer", "t"}
  `answer` is the JSON body it answered. The token is never written
  anywhere: if it turns up in the path, query or body it becomes
  "<redacted-token>" and token_in_request is true.
* The repository's state (refs, commits, deployments, statuses) is kept in
  memory and mirrored to DIR/repo.json after each change. Every change is
  made under one lock, so it is atomic like GitHub's: of two racing ref
  creates one gets 422 "Reference already exists"; a PATCH with
  force false that is not a fast-forward gets 422 "Update is not a fast
  forward".
* Knobs come from DIR/knobs.json, re-read on every request (write it
  atomically). See tests/standins/README.md.
* Exits by itself after --max-seconds (default 600) and on SIGTERM/SIGINT.

Python 3.11 standard library only.
"""

import argparse
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
REDACTED = "<redacted-token>"
MAX_BODY = 1024 * 1024
DOCS = "https://docs.github.com/rest"
BOT = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
HEX40 = re.compile(r"^[0-9a-f]{40}$")
REPO_RE = re.compile(r"^/repos/([^/]+)/([^/]+)(/.*)$")


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def git_commit_sha(tree, parents, author_line, message):
    """The SHA-1 git itself gives this commit object."""
    lines = [f"tree {tree}"] + [f"parent {p}" for p in parents]
    lines += [f"author {author_line}", f"committer {author_line}", "", message]
    body = "\n".join(lines).encode()
    return hashlib.sha1(b"commit %d\x00" % len(body) + body).hexdigest()


def user(base):
    """The github-actions[bot] user, as a simple-user."""
    login = BOT
    u = f"{base}/users/{login}"
    return {
        "login": login, "id": 41898282, "node_id": "MDM6Qm90NDE4OTgyODI=",
        "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
        "gravatar_id": "", "url": u, "html_url": f"https://github.com/apps/github-actions",
        "followers_url": f"{u}/followers", "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}", "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions", "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos", "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events", "type": "Bot",
        "user_view_type": "public", "site_admin": False,
    }


class Reply(Exception):
    """An answer: status, JSON body, extra headers."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def error(status, message, doc="", validation=False):
    # basic-error carries `status`; validation-error (422) has no such field.
    body = {"message": message, "documentation_url": f"{DOCS}{doc}"}
    if not validation:
        body["status"] = str(status)
    return Reply(status, body)


class Repo:
    """One repository's refs, commits and deployments."""

    def __init__(self, slug, base):
        self.slug, self.base = slug, base
        self.refs, self.commits, self.deployments, self.statuses = {}, {}, [], {}
        self.next_id = 1

    def url(self, tail):
        return f"{self.base}/repos/{self.slug}{tail}"

    def dump(self):
        return {"refs": self.refs, "commits": self.commits,
                "deployments": self.deployments, "statuses": self.statuses}

    # ---- git ----
    def ref_json(self, name):
        sha = self.refs[name]
        return {"ref": name, "node_id": "REF_" + hashlib.sha1(name.encode()).hexdigest()[:16],
                "url": self.url(f"/git/{name}"),
                "object": {"type": "commit", "sha": sha, "url": self.url(f"/git/commits/{sha}")}}

    def commit_json(self, sha):
        c = self.commits[sha]
        who = {"name": BOT, "email": BOT_EMAIL, "date": c["date"]}
        return {
            "sha": sha, "node_id": "C_" + sha[:20], "url": self.url(f"/git/commits/{sha}"),
            "html_url": f"https://github.com/{self.slug}/commit/{sha}",
            "author": who, "committer": dict(who), "message": c["message"],
            "tree": {"sha": c["tree"], "url": self.url(f"/git/trees/{c['tree']}")},
            "parents": [{"sha": p, "url": self.url(f"/git/commits/{p}"),
                         "html_url": f"https://github.com/{self.slug}/commit/{p}"} for p in c["parents"]],
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None, "verified_at": None},
        }

    def descends(self, sha, ancestor):
        seen, todo = set(), [sha]
        while todo:
            s = todo.pop()
            if s == ancestor:
                return True
            if s in seen or s not in self.commits:
                continue
            seen.add(s)
            todo.extend(self.commits[s]["parents"])
        return False

    def create_commit(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not isinstance(body.get("tree"), str):
            raise error(422, "Invalid request.\n\n\"message\", \"tree\" weren't supplied.", "/git/commits#create-a-commit", True)
        if body["tree"] != EMPTY_TREE:
            raise error(422, "Tree SHA does not exist", "/git/commits#create-a-commit", True)
        parents = body.get("parents") or []
        if not isinstance(parents, list) or any(p not in self.commits for p in parents):
            raise error(422, "Parent SHA does not exist or is not a commit object", "/git/commits#create-a-commit", True)
        ts = int(time.time())
        author_line = f"{BOT} <{BOT_EMAIL}> {ts} +0000"
        sha = git_commit_sha(body["tree"], parents, author_line, body["message"])
        self.commits[sha] = {"message": body["message"], "tree": body["tree"], "parents": parents,
                             "date": now_iso()}
        return Reply(201, self.commit_json(sha), {"Location": self.url(f"/git/commits/{sha}")})

    def create_ref(self, body):
        ref = body.get("ref") if isinstance(body, dict) else None
        sha = body.get("sha") if isinstance(body, dict) else None
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise error(422, "Reference name is invalid", "/git/refs#create-a-reference", True)
        if sha not in self.commits:
            raise error(422, "Object does not exist", "/git/refs#create-a-reference", True)
        if ref in self.refs:
            raise error(422, "Reference already exists", "/git/refs#create-a-reference", True)
        self.refs[ref] = sha
        return Reply(201, self.ref_json(ref), {"Location": self.url(f"/git/{ref}")})

    def update_ref(self, ref, body):
        sha = body.get("sha") if isinstance(body, dict) else None
        if ref not in self.refs:
            raise error(422, "Reference does not exist", "/git/refs#update-a-reference", True)
        if sha not in self.commits:
            raise error(422, "Object does not exist", "/git/refs#update-a-reference", True)
        if not body.get("force", False) and not self.descends(sha, self.refs[ref]):
            raise error(422, "Update is not a fast forward", "/git/refs#update-a-reference", True)
        self.refs[ref] = sha
        return Reply(200, self.ref_json(ref))

    # ---- deployments ----
    def deployment_json(self, d):
        return {k: d[k] for k in (
            "url", "id", "node_id", "sha", "ref", "task", "payload", "original_environment",
            "environment", "description", "creator", "created_at", "updated_at", "statuses_url",
            "repository_url", "transient_environment", "production_environment",
            "performed_via_github_app")}

    def create_deployment(self, body, branches):
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            raise error(422, "Invalid request.\n\n\"ref\" wasn't supplied.", "/deployments/deployments#create-a-deployment", True)
        ref = body["ref"]
        if HEX40.match(ref):
            sha = ref
        elif ref in branches:
            sha = hashlib.sha1(ref.encode()).hexdigest()
        else:
            raise error(422, f"No ref found for: {ref}", "/deployments/deployments#create-a-deployment", True)
        env = body.get("environment", "production")
        i = self.next_id
        self.next_id += 1
        t = now_iso()
        d = {
            "url": self.url(f"/deployments/{i}"), "id": i, "node_id": f"DE_{i:08d}", "sha": sha,
            "ref": ref, "task": body.get("task", "deploy"), "payload": body.get("payload", {}),
            "original_environment": env, "environment": env,
            "description": body.get("description", ""), "creator": user(self.base),
            "created_at": t, "updated_at": t,
            "statuses_url": self.url(f"/deployments/{i}/statuses"),
            "repository_url": self.url(""),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(body.get("production_environment", env == "production")),
            "performed_via_github_app": None,
        }
        self.deployments.append(d)
        self.statuses[str(i)] = []
        return Reply(201, self.deployment_json(d))

    def list_deployments(self, q):
        ds = [d for d in reversed(self.deployments)
              if all(q.get(k) in (None, d[k]) for k in ("environment", "sha", "ref", "task"))]
        per_page = max(1, min(100, int(q.get("per_page") or 30)))
        page = max(1, int(q.get("page") or 1))
        chunk = ds[(page - 1) * per_page: page * per_page]
        headers = {}
        last = max(1, -(-len(ds) // per_page))
        if page < last:
            base = self.url("/deployments")
            rest = "".join(f"&{k}={q[k]}" for k in ("environment",) if q.get(k))
            headers["Link"] = (f'<{base}?per_page={per_page}&page={page + 1}{rest}>; rel="next", '
                               f'<{base}?per_page={per_page}&page={last}{rest}>; rel="last"')
        return Reply(200, [self.deployment_json(d) for d in chunk], headers)

    def create_status(self, dep_id, body):
        d = next((d for d in self.deployments if str(d["id"]) == dep_id), None)
        if d is None:
            raise error(404, "Not Found", "/deployments/statuses#create-a-deployment-status")
        state = body.get("state") if isinstance(body, dict) else None
        if state not in STATES:
            raise error(422, "Validation Failed", "/deployments/statuses#create-a-deployment-status", True)
        t = now_iso()
        sid = sum(len(v) for v in self.statuses.values()) + 1
        env = body.get("environment", d["environment"])
        s = {
            "url": self.url(f"/deployments/{d['id']}/statuses/{sid}"), "id": sid,
            "node_id": f"DES_{sid:08d}", "state": state, "creator": user(self.base),
            "description": body.get("description", ""), "environment": env,
            "target_url": body.get("target_url", "") or body.get("log_url", ""),
            "created_at": t, "updated_at": t, "deployment_url": d["url"],
            "repository_url": self.url(""), "environment_url": body.get("environment_url", ""),
            "log_url": body.get("log_url", "") or body.get("target_url", ""),
            "performed_via_github_app": None,
        }
        self.statuses[str(d["id"])].insert(0, s)
        d["updated_at"] = t
        # auto_inactive (default true): a success marks the environment's
        # earlier non-transient, non-production deployments inactive.
        if state == "success" and body.get("auto_inactive", True):
            for other in self.deployments:
                if (other is not d and other["environment"] == d["environment"]
                        and not other["transient_environment"] and not other["production_environment"]):
                    sts = self.statuses[str(other["id"])]
                    if sts and sts[0]["state"] == "success":
                        sid += 1
                        sts.insert(0, dict(sts[0], id=sid, state="inactive", node_id=f"DES_{sid:08d}",
                                           url=self.url(f"/deployments/{other['id']}/statuses/{sid}")))
        return Reply(201, s, {"Location": s["url"]})

    def list_statuses(self, dep_id, q):
        if dep_id not in self.statuses:
            raise error(404, "Not Found", "/deployments/statuses#list-deployment-statuses")
        per_page = max(1, min(100, int(q.get("per_page") or 30)))
        page = max(1, int(q.get("page") or 1))
        return Reply(200, self.statuses[dep_id][(page - 1) * per_page: page * per_page])


class Standin:
    def __init__(self, directory, token, stop):
        self.dir, self.token, self.stop = directory, token, stop
        self.lock = threading.Lock()  # every read and change of the repos, the counters, the log
        self.repos = {}
        self.counters = {}  # knob name -> answers given so far
        self.base = ""

    def knobs(self):
        try:
            with open(os.path.join(self.dir, "knobs.json")) as f:
                k = json.load(f)
            return k if isinstance(k, dict) else {}
        except (OSError, ValueError):
            return {}

    def repo(self, owner, name):
        slug = f"{owner}/{name}"
        if slug not in self.repos:
            self.repos[slug] = Repo(slug, self.base)
        return self.repos[slug]

    def save(self):
        atomic_write(os.path.join(self.dir, "repo.json"),
                     json.dumps({s: r.dump() for s, r in self.repos.items()}, indent=1))

    def redact(self, text):
        if self.token and self.token in text:
            return text.replace(self.token, REDACTED), True
        return text, False

    def log(self, method, path, query, auth_ok, raw, status, answer):
        path, leak1 = self.redact(path)
        query, leak2 = self.redact(query)
        text, leak3 = self.redact(raw.decode("utf-8", errors="replace")) if raw else ("", False)
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        answer, _ = self.redact(json.dumps(answer))
        rec = {"method": method, "path": path, "query": query, "auth_ok": auth_ok,
               "token_in_request": leak1 or leak2 or leak3, "body": body, "status": status,
               "answer": json.loads(answer), "t": time.time()}
        with open(os.path.join(self.dir, "requests.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")

    def take(self, name, n):
        """Whether the knob `name` (good for `n` answers) answers this one."""
        used = self.counters.get(name, 0)
        if used < n:
            self.counters[name] = used + 1
            return True
        return False

    def rate_headers(self, remaining=4999, reset=None):
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(5000 - remaining),
                "x-ratelimit-reset": str(reset or int(time.time()) + 3600),
                "x-ratelimit-resource": "core"}

    def knob_reply(self, method, path, k):
        """A knob's answer for this request, if one applies (under the lock)."""
        for f in k.get("forbid") or []:
            if f.get("method", method) == method and re.search(f.get("path", ""), path):
                return error(f.get("status", 403), f.get("message", "Resource not accessible by integration"),
                             "/deployments/deployments#create-a-deployment" if "deployments" in path else "/git/refs")
        rl = k.get("rate_limit")
        if rl and re.search(rl.get("path", ""), path) and self.take("rate_limit", int(rl.get("count", 1))):
            kind = rl.get("kind", "retry-after")
            if kind == "primary":
                r = error(403, "API rate limit exceeded for installation ID 1.", "/overview/rate-limits-for-the-rest-api")
                r.headers = self.rate_headers(0, int(time.time()) + int(rl.get("reset_in", 1)))
                return r
            r = error(int(rl.get("status", 403)),
                      "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                      "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits")
            r.headers = {"retry-after": str(rl.get("retry_after", 1))}
            return r
        f5 = k.get("fail_500")
        if f5 and re.search(f5.get("path", ""), path) and self.take("fail_500", int(f5.get("count", 1))):
            return error(500, "Server Error")
        return None

    def handle(self, method, path, query, body, k):
        m = REPO_RE.match(path)
        if not m:
            raise error(404, "Not Found")
        repo, tail = self.repo(m.group(1), m.group(2)), m.group(3)
        q = {key: v[0] for key, v in parse_qs(query).items()}
        branches = k.get("branches") or ["main"]
        if method == "GET" and tail.startswith("/git/ref/"):
            name = "refs/" + tail[len("/git/ref/"):]
            if name not in repo.refs:
                raise error(404, "Not Found", "/git/refs#get-a-reference")
            return Reply(200, repo.ref_json(name))
        if method == "POST" and tail == "/git/refs":
            return repo.create_ref(body)
        if method == "PATCH" and tail.startswith("/git/refs/"):
            return repo.update_ref("refs/" + tail[len("/git/refs/"):], body if isinstance(body, dict) else {})
        if method == "POST" and tail == "/git/commits":
            return repo.create_commit(body)
        m2 = re.match(r"^/git/commits/([0-9a-f]{40})$", tail)
        if method == "GET" and m2:
            if m2.group(1) not in repo.commits:
                raise error(404, "Not Found", "/git/commits#get-a-commit-object")
            return Reply(200, repo.commit_json(m2.group(1)))
        if tail == "/deployments":
            if method == "POST":
                return repo.create_deployment(body, branches)
            if method == "GET":
                return repo.list_deployments(q)
        m3 = re.match(r"^/deployments/(\d+)/statuses$", tail)
        if m3:
            if method == "POST":
                return repo.create_status(m3.group(1), body if isinstance(body, dict) else {})
            if method == "GET":
                return repo.list_statuses(m3.group(1), q)
        raise error(404, "Not Found")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "github-api-standin/1"

    def log_message(self, fmt, *args):  # quiet: requests.jsonl is the log
        pass

    def answer(self):
        s = self.server.standin
        parts = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(n, MAX_BODY)) if n > 0 else b""
        auth = self.headers.get("Authorization") or ""
        scheme, _, tok = auth.partition(" ")
        auth_ok = bool(s.token) and scheme.lower() in ("bearer", "token") and tok == s.token
        with s.lock:
            s.base = f"http://127.0.0.1:{self.server.server_address[1]}"
            k = s.knobs()
            try:
                if not auth_ok:
                    raise error(401, "Bad credentials")
                r = s.knob_reply(self.command, parts.path, k)
                if r is None:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        raise error(400, "Problems parsing JSON")
                    r = s.handle(self.command, parts.path, parts.query, body, k)
                    if self.command != "GET":
                        s.save()
            except Reply as e:
                r = e
            if not any(h.lower().startswith("x-ratelimit") for h in r.headers):
                r.headers.update(s.rate_headers())
            s.log(self.command, parts.path, parts.query, auth_ok, raw, r.status, r.body)
        delay = float(k.get("delay_seconds", 0) or 0)
        if delay > 0:
            s.stop.wait(min(delay, self.server.max_seconds))
        data = json.dumps(r.body).encode()
        self.send_response(r.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for h, v in r.headers.items():
            self.send_header(h, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = answer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="working folder: port, knobs.json, repo.json, requests.jsonl")
    ap.add_argument("--token-env", required=True, metavar="VAR", help="env var holding the token to require")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long (default 600)")
    args = ap.parse_args()
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    token = os.environ.get(args.token_env)
    if not token:
        ap.error(f"--token-env: environment variable {args.token_env} is not set or empty")
    stop = threading.Event()

    class Server(ThreadingHTTPServer):
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.standin = Standin(directory, token, stop)
    server.max_seconds = args.max_seconds
    got_signal = []
    signal.signal(signal.SIGTERM, lambda *_: got_signal.append(1))
    signal.signal(signal.SIGINT, lambda *_: got_signal.append(1))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    tmp = os.path.join(directory, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, os.path.join(directory, "port"))
    deadline = time.monotonic() + args.max_seconds
    while not got_signal and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
