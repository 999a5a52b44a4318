# shellcheck shell=bash
# Section migration: releasing a whole tree to S3 — tierfs vs rclone vs the
# raw object_store limit, on the run's SeaweedFS. Sourced by scripts/bench,
# which provides MIG_RUNS, MIG_FILES, MIG_MIB, WORK, OUT_DIR, the binaries
# and common.sh.
#
# The tree: `coldbench gen-tree` (deterministic, seed 7): MIG_FILES files of
# random bytes (no dedupe) totalling exactly MIG_MIB MiB, 100 per directory;
# 97 % small (4–256 KiB, log-uniform), 2.88 % medium (1–16 MiB, log-uniform),
# 0.14 % large (64–256 MiB at the full size) taking the rest of the total.
#
# Per round (each step in its own bucket, deleted right after it, so the disk
# never holds more than two copies of the tree: SeaweedFS frees a bucket's
# volumes when the bucket goes; deleting objects alone waits for a vacuum):
#   tierfs_migrate  the tree is generated straight into a tierfs mount (hot
#                   files, written through FUSE; not timed), caches dropped,
#                   then `tierctl migrate mig` is timed until it returns; every
#                   file must then read `cold` (user.tierfs.state) — the count
#                   is recorded and a shortfall is reported
#   raw_put_tree    the tree generated again in a plain directory;
#                   `coldbench put-tree` with 4 files in flight (tierfs's
#                   max_concurrency), multipart with 4 parts in flight above 8 MiB
#   rclone_copy     `rclone copy SRC weed:BUCKET/tree` + RCLONE_FLAGS
#   rclone_move     `rclone move SRC weed:BUCKET/tree --delete-empty-src-dirs`
#                   + RCLONE_FLAGS (consumes SRC, so it runs last)
# Disk: at most two copies of the tree at once (plain copy + bucket). The
# section is skipped, and says so in the log and the summary, unless the
# scratch disk has room for them plus MIG_RESERVE_MIB (env, default 10240) left
# free for everyone else on the machine.
# rclone flags: its defaults (4 transfers, 8 checkers, 5 MiB chunks, 4 parts
# in flight, multipart above 200 MiB) plus --fast-list, which rclone's S3 docs
# recommend for buckets (fewer LIST calls).

MIG=migration
MIG_RCLONE_FLAGS=(--fast-list)

mig_ctl() { "$TIERCTL_BIN" -c "$WORK/mig.toml" "$@"; }

# mig_gen DIR: the tree, into DIR (a plain directory or a tierfs mount).
mig_gen() {
    "$COLDBENCH_BIN" gen-tree "$1" --files "$MIG_FILES" --total-mib "$MIG_MIB" --seed 7
}

# mig_rss_run FILE CMD...: run CMD; write its (largest child's) peak RSS in KiB to FILE.
mig_rss_run() {
    python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)' "$@"
}

# mig_peak NAME FILE: keep the largest peak RSS seen for NAME.
mig_peak() {
    local v
    v=$(cat "$2" 2>/dev/null || echo 0)
    printf '{"section":"%s","process":"%s","pid":null,"vm_hwm_kib":%s}\n' "$MIG" "$1" "${v:-0}" >>"$WORK/rss.jsonl"
}

mig_mount_tierfs() {
    rm -rf "$WORK/mig-hot" "$WORK/mig-state"
    mkdir -p "$WORK/mig-hot/mig" "$WORK/mig-mnt" "$WORK/mig-state"
    (umask 077 && cat >"$WORK/mig.toml" <<EOF
hot_dir = "$WORK/mig-hot"
catalog = "$WORK/mig-state/catalog.db"
migrate_interval = "off"

[remote.cloud]
url = "s3://$1/tier"
endpoint = "$S3_ENDPOINT"
region = "us-east-1"
access_key_id = "$S3_KEY"
secret_access_key = "$S3_SECRET"
allow_http = true
EOF
)
    "$TIERFS_BIN" mount "$WORK/mig.toml" "$WORK/mig-mnt" 2>>"$WORK/mig-tierfs.log" ||
        { tail -n 20 "$WORK/mig-tierfs.log" >&2; die "tierfs mount (migration) failed"; }
    CLEANUP_MOUNTS+=("$WORK/mig-mnt")
    MIG_PID="$(mig_ctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["pid"])')"
    CLEANUP_PIDS+=("$MIG_PID")
    mig_ctl rule add 'mig/** -> cloud' >/dev/null || die "rule add failed"
}

