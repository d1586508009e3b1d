#!/usr/bin/env bash
# Usage: bench/startup.sh [build-dir]
#
# Startup benchmark: the time to run /bin/true in a fresh sandbox, togo against
# its peers (bubblewrap, crun, podman) on the same busybox-static root
# filesystem, as root and rootless. For each privilege level all tools are
# timed by hyperfine side by side; hyperfine runs one command after another, so
# the runs are split into ROUNDS rounds (command order reversed every other
# round) and the times merged, which interleaves them against a noisy machine.
# Prints, per tool, the median in ms, the ratio togo/tool and the peak RSS
# (GNU time %M, median of 5) of the launching process.
#
# Environment:
#   RUNS=30        timed runs per tool and level (plus 3 warmup runs)
#   ROUNDS=5       rounds the runs are split into
#   BENCH_UID=61234  the unprivileged uid for the rootless level when run as
#                  root (no passwd entry or /etc/subuid range is needed: every
#                  tool then maps just that one uid; no user is created)
#   KEEP=1         keep the work directory
#
# Run as root to get both levels; as a user only the rootless level runs.
# On hosts with a cgroup v1+v2 hybrid layout crun (and podman through it)
# refuses to start unless /sys/fs/cgroup/unified is hidden, so as root every
# tool, togo included, runs inside one private mount namespace with a tmpfs
# over it. Peers are given no cgroups and no network, like togo's default.
set -euo pipefail

readonly APPLETS="sh ls cat echo true false hostname id mkdir touch rm sleep kill ps grep env
stat readlink wc head tail test mount umount chmod chown ln date dd mknod pwd uname whoami tty
stty yes seq sync cp mv find which"
readonly TOOLS="togo togo_warm togo_exec bwrap crun podman"

die() { echo "startup.sh: $*" >&2; exit 1; }
q() { printf '%q' "$1"; }

# ---- setup, as the invoking user -------------------------------------------

make_rootfs() {  # DIR: a busybox-static tree like the test image
  local r=$1
  mkdir -p "$r"/{bin,usr/bin,usr/sbin,etc,root,tmp,proc,dev,sys}
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  local a
  for a in $APPLETS; do ln -s busybox "$r/bin/$a"; done
  printf 'ID=togotest\nNAME="togo test image"\nPRETTY_NAME="togo test image"\n' >"$r/etc/os-release"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  : >"$r/etc/hostname"
}

is_static_elf() { file -L "$1" 2>/dev/null | grep -q 'statically linked'; }

hybrid_cgroups() {
  [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]
}

main() {
  local build=${1:-build}
  local togo_src="$build/togo"
  for c in hyperfine python3 tar; do
    command -v "$c" >/dev/null || die "$c is missing (scripts/setup installs it)"
  done
  [ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
  [ -x /bin/busybox ] || die "/bin/busybox is missing (Debian package busybox-static)"
  if command -v file >/dev/null && ! is_static_elf /bin/busybox; then
    die "/bin/busybox is not statically linked (install busybox-static)"
  fi

  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/togo-bench-XXXXXX")
  chmod 0755 "$work"
  # shellcheck disable=SC2064
  trap "cleanup $(q "$work")" EXIT

  make_rootfs "$work/rootfs"
  # Top-level names listed so entries read "bin/busybox", as in the test image.
  (cd "$work/rootfs" && tar --numeric-owner --owner=0 --group=0 --sort=name \
    -czf "$work/rootfs.tar.gz" -- *)
  # The script and togo are copied where the unprivileged user can read them.
  mkdir -p "$work/bin"
  cp "$0" "$work/bin/startup.sh"
  if [ -x "$togo_src" ]; then cp "$togo_src" "$work/bin/togo"; fi

  local levels=rootless uid
  uid=$(id -u)
  if [ "$uid" = 0 ]; then levels="root rootless"; uid=${BENCH_UID:-61234}; fi
  local hide=0
  if [ "$(id -u)" = 0 ] && hybrid_cgroups; then hide=1; fi

  local level
  for level in $levels; do
    local dir="$work/$level"
    mkdir -p "$dir/home" "$dir/xdg"
    # Each level gets its own copy of the tree, owned by the level's user (so
    # root inside a rootless sandbox), as togo's store is.
    cp -a "$work/rootfs" "$dir/rootfs"
    chmod 0700 "$dir/xdg"
    if [ "$level" = rootless ] && [ "$(id -u)" = 0 ]; then chown -R "$uid:$uid" "$dir"; fi
    local envv=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      "HOME=$dir/home" "XDG_RUNTIME_DIR=$dir/xdg" "RUNS=${RUNS:-30}" "ROUNDS=${ROUNDS:-5}"
      "TOGO_SRC=$togo_src" "HIDDEN_UNIFIED=$hide")
    local inner=(bash "$work/bin/startup.sh" __level "$level" "$work")
    if [ "$level" = rootless ] && [ "$(id -u)" = 0 ]; then
      inner=(setpriv --reuid "$uid" --regid "$uid" --clear-groups "${envv[@]}" "${inner[@]}")
    else
      inner=("${envv[@]}" "${inner[@]}")
    fi
    echo "running the $level level ..." >&2
    if [ "$hide" = 1 ]; then
      unshare -m --propagation private bash -c \
        'mount -t tmpfs -o size=4k,mode=0555 none /sys/fs/cgroup/unified && exec "$@"' _ \
        "${inner[@]}" || echo "startup.sh: the $level level failed" >&2
    else
      "${inner[@]}" || echo "startup.sh: the $level level failed" >&2
    fi
  done
  report "$work" "$levels" "$uid" "$hide"
}

