#!/usr/bin/env python3
"""Writes an OCI image layout from a JSON description, for togo's tests.

Usage: make_oci.py DESCRIPTION.json  (or "-" for stdin; a JSON list of
descriptions writes several layouts)

Prints, as JSON on stdout, what it wrote: for each image or index (in
order, an index before what it holds) its digests, sizes and blob paths.

The description:

  {"layout": "/path/dir",          the layout directory (created)
   "images": [IMAGE, ...]}         the entries of index.json, in order

  IMAGE (a manifest):
   {"ref": "v1",                   org.opencontainers.image.ref.name; absent: none
    "platform": "linux/amd64",     in the descriptor (and the config's os/arch)
    "layers": [LAYER, ...],        bottom first
    "config": {"Entrypoint": [...], "Cmd": [...], "Env": [...], "WorkingDir": "/x",
               "User": "1000", "ExposedPorts": {"80/tcp": {}}},
    -- deliberate damage:
    "diff_ids": ["sha256:..."],        replaces the config's rootfs.diff_ids
    "manifest_media_type": "...",      the manifest document's mediaType
    "descriptor_media_type": "...",    the mediaType of the descriptor naming it
    "manifest_raw": {...},             the whole manifest document, as given
    "config_replace": [OLD, NEW]}      the config blob's text changed after hashing

  IMAGE (an index): {"ref": ..., "index": [IMAGE, ...]}   (nests)

  LAYER:
   {"compression": "gzip" | "zstd" | "none",
    "base": "/path/rootfs.tar.gz",   every entry of that tarball first
    "entries": [["file", NAME, TEXT, MODE?], ["dir", NAME, MODE?],
                ["sym", NAME, TARGET], ["hard", NAME, TARGET],
                ["wh", "a/b"]          (a/.wh.b: deletes a/b below),
                ["opq", "a"]           (a/.wh..wh..opq: a's lower content is hidden),
                ["zeros", NAME, SIZE]  (a file of SIZE zero bytes, streamed)],
    -- deliberate damage, after the digest, size and diff_id are taken:
    "stored_entries": [...],         the blob holds these entries instead
    "truncate": N}                   the blob loses its last N bytes

Everything is deterministic (mtime, owners, gzip header), so the same layer
described twice is the same blob, in one layout or in two.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
MTIME = 1700000000
# Layers written so far: description -> (descriptor, blob path).
WRITTEN = {}
CHUNK = 1 << 20


class Zeros(io.RawIOBase):
    """`size` zero bytes, never all in memory."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left
        n = min(n, self.left, CHUNK)
        self.left -= n
        return bytes(n)


class HashingWriter:
    """Passes the uncompressed tar on to `target`, hashing it (the diff_id)."""

    def __init__(self, target):
        self.target = target
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, b):
        self.hash.update(b)
        self.count += len(b)
        self.target.write(b)
        return len(b)

    def tell(self):
        return self.count

    def digest(self):
        return "sha256:" + self.hash.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
    return "sha256:" + h.hexdigest()


