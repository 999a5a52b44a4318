#!/usr/bin/env python3
"""Reports for the migration and catalog sections of scripts/bench, and the
run's summary (summary.json, ratios.svg and the `bench:summary` table).

    report.py migration --samples S --meta M --machine X --json-out J --md MD
    report.py catalog   --samples S --meta M --machine X --json-out J --md MD
    report.py summary   --out-dir D --rss R --elapsed E --command C
                        --total-seconds N [--setup-seconds N --built 0|1]
                        --sections LIST --md MD
    report.py svg-check FILE          exit 1 unless FILE parses as XML

Every figure comes from the samples the run recorded; nothing is filled in.
"""

import argparse
import json
import math
import os
import statistics
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (same directory)

# Every section of a full run (scripts/bench ALL_SECTIONS).
ALL_SECTIONS = {"hot-path", "cold-path", "migration", "catalog"}

MIB = 1024 * 1024


def load(path):
    with open(path) as f:
        return json.load(f)


def load_samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize_workload(samples, key):
    ss = [s for s in samples if s["workload"] == key]
    ok = [s["value"] for s in ss if s["value"] is not None]
    failed = [s for s in ss if s["value"] is None]
    r = {"unit": ss[0]["unit"] if ss else None, "runs": len(ss), "failed_runs": len(failed),
         "summary": benchlib.summarize(ok)}
    if failed:
        r["error"] = failed[-1]["extra"].get("error")
    secs = [s["extra"].get("seconds", s["wall_s"]) for s in ss if s["value"] is not None]
    if secs:
        r["seconds_median"] = round(statistics.median(secs), 3)
    cpu = [s["daemon_cpu_s"] for s in ss if s["value"] is not None]
    if cpu and any(cpu):
        r["daemon_cpu_s"] = round(statistics.median(cpu), 3)
    return r


def median_of(r):
    return r["summary"]["median"] if r.get("summary") else None


def cell(r):
    s = r.get("summary")
    if s is None:
        return f"**failed** ({r['failed_runs']}/{r['runs']}): `{r.get('error')}`"
    c = f"{benchlib.fmt(s['median'])} (±{s['spread_pct'] / 2:.0f}%)"
    if r.get("failed_runs"):
        c += f", **{r['failed_runs']}/{r['runs']} runs failed**: `{r.get('error')}`"
    return c


def header(doc, json_rel):
    m = doc["machine"]
    return (f"Command: `{doc['command']}` — {doc['runs']} round(s), median shown; (±x%) is the max–min "
            "spread relative to the median."
            + (" **Quick smoke-test sizes: not representative.**" if doc["quick"] else "")
            + f"\n\nDate: {m['date']}. Machine: {m['nproc']} × {m['cpu'] or 'CPU'}, kernel {m['kernel']}. "
            f"tierfs at {m['git']}. Raw samples: [`{json_rel}`]({json_rel}).")