cleanup() {
  local work=$1 pidfile
  # Rootless podman leaves a pause process holding its namespaces.
  while IFS= read -r pidfile; do
    kill "$(cat "$pidfile")" 2>/dev/null || true
  done < <(find "$work" -name pause.pid 2>/dev/null)
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; return; fi
  rm -rf "$work"
}

# ---- one level, inside the namespace and as its user ------------------------

# Each tool gets cmd/<tool> (one command line for hyperfine, words quoted),
# note/<tool>, or na/<tool> with the reason it cannot run here.
set_na() { printf '%s\n' "$2" >"$dir/na/$1"; }
set_note() { printf '%s\n' "$2" >"$dir/note/$1"; }

# Runs a command line once; on failure records n/a with its last stderr line.
check() {  # TOOL CMDLINE
  local out
  if out=$(eval "timeout 120 $2" 2>&1 >/dev/null); then
    printf '%s\n' "$2" >"$dir/cmd/$1"
    return 0
  fi
  set_na "$1" "$(printf '%s' "$out" | grep -v 'level=warning' | tail -n 1 | cut -c1-160)"
  return 1
}

prep_togo() {
  local togo="$work/bin/togo" store="$dir/togo-store" out
  if [ ! -x "$togo" ]; then set_na togo "${TOGO_SRC:-build/togo} missing"; return; fi
  local t s
  t=$(q "$togo"); s=$(q "$store")
  if ! out=$("$togo" --store "$store" image import "$work/rootfs.tar.gz" --name bench 2>&1); then
    set_na togo "image import failed: $(tail -n 1 <<<"$out")"; return
  fi
  if ! out=$("$togo" --store "$store" create bench --image bench 2>&1); then
    set_na togo "create failed: $(tail -n 1 <<<"$out")"; return
  fi
  set_note togo "cold: the env starts and stops in every run (default settings)"
  check togo "$t --store $s run bench -- /bin/true" || true
}

# The same run with linger=10: after the first run the env stays up between
# runs, so each run joins it (as a WSL distro stays up between commands).
prep_togo_warm() {
  local togo="$work/bin/togo" store="$dir/togo-store" t s
  if [ ! -f "$dir/cmd/togo" ]; then set_na togo_warm "togo not measured"; return; fi
  t=$(q "$togo"); s=$(q "$store")
  "$togo" --store "$store" create warm --image bench >/dev/null 2>&1
  "$togo" --store "$store" config warm linger=10 >/dev/null
  set_note togo_warm "run with linger=10: each run joins the env the previous one left up"
  check togo_warm "$t --store $s run warm -- /bin/true" || true
}