# mig_wait_idle: the daemon's catalog queue is empty and it used no CPU for 1 s.
mig_wait_idle() {
    local calm=0 c0 c1 q n=600
    sync
    while [ "$calm" -lt 2 ] && [ "$n" -gt 0 ]; do
        c0=$(cpu_ticks "$MIG_PID"); sleep 0.5; c1=$(cpu_ticks "$MIG_PID")
        q=$(mig_ctl status --json 2>/dev/null | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["daemon"].get("catalog_queue", 0))
except Exception: print(0)')
        if [ "$c0" = "$c1" ] && [ "${q:-0}" = 0 ]; then calm=$((calm + 1)); else calm=0; fi
        n=$((n - 1))
    done
}

# mig_count_cold DIR: how many regular files under DIR are cold.
mig_count_cold() {
    python3 - "$1" <<'PY'
import os, sys
cold = total = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        total += 1
        try:
            if os.getxattr(os.path.join(root, f), "user.tierfs.state", follow_symlinks=False) == b"cold":
                cold += 1
        except OSError:
            pass
print(cold, total)
PY
}

mig_round() {
    local round=$1 bucket out
    # ---- tierfs
    bucket="mig-tierfs-r$round"
    rclone_cmd mkdir "weed:$bucket" || die "cannot create bucket $bucket"
    mig_mount_tierfs "$bucket"
    # The plain copy for the raw/rclone steps is generated at the same time
    # as the tree in the mount (set-up, 2 cores) when the disk has room for
    # it next to the tierfs copy and its upload; it must be done before the
    # measured migrate starts.
    local gen_pid=""
    rm -rf "$WORK/mig-src"
    if [ "$MIG_PARALLEL_GEN" = 1 ]; then
        log "round $round: generating the tree into the tierfs mount and a plain directory at once"
        mig_gen "$WORK/mig-src" >/dev/null &
        gen_pid=$!
    else
        log "round $round: generating the tree into the tierfs mount"
    fi
    mig_gen "$WORK/mig-mnt/mig" >"$WORK/mig-gen.json" || die "gen-tree into the mount failed"
    if [ -n "$gen_pid" ]; then wait "$gen_pid" || die "gen-tree failed"; fi
    mig_wait_idle
    drop_caches
    measure "$MIG" tierfs_migrate tierfs "$round" bytes "$MIG_PID" --count "$MIG_BYTES" -- \
        mig_ctl migrate --json mig
    read -r cold total <<<"$(mig_count_cold "$WORK/mig-mnt/mig")"
    log "  tierfs: $cold of $total files cold after the migrate"
    printf '{"round":%s,"cold":%s,"files":%s}\n' "$round" "$cold" "$total" >>"$WORK/mig-cold.jsonl"
    record_rss "$MIG" tierfs "$MIG_PID"
    unmount_path "$WORK/mig-mnt"
    stop_daemon "$MIG_PID"
    rm -rf "$WORK/mig-hot" "$WORK/mig-state"
    delete_bucket "$bucket"

    # ---- raw limit and rclone, from one plain copy of the tree
    if [ -z "$gen_pid" ]; then
        log "round $round: generating the tree in a plain directory"
        mig_gen "$WORK/mig-src" >/dev/null || die "gen-tree failed"
    fi
    bucket="mig-raw-r$round"
    rclone_cmd mkdir "weed:$bucket" || die "cannot create bucket $bucket"
    drop_caches
    measure "$MIG" raw_put_tree raw "$round" bytes "" --count "$MIG_BYTES" -- \
        mig_rss_run "$WORK/mig-rss-raw" "$COLDBENCH_BIN" put-tree --endpoint "$S3_ENDPOINT" --bucket "$bucket" \
        --prefix tree --concurrency 4 "$WORK/mig-src"
    mig_peak coldbench "$WORK/mig-rss-raw"
    delete_bucket "$bucket"

    bucket="mig-rclone-copy-r$round"
    drop_caches
    measure "$MIG" rclone_copy rclone "$round" bytes "" --count "$MIG_BYTES" -- \
        mig_rss_run "$WORK/mig-rss-copy" rclone --config "$RCLONE_CONF" copy "$WORK/mig-src" "weed:$bucket/tree" "${MIG_RCLONE_FLAGS[@]}"
    mig_peak rclone "$WORK/mig-rss-copy"
    out=$(rclone_cmd size --json "weed:$bucket/tree" 2>/dev/null || echo '{}')
    log "  rclone copy: bucket holds $out"
    delete_bucket "$bucket"

    bucket="mig-rclone-move-r$round"
    drop_caches
    measure "$MIG" rclone_move rclone "$round" bytes "" --count "$MIG_BYTES" -- \
        mig_rss_run "$WORK/mig-rss-move" rclone --config "$RCLONE_CONF" move "$WORK/mig-src" "weed:$bucket/tree" \
        --delete-empty-src-dirs "${MIG_RCLONE_FLAGS[@]}"
    mig_peak rclone "$WORK/mig-rss-move"
    rm -rf "$WORK/mig-src"
    delete_bucket "$bucket"
    log "  S3 data after the round: $(weed_data_mib) MiB"
}

