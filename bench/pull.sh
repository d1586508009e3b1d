#!/usr/bin/env bash
# Usage: bench/pull.sh [build-dir]
#
# `togo image pull` against `skopeo copy` to an OCI layout, from the same
# registry on loopback: Debian's docker-registry on 127.0.0.1 holds a Debian
# image (mmdebstrap minbase, one layer that skopeo gzips on the way in).
# hyperfine times, interleaved, each into a fresh directory:
#   togo          image pull: every blob verified and made durable, the
#                 layer kept packed (skopeo's peer)
#   togo-unpack   image pull --unpack: also gunzipped, checked against its
#                 diff_id, unpacked and synced (the old pull)
#   togo+create   image pull, then the first create, which unpacks
#   skopeo        skopeo copy to an OCI layout: blobs only
#   skopeo+umoci  skopeo copy, then umoci unpack of the image into a bundle
#                 (the peer of the two unpacking rows)
#
# Environment:
#   RUNS=5         timed runs per command
#   ROOTFS=FILE    use this root filesystem tarball instead of building one
#   KEEP=1         keep the work directory
# Run as root (umoci unpack and togo then keep owners).
set -euo pipefail

BENCH=pull.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
bench_start "${1:-build}" hyperfine skopeo umoci python3
registry_bin=/usr/bin/docker-registry
[ -x "$registry_bin" ] || die "$registry_bin is missing (apt-get install docker-registry)"

registry_pid=
stop_registry() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  bench_cleanup
}
trap stop_registry EXIT

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
up() { python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; }
for _ in $(seq 100); do up && break; sleep 0.1; done
up || { cat "$work/registry.log"; die "docker-registry did not start"; }

debian_rootfs

# An OCI layout holding the tarball as its one layer, copied into the registry.
python3 - "$tarball" "$work/layout" <<'EOF'
import hashlib, json, os, shutil, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out + "/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(out + "/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d, len(data)
h = hashlib.sha256()
with open(src, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
layer = "sha256:" + h.hexdigest()
shutil.copyfile(src, out + "/blobs/sha256/" + layer[7:])
size = os.path.getsize(src)
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

# Each run starts from fresh directories; the previous ones are moved aside,
# not deleted: on ext4, creating files right after deleting many makes the
# inode allocator scan for recently deleted inodes, which costs more than
# the unpacking itself and is not what a pull costs.
w=$(q "$work") g=$(q "$togo")
mkdir "$work/trash"
aside="sh -c 'for d in s o b; do mv $w/\$d $w/trash/\$d\$(date +%s%N) 2>/dev/null; done; true'"
pull="$g --store $w/s image pull $ref --name deb"
copy="skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://$ref oci:$w/o:v1"
runs=${RUNS:-5}
hyperfine -N --style basic --runs "$runs" --export-json "$work/result.json" --prepare "$aside" \
  -n togo "$pull" \
  -n togo-unpack "$pull --unpack" \
  -n togo+create "sh -c '$pull && $g --store $w/s create e --image deb'" \
  -n skopeo "$copy" \
  -n skopeo+umoci "sh -c '$copy && umoci unpack --image $w/o:v1 $w/b'" \
  >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; die "hyperfine failed"; }

python3 - "$work/result.json" "$(stat -c %s "$tarball")" "$blob" <<'EOF'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
tar, blob = int(sys.argv[2]), int(sys.argv[3])
med = {k: statistics.median(v["times"]) for k, v in res.items()}
print(f"image: {tar / 2**20:.0f} MiB tar, {blob / 2**20:.0f} MiB in the registry; "
      f"medians of {len(res['togo']['times'])} runs")
print(f"{'command':13} {'median s':>9} {'MiB/s (compressed)':>19}")
for k in ["togo", "togo-unpack", "togo+create", "skopeo", "skopeo+umoci"]:
    print(f"{k:13} {med[k]:9.3f} {blob / 2**20 / med[k]:19.0f}")
print(f"togo pull / skopeo copy speed = {med['skopeo'] / med['togo']:.2f} (target >= 0.8)")
print(f"togo pull --unpack / skopeo copy + umoci unpack speed = {med['skopeo+umoci'] / med['togo-unpack']:.2f}")
print(f"togo pull + create / skopeo copy + umoci unpack speed = {med['skopeo+umoci'] / med['togo+create']:.2f}")
EOF
