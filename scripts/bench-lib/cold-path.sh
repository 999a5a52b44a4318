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
#   rclone_first_byte / s3fs_first_byte
#                   the same first 4 KiB of the raw object (same bytes) read
#                   through `rclone mount --vfs-cache-mode full` / s3fs
#   rclone_read / s3fs_read
#                   `dd bs=1M` of the whole raw object through those mounts
# Between steps the file is released again (premigrated → cold costs no upload).
# The peers read the plain object coldbench uploaded (`raw/rN`, the same bytes
# as tierfs's file) rather than tierfs's content-addressed object; before
# each peer read the page cache is dropped and rclone is remounted with an
# empty VFS cache directory (s3fs runs without a local data cache).
# The S3 server is the run's shared one (start_weed in common.sh).

CP=cold-path
CP_BUCKET=cold   # this section's bucket, deleted at its end (frees its volumes)
cp_mount_tierfs() {
    mkdir -p "$WORK/cold-hot/bench" "$WORK/cold-mnt"
    # It holds a secret: tierfs refuses a config others can read.
    (umask 077 && : >"$WORK/cold.toml")
    cat >"$WORK/cold.toml" <<EOF
hot_dir = "$WORK/cold-hot"
migrate_interval = "off"

[remote.cloud]
url = "s3://$CP_BUCKET/tier"
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
    log "tierfs mounted on $WORK/cold-mnt (pid $COLD_PID), remote s3://$CP_BUCKET/tier"
}

cp_ctl() { "$TIERCTL_BIN" -c "$WORK/cold.toml" "$@"; }

# cp_state REL: user.tierfs.state of a file in the mount.
cp_state() { getfattr --only-values -n user.tierfs.state "$WORK/cold-mnt/$1" 2>/dev/null || echo "?"; }

# cp_release REL: migrate REL and insist it ends cold.
cp_release() {
    cp_ctl migrate "$1" >/dev/null || die "tierctl migrate $1 failed"
    [ "$(cp_state "$1")" = cold ] || die "$1 is $(cp_state "$1") after migrate, not cold"
}

# cp_rclone_fresh: (re)mount rclone on the raw/ prefix with an empty VFS cache.
cp_rclone_fresh() {
    if [ -n "${RCLONE_PID:-}" ]; then
        record_rss "$CP" rclone "$RCLONE_PID" 2>/dev/null
        unmount_path "$WORK/cold-rclone"
        stop_daemon "$RCLONE_PID"
    fi
    rm -rf "$WORK/cold-rclone-cache"
    mount_rclone "weed:$CP_BUCKET/raw" "$WORK/cold-rclone" "$WORK/cold-rclone-cache" "$CP_RC_PORT" 2>/dev/null
}

# cp_peer_reads ROUND BYTES: first 4 KiB and full read of raw/rROUND through each peer.
cp_peer_reads() {
    local round=$1 bytes=$2 peer f
    for peer in "${CP_PEERS[@]}"; do
        case "$peer" in
            rclone) f="$WORK/cold-rclone/r$round" ;;
            s3fs) f="$WORK/cold-s3fs/r$round" ;;
        esac
        [ "$peer" = rclone ] && cp_rclone_fresh
        drop_caches
        measure "$CP" "${peer}_first_byte" "$peer" "$round" ttfb "$(cp_peer_pid "$peer")" -- \
            "$COLDBENCH_BIN" ttfb "$f" --bytes 4096
        [ "$peer" = rclone ] && cp_rclone_fresh
        drop_caches
        measure "$CP" "${peer}_read" "$peer" "$round" bytes "$(cp_peer_pid "$peer")" --count "$bytes" -- \
            dd if="$f" of=/dev/null bs=1M status=none
    done
}
cp_peer_pid() { case "$1" in rclone) echo "$RCLONE_PID" ;; s3fs) echo "$S3FS_PID" ;; esac; }

