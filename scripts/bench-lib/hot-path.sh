# shellcheck shell=bash
# Section hot-path: the hot dir read directly vs bindfs of a plain dir vs
# tierfs on a hot file, all on the same filesystem ($WORK), and the tools a
# user would pick instead: `rclone mount --vfs-cache-mode full` and s3fs, both
# on the run's SeaweedFS (whose data is on the same disk). Sourced by
# scripts/bench, which provides RUNS, TARGET_LIST, FILE_SIZE_MIB, SMALL_FILES,
# DIR_ENTRIES, RAND_SECS, WORK, OUT_DIR, the binaries and common.sh.
#
# Layout under $WORK:
#   direct/              target "direct": plain directory
#   bindfs-back/ -> bindfs-mnt/        target "bindfs": `bindfs SRC MNT`, defaults
#   hot/ -> tierfs-mnt/  target "tierfs": `tierfs mount tierfs.toml tierfs-mnt`
#   */big/               DIR_ENTRIES empty files for the `ls -l` run, created in
#                        the backing dir before mounting (so tierfs's start-up
#                        reconcile indexes them; its mount time is reported)
#   rclone-mnt/rclone/   target "rclone": `rclone mount weed:hotpath MNT
#                        --vfs-cache-mode full` (cache in rclone-cache/)
#   s3fs-mnt/s3fs/       target "s3fs": `s3fs hotpath MNT` (path-style)
#   {rclone,s3fs}-mnt/big/  the DIR_ENTRIES entries for the peers: empty
#                        objects written straight into the bucket under big/
#                        by `coldbench put-tree` (through the mounts would take
#                        longer than the whole run); both peers list the same
#                        objects.
#
# The peers are slow at some workloads: they run PEER_RUNS rounds (default 1)
# and each workload has a time cap (PEER_CAP seconds): the small-file run stops
# creating (and stat-ing) after half the cap (unlinking what it made takes as
# long again) and reports what it did, marked capped;
# an `ls -l` that hits the cap is killed and its rate recorded as an upper
# bound (entries ÷ cap), marked as such in the table.

HP=hot-path
HP_BUCKET=hotpath    # the peers' bucket, deleted at the end of the section

hp_path() {
    case "$1" in
        direct) echo "$WORK/direct" ;;
        bindfs) echo "$WORK/bindfs-mnt" ;;
        tierfs) echo "$WORK/tierfs-mnt" ;;
        rclone) echo "$WORK/rclone-mnt/rclone" ;;
        s3fs) echo "$WORK/s3fs-mnt/s3fs" ;;
    esac
}
# hp_big TARGET: the directory the `ls -l` runs list.
hp_big() {
    case "$1" in
        rclone) echo "$WORK/rclone-mnt/big" ;;
        s3fs) echo "$WORK/s3fs-mnt/big" ;;
        *) echo "$(hp_path "$1")/big" ;;
    esac
}
hp_is_peer() { [ "$1" = rclone ] || [ "$1" = s3fs ]; }
hp_backing() {
    case "$1" in
        direct) echo "$WORK/direct" ;;
        bindfs) echo "$WORK/bindfs-back" ;;
        tierfs) echo "$WORK/hot" ;;
        *) echo "" ;;
    esac
}
hp_pid() {
    case "$1" in
        direct) echo "" ;;
        bindfs) echo "$BINDFS_PID" ;;
        tierfs) echo "$TIERFS_PID" ;;
        rclone) echo "$RCLONE_PID" ;;
        s3fs) echo "$S3FS_PID" ;;
    esac
}

# hp_drop TARGET: drop the page cache, and for rclone its directory cache too
# (`vfs/forget`), so "cold" means the same for every target. rclone's VFS
# data cache (files written through it) stays: that is where its reads come
# from after a write, as for a user.
hp_drop() {
    drop_caches
    [ "$1" = rclone ] && rclone_forget
    return 0
}

# hp_s3fs_remount: s3fs keeps a stat cache of its own (no way to drop it from
# outside), which would let a second listing answer from memory; before each
# listing run it is remounted. Its peak RSS so far is recorded first.
hp_s3fs_remount() {
    record_rss "$HP" s3fs "$S3FS_PID" 2>/dev/null
    unmount_path "$WORK/s3fs-mnt"
    stop_daemon "$S3FS_PID"
    mount_s3fs "$HP_BUCKET" "$WORK/s3fs-mnt" 2>/dev/null
}

