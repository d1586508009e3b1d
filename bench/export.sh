#!/usr/bin/env bash
# Usage: bench/export.sh [build-dir]
#
# Moving an environment to another store against moving its tree with tar
# and zstd. A Debian root filesystem (mmdebstrap minbase, about 160 MB) is
# imported, an env is created from it, and its /usr/share (about 60 MB) is
# copied to /root/share inside it, so that its writable layer holds that
# much. Then, interleaved (one run of each per round, the order reversed
# every other round):
#   togo        togo export ENV FILE, then togo import FILE into a fresh store
#   tar         tar -c TREE | zstd -T0 > FILE, then zstd -d | tar -x into a
#               fresh directory
#   tar+sync    the same, then sync -f: togo's import makes everything durable
# TREE is what the env holds, merged: the same rootfs tarball unpacked with
# the same copy of usr/share at root/share, so both sides move the same
# files (togo moves the image as its stored blob, and unpacks it as a layer
# besides keeping the blob; tar keeps no xattrs without --xattrs). The halves
# (export alone, import alone) are timed too. Prints medians, sizes and the
# ratio of speeds (target: togo >= 0.8 x tar).
#
# Environment:
#   RUNS=5         rounds (each runs every command once)
#   ROOTFS=FILE    use this root filesystem tarball instead of building one
#   KEEP=1         keep the work directory
# Run as root (tar keeps owners; togo imports with owners).
set -euo pipefail

BENCH=export.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
bench_start "${1:-build}" hyperfine zstd
debian_rootfs

echo "preparing the env and the tree..." >&2
"$togo" --store "$work/s" image import "$tarball" --name deb >/dev/null
"$togo" --store "$work/s" create bench --image deb >/dev/null
# (No --preserve=mode: cp then sets POSIX ACLs by path, which overlayfs
# refuses here; the modes come out the same under umask 022.)
"$togo" --store "$work/s" run bench -- \
  sh -c 'cp -dR --preserve=ownership,timestamps,links /usr/share /root/share' \
  || die "filling the env failed"
mkdir "$work/tree"
tar -xf "$tarball" -C "$work/tree"
cp -a "$work"/s/envs/*/upper/root/share "$work/tree/root/share"
upper=$(du -sb "$work"/s/envs/*/upper | awk '{print $1}')
tree=$(du -sb "$work/tree" | awk '{print $1}')

w=$(q "$work") g=$(q "$togo")
togo_export="$g --store $w/s export bench $w/env.togo >/dev/null"
togo_import="$g --store $w/s2 import $w/env.togo >/dev/null"
tar_export="tar -C $w/tree -cf - . | zstd -q -T0 -c >$w/tree.tar.zst"
tar_import="mkdir $w/x && zstd -dc $w/tree.tar.zst | tar -xf - -C $w/x"
# Inputs for the halves.
sh -c "$togo_export && $tar_export"

names=(togo tar tar+sync togo-export tar-export togo-import tar-import)
cmds=(
  "sh -c '$togo_export && $togo_import'"
  "sh -c '$tar_export && $tar_import'"
  "sh -c '$tar_export && $tar_import && sync -f $w/x'"
  "sh -c '$togo_export'"
  "sh -c '$tar_export'"
  "sh -c '$togo_import'"
  "sh -c '$tar_import'"
)
prepare="rm -rf $w/s2 $w/x"

runs=${RUNS:-5}
for ((r = 1; r <= runs; r++)); do
  args=(--prepare "$prepare")
  order=$(seq 0 $((${#cmds[@]} - 1)))
  ((r % 2 == 0)) && order=$(echo "$order" | tac)
  for i in $order; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
  echo "round $r of $runs..." >&2
  hyperfine -N --style basic --runs 1 --export-json "$work/round$r.json" "${args[@]}" \
    >>"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; die "hyperfine failed"; }
done

python3 - "$work" "$runs" "$upper" "$tree" "$(stat -c %s "$work/env.togo")" \
  "$(stat -c %s "$work/tree.tar.zst")" <<'EOF'
import json, statistics, sys
work, runs, upper, tree, togo_size, tar_size = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
times = {}
for r in range(1, runs + 1):
    for res in json.load(open(f"{work}/round{r}.json"))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
med = {k: statistics.median(v) for k, v in times.items()}
mib = 2**20
print(f"tree: {tree / mib:.0f} MiB merged (writable layer {upper / mib:.0f} MiB); "
      f"files: togo {togo_size / mib:.0f} MiB, tar.zst {tar_size / mib:.0f} MiB; medians of {runs} rounds")
print(f"{'command':12} {'median s':>9}")
for k in ["togo", "tar", "tar+sync", "togo-export", "tar-export", "togo-import", "tar-import"]:
    print(f"{k:12} {med[k]:9.3f}")
print(f"togo speed / tar speed         = {med['tar'] / med['togo']:.2f} (target >= 0.8)")
print(f"togo speed / tar+sync speed    = {med['tar+sync'] / med['togo']:.2f}")
print(f"export: togo / tar speed       = {med['tar-export'] / med['togo-export']:.2f}")
print(f"import: togo / tar speed       = {med['tar-import'] / med['togo-import']:.2f}")
EOF
