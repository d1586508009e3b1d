#!/usr/bin/env bash
# Usage: bench/hot_text.sh [build-dir]   (as root; needs perf, from linux-perf)
#
# Regenerates src/hot_text.order: the functions a `togo run` executes, which
# the link (with lld) lays out together at the start of the binary's code.
# Spread over the 10 MB of code, they took about 60 page faults at every
# cold run (one per 64 KiB the kernel maps at once); together, about 30.
#
# The list comes from sampling: perf samples, system-wide, the user-space
# code of every togo process (the CLI, init, session leaders; run nothing
# else with togo meanwhile) while cold runs, `togo exec`
# into a running env and `togo run` joining one repeat, as root and as an
# unprivileged uid (after a first run of each, which reads the catalog).
# Every sampled function is listed, most sampled first. Functions run once
# and briefly can go unsampled; the IFUNC resolvers and static constructors
# that glibc runs at every start are added by name. A function missing from
# the list costs at most one page fault; a name that no longer exists is
# ignored by the link. Regenerate after large changes to the run path.
#
# Environment: RUNS=1000 rounds per user; BENCH_UID=61234 the unprivileged
# uid (no passwd entry or subordinate ids needed).
set -euo pipefail

die() { echo "hot_text.sh: $*" >&2; exit 1; }

build=${1:-build}
[ -x "$build/togo" ] || die "$build/togo is missing: build first"
togo="$(cd "$build" && pwd)/togo"
[ "$(id -u)" = 0 ] || die "run as root (the rootless runs are made as BENCH_UID)"
command -v perf >/dev/null || die "perf is missing (Debian package linux-perf)"
[ -x /bin/busybox ] || die "/bin/busybox is missing (Debian package busybox-static)"
runs=${RUNS:-1000}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
uid=${BENCH_UID:-61234}
out="$(cd "$(dirname "$0")/.." && pwd)/src/hot_text.order"

work=$(mktemp -d "${TMPDIR:-/tmp}/togo-hot-XXXXXX")
chmod 0755 "$work"
as_user() {
  setpriv --reuid "$uid" --regid "$uid" --clear-groups env -i PATH="$PATH" \
    HOME="$work/home" XDG_RUNTIME_DIR="$work/xdg" "$@"
}
cleanup() {
  "$togo" --store "$work/root" stop svc warm >/dev/null 2>&1 || true
  as_user "$togo" --store "$work/user" stop svc warm >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The image: busybox, as in the startup benchmark.
r="$work/rootfs"
mkdir -p "$r"/{bin,etc,root,tmp,proc,dev,sys} "$work/home" "$work/xdg" "$work/user"
chown "$uid:$uid" "$work/home" "$work/xdg" "$work/user"
chmod 0700 "$work/xdg"
cp /bin/busybox "$r/bin/busybox"
for a in sh true; do ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
(cd "$r" && tar --numeric-owner --owner=0 --group=0 -czf "$work/rootfs.tar.gz" -- *)

# A store with the three envs, each run once: `prepare STORE [as_user]`.
prepare() {
  local s=$1
  shift
  "$@" "$togo" --store "$s" image import "$work/rootfs.tar.gz" --name hot >/dev/null
  local env
  for env in cold warm svc; do "$@" "$togo" --store "$s" create "$env" --image hot >/dev/null; done
  "$@" "$togo" --store "$s" config warm linger=10 >/dev/null
  "$@" "$togo" --store "$s" start svc >/dev/null
  "$@" "$togo" --store "$s" run cold -- /bin/true
  "$@" "$togo" --store "$s" exec svc -- /bin/true
  "$@" "$togo" --store "$s" run warm -- /bin/true
}
prepare "$work/root"
prepare "$work/user" as_user

cat >"$work/load.sh" <<'EOF'
set -eu
for i in $(seq "$RUNS"); do
  "$TOGO" --store "$STORE" run cold -- /bin/true
  "$TOGO" --store "$STORE" exec svc -- /bin/true
  "$TOGO" --store "$STORE" run warm -- /bin/true
done
EOF
# System-wide: the inits of svc and warm started before the recording.
perf record -q -a -F 20000 -e cpu-clock:u -o "$work/perf.data" -- bash -c '
  RUNS=$1 TOGO=$2 STORE=$3 bash "$4"
  setpriv --reuid "$5" --regid "$5" --clear-groups env -i PATH="$PATH" HOME="$6" \
    XDG_RUNTIME_DIR="$7" RUNS=$1 TOGO=$2 STORE=$8 bash "$4"
' _ "$runs" "$togo" "$work/root" "$work/load.sh" "$uid" "$work/home" "$work/xdg" \
  "$work/user" >/dev/null

perf script -i "$work/perf.data" -F comm,ip 2>/dev/null | python3 -c '
import bisect, collections, subprocess, sys
binary = sys.argv[1]
funcs, always = [], []  # (start, end, name)
for line in subprocess.run(["nm", "-n", "-S", binary], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    f = line.split()
    if len(f) != 4 or f[2] not in "tTwWiI":
        continue
    start = int(f[0], 16)
    funcs.append((start, start + int(f[1], 16), f[3]))
    if f[2] == "i" or f[3].startswith("_GLOBAL__sub_I"):
        always.append(f[3])  # run at every start, too briefly to be sampled
starts = [s for s, _, _ in funcs]
counts = collections.Counter()
for line in sys.stdin:
    f = line.split()
    if len(f) != 2 or not f[0].startswith("togo"):
        continue
    ip = int(f[1], 16)
    i = bisect.bisect_right(starts, ip) - 1
    if i >= 0 and ip < funcs[i][1]:  # not in a stub between functions
        counts[funcs[i][2]] += 1
names = [n for n, _ in counts.most_common()]
names += [n for n in dict.fromkeys(always) if n not in counts]
print("\n".join(names))
' "$togo" >"$work/order"
[ -s "$work/order" ] || die "no samples of togo"
mv "$work/order" "$out"
echo "hot_text.sh: $(wc -l <"$out") functions in $out" >&2
