#!/usr/bin/env bash
# Usage: bench/import.sh [build-dir]
#
# Image import against plain tar on the same disk: a Debian root filesystem
# tarball (mmdebstrap minbase, about 170 MB unpacked) is unpacked by
# `tar -x` and imported by `togo image import`, interleaved by hyperfine.
# togo also hashes the blob and the uncompressed stream, keeps a copy of the
# blob, and makes everything durable (syncfs) before naming it, so `tar -x`
# followed by `sync -f` is shown too. A second import of the same content
# into the same store is timed, and the bytes it added are counted (should
# be 0: the layer is stored once).
#
# Environment:
#   RUNS=5         timed runs per command
#   ROOTFS=FILE    use this root filesystem tarball instead of building one
#   KEEP=1         keep the work directory
# Run as root (tar keeps owners; togo imports with owners).
set -euo pipefail

BENCH=import.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
bench_start "${1:-build}" hyperfine zstd
debian_rootfs
size=$(stat -c %s "$tarball")
((size >= 100 * 1024 * 1024)) || echo "note: the tarball is only $((size >> 20)) MiB" >&2
zstd -q -T0 -3 -c "$tarball" >"$work/rootfs.tar.zst"

w=$(q "$work") t=$(q "$tarball") g=$(q "$togo")
runs=${RUNS:-5}
hyperfine -N --style basic --runs "$runs" --export-json "$work/result.json" \
  --prepare "rm -rf $w/x" -n tar "sh -c 'mkdir $w/x && tar -xf $t -C $w/x'" \
  --prepare "rm -rf $w/x" -n tar+sync "sh -c 'mkdir $w/x && tar -xf $t -C $w/x && sync -f $w/x'" \
  --prepare "rm -rf $w/s" -n togo "$g --store $w/s image import $t --name deb" \
  --prepare "rm -rf $w/x" -n tar.zst "sh -c 'mkdir $w/x && tar --zstd -xf $w/rootfs.tar.zst -C $w/x'" \
  --prepare "rm -rf $w/s" -n togo.zst "$g --store $w/s image import $w/rootfs.tar.zst --name deb" \
  >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; die "hyperfine failed"; }

# The same content again, into a store that has it.
rm -rf "$work/s"
"$togo" --store "$work/s" image import "$tarball" --name deb >/dev/null
before=$(du -sb "$work/s/layers" "$work/s/blobs" | awk '{s += $1} END {print s}')
hyperfine -N --style basic --runs "$runs" --export-json "$work/again.json" \
  -n togo-again "$g --store $w/s image import $t --name deb" >>"$work/hyperfine.log" 2>&1
after=$(du -sb "$work/s/layers" "$work/s/blobs" | awk '{s += $1} END {print s}')

python3 - "$work/result.json" "$work/again.json" "$size" "$((after - before))" <<'EOF'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
res.update({r["command"]: r for r in json.load(open(sys.argv[2]))["results"]})
size, added = int(sys.argv[3]), int(sys.argv[4])
med = {k: statistics.median(v["times"]) for k, v in res.items()}
print(f"input: {size / 2**20:.0f} MiB tar; medians of {len(res['tar']['times'])} runs")
print(f"{'command':12} {'median s':>9} {'MiB/s':>7}")
for k in ["tar", "tar+sync", "togo", "tar.zst", "togo.zst", "togo-again"]:
    print(f"{k:12} {med[k]:9.3f} {size / 2**20 / med[k]:7.0f}")
print(f"togo speed / tar -x speed         = {med['tar'] / med['togo']:.2f} (target >= 0.8)")
print(f"togo speed / tar -x + sync speed  = {med['tar+sync'] / med['togo']:.2f}")
print(f"togo.zst speed / tar --zstd speed = {med['tar.zst'] / med['togo.zst']:.2f}")
print(f"second import of the same content added {added} bytes of layers and blobs")
EOF