# cp_wait_state REL STATE: up to 10 minutes.
cp_wait_state() {
    local n=6000
    while [ "$(cp_state "$1")" != "$2" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    [ "$(cp_state "$1")" = "$2" ] || die "$1 did not become $2 (is $(cp_state "$1"))"
}

cp_round() {
    local round=$1
    local rel="bench/f$round.bin" src="$WORK/cold-src.bin" bytes
    bytes=$((COLD_SIZE_MIB * 1024 * 1024))
    head -c "$bytes" /dev/urandom >"$src"
    cp "$src" "$WORK/cold-mnt/$rel"
    sync

    drop_caches
    measure "$CP" raw_upload raw "$round" bytes "" --count "$bytes" -- \
        "$COLDBENCH_BIN" put --endpoint "$S3_ENDPOINT" --bucket "$CP_BUCKET" --key "raw/r$round" "$src"
    drop_caches
    measure "$CP" migrate tierfs "$round" bytes "$COLD_PID" --count "$bytes" -- cp_ctl migrate "$rel"
    [ "$(cp_state "$rel")" = cold ] || die "$rel is $(cp_state "$rel") after the measured migrate"

    drop_caches
    measure "$CP" raw_download raw "$round" bytes "" --count "$bytes" -- \
        "$COLDBENCH_BIN" get --endpoint "$S3_ENDPOINT" --bucket "$CP_BUCKET" --key "raw/r$round" "$WORK/cold-dl.bin"
    rm -f "$WORK/cold-dl.bin"
    cp_peer_reads "$round" "$bytes"

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
    # Free the disk: the raw object of this round.
    rclone_cmd deletefile "weed:$CP_BUCKET/raw/r$round" >/dev/null 2>&1 || true
}

section_cold_path() {
    COLD_PID=""
    [ -n "${COLDBENCH_BIN:-}" ] || COLDBENCH_BIN="$(locate_bench_bin coldbench)"
    [ -x "$COLDBENCH_BIN" ] || die "coldbench binary not found (run without --no-build)"
    ensure_packages attr
    rm -f "$WORK/$CP.samples.jsonl"
    [ -n "$S3_ENDPOINT" ] || die "cold-path needs the S3 server (start_weed)"
    rclone_cmd mkdir "weed:$CP_BUCKET" || die "cannot create bucket $CP_BUCKET"
    cp_mount_tierfs
    CP_PEERS=() RCLONE_PID="" S3FS_PID=""
    hp_has rclone && CP_PEERS+=(rclone)
    hp_has s3fs && CP_PEERS+=(s3fs)
    CP_RC_PORT="$(free_ports 1)"
    # The peers mount the raw/ prefix; it must exist before s3fs mounts it.
    : >"$WORK/cold-keep"
    "$COLDBENCH_BIN" put --endpoint "$S3_ENDPOINT" --bucket "$CP_BUCKET" --key raw/.keep "$WORK/cold-keep" >/dev/null
    if hp_has s3fs; then mount_s3fs "$CP_BUCKET:/raw" "$WORK/cold-s3fs"; fi
    local round
    for ((round = 1; round <= RUNS; round++)); do
        log "round $round/$RUNS: ${COLD_SIZE_MIB} MiB"
        cp_round "$round"
    done
    local hwm
    hwm=$(vm_kib "$COLD_PID" VmHWM)
    log "tierfs peak RSS over the section: $((hwm / 1024)) MiB"
    record_rss "$CP" tierfs "$COLD_PID"
    record_rss "$CP" rclone "$RCLONE_PID"
    record_rss "$CP" s3fs "$S3FS_PID"
    record_rss "$CP" weed "$WEED_PID"
    cat >"$WORK/$CP.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $RUNS,
  "params": {
    "file_size_mib": $COLD_SIZE_MIB,
    "seaweedfs": $(BENCHLIB_PY json-string "$WEED_VERSION"),
    "peers": $(BENCHLIB_PY json-list "${CP_PEERS[@]}"),
    "rclone_version": $(BENCHLIB_PY json-string "$(rclone version 2>/dev/null | head -n1)"),
    "rclone_command": "rclone mount weed:cold/raw MNT --vfs-cache-mode full --cache-dir DIR (remounted with an empty cache dir before every read)",
    "s3fs_version": $(BENCHLIB_PY json-string "$(s3fs --version 2>/dev/null | head -n1)"),
    "s3fs_command": "s3fs cold:/raw MNT -f -o passwd_file=F,url=http://127.0.0.1:PORT,use_path_request_style,endpoint=us-east-1,allow_other",
    "part_size_mib": 8,
    "concurrency": 4,
    "tierfs_config": "one S3 remote, defaults (8 MiB parts, 4 in flight, verify read-back)"
  },
  "daemons": {"tierfs": {"pid": ${COLD_PID:-null}, "vm_hwm_kib": $hwm}}
}
EOF
    unmount_path "$WORK/cold-mnt"
    stop_daemon "$COLD_PID"
    unmount_path "$WORK/cold-rclone"; unmount_path "$WORK/cold-s3fs"
    stop_daemon "$RCLONE_PID"; stop_daemon "$S3FS_PID"
    # shellcheck disable=SC2034  # RCLONE_RC is read by rclone_forget (common.sh)
    RCLONE_PID="" S3FS_PID="" RCLONE_RC=""
    # Free the disk for the next section.
    delete_bucket "$CP_BUCKET"
    mkdir -p "$OUT_DIR/bench-results"
    python3 "$BENCH_LIB/coldreport.py" \
        --samples "$WORK/$CP.samples.jsonl" --meta "$WORK/$CP.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$CP.json" --md "$OUT_DIR/benchmarks.md"
}
