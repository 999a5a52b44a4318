# shellcheck shell=bash
# Helpers shared by scripts/bench and its sections. Sourced, not run.
#
# Expects from the caller: BENCH_ROOT, BENCH_LIB, and (after setup) WORK, KEEP.

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

BENCHLIB_PY() { python3 "$BENCH_LIB/benchlib.py" "$@"; }

# ------------------------------------------------------------------ set-up

# ensure_packages PKG...: apt-get install the Debian packages that are missing.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    # python3 may come from elsewhere (pyenv, a venv); only the command matters.
    if command -v python3 >/dev/null 2>&1; then
        local kept=()
        for p in "${missing[@]}"; do [ "$p" = python3 ] || kept+=("$p"); done
        missing=("${kept[@]}")
    fi
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_binaries: release tierfs/tierctl, then the bench helpers (sets
# FSBENCH_BIN and COLDBENCH_BIN).
build_binaries() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, e.g. scripts/setup, or rustup)"
    log "cargo build --release"
    (cd "$BENCH_ROOT" && cargo build --release --bins --quiet) || die "cargo build --release failed"
    FSBENCH_BIN="$(build_bench_bin fsbench)"
    COLDBENCH_BIN="$(build_bench_bin coldbench)"
}

# build_bench_bin NAME: prints the path of a freshly built benches/NAME.rs
# (a `[[bench]] harness = false` target).
build_bench_bin() {
    local exe
    BENCHLIB_PY cargo-declares-bench "$BENCH_ROOT/Cargo.toml" "$1" ||
        die "Cargo.toml has no [[bench]] $1 with harness = false"
    log "cargo bench --bench $1 --no-run"
    exe="$(cd "$BENCH_ROOT" && cargo bench --bench "$1" --no-run --quiet --message-format=json \
            | BENCHLIB_PY cargo-executable "$1")" || die "building $1 failed"
    echo "$exe"
}

# locate_bench_bin NAME: an already built benches/NAME.rs (for --no-build).
locate_bench_bin() {
    local dir="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/deps"
    ls -t "$dir/$1"-* 2>/dev/null | grep -v '\.d$' | head -n1 || true
}

machine_info_json() {
    BENCHLIB_PY machine --workdir "$WORK" --tierfs "$TIERFS_BIN" --repo "$BENCH_ROOT"
}

# ------------------------------------------------------------------ clean-up

CLEANUP_MOUNTS=()   # mountpoints we mounted, unmounted in reverse order
CLEANUP_PIDS=()     # daemons we started; signalled only if they outlive their unmount

# unmount_path MNT: umount, retrying while busy, lazily as a last resort.
unmount_path() {
    local mnt=$1 i
    mountpoint -q "$mnt" 2>/dev/null || return 0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        umount "$mnt" 2>/dev/null && return 0
        sleep 0.5
    done
    log "warning: $mnt still busy; lazy unmount"
    umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
}

