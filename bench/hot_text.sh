#!/usr/bin/env bash
# Usage: bench/hot_text.sh [build-dir]   (as root; needs perf, from linux-perf)
#
# Regenerates src/hot_text.order: the functions a `togo run` executes, which
# the link (with lld) lays out together at the start of the binary's code.
# Spread over the 10 MB of code, they took about 60 page faults at every
# start (one per 64 KiB the kernel maps at once); together, about 20.
#
# The list comes from sampling: perf samples the user-space code of cold
# runs, of `togo exec` into a running env and of `togo run` joining one
# (after a first run of each, which reads the catalog), and every sampled
# function is listed, most sampled first. Functions run once
# and briefly can go unsampled; the IFUNC resolvers and static constructors
# that glibc runs at every start are added by name. A function missing from
# the list costs at most one page fault; a name that no longer exists is
# ignored by the link. Regenerate after large changes to the run path.
#
# Environment: RUNS=400 runs per kind.
set -euo pipefail

die() { echo "hot_text.sh: $*" >&2; exit 1; }

build=${1:-build}
togo="$build/togo"
[ -x "$togo" ] || die "$togo is missing: build first"
[ "$(id -u)" = 0 ] || die "run as root (perf samples every process of the run)"
command -v perf >/dev/null || die "perf is missing (Debian package linux-perf)"
[ -x /bin/busybox ] || die "/bin/busybox is missing (Debian package busybox-static)"
out="$(cd "$(dirname "$0")/.." && pwd)/src/hot_text.order"
runs=${RUNS:-400}

work=$(mktemp -d "${TMPDIR:-/tmp}/togo-hot-XXXXXX")
trap '"$togo" --store "$work/store" stop svc >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The image: busybox, as in the startup benchmark.
r="$work/rootfs"
mkdir -p "$r"/{bin,etc,root,tmp,proc,dev,sys}
cp /bin/busybox "$r/bin/busybox"
for a in sh true; do ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
(cd "$r" && tar --numeric-owner --owner=0 --group=0 -czf "$work/rootfs.tar.gz" -- *)

s="$work/store"
"$togo" --store "$s" image import "$work/rootfs.tar.gz" --name hot >/dev/null
"$togo" --store "$s" create cold --image hot >/dev/null
"$togo" --store "$s" create warm --image hot >/dev/null
"$togo" --store "$s" config warm linger=10 >/dev/null
"$togo" --store "$s" create svc --image hot >/dev/null
"$togo" --store "$s" start svc >/dev/null

# One run of each first: the first run of an env reads the catalog (SQLite)
# and caches what it found; that code is not on the path of the next runs.
"$togo" --store "$s" run cold -- /bin/true
"$togo" --store "$s" exec svc -- /bin/true
"$togo" --store "$s" run warm -- /bin/true

cat >"$work/load.sh" <<EOF
for i in \$(seq $runs); do
  "$togo" --store "$s" run cold -- /bin/true
  "$togo" --store "$s" exec svc -- /bin/true
  "$togo" --store "$s" run warm -- /bin/true
done
EOF
perf record -q -F 20000 -e cpu-clock:u -o "$work/perf.data" -- bash "$work/load.sh" >/dev/null

perf script -i "$work/perf.data" -F comm,ip 2>/dev/null | python3 -c '
import bisect, collections, subprocess, sys
binary = sys.argv[1]
syms, always = [], []
for line in subprocess.run(["nm", "-n", binary], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    f = line.split()
    if len(f) != 3 or f[1] not in "tTwWiI":
        continue
    syms.append((int(f[0], 16), f[2]))
    if f[1] == "i" or f[2].startswith("_GLOBAL__sub_I"):
        always.append(f[2])  # run at every start, too briefly to be sampled
starts = [a for a, _ in syms]
counts = collections.Counter()
for line in sys.stdin:
    f = line.split()
    if len(f) != 2 or not f[0].startswith("togo"):
        continue
    i = bisect.bisect_right(starts, int(f[1], 16)) - 1
    if i >= 0:
        counts[syms[i][1]] += 1
names = [n for n, _ in counts.most_common()]
names += [n for n in always if n not in counts]
print("\n".join(names))
' "$togo" >"$work/order"
[ -s "$work/order" ] || die "no samples of togo"
mv "$work/order" "$out"
echo "hot_text.sh: $(wc -l <"$out") functions in $out" >&2