section_migration() {
    MIG_PID=""
    [ -n "$S3_ENDPOINT" ] || die "migration needs the S3 server (start_weed)"
    ensure_packages attr
    rm -f "$WORK/$MIG.samples.jsonl" "$WORK/mig-cold.jsonl"
    MIG_BYTES=$((MIG_MIB * 1024 * 1024))
    local avail_mib need_mib reserve="${MIG_RESERVE_MIB:-10240}"
    avail_mib=$(( $(df -Pk "$WORK" | awk 'NR == 2 { print $4 }') / 1024 ))
    need_mib=$(( 2 * MIG_MIB + reserve ))
    if [ "$avail_mib" -lt "$need_mib" ]; then
        local why="$avail_mib MiB free; two copies of the $MIG_MIB MiB tree plus a $reserve MiB reserve need $need_mib MiB"
        log "error: migration SKIPPED: $why (use --mig-mib, --workdir, or MIG_RESERVE_MIB)"
        printf '{"section":"migration","skipped":"%s"}\n' "$why" >>"$WORK/elapsed.jsonl"
        return 0
    fi
    # Three copies (mount, plain directory, bucket) for the parallel set-up.
    MIG_PARALLEL_GEN=0
    [ "$avail_mib" -ge $(( 3 * MIG_MIB + reserve )) ] && MIG_PARALLEL_GEN=1
    local round
    for ((round = 1; round <= MIG_RUNS; round++)); do
        log "round $round/$MIG_RUNS: $MIG_FILES files, $MIG_MIB MiB"
        mig_round "$round"
    done
    record_rss "$MIG" weed "$WEED_PID"
    cat >"$WORK/$MIG.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $MIG_RUNS,
  "params": {
    "files": $MIG_FILES,
    "total_mib": $MIG_MIB,
    "tree": $(cat "$WORK/mig-gen.json"),
    "distribution": "97% 4-256 KiB log-uniform, 2.88% 1-16 MiB log-uniform, 0.14% (>=1) large files sharing the rest of the total (weights 0.6-1.4); random bytes, seed 7; 100 files per directory",
    "seaweedfs": $(BENCHLIB_PY json-string "$WEED_VERSION"),
    "rclone_version": $(BENCHLIB_PY json-string "$(rclone version 2>/dev/null | head -n1)"),
    "rclone_flags": $(BENCHLIB_PY json-list "${MIG_RCLONE_FLAGS[@]}"),
    "raw_concurrency": 4,
    "tierfs_config": "one S3 remote, defaults (4 files in flight, 8 MiB parts, 4 parts in flight, verify read-back); rule 'mig/** -> cloud'; migrate_interval off"
  },
  "cold_check": $(python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])]))' "$WORK/mig-cold.jsonl")
}
EOF
    mkdir -p "$OUT_DIR/bench-results"
    python3 "$BENCH_LIB/report.py" migration \
        --samples "$WORK/$MIG.samples.jsonl" --meta "$WORK/$MIG.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$MIG.json" --md "$OUT_DIR/benchmarks.md"
}
