# shellcheck shell=bash
# Section catalog: the catalog and the rule engine at CATALOG_FILES files
# (default 1,000,000). Sourced by scripts/bench, which provides RUNS,
# CATALOG_FILES, WORK, OUT_DIR, the binaries and common.sh.
#
#   catalog_scale   benches/catalog_scale.rs, once: builds a tree of
#                   CATALOG_FILES empty files (1000 directories), reconciles it
#                   into a new catalog (first start), again (restart, nothing
#                   changed), renames a directory, reads the status totals;
#                   keeps the catalog file for the next step
#   tierctl_status  `tierctl status` on that catalog (daemon not running: it
#                   reads the catalog file), RUNS times, the first with cold
#                   caches
#   rules_eval      benches/rules_eval.rs --json: 20 rules decided for
#                   CATALOG_FILES synthetic files (in memory), RUNS times
# Medians are reported; the goal is rule evaluation under 2 s for 1M files.

CAT=catalog

cat_status() { "$TIERCTL_BIN" -c "$WORK/cat.toml" status; }

section_catalog() {
    [ -n "${CATALOG_SCALE_BIN:-}" ] || CATALOG_SCALE_BIN="$(locate_bench_bin catalog_scale)"
    [ -n "${RULES_EVAL_BIN:-}" ] || RULES_EVAL_BIN="$(locate_bench_bin rules_eval)"
    if [ ! -x "$CATALOG_SCALE_BIN" ] || [ ! -x "$RULES_EVAL_BIN" ]; then
        die "catalog_scale / rules_eval not built (run without --no-build)"
    fi
    rm -f "$WORK/$CAT.samples.jsonl"
    mkdir -p "$WORK/cat/hot" "$WORK/raw"
    log "catalog_scale: $CATALOG_FILES files (tree, reconcile twice, rename, status)"
    local t0 t1
    t0=$(now_ns)
    "$CATALOG_SCALE_BIN" "$CATALOG_FILES" --keep-catalog "$WORK/cat/catalog.db" >"$WORK/raw/catalog_scale.json" ||
        die "catalog_scale failed"
    t1=$(now_ns)
    log "  done in $(( (t1 - t0) / 1000000000 )) s"
    printf 'hot_dir = "%s"\ncatalog = "%s"\n' "$WORK/cat/hot" "$WORK/cat/catalog.db" >"$WORK/cat.toml"
    local round
    for ((round = 1; round <= RUNS + 1; round++)); do
        # Round 1 with cold caches, the rest warm (as a user running it twice).
        [ "$round" = 1 ] && drop_caches
        measure "$CAT" "$([ "$round" = 1 ] && echo tierctl_status_cold || echo tierctl_status)" tierfs "$round" wall "" -- cat_status
    done
    for ((round = 1; round <= RUNS; round++)); do
        measure "$CAT" rules_eval tierfs "$round" wall "" -- "$RULES_EVAL_BIN" "$CATALOG_FILES" --json
        cp "$WORK/raw/$CAT.rules_eval.tierfs.r$round.out" "$WORK/raw/rules_eval.r$round.json"
    done
    cat >"$WORK/$CAT.meta.json" <<EOF
{
  "command": $(BENCHLIB_PY json-string "$BENCH_COMMAND"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "runs": $RUNS,
  "params": {"files": $CATALOG_FILES, "catalog_bytes": $(stat -c %s "$WORK/cat/catalog.db")},
  "catalog_scale": $(cat "$WORK/raw/catalog_scale.json"),
  "rules_eval": $(python3 -c 'import json,sys; print(json.dumps([json.load(open(p)) for p in sys.argv[1:]]))' "$WORK"/raw/rules_eval.r*.json)
}
EOF
    rm -rf "$WORK/cat"
    mkdir -p "$OUT_DIR/bench-results"
    python3 "$BENCH_LIB/report.py" catalog \
        --samples "$WORK/$CAT.samples.jsonl" --meta "$WORK/$CAT.meta.json" --machine "$WORK/machine.json" \
        --json-out "$OUT_DIR/bench-results/$CAT.json" --md "$OUT_DIR/benchmarks.md"
}