def write_doc(a, doc, section, render):
    with open(a.json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    md = render(doc, os.path.relpath(a.json_out, os.path.dirname(os.path.abspath(a.md))))
    benchlib.splice_markdown(a.md, section, md)
    print(md)


# ---------------------------------------------------------------- migration

MIG_ROWS = [
    ("raw_put_tree", "Raw limit: `coldbench put-tree`, object_store, 4 files in flight, multipart above 8 MiB"),
    ("tierfs_migrate", "tierfs: `tierctl migrate mig` (hash, upload, verify read-back, commit, free blocks)"),
    ("rclone_copy", "`rclone copy SRC weed:BUCKET/tree` (source stays)"),
    ("rclone_move", "`rclone move SRC weed:BUCKET/tree --delete-empty-src-dirs` (source deleted)"),
]


def report_migration(a):
    meta, mach = load(a.meta), load(a.machine)
    samples = load_samples(a.samples)
    results = {key: {"label": label, **summarize_workload(samples, key)} for key, label in MIG_ROWS}
    t = median_of(results["tierfs_migrate"])
    ratios = {
        "tierfs_vs_raw": benchlib.ratio(t, median_of(results["raw_put_tree"])),
        "tierfs_vs_rclone_copy": benchlib.ratio(t, median_of(results["rclone_copy"])),
        "tierfs_vs_rclone_move": benchlib.ratio(t, median_of(results["rclone_move"])),
        # The raw upload is the most a release can reach (before reading anything
        # back): below 2, twice `rclone copy` is beyond this store in this run.
        "raw_vs_rclone_copy": benchlib.ratio(median_of(results["raw_put_tree"]), median_of(results["rclone_copy"])),
    }
    ratios = {k: (round(v, 3) if v is not None else None) for k, v in ratios.items()}
    doc = {"section": "migration", "schema": 1, **meta, "machine": mach, "results": results,
           "ratios": ratios, "raw_samples": samples}
    write_doc(a, doc, "migration", render_migration)


def render_migration(doc, json_rel):
    p, tree = doc["params"], doc["params"]["tree"]
    lines = [header(doc, json_rel), ""]
    w = lines.append

    def cls(c):
        return (f"{c['files']:,} files, {c['bytes'] / MIB:,.0f} MiB "
                f"({c['min'] / 1024:,.0f} KiB – {c['max'] / MIB:,.1f} MiB)")
    w(f"Tree: {tree['files']:,} files, {tree['bytes'] / MIB:,.0f} MiB of random bytes (`coldbench gen-tree`, "
      f"seed {tree['seed']}, 100 files per directory): small {cls(tree['small'])}; medium {cls(tree['medium'])}; "
      f"large {cls(tree['large'])}. S3: {p['seaweedfs']} on 127.0.0.1, data on the same disk; each step "
      f"writes into its own bucket, deleted after it. rclone: {p['rclone_version']}, its defaults plus "
      f"`{' '.join(p['rclone_flags'])}`.")
    w("")
    w("| Step | MiB/s | seconds | tierfs ÷ this | tierfs daemon CPU |")
    w("|---|---:|---:|---:|---:|")
    t = median_of(doc["results"]["tierfs_migrate"])
    for key, r in doc["results"].items():
        rat = "–" if key == "tierfs_migrate" else benchlib.fmt_ratio(benchlib.ratio(t, median_of(r)))
        cpu = f"{r['daemon_cpu_s']:.2f} s" if "daemon_cpu_s" in r else "–"
        w(f"| {r['label']} | {cell(r)} | {benchlib.fmt(r.get('seconds_median'))} | {rat} | {cpu} |")
    w("")
    rr = doc["ratios"]
    goal = rr.get("tierfs_vs_rclone_copy")
    w(f"tierfs vs raw upload: {benchlib.fmt_ratio(rr['tierfs_vs_raw'])}; vs `rclone copy`: "
      f"{benchlib.fmt_ratio(goal)} (target ≥ 2×: " + ("n/a" if goal is None else "**met**" if goal >= 2 else "**missed**")
      + f"); vs `rclone move`: {benchlib.fmt_ratio(rr['tierfs_vs_rclone_move'])}.")
    if (ceiling := rr.get("raw_vs_rclone_copy")) is not None:
        w(f"The raw upload itself, with no hashing and no read-back, ran at {benchlib.fmt_ratio(ceiling)} `rclone copy`"
          + (": twice `rclone copy` would be faster than the raw upload of the same tree to this S3 server in this run."
             if ceiling < 2 else "."))
    checks = ", ".join(f"round {c['round']}: {c['cold']:,} of {c['files']:,} cold" for c in doc.get("cold_check", []))
    w(f"Files cold after `tierctl migrate` (user.tierfs.state, every file checked): {checks}.")
    return "\n".join(lines)


# ---------------------------------------------------------------- catalog

CAT_ROWS = [
    ("rules_eval", "Rule evaluation: 20 rules × N files (`rules_eval --json`), wall"),
    ("tierctl_status_cold", "`tierctl status` on the N-file catalog, cold caches (daemon down: reads the catalog file)"),
    ("tierctl_status", "`tierctl status`, warm"),
]


def report_catalog(a):
    meta, mach = load(a.meta), load(a.machine)
    samples = load_samples(a.samples)
    results = {}
    for key, label in CAT_ROWS:
        r = summarize_workload(samples, key)
        if key == "rules_eval":
            evals = meta.get("rules_eval", [])
            if evals:
                r["summary"] = benchlib.summarize([round(e["wall_s"], 3) for e in evals])
                r["cpu_s_median"] = round(statistics.median(e["cpu_s"] for e in evals), 3)
                r["files_per_cpu_s_median"] = round(statistics.median(e["files_per_cpu_s"] for e in evals))
                r["unit"] = "s"
        results[key] = {"label": label, **r}
    rules = median_of(results["rules_eval"])
    doc = {"section": "catalog", "schema": 1, **meta, "machine": mach, "results": results,
           "goal": {"rules_eval_under_s": 2.0, "met": rules is not None and rules < 2.0},
           "raw_samples": samples}
    write_doc(a, doc, "catalog", render_catalog)


def render_catalog(doc, json_rel):
    n = doc["params"]["files"]
    lines = [header(doc, json_rel), ""]
    w = lines.append
    w(f"N = {n:,} files; catalog file {doc['params']['catalog_bytes'] / MIB:,.0f} MiB.")
    w("")
    w("| Measurement | unit | median | goal |")
    w("|---|---|---:|---|")
    for key, r in doc["results"].items():
        goal = ""
        if key == "rules_eval":
            m = median_of(r)
            goal = "< 2 s: " + ("n/a" if m is None else "**met**" if m < 2 else "**missed**")
            goal += f" (CPU {r.get('cpu_s_median', '–')} s, {r.get('files_per_cpu_s_median', 0):,} files per CPU-second)"
        w(f"| {r['label'].replace('N files', f'{n:,} files').replace('N-file', f'{n:,}-file')} | "
          f"{r['unit'] or ''} | {cell(r)} | {goal} |")
    cs = doc["catalog_scale"]
    w("")
    w(f"`catalog_scale {n}` (one run; `benches/catalog_scale.rs`): tree of {n:,} files created in "
      f"{cs['create_tree_s']} s; reconcile of all-new files (first start) {cs['reconcile_new_s']} s; "
      f"reconcile with nothing changed (restart) {cs['reconcile_unchanged_s']} s; directory rename "
      f"({cs['rename_dir_rows']:,} rows) {cs['rename_dir_s']} s; status query {cs['status_first_s']} s "
      f"(again {cs['status_again_s']} s); its peak RSS {cs['peak_rss_kib'] / 1024:.0f} MiB.")
    return "\n".join(lines)


# ---------------------------------------------------------------- summary

def maybe(path):
    try:
        return load(path)
    except (OSError, ValueError):
        return None


def rows_from(out_dir, sections):
    """(group, label, kind, value, target, op, source) for each main figure."""
    res = os.path.join(out_dir, "bench-results")
    rows = []

    def add(group, label, value, target, op, source, kind="ratio", bound=None):
        met = None
        if value is not None and target is not None:
            met = value >= target if op == ">=" else value > target if op == ">" else value <= target \
                if op == "<=" else value < target
        rows.append({"group": group, "label": label, "kind": kind, "value": value, "target": target,
                     "op": op, "met": met, "bound": bound, "source": source})

    if "hot-path" in sections and (hp := maybe(os.path.join(res, "hot-path.json"))):
        r = hp["results"]

        def hr(key, rk):
            x = r.get(key, {})
            return x.get("ratios", {}).get(rk), x.get("ratio_bounds", {}).get(rk)
        for key, label, thr in (("seq_write", "sequential write", 0.95), ("seq_read_cold", "sequential read (cold)", 0.95),
                                ("seq_read_warm", "sequential read (warm)", 0.95),
                                ("rand_read_4k", "4 KiB random read", 0.90),
                                ("rand_read_4k_nohint", "4 KiB random read, no fadvise hint", 0.90)):
            v, _ = hr(key, "tierfs_vs_direct")
            add("hot path", f"{label}: tierfs ÷ direct", v, thr, ">=", "hot-path")
        n, entries = hp["params"]["small_files"], hp["params"]["dir_entries"]
        for key, label in (("small_total", f"{n:,} small files create/stat/unlink"),
                           ("ls_l", f"`ls -l` of {entries:,} entries")):
            v, _ = hr(key, "tierfs_vs_direct")
            add("hot path", f"{label}: tierfs ÷ direct (within 5×)", v, 0.2, ">=", "hot-path")
            for peer in ("bindfs", "rclone", "s3fs"):
                v, b = hr(key, f"tierfs_vs_{peer}")
                if v is not None:
                    cap = (r.get(key, {}).get("targets", {}).get(peer) or {}).get("capped") or {}
                    note = ""
                    if cap.get("bound") == "partial":
                        note = f" ({peer} stopped at {cap['cap_s']} s: {cap['done']:,} of {cap['requested']:,} files)"
                    add("hot path", f"{label}: tierfs ÷ {peer}{note}", v, 1.0, ">", "hot-path", bound=b)
    if "cold-path" in sections and (cp := maybe(os.path.join(res, "cold-path.json"))):
        r = cp["results"]

        def med(k):
            x = r.get(k, {}).get("summary")
            return x["median"] if x else None
        add("cold path", "first 4 KiB of a cold file, tierfs (ms)", med("first_byte"), 50.0, "<=", "cold-path", kind="ms")
        add("cold path", "full read of a cold file: tierfs ÷ raw GET", benchlib.ratio(med("stub_read"), med("raw_download")),
            0.8, ">=", "cold-path")
        add("cold path", "release of one file: tierfs ÷ raw PUT", benchlib.ratio(med("migrate"), med("raw_upload")),
            None, None, "cold-path")
        for peer in ("rclone", "s3fs"):
            if med(f"{peer}_read") is not None:
                add("cold path", f"full read: tierfs ÷ {peer}", benchlib.ratio(med("stub_read"), med(f"{peer}_read")),
                    1.0, ">", "cold-path")
            if med(f"{peer}_first_byte") is not None:
                add("cold path", f"first 4 KiB: {peer} time ÷ tierfs time", benchlib.ratio(med(f"{peer}_first_byte"),
                    med("first_byte")), 1.0, ">", "cold-path")
    if "migration" in sections and (mg := maybe(os.path.join(res, "migration.json"))):
        rr = mg["ratios"]
        add("migration", "releasing a tree: tierfs ÷ raw upload", rr.get("tierfs_vs_raw"), None, None, "migration")
        add("migration", "releasing a tree: tierfs ÷ `rclone copy`", rr.get("tierfs_vs_rclone_copy"), 2.0, ">=", "migration")
        add("migration", "raw upload ÷ `rclone copy` (the ceiling for the ratio above)", rr.get("raw_vs_rclone_copy"),
            None, None, "migration")
        add("migration", "releasing a tree: tierfs ÷ `rclone move`", rr.get("tierfs_vs_rclone_move"), 1.0, ">", "migration")
    if "catalog" in sections and (ct := maybe(os.path.join(res, "catalog.json"))):
        r = ct["results"]
        n = ct["params"]["files"]
        v = r["rules_eval"]["summary"]["median"] if r["rules_eval"].get("summary") else None
        add("catalog", f"rule evaluation over {n:,} files (s)", v, 2.0, "<", "catalog", kind="s")
        v = r["tierctl_status"]["summary"]["median"] if r["tierctl_status"].get("summary") else None
        add("catalog", f"`tierctl status` on {n:,} files, warm (s)", v, None, None, "catalog", kind="s")
    return rows


def report_summary(a):
    sections = [s for s in a.sections.split(",") if s]
    elapsed = load_samples(a.elapsed) if os.path.exists(a.elapsed) else []
    # Only sections that ran to the end in this run: never a stale JSON.
    done = {e["section"] for e in elapsed if "skipped" not in e} - {e["section"] for e in elapsed if "skipped" in e}
    rows = rows_from(a.out_dir, [s for s in sections if s in done])
    rss = load_samples(a.rss) if os.path.exists(a.rss) else []
    peaks = {}
    for s in rss:
        k = (s["section"], s["process"])
        peaks[k] = max(peaks.get(k, 0), s["vm_hwm_kib"])
    tierfs_peak = max((v for (sec, p), v in peaks.items() if p == "tierfs"), default=None)
    if tierfs_peak is not None:
        rows.append({"group": "memory", "label": "tierfs daemon peak RSS over the run (MiB)", "kind": "MiB",
                     "value": round(tierfs_peak / 1024, 1), "target": 100.0, "op": "<",
                     "met": tierfs_peak / 1024 < 100.0, "bound": None, "source": "all"})
    if a.setup_seconds is not None and a.built and done == set(ALL_SECTIONS) \
            and "--quick" not in a.command.split():
        minutes = (a.setup_seconds + a.total_seconds) / 60
        rows.append({"group": "run", "label": "start to table: installs, release build and all four sections (min)",
                     "kind": "min", "value": round(minutes, 1), "target": 30.0, "op": "<",
                     "met": minutes < 30.0, "bound": None, "source": "all"})
    elapsed = load_samples(a.elapsed) if os.path.exists(a.elapsed) else []
    skipped = {e["section"]: e["skipped"] for e in elapsed if "skipped" in e}
    doc = {"schema": 1, "command": a.command, "sections": sections, "total_seconds": a.total_seconds,
           "setup_seconds": a.setup_seconds, "built": a.built,
           "section_seconds": {e["section"]: e["seconds"] for e in elapsed if "seconds" in e},
           "skipped": skipped,
           "rows": rows,
           "peak_rss_kib": [{"section": s, "process": p, "vm_hwm_kib": v} for (s, p), v in sorted(peaks.items())]}
    res = os.path.join(a.out_dir, "bench-results")
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, "summary.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    svg_path = os.path.join(res, "ratios.svg")
    with open(svg_path, "w") as f:
        f.write(svg(rows))
    ET.parse(svg_path)  # well-formed, or this raises
    md_dir = os.path.dirname(os.path.abspath(a.md))
    md = render_summary(doc, os.path.relpath(os.path.join(res, "summary.json"), md_dir),
                        os.path.relpath(svg_path, md_dir))
    benchlib.splice_markdown(a.md, "summary", md)
    print(md)


def fmt_value(r):
    v = r["value"]
    if v is None:
        return "–"
    pre = "≥ " if r.get("bound") == "lower" else ""
    if r["kind"] == "ratio":
        return pre + benchlib.fmt_ratio(v)
    return pre + f"{benchlib.fmt(v)} {r['kind']}"


def fmt_target(r):
    if r["target"] is None:
        return "(information)"
    t = r["target"]
    unit = "×" if r["kind"] == "ratio" else f" {r['kind']}"
    op = {">=": "≥", "<=": "≤"}.get(r["op"], r["op"])
    return f"{op} {t:g}{unit}"


def setup_note(doc):
    """How long the run spent before its first section, and start to finish."""
    setup = doc.get("setup_seconds")
    if setup is None:
        return ""
    what = ("installing what was missing and `cargo build --release` of the binaries and helpers"
            if doc.get("built") else "checking the installs (`--no-build`)")
    total = (setup + doc["total_seconds"]) / 60
    return f", after {setup} s of set-up ({what}): {total:.1f} min from start to this table"


def render_summary(doc, json_rel, svg_rel):
    lines = []
    w = lines.append
    w(f"Command: `{doc['command']}`; sections {', '.join(doc['sections'])}; the sections took "
      f"{doc['total_seconds'] / 60:.1f} min (" + ", ".join(f"{k} {v} s" for k, v in doc["section_seconds"].items())
      + ")" + setup_note(doc) + f". Every figure below is a median from the section tables further down. Data: [`{json_rel}`]({json_rel}).")
    for sec, why in doc.get("skipped", {}).items():
        w("")
        w(f"**Section {sec} was skipped in this run:** {why}.")
    w("")
    w("| Area | Measure | value | target | |")
    w("|---|---|---:|---|---|")
    for r in doc["rows"]:
        verdict = "" if r["met"] is None else ("**met**" if r["met"] else "**missed**")
        w(f"| {r['group']} | {r['label']} | {fmt_value(r)} | {fmt_target(r)} | {verdict} |")
    w("")
    w("Ratios are tierfs's rate ÷ the other's (above 1: tierfs faster), except where the label says time ÷ "
      "time. \"≥\" marks a lower bound: the peer was stopped at its time cap.")
    w("")
    w(f"![Main ratios]({svg_rel})")
    w("")
    if doc["peak_rss_kib"]:
        w("Peak RSS (VmHWM) per process and section (MiB; weed is the S3 server, for information; "
          "for `rclone copy`/`move` and coldbench it is the command's own peak):")
        w("")
        procs = sorted({p["process"] for p in doc["peak_rss_kib"]})
        secs = list(dict.fromkeys(p["section"] for p in doc["peak_rss_kib"]))
        w("| section | " + " | ".join(procs) + " |")
        w("|---|" + "---:|" * len(procs))
        for s in secs:
            vals = {p["process"]: p["vm_hwm_kib"] for p in doc["peak_rss_kib"] if p["section"] == s}
            w(f"| {s} | " + " | ".join(f"{vals[p] / 1024:.1f}" if p in vals else "–" for p in procs) + " |")
    return "\n".join(lines)


def svg(rows):
    """A horizontal bar chart of the ratio rows on a log scale, plain SVG."""
    rs = [r for r in rows if r["kind"] == "ratio" and r["value"] is not None and r["value"] > 0]
    width, left, right, bar, gap, top = 980, 430, 40, 16, 6, 40
    height = top + len(rs) * (bar + gap) + 50
    vals = [r["value"] for r in rs] + [r["target"] for r in rs if r["target"]] + [1.0]
    lo = 10 ** math.floor(math.log10(min(vals + [0.5])))
    hi = 10 ** math.ceil(math.log10(max(vals + [2.0])))
    span = math.log10(hi) - math.log10(lo)
    plot_w = width - left - right

    def x(v):
        return left + plot_w * (math.log10(v) - math.log10(lo)) / span
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
           'tierfs ratios (log scale; above 1 = tierfs faster; tick = target)</text>']
    d = int(round(math.log10(lo)))
    while 10 ** d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** d
            if lo <= v <= hi:
                xv = x(v)
                out.append(f'<line x1="{xv:.1f}" y1="{top - 5}" x2="{xv:.1f}" y2="{height - 40}" '
                           f'stroke="{"#444" if v == 1 else "#ddd"}" stroke-width="{1.5 if v == 1 else 1}"/>')
                out.append(f'<text x="{xv:.1f}" y="{height - 25}" text-anchor="middle">{v:g}×</text>')
        d += 1
    for i, r in enumerate(rs):
        y = top + i * (bar + gap)
        color = "#888" if r["met"] is None else ("#2e8b57" if r["met"] else "#c0392b")
        x0, x1 = x(min(1.0, r["value"])), x(max(1.0, r["value"]))
        out.append(f'<text x="{left - 8}" y="{y + bar - 4}" text-anchor="end">'
                   f'{escape(r["group"] + ": " + r["label"].replace("`", ""))}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar}" fill="{color}"/>')
        label = ("≥ " if r.get("bound") == "lower" else "") + f"{r['value']:.2f}×"
        out.append(f'<text x="{x1 + 4:.1f}" y="{y + bar - 4}">{escape(label)}</text>')
        if r["target"]:
            xt = x(r["target"])
            out.append(f'<line x1="{xt:.1f}" y1="{y - 2}" x2="{xt:.1f}" y2="{y + bar + 2}" stroke="black" stroke-width="2"/>')
    out.append(f'<text x="{left}" y="{height - 8}" fill="#555">green: target met, red: missed, grey: no target. '
               'Generated by scripts/bench (report.py).</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(prog="report.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("migration", "catalog"):
        c = sub.add_parser(name)
        for opt in ("samples", "meta", "machine", "json-out", "md"):
            c.add_argument(f"--{opt}", required=True)
    c = sub.add_parser("summary")
    for opt in ("out-dir", "rss", "elapsed", "command", "sections", "md"):
        c.add_argument(f"--{opt}", required=True)
    c.add_argument("--total-seconds", type=int, required=True)
    c.add_argument("--setup-seconds", type=int, default=None,
                   help="time from the script's start to the first section (installs, build)")
    c.add_argument("--built", type=int, choices=(0, 1), default=1,
                   help="1 if the set-up included cargo build (0 with --no-build)")
    c = sub.add_parser("svg-check")
    c.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "migration":
        report_migration(a)
    elif a.cmd == "catalog":
        report_catalog(a)
    elif a.cmd == "summary":
        report_summary(a)
    elif a.cmd == "svg-check":
        try:
            ET.parse(a.file)
        except ET.ParseError as e:
            print(f"{a.file}: not well-formed XML: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{a.file}: well-formed")


if __name__ == "__main__":
    main()