# tierfs_status_field KEY: a field of `tierctl status --json`'s daemon object.
# Empty if the daemon does not answer.
tierfs_status_field() {
    { "$TIERCTL_BIN" -c "$WORK/tierfs.toml" status --json 2>/dev/null || true; } |
        python3 -c "
import json, sys
try:
    print(json.load(sys.stdin).get('daemon', {}).get('$1', ''))
except ValueError:
    print('')"
}

# hp_quiesce TARGET: wait until the target's daemon has finished deferred work
# (tierfs: catalog queue empty; all: no CPU used for 0.5 s, checked every
# 0.25 s; the catalog queue is asked only once the CPU is calm) so one
# measurement's tail does not land in the next. Up to 5 minutes.
hp_quiesce() {
    local target=$1 pid calm=0 c0 c1 q deadline
    pid=$(hp_pid "$target")
    sync
    [ -n "$pid" ] || return 0
    deadline=$(( $(date +%s) + 300 ))
    while [ "$calm" -lt 2 ]; do
        c0=$(cpu_ticks "$pid")
        sleep 0.25
        c1=$(cpu_ticks "$pid")
        q=0
        [ "$target" = tierfs ] && [ "$c1" = "$c0" ] && q=$(tierfs_status_field catalog_queue)
        if [ "$c1" = "$c0" ] && [ "${q:-0}" = 0 ]; then calm=$((calm + 1)); else calm=0; fi
        if [ "$(date +%s)" -gt "$deadline" ]; then
            log "warning: $target daemon still busy after 5 min (catalog queue ${q:-?}); going on"
            return 0
        fi
    done
}

hp_mount_bindfs() {
    mkdir -p "$WORK/bindfs-mnt"
    (ulimit -n "$HP_NOFILE" && exec bindfs "$WORK/bindfs-back" "$WORK/bindfs-mnt")
    CLEANUP_MOUNTS+=("$WORK/bindfs-mnt")
    BINDFS_PID="$(pgrep -x -f "bindfs $WORK/bindfs-back $WORK/bindfs-mnt" | head -n1 || true)"
    [ -n "$BINDFS_PID" ] && CLEANUP_PIDS+=("$BINDFS_PID")
    mountpoint -q "$WORK/bindfs-mnt" || die "bindfs did not mount"
    log "bindfs mounted (pid ${BINDFS_PID:-?}, $(findmnt -n -o OPTIONS "$WORK/bindfs-mnt"))"
}

hp_mount_tierfs() {
    mkdir -p "$WORK/tierfs-mnt"
    # Defaults except hot_dir: 4 FUSE threads, attr_timeout 1s, watch_hot_dir.
    printf 'hot_dir = "%s"\n' "$WORK/hot" >"$WORK/tierfs.toml"
    local t0 t1
    t0=$(now_ns)
    # shellcheck disable=SC2153  # TIERFS_BIN is set by scripts/bench
    (ulimit -n "$HP_NOFILE" && exec "$TIERFS_BIN" mount "$WORK/tierfs.toml" "$WORK/tierfs-mnt") 2>>"$WORK/tierfs.log" ||
        { cat "$WORK/tierfs.log" >&2; die "tierfs mount failed"; }
    t1=$(now_ns)
    CLEANUP_MOUNTS+=("$WORK/tierfs-mnt")
    TIERFS_MOUNT_NS=$((t1 - t0))
    TIERFS_PID="$(tierfs_status_field pid)"
    if [ -z "$TIERFS_PID" ]; then   # older tierctl without `status --json`
        TIERFS_PID="$(pgrep -x -f "$TIERFS_BIN mount $WORK/tierfs.toml $WORK/tierfs-mnt" | head -n1 || true)"
    fi
    [ -n "$TIERFS_PID" ] && CLEANUP_PIDS+=("$TIERFS_PID")
    local pt
    pt="$(tierfs_status_field passthrough)"
    log "tierfs mounted in $((TIERFS_MOUNT_NS / 1000000)) ms (pid ${TIERFS_PID:-?}, passthrough=${pt:-?})"
    [ "$pt" = True ] || log "warning: tierfs reports passthrough=${pt:-unknown}; data I/O goes through userspace"
    TIERFS_PASSTHROUGH="${pt:-unknown}"
}

