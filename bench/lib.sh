# shellcheck shell=bash
# The preamble the benchmarks share; sourced, after `BENCH=<script name>`.
#   die MSG...            "<script>: MSG" on stderr, exit 1
#   q WORD                WORD quoted for a shell command line
#   bench_start BUILD TOOL...
#                         togo=BUILD/togo (absolute; BUILD defaults to build),
#                         every TOOL installed, work=a fresh directory that is
#                         removed at exit unless KEEP=1
#   need_root             refuse to run as a user
#   debian_rootfs         tarball=$ROOTFS, or a Debian minbase (bookworm) that
#                         mmdebstrap builds into $work

die() { echo "$BENCH: $*" >&2; exit 1; }
q() { printf '%q' "$1"; }

bench_start() {
  local build=${1:-build}
  shift || true
  # shellcheck disable=SC2034  # used by the script that sources this
  togo=$(realpath "$build/togo" 2>/dev/null) || die "$build/togo is missing (run scripts/build)"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup installs it)"
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/togo-bench-${BENCH%.sh}-XXXXXX")
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}

need_root() {
  [ "$(id -u)" = 0 ] || die "run as root: tar -x and togo both keep owners then"
}

debian_rootfs() {
  tarball=${ROOTFS:-}
  [ -n "$tarball" ] && return
  echo "building a Debian rootfs tarball with mmdebstrap (about a minute)..." >&2
  mmdebstrap --variant=minbase --quiet bookworm "$work/rootfs.tar" || die "mmdebstrap failed"
  tarball=$work/rootfs.tar
}
