#!/usr/bin/env bash
# Usage: bench/doctor.sh [build-dir]
#
# How long `togo doctor` takes: every check but the storage bench, RUNS
# times by hyperfine (as this user, and as an unprivileged uid when run as
# root), against the issue's target of under a second; then `togo doctor
# --storage-bench` once, against its target of under ten seconds. The KVM
# test guest is given 300 ms, so on a host whose KVM hangs that is the floor.
#
# Environment:
#   RUNS=20          timed runs per row (plus 2 warmup runs)
#   BENCH_UID=61234  the unprivileged uid for the rootless row when run as root
#   KEEP=1           keep the work directory
set -euo pipefail

BENCH=doctor.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_start "${1:-build}" hyperfine python3
runs=${RUNS:-20}
uid=${BENCH_UID:-61234}
chmod 0755 "$work"
mkdir "$work/user"

g=$(q "$togo") w=$(q "$work")
rows=(-n "doctor" "$g --store $w/store doctor")
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || die "setpriv is missing (util-linux)"
  chown "$uid:$uid" "$work/user"
  rows+=(-n "doctor as uid $uid"
    "setpriv --reuid=$uid --regid=$uid --clear-groups $g --store $w/user/store doctor")
fi
# -i: a host where the default mode cannot run makes the doctor exit 1.
hyperfine -N -i --style basic --warmup 2 --runs "$runs" --export-json "$work/result.json" \
  "${rows[@]}" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; die "hyperfine failed"; }

start=$(date +%s%N)
"$togo" --store "$work/store" doctor --storage-bench >"$work/bench.txt" || true
end=$(date +%s%N)
grep -E '^  [a-z]+ +storage\.bench ' "$work/bench.txt" || die "no storage.bench line in the output"

python3 - "$work/result.json" "$(( (end - start) / 1000000 ))" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
bench_ms = int(sys.argv[2])
print(f"{'command':24} {'median s':>9} {'min s':>7} {'max s':>7}  target < 1 s")
for r in results:
    t = r["times"]
    med = statistics.median(t)
    print(f"{r['command']:24} {med:9.3f} {min(t):7.3f} {max(t):7.3f}  {'met' if med < 1 else 'MISSED'}")
print(f"{'doctor --storage-bench':24} {bench_ms / 1000:9.3f} {'':7} {'':7}  target < 10 s: "
      f"{'met' if bench_ms < 10000 else 'MISSED'}")
PY
