# shellcheck shell=bash
# Section hot-path: the hot dir read directly vs bindfs of a plain dir vs
# tierfs on a hot file, all on the same filesystem ($WORK). Sourced by
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

HP=hot-path

hp_path() {
    case "$1" in
        direct) echo "$WORK/direct" ;;
        bindfs) echo "$WORK/bindfs-mnt" ;;
        tierfs) echo "$WORK/tierfs-mnt" ;;
    esac
}
hp_backing() {
    case "$1" in
        direct) echo "$WORK/direct" ;;
        bindfs) echo "$WORK/bindfs-back" ;;
        tierfs) echo "$WORK/hot" ;;
    esac
}
hp_pid() {
    case "$1" in
        direct) echo "" ;;
        bindfs) echo "$BINDFS_PID" ;;
        tierfs) echo "$TIERFS_PID" ;;
    esac
}
hp_has() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }

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
# (tierfs: catalog queue empty; both: no CPU used for 1 s) so one
# measurement's tail does not land in the next. Up to 5 minutes.
hp_quiesce() {
    local target=$1 pid calm=0 t0 c0 c1 q deadline
    pid=$(hp_pid "$target")
    sync
    [ -n "$pid" ] || return 0
    deadline=$(( $(date +%s) + 300 ))
    while [ "$calm" -lt 2 ]; do
        c0=$(cpu_ticks "$pid")
        sleep 0.5
        c1=$(cpu_ticks "$pid")
        q=0
        [ "$target" = tierfs ] && q=$(tierfs_status_field catalog_queue)
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
    MEASURE_RESIDENT_FILE="$(hp_backing "$target")/fio.dat"
    hp_quiesce "$target"; drop_caches
    measure "$HP" seq_write "$target" "$round" fio "$pid" -- \
        fio "${common[@]}" --rw=write --bs=1m --end_fsync=1
    hp_quiesce "$target"; drop_caches
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
        hp_quiesce "$target"; drop_caches
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
    hp_quiesce "$target"; drop_caches
    measure "$HP" smallfiles "$target" "$round" smallfiles "$pid" -- \
        "$FSBENCH_BIN" smallfiles "$dir" --count "$SMALL_FILES" --size 4096
    if [ "$target" = tierfs ]; then
        # Deferred work the run left behind (catalog rows, watcher events).
        measure "$HP" catalog_settle "$target" "$round" wall "$pid" -- hp_quiesce tierfs
    fi
}

# `ls -l` of the DIR_ENTRIES directory with cold caches: fsbench's
# readdir+lstat, then coreutils ls itself (which also reads ACL xattrs).
hp_listing() {
    local round=$1 target=$2 dir pid
    dir=$(hp_path "$target")/big; pid=$(hp_pid "$target")
    hp_quiesce "$target"; drop_caches
    measure "$HP" lsl "$target" "$round" lsl "$pid" -- "$FSBENCH_BIN" lsl "$dir"
    hp_quiesce "$target"; drop_caches
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
        mkdir -p "$(hp_backing "$t")"
        [[ " ${groups[*]} " == *" hp_listing "* ]] || continue
        log "populating $(hp_backing "$t")/big with $DIR_ENTRIES files"
        "$FSBENCH_BIN" populate "$(hp_backing "$t")/big" --count "$DIR_ENTRIES" --size 0 >/dev/null
    done
    hp_has bindfs && hp_mount_bindfs
    hp_has tierfs && hp_mount_tierfs
    local rss_after_mount=0
    [ -n "$TIERFS_PID" ] && rss_after_mount=$(vm_kib "$TIERFS_PID" VmRSS)

    # Each workload runs RUNS rounds; within a round every target runs once,
    # in an order rotated per round, so slow drift hits all targets alike.
    local group round
    for group in "${groups[@]}"; do
        for ((round = 1; round <= RUNS; round++)); do
            for t in $(rotate $((round - 1)) "${TARGET_LIST[@]}"); do
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

    cat >"$WORK/$HP.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $RUNS,
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
    "tierfs_config": "hot_dir only; defaults: 4 FUSE threads, attr_timeout 1s, watch_hot_dir true"
  },
  "daemons": {
    "tierfs": {"pid": ${TIERFS_PID:-null}, "passthrough": $(BENCHLIB_PY json-string "$TIERFS_PASSTHROUGH"),
               "mount_seconds": $(awk -v n="$TIERFS_MOUNT_NS" 'BEGIN { printf "%.3f", n / 1e9 }'),
               "rss_after_mount_kib": $rss_after_mount, "vm_hwm_kib": $tierfs_hwm, "vm_rss_end_kib": $tierfs_rss},
    "bindfs": {"pid": ${BINDFS_PID:-null}, "vm_hwm_kib": $bindfs_hwm}
  }
}
EOF
    # Unmount before reporting (and before deleting the scratch dir).
    unmount_path "$WORK/tierfs-mnt"; unmount_path "$WORK/bindfs-mnt"
    [ -n "$TIERFS_PID" ] && stop_daemon "$TIERFS_PID"
    [ -n "$BINDFS_PID" ] && stop_daemon "$BINDFS_PID"

    mkdir -p "$OUT_DIR/bench-results"
    BENCHLIB_PY report-hot-path \
        --samples "$WORK/$HP.samples.jsonl" --meta "$WORK/$HP.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$HP.json" --md "$OUT_DIR/benchmarks.md"
}
