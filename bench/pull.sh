#!/usr/bin/env bash
# Usage: bench/pull.sh [build-dir]
#
# `togo image pull` against `skopeo copy` to an OCI layout, from the same
# registry on loopback: Debian's docker-registry on 127.0.0.1 holds a Debian
# image (mmdebstrap minbase, one layer that skopeo gzips on the way in), and
# hyperfine times, interleaved, a pull into a fresh store and a copy into a
# fresh OCI layout directory. skopeo only stores the blobs; togo also
# verifies every blob, unpacks the layer, hashes the uncompressed stream
# against the config's diff_id and makes everything durable (syncfs) before
# naming the image. So `togo image import` of the same layer blob from a
# file is timed too: what a pull costs beyond it is the transfer.
#
# Environment:
#   RUNS=5         timed runs per command
#   ROOTFS=FILE    use this root filesystem tarball instead of building one
#   KEEP=1         keep the work directory
set -euo pipefail

die() { echo "pull.sh: $*" >&2; exit 1; }
q() { printf '%q' "$1"; }

build=${1:-build}
togo=$(realpath "$build/togo" 2>/dev/null) || die "$build/togo is missing (run scripts/build)"
for tool in hyperfine skopeo python3; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
registry_bin=/usr/bin/docker-registry
[ -x "$registry_bin" ] || die "$registry_bin is missing (apt-get install docker-registry)"

work=$(mktemp -d "${TMPDIR:-/tmp}/togo-bench-pull-XXXXXX")
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The registry, on a free loopback port.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: togo-bench-only
EOF
"$registry_bin" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
  sleep 0.1
done
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null ||
  { cat "$work/registry.log"; die "docker-registry did not start"; }

tarball=${ROOTFS:-}
if [ -z "$tarball" ]; then
  echo "building a Debian rootfs tarball with mmdebstrap (about a minute)..." >&2
  mmdebstrap --variant=minbase --quiet bookworm "$work/rootfs.tar" || die "mmdebstrap failed"
  tarball=$work/rootfs.tar
fi

# An OCI layout holding the tarball as its one layer, copied into the registry.
python3 - "$tarball" "$work/layout" <<'EOF'
import hashlib, json, os, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out + "/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d, len(data)
h = hashlib.sha256()
with open(src, "rb") as f, open(out + "/layer.tmp", "wb") as o:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
        o.write(chunk)
layer = "sha256:" + h.hexdigest()
os.rename(out + "/layer.tmp", out + "/blobs/sha256/" + layer[7:])
size = os.path.getsize(out + "/blobs/sha256/" + layer[7:])
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
cd, cs = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size}]}).encode()
md, ms = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
    open(out + "/index.json", "w"))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
ref=127.0.0.1:$port/bench/debian:v1
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://$ref" ||
  die "skopeo could not fill the registry"
rm -rf "$work/layout"
blob=$(du -sb "$work/registry/docker/registry/v2/blobs" | cut -f1)
layer=$(find "$work/registry/docker/registry/v2/blobs" -name data -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)

# Each run starts from a fresh directory; the previous one is moved aside,
# not deleted: on ext4, creating files right after deleting many makes the
# inode allocator scan for recently deleted inodes, which costs more than
# the unpacking itself and is not what a pull costs.
w=$(q "$work") g=$(q "$togo")
mkdir "$work/trash"
aside() { echo "sh -c 'mv $w/$1 $w/trash/\$(date +%s%N) 2>/dev/null; true'"; }
runs=${RUNS:-5}
hyperfine -N --style basic --runs "$runs" --export-json "$work/result.json" \
  --prepare "$(aside s)" -n togo "$g --store $w/s image pull $ref" \
  --prepare "$(aside s)" -n togo-import "$g --store $w/s image import $(q "$layer") --name deb" \
  --prepare "$(aside o)" -n skopeo \
  "skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://$ref oci:$w/o:v1" \
  >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; die "hyperfine failed"; }

python3 - "$work/result.json" "$(stat -c %s "$tarball")" "$blob" <<'EOF'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
tar, blob = int(sys.argv[2]), int(sys.argv[3])
med = {k: statistics.median(v["times"]) for k, v in res.items()}
print(f"image: {tar / 2**20:.0f} MiB tar, {blob / 2**20:.0f} MiB in the registry; "
      f"medians of {len(res['togo']['times'])} runs")
print(f"{'command':11} {'median s':>9} {'MiB/s (compressed)':>19}")
for k in ["togo", "togo-import", "skopeo"]:
    print(f"{k:11} {med[k]:9.3f} {blob / 2**20 / med[k]:19.0f}")
print(f"togo pull speed / skopeo copy speed = {med['skopeo'] / med['togo']:.2f} (target >= 0.8)")
print(f"transfer part of the pull (pull - import of the same blob) = {med['togo'] - med['togo-import']:.3f} s, "
      f"skopeo copy = {med['skopeo']:.3f} s")
EOF
