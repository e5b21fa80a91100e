"""A Bearer-token issuer for the bench registry (bench/registry.sh).

distribution 2.8.2's `auth.token` accepts an ES256 JWT whose header carries
`x5c` = [base64 DER of the signing cert] when that cert is in the
registry's `rootcertbundle`, with `aud` a string (see
shared/reference/registry/README.md). This issuer makes a fresh P-256 key
and self-signed cert, writes the cert to DIR/rootbundle.pem, binds
127.0.0.1 on a port of the kernel's choosing (written to DIR/issuer.port),
and answers GET /token?service=...&scope=repository:NAME:ACTIONS.

Anonymous pull is granted to anyone; push only to requests carrying
`X-Bench-Setup: 1` (the bench's own uploads). Every token request is
appended to DIR/tokens.log as one line `setup|client SCOPE USER-AGENT`, so
the bench can count the requests a tool made during one run. It stops by
itself after --lifetime seconds.

    python token_issuer.py DIR [--lifetime 1800]
"""

import base64
import datetime
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

SERVICE = "bench-registry"
ISSUER = "bench-issuer"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_cert(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runbook bench token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


class Issuer:
    def __init__(self, directory: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        cert = make_cert(self.key)
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        with open(os.path.join(directory, "rootbundle.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        self.log = open(os.path.join(directory, "tokens.log"), "a", buffering=1)
        self.lock = threading.Lock()

    def jwt(self, repo: str, actions: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]}
        claims = {
            "iss": ISSUER, "sub": "bench", "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8),
            "access": [{"type": "repository", "name": repo, "actions": actions}] if repo else [],
        }
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def record(self, who: str, scope: str, agent: str):
        with self.lock:
            self.log.write(f"{who} {scope or '-'} {agent.replace(' ', '_') or '-'}\n")


def handler(issuer: Issuer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the count lives in tokens.log
            pass

        def reply(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path != "/token":
                self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                return
            q = parse_qs(url.query)
            setup = self.headers.get("X-Bench-Setup") == "1"
            scope = (q.get("scope") or [""])[0]
            issuer.record("setup" if setup else "client", scope, self.headers.get("User-Agent", ""))
            repo, actions = "", []
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                repo = parts[1]
                wanted = parts[2].split(",")
                actions = [a for a in wanted if a == "pull" or setup]
            token = issuer.jwt(repo, actions)
            self.reply(200, {"token": token, "access_token": token, "expires_in": 300})

    return Handler


def main():
    directory = sys.argv[1]
    lifetime = 1800
    if "--lifetime" in sys.argv:
        lifetime = int(sys.argv[sys.argv.index("--lifetime") + 1])
    issuer = Issuer(directory)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(issuer))
    server.daemon_threads = True
    threading.Timer(lifetime, server.shutdown).start()
    tmp = os.path.join(directory, "issuer.port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, os.path.join(directory, "issuer.port"))
    server.serve_forever()


if __name__ == "__main__":
    main()