# hp_populate_all GROUPS: if the ls group runs, the DIR_ENTRIES-entry
# listing directory of every local target (in parallel) and, if a peer runs,
# the peers' listing objects (empty objects written straight into the bucket
# under big/, see hp_peer_objects), all at once.
hp_populate_all() {
    [[ " $1 " == *" hp_listing "* ]] || return 0
    local t pids=() p t0
    t0=$(now_ns)
    for t in "${TARGET_LIST[@]}"; do
        hp_is_peer "$t" && continue
        "$FSBENCH_BIN" populate "$(hp_backing "$t")/big" --count "$DIR_ENTRIES" --size 0 >/dev/null &
        pids+=($!)
    done
    if hp_has rclone || hp_has s3fs; then
        hp_peer_objects &
        pids+=($!)
    fi
    log "populating the listing directories with $DIR_ENTRIES entries each (${#pids[@]} jobs in parallel)"
    for p in "${pids[@]}"; do wait "$p" || die "populating a listing directory failed"; done
    log "  done in $(( ($(now_ns) - t0) / 1000000 )) ms"
}

# hp_peer_objects: the bucket, and the DIR_ENTRIES empty objects under
# s3://HP_BUCKET/big/ that both peers list (through the mounts would take
# longer than the whole run).
hp_peer_objects() {
    rclone_cmd mkdir "weed:$HP_BUCKET" || die "cannot create bucket $HP_BUCKET"
    "$FSBENCH_BIN" populate "$WORK/peer-big" --count "$DIR_ENTRIES" --size 0 >/dev/null
    "$COLDBENCH_BIN" put-tree --endpoint "$S3_ENDPOINT" --bucket "$HP_BUCKET" --prefix big \
        --concurrency 32 "$WORK/peer-big" >/dev/null || die "put-tree of the listing objects failed"
    rm -rf "$WORK/peer-big"
}

# hp_setup_peers GROUPS: the bucket (the listing objects are already in it if
# the ls group runs), then the rclone and s3fs mounts of it.
hp_setup_peers() {
    : >"$WORK/hp-keep"
    rclone_cmd mkdir "weed:$HP_BUCKET" || die "cannot create bucket $HP_BUCKET"
    "$COLDBENCH_BIN" put --endpoint "$S3_ENDPOINT" --bucket "$HP_BUCKET" --key .keep "$WORK/hp-keep" >/dev/null ||
        die "cannot write to the bench bucket"
    if hp_has rclone; then
        mount_rclone "weed:$HP_BUCKET" "$WORK/rclone-mnt" "$WORK/rclone-cache" "$(free_ports 1)"
        mkdir -p "$(hp_path rclone)"
    fi
    if hp_has s3fs; then
        mount_s3fs "$HP_BUCKET" "$WORK/s3fs-mnt"
        mkdir -p "$(hp_path s3fs)"
    fi
}

# ---------------------------------------------------------------- workloads