# togo exec into an env kept running by togo start.
prep_togo_exec() {
  local togo="$work/bin/togo" store="$dir/togo-store" t s
  if [ ! -f "$dir/cmd/togo" ]; then set_na togo_exec "togo not measured"; return; fi
  t=$(q "$togo"); s=$(q "$store")
  "$togo" --store "$store" create svc --image bench >/dev/null 2>&1
  "$togo" --store "$store" start svc >/dev/null
  set_note togo_exec "exec into an env started with togo start"
  check togo_exec "$t --store $s exec svc -- /bin/true" || true
}

prep_bwrap() {
  command -v bwrap >/dev/null || { set_na bwrap "bwrap not installed"; return; }
  local r base version
  r=$(q "$dir/rootfs")
  base="bwrap --unshare-all --die-with-parent"
  version=$(bwrap --version 2>/dev/null | awk '{print $2}')
  # bubblewrap >= 0.9 can compose an overlay with a tmpfs upper, as togo does.
  if bwrap --help 2>&1 | grep -q -- '--overlay-src' &&
    check bwrap "$base --overlay-src $r --tmp-overlay / --proc /proc --dev /dev /bin/true"; then
    set_note bwrap "rootfs: overlay (--overlay-src DIR --tmp-overlay /)"
    return
  fi
  rm -f "$dir/na/bwrap"
  set_note bwrap "rootfs: plain directory bind (bubblewrap $version has no --overlay-src)"
  check bwrap "$base --bind $r / --proc /proc --dev /dev /bin/true" || true
}

prep_crun() {
  command -v crun >/dev/null || { set_na crun "crun not installed"; return; }
  local bundle="$dir/crun-bundle" state="$dir/crun-state" spec=(crun spec)
  mkdir -p "$bundle" "$state"
  [ "$level" = rootless ] && spec=(crun spec --rootless)
  rm -f "$bundle/config.json"
  (cd "$bundle" && "${spec[@]}") || { set_na crun "crun spec failed"; return; }
  python3 - "$bundle/config.json" "$dir/rootfs" <<'EOF'
import json, os, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"] = {"path": rootfs, "readonly": False}
if os.getuid() != 0:  # map just our own uid, as the other tools do here
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
json.dump(c, open(path, "w"), indent=1)
EOF
  set_note crun "rootfs: plain directory (OCI bundle), --cgroup-manager=disabled"
  check crun "crun --root $(q "$state") --cgroup-manager=disabled run --bundle $(q "$bundle") togo-bench" ||
    true
}

prep_podman() {
  command -v podman >/dev/null || { set_na podman "podman not installed"; return; }
  local p="$dir/podman" r base
  r=$(q "$dir/rootfs")
  base="podman --root $(q "$p/root") --runroot $(q "$p/run") --tmpdir $(q "$p/tmp")"
  base+=" run --rm --network=none --cgroups=disabled"
  base+=" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
  # DIR:O puts an overlay over the directory, as togo does; rootless podman
  # cannot do it with a single-uid mapping (it chowns the upper directory).
  if check podman "$base --rootfs $r:O /bin/true"; then
    set_note podman "rootfs: DIR:O overlay; --network=none --cgroups=disabled --rm"
    return
  fi
  local why
  why=$(cat "$dir/na/podman")
  rm -f "$dir/na/podman"
  set_note podman "rootfs: plain directory (DIR:O failed: ${why:0:80}); --network=none --cgroups=disabled --rm"
  check podman "$base --rootfs $r /bin/true" || true
}