class Layout:
    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=root, prefix=".make-oci-")
        self.report = []

    def path_of(self, digest):
        return os.path.join("blobs", "sha256", digest.split(":", 1)[1])

    def put_bytes(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, self.path_of(digest)), "wb") as f:
            f.write(data)
        return {"digest": digest, "size": len(data), "path": self.path_of(digest)}

    def put_file(self, tmp_path):
        digest = sha256_file(tmp_path)
        size = os.path.getsize(tmp_path)
        os.replace(tmp_path, os.path.join(self.root, self.path_of(digest)))
        return {"digest": digest, "size": size, "path": self.path_of(digest)}

    # ---- layers ----

    def layer_tar(self, layer, sink):
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.GNU_FORMAT) as out:
            def add(ti, data=None):
                ti.mtime = MTIME
                ti.uname = ti.gname = ""
                out.addfile(ti, data)

            if layer.get("base"):
                with tarfile.open(layer["base"]) as b:
                    for m in b.getmembers():
                        out.addfile(m, b.extractfile(m) if m.isreg() else None)
            for e in layer.get("entries", []):
                kind, name = e[0], e[1]
                ti = tarfile.TarInfo(name)
                if kind == "file":
                    data = e[2].encode()
                    ti.size = len(data)
                    ti.mode = e[3] if len(e) > 3 else 0o644
                    add(ti, io.BytesIO(data))
                elif kind == "zeros":
                    ti.size = e[2]
                    ti.mode = 0o644
                    add(ti, Zeros(e[2]))
                elif kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    ti.mode = e[2] if len(e) > 2 else 0o755
                    add(ti)
                elif kind == "sym":
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = e[2]
                    ti.mode = 0o777
                    add(ti)
                elif kind == "hard":
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = e[2]
                    add(ti)
                elif kind in ("wh", "opq"):
                    d, _, base = name.rpartition("/")
                    leaf = ".wh." + base if kind == "wh" else base + "/.wh..wh..opq"
                    ti = tarfile.TarInfo((d + "/" if d else "") + leaf)
                    add(ti, io.BytesIO(b""))
                else:
                    raise SystemExit("make_oci: unknown entry kind " + kind)

    def put_layer(self, layer):
        damaged = "stored_entries" in layer or layer.get("truncate")
        key = json.dumps(layer, sort_keys=True)
        if not damaged and key in WRITTEN:
            # The same layer again (the base of every image): one blob.
            d, src = WRITTEN[key]
            path = os.path.join(self.root, d["path"])
            if not os.path.exists(path):
                shutil.copyfile(src, path)
            return dict(d)
        d = self.write_layer(layer)
        path = os.path.join(self.root, d["path"])
        if not damaged:
            WRITTEN[key] = (dict(d), path)
        if "stored_entries" in layer:
            # Damage: the blob under this digest holds other entries.
            other = self.write_layer(dict(layer, entries=layer["stored_entries"]))
            os.replace(os.path.join(self.root, other["path"]), path)
        if layer.get("truncate"):
            os.truncate(path, d["size"] - layer["truncate"])
        return d

    def write_layer(self, layer):
        comp = layer.get("compression", "gzip")
        if comp not in MT_LAYER:
            raise SystemExit("make_oci: unknown compression " + comp)
        blob = os.path.join(self.tmp, "layer.blob")
        with open(blob, "wb") as raw:
            zstd = None
            if comp == "gzip":
                target = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                       compresslevel=6)
            elif comp == "zstd":
                zstd = subprocess.Popen(["zstd", "-q", "-3", "-c"], stdin=subprocess.PIPE,
                                        stdout=raw)
                target = zstd.stdin
            else:
                target = raw
            sink = HashingWriter(target)
            self.layer_tar(layer, sink)
            if target is not raw:
                target.close()
            if zstd and zstd.wait() != 0:
                raise SystemExit("make_oci: zstd failed")
        d = self.put_file(blob)
        d["mediaType"] = MT_LAYER[comp]
        d["diff_id"] = sink.digest()
        return d

    # ---- documents ----

    def put_image(self, img):
        """Writes an image (or index); returns its descriptor."""
        platform = img.get("platform", "linux/amd64").split("/")
        plat = {"os": platform[0], "architecture": platform[1]}
        if len(platform) > 2:
            plat["variant"] = platform[2]
        entry = {}
        self.report.append(entry)
        if "index" in img:
            children = [self.put_image(child) for child in img["index"]]
            doc = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": children}
            desc = self.put_bytes(json.dumps(doc).encode())
            entry.update({"index": desc["digest"], "path": desc["path"]})
            out = {"mediaType": MT_INDEX, "digest": desc["digest"], "size": desc["size"]}
        else:
            layers = [self.put_layer(l) for l in img.get("layers", [])]
            config = {
                "created": "2023-11-14T22:13:20Z",
                "architecture": plat["architecture"],
                "os": plat["os"],
                "config": img.get("config", {}),
                "rootfs": {"type": "layers",
                           "diff_ids": img.get("diff_ids", [l["diff_id"] for l in layers])},
                "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make_oci.py"}
                            for _ in layers],
            }
            if "variant" in plat:
                config["variant"] = plat["variant"]
            cdesc = self.put_bytes(json.dumps(config).encode())
            if img.get("config_replace"):
                # Damage: the config under this digest says something else.
                old, new = img["config_replace"]
                path = os.path.join(self.root, cdesc["path"])
                with open(path) as f:
                    text = f.read()
                with open(path, "w") as f:
                    f.write(text.replace(old, new))
            manifest = img.get("manifest_raw") or {
                "schemaVersion": 2,
                "mediaType": img.get("manifest_media_type", MT_MANIFEST),
                "config": {"mediaType": MT_CONFIG, "digest": cdesc["digest"],
                           "size": cdesc["size"]},
                "layers": [{"mediaType": l["mediaType"], "digest": l["digest"],
                            "size": l["size"]} for l in layers],
            }
            mdesc = self.put_bytes(json.dumps(manifest).encode())
            entry.update({"manifest": mdesc["digest"], "manifest_path": mdesc["path"],
                          "config": cdesc["digest"], "config_path": cdesc["path"],
                          "layers": layers})
            out = {"mediaType": img.get("descriptor_media_type", MT_MANIFEST),
                   "digest": mdesc["digest"], "size": mdesc["size"]}
        out["platform"] = plat
        if img.get("ref"):
            out["annotations"] = {"org.opencontainers.image.ref.name": img["ref"]}
        return out

    def finish(self, images):
        index = {"schemaVersion": 2, "mediaType": MT_INDEX,
                 "manifests": [self.put_image(i) for i in images]}
        # The top level names no platform unless an image says so: a plain
        # layout, as skopeo and umoci write it.
        for m, i in zip(index["manifests"], images):
            if "platform" not in i:
                del m["platform"]
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(index, f)
        with open(os.path.join(self.root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        shutil.rmtree(self.tmp)


def main():
    src = sys.stdin if sys.argv[1] == "-" else open(sys.argv[1])
    desc = json.load(src)
    reports = []
    for d in desc if isinstance(desc, list) else [desc]:
        layout = Layout(d["layout"])
        layout.finish(d["images"])
        reports.append({"layout": d["layout"], "images": layout.report})
    json.dump(reports if isinstance(desc, list) else reports[0], sys.stdout)
    print()


if __name__ == "__main__":
    main()