# Sequential write (+fsync), cold and warm sequential read, cold 4 KiB random
# reads (with and without an fadvise hint), all on one FILE_SIZE_MIB file per
# target, deleted afterwards.
hp_seq() {
    local round=$1 target=$2 dir file pid
    dir=$(hp_path "$target"); pid=$(hp_pid "$target"); file="$dir/fio.dat"
    local common=(--name=hp --filename="$file" --size="${FILE_SIZE_MIB}m" --ioengine=psync
                  --iodepth=1 --output-format=json --fallocate=none)
    rm -f "$file"
    # Residency is read on the backing file: for tierfs that is where
    # passthrough I/O caches; bindfs caches in both, the backing file's counts.
    local MEASURE_RESIDENT_FILE
    MEASURE_RESIDENT_FILE=""
    # shellcheck disable=SC2034  # read by measure (dynamic scope)
    hp_is_peer "$target" || MEASURE_RESIDENT_FILE="$(hp_backing "$target")/fio.dat"
    hp_quiesce "$target"; hp_drop "$target"
    measure "$HP" seq_write "$target" "$round" fio "$pid" -- \
        fio "${common[@]}" --rw=write --bs=1m --end_fsync=1
    hp_quiesce "$target"; hp_drop "$target"
    measure "$HP" seq_read_cold "$target" "$round" fio "$pid" -- \
        fio "${common[@]}" --rw=read --bs=1m --invalidate=1
    # Warm: the file is now in the page cache; invalidate=0 keeps it there.
    measure "$HP" seq_read_warm "$target" "$round" fio "$pid" -- \
        fio "${common[@]}" --rw=read --bs=1m --invalidate=0
    # fio's default fadvise_hint=1 declares POSIX_FADV_RANDOM, which turns
    # readahead off on ext4; through FUSE passthrough the hint does not reach
    # the backing file, so it keeps reading ahead. The second run asks no
    # hint, so every target reads ahead alike. Same offsets in every run.
    local hint wl
    for hint in 1 0; do
        wl=rand_read_4k; [ "$hint" = 0 ] && wl=rand_read_4k_nohint
        hp_quiesce "$target"; hp_drop "$target"
        measure "$HP" "$wl" "$target" "$round" fio "$pid" -- \
            fio "${common[@]}" --rw=randread --bs=4k --time_based --runtime="${RAND_SECS}s" \
                --randrepeat=1 --norandommap --invalidate=1 --fadvise_hint="$hint"
    done
    rm -f "$file"
}

# create+write+close, lstat, unlink of SMALL_FILES 4 KiB files.
hp_small() {
    local round=$1 target=$2 dir pid
    dir=$(hp_path "$target"); pid=$(hp_pid "$target")
    # A peer's create (and stat) phase stops at PEER_CAP/2: unlinking what it
    # made takes about as long again on rclone, so the run stays near PEER_CAP.
    local cap=()
    hp_is_peer "$target" && cap=(--max-seconds "$(( PEER_CAP > 1 ? PEER_CAP / 2 : 1 ))")
    hp_quiesce "$target"; hp_drop "$target"
    measure "$HP" smallfiles "$target" "$round" smallfiles "$pid" -- \
        "$FSBENCH_BIN" smallfiles "$dir" --count "$SMALL_FILES" --size 4096 "${cap[@]}"
    if [ "$target" = tierfs ]; then
        # Deferred work the run left behind (catalog rows, watcher events).
        measure "$HP" catalog_settle "$target" "$round" wall "$pid" -- hp_quiesce tierfs
    fi
}

# `ls -l` of the DIR_ENTRIES directory with cold caches: fsbench's
# readdir+lstat, then coreutils ls itself (which also reads ACL xattrs).
# The peers run only `ls -l` (both hit the cap; a second capped bound would
# add PEER_CAP seconds and no information).
hp_listing() {
    local round=$1 target=$2 dir pid
    dir=$(hp_big "$target")
    local MEASURE_CAP_SECS=""
    # shellcheck disable=SC2034  # read by measure (dynamic scope)
    hp_is_peer "$target" && MEASURE_CAP_SECS=$PEER_CAP
    if ! hp_is_peer "$target"; then
        pid=$(hp_pid "$target")
        hp_quiesce "$target"; hp_drop "$target"
        measure "$HP" lsl "$target" "$round" lsl "$pid" --count "$DIR_ENTRIES" -- "$FSBENCH_BIN" lsl "$dir"
    fi
    [ "$target" = s3fs ] && hp_s3fs_remount
    pid=$(hp_pid "$target")
    hp_quiesce "$target"; hp_drop "$target"
    measure "$HP" ls_l "$target" "$round" wall "$pid" --count "$DIR_ENTRIES" -- hp_ls "$dir"
}
hp_ls() { LC_ALL=C ls -l --color=never "$1" >/dev/null; }

# ---------------------------------------------------------------- section

