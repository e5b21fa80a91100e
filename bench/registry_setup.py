"""Fill the bench registry (bench/registry.sh) over plain HTTP.

    python registry_setup.py HOSTPORT REPO REALM KEY.pem OUT_DIR

Makes 100 tags: 50 present (40-hex SHAs, one small image each; even ones
OCI manifests, odd ones Docker v2 manifests, as buildx and docker push
write them) and 50 absent SHAs. Pushes the 50 images (POST + PUT blob
uploads, PUT manifest) with a push token from the bench issuer (header
`X-Bench-Setup: 1`, not counted as a client request), then signs the first
image in cosign's exact classic layout (as Registry::cosign_sign in
tests/it/support/cosign.rs does): the simple-signing payload as a blob,
`{}` as config, an OCI manifest at tag `sha256-<hex>.sig` whose layer
carries the base64 DER ECDSA P-256 signature over the exact payload bytes
in `dev.cosignproject.cosign/signature`.

Writes OUT_DIR/tags.json (the 100 tags, present and absent alternating),
present.txt, absent.txt, signed.json ({image, digest, tag, unsigned_digest}) and signer.pub
(the PEM public key of KEY.pem).
"""

import base64
import hashlib
import http.client
import json
import os
import sys
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PRESENT = 50
ABSENT = 50


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    def __init__(self, hostport: str, repo: str, realm: str):
        self.hostport, self.repo = hostport, repo
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=20)
        r = urlsplit(realm)
        ic = http.client.HTTPConnection(r.hostname, r.port, timeout=20)
        ic.request("GET", f"{r.path}?service=bench-registry&scope=repository:{repo}:pull,push",
                   headers={"X-Bench-Setup": "1"})
        resp = ic.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        self.token = json.loads(body)["token"]
        ic.close()

    def req(self, method, path, body=b"", headers=None, want=(200, 201, 202)):
        h = {"Authorization": f"Bearer {self.token}", "Content-Length": str(len(body))}
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status not in want:
            raise SystemExit(f"{method} {path}: {resp.status} {data[:300]!r}")
        return resp

    def blob(self, data: bytes) -> str:
        d = sha256(data)
        resp = self.req("POST", f"/v2/{self.repo}/blobs/uploads/", want=(202,))
        loc = resp.getheader("Location")
        u = urlsplit(loc)
        path = u.path + "?" + (u.query + "&" if u.query else "") + "digest=" + d
        self.req("PUT", path, body=data, headers={"Content-Type": "application/octet-stream"}, want=(201,))
        return d

    def manifest(self, tag: str, media_type: str, data: bytes) -> str:
        resp = self.req("PUT", f"/v2/{self.repo}/manifests/{tag}", body=data,
                        headers={"Content-Type": media_type}, want=(201,))
        d = resp.getheader("Docker-Content-Digest")
        assert d == sha256(data), (d, sha256(data))
        return d

    def image(self, tag: str, oci: bool) -> str:
        layer = f"layer for {self.repo}:{tag}".encode()
        layer_d = self.blob(layer)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [layer_d]}}).encode()
        config_d = self.blob(config)
        if oci:
            mt, cmt, lmt = ("application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.oci.image.config.v1+json",
                            "application/vnd.oci.image.layer.v1.tar+gzip")
        else:
            mt, cmt, lmt = ("application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.docker.container.image.v1+json",
                            "application/vnd.docker.image.rootfs.diff.tar.gzip")
        m = json.dumps({"schemaVersion": 2, "mediaType": mt,
                        "config": {"mediaType": cmt, "digest": config_d, "size": len(config)},
                        "layers": [{"mediaType": lmt, "digest": layer_d, "size": len(layer)}]}).encode()
        return self.manifest(tag, mt, m)

    def cosign_sign(self, image_digest: str, key) -> None:
        payload = ('{"critical":{"identity":{"docker-reference":"%s/%s"},"image":{"docker-manifest-digest":"%s"},'
                   '"type":"cosign container image signature"},"optional":null}'
                   % (self.hostport, self.repo, image_digest)).encode()
        sig = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        payload_d = self.blob(payload)
        config_d = self.blob(b"{}")
        m = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                        "digest": payload_d, "size": len(payload),
                        "annotations": {"dev.cosignproject.cosign/signature": sig}}],
        }).encode()
        hexd = image_digest.split(":", 1)[1]
        self.manifest(f"sha256-{hexd}.sig", "application/vnd.oci.image.manifest.v1+json", m)


def main():
    hostport, repo, realm, key_path, out = sys.argv[1:6]
    present = [hashlib.sha1(f"bench present {i}".encode()).hexdigest() for i in range(PRESENT)]
    absent = [hashlib.sha1(f"bench absent {i}".encode()).hexdigest() for i in range(ABSENT)]
    reg = Registry(hostport, repo, realm)
    digests = [reg.image(t, oci=(i % 2 == 0)) for i, t in enumerate(present)]
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    reg.cosign_sign(digests[0], key)
    tags = [t for pair in zip(present, absent) for t in pair]
    json.dump(tags, open(os.path.join(out, "tags.json"), "w"))
    open(os.path.join(out, "present.txt"), "w").write("\n".join(present) + "\n")
    open(os.path.join(out, "absent.txt"), "w").write("\n".join(absent) + "\n")
    json.dump({"image": f"{hostport}/{repo}", "digest": digests[0], "tag": present[0],
               "unsigned_digest": digests[1]},
              open(os.path.join(out, "signed.json"), "w"))
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    open(os.path.join(out, "signer.pub"), "wb").write(pub)
    print(f"pushed {PRESENT} images to {hostport}/{repo}, signed {present[0]} ({digests[0]})")


if __name__ == "__main__":
    main()