level_main() {
  level=$1 work=$2 dir="$work/$1"
  mkdir -p "$dir/cmd" "$dir/na" "$dir/note" "$dir/rounds"
  local t
  for t in $TOOLS; do "prep_$t"; done

  local names=() cmds=()
  for t in $TOOLS; do
    [ -f "$dir/cmd/$t" ] || continue
    names+=("$t")
    cmds+=("$(cat "$dir/cmd/$t")")
  done
  if [ ${#names[@]} -eq 0 ]; then echo "{}" >"$dir/result.json"; return; fi

  local runs=${RUNS:-30} rounds=${ROUNDS:-5} i
  ((rounds < 1)) && rounds=1
  ((rounds > runs)) && rounds=$runs
  for ((i = 0; i < rounds; i++)); do
    # Spread the runs: the first (runs % rounds) rounds get one more.
    local n=$((runs / rounds + (i < runs % rounds ? 1 : 0))) warm=1 args=() k order=()
    ((i == 0)) && warm=3
    if ((i % 2 == 0)); then order=("${!names[@]}"); else
      for ((k = ${#names[@]} - 1; k >= 0; k--)); do order+=("$k"); done
    fi
    for k in "${order[@]}"; do args+=(-n "${names[$k]}" "${cmds[$k]}"); done
    hyperfine -N -i --style basic --warmup "$warm" --runs "$n" \
      --export-json "$dir/rounds/$i.json" "${args[@]}" >"$dir/rounds/$i.log" 2>&1 ||
      echo "hyperfine round $i failed, see $dir/rounds/$i.log" >&2
  done

  # Envs left up by the togo rows.
  if [ -x "$work/bin/togo" ]; then
    "$work/bin/togo" --store "$dir/togo-store" stop svc warm >/dev/null 2>&1 || true
  fi

  # Peak RSS of the launching process (GNU time: the largest waited-for child).
  for t in "${names[@]}"; do
    for i in 1 2 3 4 5; do
      eval "/usr/bin/time -f %M -a -o $(q "$dir/rss.$t") $(cat "$dir/cmd/$t")" \
        >/dev/null 2>&1 || true
    done
  done
}

# ---- the report ------------------------------------------------------------

report() {
  local work=$1 levels=$2 uid=$3 hide=$4
  python3 - "$work" "$levels" "$uid" "$hide" "${RUNS:-30}" "${ROUNDS:-5}" "$TOOLS" <<'EOF'
import glob, json, os, statistics, sys
work, levels, uid, hide, runs, rounds, tools = sys.argv[1:]
tools = tools.split()

def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None

print("togo startup benchmark: /bin/true in a fresh sandbox")
print("root filesystem: a busybox-static tree, the same for every tool (togo imports its "
      "tarball; the peers use a copy of the tree owned by the level's user)")
print(f"runs: {runs} per tool and level, after 3 warmup runs, in {rounds} interleaved rounds")
if hide == "1":
    print("host: cgroup v1+v2 hybrid; every tool ran in a private mount namespace "
          "with /sys/fs/cgroup/unified hidden (crun refuses the hybrid layout)")
for level in levels.split():
    d = os.path.join(work, level)
    times, fails = {}, {}
    for f in sorted(glob.glob(os.path.join(d, "rounds", "*.json"))):
        for r in json.load(open(f))["results"]:
            name = r["command"]
            times.setdefault(name, []).extend(r["times"])
            fails[name] = fails.get(name, 0) + sum(1 for c in r.get("exit_codes", []) if c)
    med = {t: statistics.median(v) * 1000 for t, v in times.items() if v}
    who = "root" if level == "root" else f"rootless (uid {uid})"
    print(f"\n== {who} ==")
    print(f"{'tool':<10} {'median ms':>10} {'togo/tool':>10} {'peak RSS KiB':>13}  notes")
    for t in tools:
        na = read(os.path.join(d, "na", t))
        if t not in med:
            print(f"{t:<10} {'n/a: ' + (na or 'not measured')}")
            continue
        ratio = f"{med['togo'] / med[t]:.2f}" if "togo" in med else "-"
        rss = read(os.path.join(d, "rss." + t))
        vals = [int(x) for x in (rss or "").split() if x.isdigit()]
        rss = str(int(statistics.median(vals))) if vals else "-"
        note = read(os.path.join(d, "note", t)) or ""
        if fails.get(t):
            note += f" [{fails[t]} runs failed]"
        print(f"{t:<10} {med[t]:>10.1f} {ratio:>10} {rss:>13}  {note}")
    for t in ("togo_warm", "togo_exec"):
        if t in med and "bwrap" in med:
            print(f"  {t} / bwrap = {med[t] / med['bwrap']:.2f}")
    print("commands:")
    for t in tools:
        c = read(os.path.join(d, "cmd", t))
        if c:
            print(f"  {t}: {c}")
EOF
}

if [ "${1:-}" = __level ]; then
  shift
  level_main "$@"
else
  main "$@"
fi