section_hot_path() {
    BINDFS_PID="" TIERFS_PID="" TIERFS_MOUNT_NS=0 TIERFS_PASSTHROUGH=n/a
    # Both daemons start with RLIMIT_NOFILE as high as we may set it (the
    # kernel maximum if we hold CAP_SYS_RESOURCE, else the hard limit): the
    # tierfs daemon keeps one O_PATH descriptor per inode the kernel holds, so
    # 20,000 new files or a 100,000-entry `ls -l` need that many. The limit
    # used is recorded, and so is the descriptor count after every sample.
    HP_NOFILE="$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)"
    (ulimit -n "$HP_NOFILE") 2>/dev/null || HP_NOFILE="$(ulimit -Hn)"
    [ "$HP_NOFILE" = unlimited ] && HP_NOFILE=1048576
    rm -f "$WORK/$HP.samples.jsonl"
    local t groups=() g
    for g in "${ONLY_LIST[@]}"; do
        case "$g" in seq) groups+=(hp_seq) ;; small) groups+=(hp_small) ;; ls) groups+=(hp_listing) ;; esac
    done
    for t in "${TARGET_LIST[@]}"; do
        hp_is_peer "$t" && continue
        mkdir -p "$(hp_backing "$t")"
    done
    # Set-up is not measured: the listing directories are populated in
    # parallel, and the peers' listing objects are uploaded meanwhile.
    hp_populate_all "${groups[*]}"
    hp_has bindfs && hp_mount_bindfs
    hp_has tierfs && hp_mount_tierfs
    RCLONE_PID="" S3FS_PID="" RCLONE_RC=""
    if hp_has rclone || hp_has s3fs; then
        [ -n "$S3_ENDPOINT" ] || die "the rclone and s3fs targets need the S3 server (start_weed)"
        hp_setup_peers "${groups[*]}"
    fi
    local rss_after_mount=0
    [ -n "$TIERFS_PID" ] && rss_after_mount=$(vm_kib "$TIERFS_PID" VmRSS)

    # Each workload runs RUNS rounds; within a round every target runs once,
    # in an order rotated per round, so slow drift hits all targets alike.
    # The peers run only in the first PEER_RUNS rounds, bindfs's fio group
    # only in the first BINDFS_SEQ_RUNS.
    # The fio group runs SEQ_RUNS rounds (rounds past RUNS: direct and tierfs).
    local group round rounds
    for group in "${groups[@]}"; do
        rounds=$RUNS
        [ "$group" = hp_seq ] && rounds=$SEQ_RUNS
        for ((round = 1; round <= rounds; round++)); do
            for t in $(rotate $((round - 1)) "${TARGET_LIST[@]}"); do
                hp_is_peer "$t" && [ "$round" -gt "$PEER_RUNS" ] && continue
                [ "$t" = bindfs ] && [ "$group" = hp_seq ] && [ "$round" -gt "$BINDFS_SEQ_RUNS" ] && continue
                "$group" "$round" "$t"
            done
        done
    done

    local tierfs_hwm=0 tierfs_rss=0 bindfs_hwm=0
    if [ -n "$TIERFS_PID" ]; then
        tierfs_hwm=$(vm_kib "$TIERFS_PID" VmHWM); tierfs_rss=$(vm_kib "$TIERFS_PID" VmRSS)
    fi
    [ -n "$BINDFS_PID" ] && bindfs_hwm=$(vm_kib "$BINDFS_PID" VmHWM)
    log "daemon peak RSS: tierfs $((tierfs_hwm / 1024)) MiB, bindfs $((bindfs_hwm / 1024)) MiB"
    local rclone_hwm=0 s3fs_hwm=0
    [ -n "$RCLONE_PID" ] && rclone_hwm=$(vm_kib "$RCLONE_PID" VmHWM)
    [ -n "$S3FS_PID" ] && s3fs_hwm=$(vm_kib "$S3FS_PID" VmHWM)
    record_rss "$HP" tierfs "$TIERFS_PID"
    record_rss "$HP" bindfs "$BINDFS_PID"
    record_rss "$HP" rclone "$RCLONE_PID"
    record_rss "$HP" s3fs "$S3FS_PID"
    record_rss "$HP" weed "$WEED_PID"

    cat >"$WORK/$HP.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $RUNS,
  "peer_runs": $PEER_RUNS,
  "peer_cap_seconds": $PEER_CAP,
  "bindfs_seq_runs": $BINDFS_SEQ_RUNS,
  "seq_runs": $SEQ_RUNS,
  "targets": $(BENCHLIB_PY json-list "${TARGET_LIST[@]}"),
  "workload_groups": $(BENCHLIB_PY json-list "${ONLY_LIST[@]}"),
  "params": {
    "file_size_mib": $FILE_SIZE_MIB,
    "small_files": $SMALL_FILES,
    "small_file_bytes": 4096,
    "dir_entries": $DIR_ENTRIES,
    "rand_read_seconds": $RAND_SECS,
    "fio_version": $(BENCHLIB_PY json-string "$(fio --version)"),
    "bindfs_version": $(BENCHLIB_PY json-string "$(bindfs --version 2>&1 | head -n1)"),
    "bindfs_command": "bindfs SRC MNT (defaults; as root)",
    "daemon_nofile_limit": $HP_NOFILE,
    "shell_nofile_limit": "$(ulimit -Sn)/$(ulimit -Hn)",
    "tierfs_config": "hot_dir only; defaults: 4 FUSE threads, attr_timeout 1s, watch_hot_dir true",
    "rclone_version": $(BENCHLIB_PY json-string "$(rclone version 2>/dev/null | head -n1)"),
    "rclone_command": "rclone mount weed:hotpath MNT --vfs-cache-mode full --cache-dir DIR --rc (defaults otherwise; vfs/forget before every cold run)",
    "s3fs_version": $(BENCHLIB_PY json-string "$(s3fs --version 2>/dev/null | head -n1)"),
    "s3fs_command": "s3fs hotpath MNT -f -o passwd_file=F,url=http://127.0.0.1:PORT,use_path_request_style,endpoint=us-east-1,allow_other",
    "peer_listing_setup": "entries written as empty objects straight into the bucket (coldbench put-tree, 32 in flight), not through the mounts"
  },
  "daemons": {
    "tierfs": {"pid": ${TIERFS_PID:-null}, "passthrough": $(BENCHLIB_PY json-string "$TIERFS_PASSTHROUGH"),
               "mount_seconds": $(awk -v n="$TIERFS_MOUNT_NS" 'BEGIN { printf "%.3f", n / 1e9 }'),
               "rss_after_mount_kib": $rss_after_mount, "vm_hwm_kib": $tierfs_hwm, "vm_rss_end_kib": $tierfs_rss},
    "bindfs": {"pid": ${BINDFS_PID:-null}, "vm_hwm_kib": $bindfs_hwm},
    "rclone": {"pid": ${RCLONE_PID:-null}, "vm_hwm_kib": $rclone_hwm},
    "s3fs": {"pid": ${S3FS_PID:-null}, "vm_hwm_kib": $s3fs_hwm}
  }
}
EOF
    # Unmount before reporting (and before deleting the scratch dir).
    unmount_path "$WORK/tierfs-mnt"; unmount_path "$WORK/bindfs-mnt"
    [ -n "$TIERFS_PID" ] && stop_daemon "$TIERFS_PID"
    [ -n "$BINDFS_PID" ] && stop_daemon "$BINDFS_PID"
    unmount_path "$WORK/rclone-mnt"; unmount_path "$WORK/s3fs-mnt"
    [ -n "$RCLONE_PID" ] && stop_daemon "$RCLONE_PID"
    [ -n "$S3FS_PID" ] && stop_daemon "$S3FS_PID"
    # shellcheck disable=SC2034  # RCLONE_RC is read by rclone_forget (common.sh)
    RCLONE_PID="" S3FS_PID="" RCLONE_RC=""
    rm -rf "$WORK/rclone-cache" "$WORK/peer-big"
    # Free the disk for the next section (deleting the bucket frees its volumes).
    [ -n "$S3_ENDPOINT" ] && delete_bucket "$HP_BUCKET"

    mkdir -p "$OUT_DIR/bench-results"
    BENCHLIB_PY report-hot-path \
        --samples "$WORK/$HP.samples.jsonl" --meta "$WORK/$HP.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$HP.json" --md "$OUT_DIR/benchmarks.md"
}