# wait_pid_exit PID SECONDS: 0 once PID is gone.
wait_pid_exit() {
    local pid=$1 n=$(( $2 * 10 ))
    while [ "$n" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; n=$((n - 1)); done
    ! kill -0 "$pid" 2>/dev/null
}

# stop_daemon PID: after its unmount a FUSE daemon exits by itself; if not, TERM then KILL.
stop_daemon() {
    local pid=$1
    [ -n "$pid" ] || return 0
    wait_pid_exit "$pid" 10 && return 0
    log "warning: daemon $pid still running after unmount; SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_exit "$pid" 5 && return 0
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#CLEANUP_MOUNTS[@]} - 1; i >= 0; i--)); do unmount_path "${CLEANUP_MOUNTS[$i]}"; done
    for i in "${CLEANUP_PIDS[@]}"; do stop_daemon "$i"; done
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        if findmnt -rn -o TARGET | grep -qF "$WORK"; then
            log "warning: something is still mounted under $WORK; not deleting it"
        elif [ "${KEEP:-0}" = 1 ]; then
            log "kept scratch directory $WORK"
        else
            rm -rf --one-file-system "$WORK"
        fi
    fi
    [ "$rc" -ne 0 ] && log "failed (exit $rc); mounts and scratch data cleaned up"
    exit "$rc"
}

# ------------------------------------------------------------------ measuring

# drop_caches: write back dirty data, then drop page cache, dentries and inodes.
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

now_ns() { date +%s%N; }

# psi_total cpu|io: cumulative "some" stall time in microseconds (0 without PSI).
psi_total() {
    local f="/proc/pressure/$1"
    [ -r "$f" ] || { echo 0; return; }
    awk '/^some/ { sub("total=", "", $5); print $5 }' "$f"
}

# cpu_ticks PID: utime+stime of a process in clock ticks (0 if none).
cpu_ticks() {
    local pid=$1 s
    if [ -z "$pid" ] || [ ! -r "/proc/$pid/stat" ]; then echo 0; return; fi
    s="$(cat "/proc/$pid/stat")"
    s="${s##*) }"                # drop "pid (comm) ", comm may hold spaces
    awk '{ print $12 + $13 }' <<<"$s"
}

# vm_kib PID FIELD: VmHWM / VmRSS of a process in KiB (0 if none).
vm_kib() {
    awk -v f="$2:" '$1 == f { print $2; found=1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# measure SECTION WORKLOAD TARGET ROUND KIND PID [--count N] -- CMD...
# Runs CMD with stdout to a raw file, timing it and recording the FUSE
# daemon's (PID, may be empty) CPU time and the system's CPU/IO pressure over
# the run; appends one or more samples to $WORK/<section>.samples.jsonl.
# KIND says how to read the raw output: fio, smallfiles, lsl, wall. If
# MEASURE_RESIDENT_FILE is set, the page-cache residency of that file after
# the run is recorded too (shows how much a read run pulled into the cache).
# A failing CMD does not stop the run: the sample is recorded as failed, with
# the last line of its stderr, and the report shows it.
measure() {
    local section=$1 workload=$2 target=$3 round=$4 kind=$5 pid=$6
    shift 6
    local count=0
    if [ "${1:-}" = --count ]; then count=$2; shift 2; fi
    [ "${1:-}" = -- ] && shift
    mkdir -p "$WORK/raw"
    local raw="$WORK/raw/$section.$workload.$target.r$round.out"
    local c0 c1 pc0 pc1 pi0 pi1 t0 t1
    c0=$(cpu_ticks "$pid"); pc0=$(psi_total cpu); pi0=$(psi_total io)
    local error=""
    t0=$(now_ns)
    if ! "$@" >"$raw" 2>"$raw.err"; then
        error="$(grep -v '^\s*$' "$raw.err" | tail -n 1)"
        error="${error:-exit status non-zero}"
    fi
    t1=$(now_ns)
    [ -s "$raw.err" ] && sed 's/^/    /' "$raw.err" | head -n 5 >&2
    c1=$(cpu_ticks "$pid"); pc1=$(psi_total cpu); pi1=$(psi_total io)
    local fds=-1
    [ -n "$pid" ] && [ -d "/proc/$pid/fd" ] && fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    local resident=-1
    if [ -n "${MEASURE_RESIDENT_FILE:-}" ] && [ -e "$MEASURE_RESIDENT_FILE" ]; then
        resident=$(fincore -b -n -o RES "$MEASURE_RESIDENT_FILE" 2>/dev/null | tr -d ' ' || echo -1)
    fi
    BENCHLIB_PY record --error "$error" --resident-bytes "${resident:--1}" --daemon-fds "$fds" --samples "$WORK/$section.samples.jsonl" \
        --section "$section" --workload "$workload" --target "$target" --round "$round" \
        --kind "$kind" --raw "$raw" --count "$count" \
        --wall-ns $((t1 - t0)) --daemon-cpu-ticks $((c1 - c0)) --clk-tck "$(getconf CLK_TCK)" \
        --psi-cpu-us $((pc1 - pc0)) --psi-io-us $((pi1 - pi0))
}

# rotate N ITEM...: the items rotated left by N (spreads drift over targets).
rotate() {
    local n=$1; shift
    local items=("$@") k=${#items[@]} i
    for ((i = 0; i < k; i++)); do printf '%s\n' "${items[$(((i + n) % k))]}"; done
}
