#!/usr/bin/env python3
"""Registries that misbehave on purpose, for tests of `togo image pull`.

  fake_registry.py serve SCENARIO
      Serves one tiny image (one uncompressed layer holding /hello) as any
      repository's tag v1, on 127.0.0.1 at a free port, spoiled as SCENARIO
      says: good, digest-mismatch, truncated, wrong-media-type, no-platform,
      garbage, stall, bad-diff-id, wrong-content-digest (tag v1 answers with
      a Docker-Content-Digest that is not its manifest's). Two scenarios are
      odd but valid: bearer
      (anonymous token auth, as Docker Hub does) and dup-layers (the same
      layer twice in one image).

  fake_registry.py proxy UPSTREAM_PORT RATE LOG
      Forwards GET and HEAD requests to 127.0.0.1:UPSTREAM_PORT, sending
      response bodies at RATE bytes per second per connection (0: as fast as
      it can), and appends one line per request to LOG:
      "<method> <path> range=<Range header or -> status=<n> bytes=<body bytes sent>
      start=<s> end=<s>", the times (CLOCK_MONOTONIC, in seconds) it began
      and finished answering.

Both print "port <n>" and then "ready" on stdout once they listen.
"""
import hashlib
import http.client
import http.server
import io
import json
import socketserver
import sys
import tarfile
import threading
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        data = b"hello from the fake registry\n" * 64
        ti = tarfile.TarInfo("hello")
        ti.size = len(data)
        ti.mode = 0o644
        ti.mtime = 1700000000
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build(scenario):
    """The blobs and manifests by digest, and what tag v1 answers."""
    layer = layer_tar()
    diff_id = digest(layer)
    if scenario == "bad-diff-id":
        diff_id = digest(b"something else")
    copies = 2 if scenario == "dup-layers" else 1
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id] * copies}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest(layer), "size": len(layer)}] * copies,
    }).encode()
    blobs = {digest(layer): layer, digest(config): config}
    manifests = {digest(manifest): (manifest, OCI_MANIFEST)}
    tag = (manifest, OCI_MANIFEST)
    if scenario == "digest-mismatch":
        spoiled = bytearray(layer)
        spoiled[600] ^= 0xFF
        blobs[digest(layer)] = bytes(spoiled)
    elif scenario == "wrong-media-type":
        tag = (config, OCI_CONFIG)
    elif scenario == "no-platform":
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest),
             "platform": {"os": "linux", "architecture": arch, **({"variant": v} if v else {})}}
            for arch, v in [("arm64", "v8"), ("s390x", "")]]}).encode()
        manifests[digest(index)] = (index, OCI_INDEX)
        tag = (index, OCI_INDEX)
    return blobs, manifests, tag, digest(layer)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(scenario):
    blobs, manifests, tag, layer_digest = build(scenario)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("fake registry: " + (fmt % args) + "\n")

        def handle(self):
            if scenario == "garbage":
                try:
                    self.request.recv(65536)
                    self.request.sendall(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
                except OSError:
                    pass
                return
            super().handle()

        def answer(self, status, body=b"", ctype="application/json", extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = self.path.split("?")[0]
            if scenario == "bearer":
                if path == "/token":
                    if "scope=repository%3Atest%2Fimg%3Apull" not in self.path:
                        return self.answer(400, b'{"details":"wrong scope"}')
                    return self.answer(200, b'{"token":"anonymous-token"}')
                if self.headers.get("Authorization") != "Bearer anonymous-token":
                    realm = "http://127.0.0.1:%d/token" % self.server.server_address[1]
                    return self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                       extra={"WWW-Authenticate": 'Bearer realm="%s",service="fake"' % realm})
            if path == "/v2/":
                return self.answer(200, b"{}")
            if "/manifests/" in path:
                ref = path.rsplit("/", 1)[1]
                doc = tag if ref == "v1" else manifests.get(ref)
                if not doc:
                    return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                named = digest(doc[0])
                if scenario == "wrong-content-digest" and ref == "v1":
                    named = digest(b"another manifest")
                return self.answer(200, doc[0], doc[1], {"Docker-Content-Digest": named})
            if "/blobs/" in path:
                d = path.rsplit("/", 1)[1]
                data = blobs.get(d)
                if data is None:
                    return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
                if d == layer_digest and scenario == "truncated" and self.command == "GET":
                    # Promises the whole blob, sends half, hangs up; a range
                    # request for the rest gets nothing more.
                    start = 0
                    rng = self.headers.get("Range", "")
                    if rng.startswith("bytes="):
                        start = int(rng[6:].split("-")[0])
                    self.send_response(206 if start else 200)
                    self.send_header("Content-Length", str(len(data) - start))
                    if start:
                        self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                    self.end_headers()
                    self.wfile.write(data[start:len(data) // 2] if start < len(data) // 2 else b"")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if d == layer_digest and scenario == "stall" and self.command == "GET":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(3600)
                    return
                return self.answer(200, data, "application/octet-stream", {"Docker-Content-Digest": d})
            return self.answer(404, b"{}")

    run(Server(("127.0.0.1", 0), Handler))


def proxy(upstream_port, rate, log_path):
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def record(self, status, sent, start):
            with log_lock, open(log_path, "a") as f:
                f.write("%s %s range=%s status=%d bytes=%d start=%.3f end=%.3f\n" % (
                    self.command, self.path, self.headers.get("Range", "-"), status, sent, start,
                    time.monotonic()))

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            began = time.monotonic()
            up = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            up.request(self.command, self.path, headers=headers)
            resp = up.getresponse()
            length = resp.getheader("Content-Length")
            body = None
            if length is None and self.command != "HEAD":
                body = resp.read()
                length = str(len(body))
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length"):
                    self.send_header(k, v)
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            sent = 0
            try:
                if self.command == "HEAD":
                    pass
                elif body is not None:
                    self.wfile.write(body)
                    sent = len(body)
                else:
                    start = time.monotonic()
                    while True:
                        chunk = resp.read(64 * 1024)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if rate > 0:
                            ahead = sent / rate - (time.monotonic() - start)
                            if ahead > 0:
                                time.sleep(ahead)
            except OSError:
                self.close_connection = True
            finally:
                self.record(resp.status, sent, began)
                up.close()

    run(Server(("127.0.0.1", 0), Handler))


def run(server):
    print("port %d" % server.server_address[1])
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
