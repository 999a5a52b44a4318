#!/usr/bin/env python3
"""Report for the cold-path section of scripts/bench.

Reads the samples `measure` recorded (one JSON object per line), computes
medians and the ratios of tierfs to the raw object_store limit measured in the
same run, writes docs/bench-results/cold-path.json and splices a table into
docs/benchmarks.md between the `bench:cold-path` markers.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (same directory)

SECTION = "cold-path"

# key, label, the raw limit it is compared with (or None), goal (ratio or ms)
ROWS = [
    ("raw_upload", "Raw upload: object_store multipart PUT (the limit)", None, None),
    ("migrate", "tierfs release: `tierctl migrate FILE` (hash, upload, verify read-back, commit, free blocks)",
     "raw_upload", ("ratio", 0.8)),
    ("raw_download", "Raw download: object_store GET streamed into a file + fsync (the limit)", None, None),
    ("recall", "tierfs recall: `tierctl recall FILE` (download, verify blake3, swap in)",
     "raw_download", ("ratio", 0.8)),
    ("stub_read", "Full read of the stub through the mount (`dd bs=1M`), recall running behind",
     "raw_download", ("ratio", 0.8)),
    ("first_byte", "Time to the first 4 KiB of a stub (open + read, cold caches)", None, ("ms", 50.0)),
    ("rclone_first_byte", "rclone mount (`--vfs-cache-mode full`, empty cache): first 4 KiB of the same bytes",
     None, None),
    ("rclone_read", "rclone mount: full read (`dd bs=1M`), empty cache", "raw_download", None),
    ("s3fs_first_byte", "s3fs: first 4 KiB of the same bytes", None, None),
    ("s3fs_read", "s3fs: full read (`dd bs=1M`)", "raw_download", None),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def report(a):
    meta, mach = load(a.meta), load(a.machine)
    with open(a.samples) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    results = {}
    for key, label, limit, goal in ROWS:
        ss = [s for s in samples if s["workload"] == key]
        ok = [s["value"] for s in ss if s["value"] is not None]
        failed = [s for s in ss if s["value"] is None]
        r = {"label": label, "unit": ss[0]["unit"] if ss else None, "runs": len(ss),
             "failed_runs": len(failed), "summary": benchlib.summarize(ok)}
        if failed:
            r["error"] = failed[-1]["extra"].get("error")
        cpu = [s["daemon_cpu_s"] for s in ss if s["value"] is not None and s["target"] == "tierfs"]
        if cpu:
            r["daemon_cpu_s"] = round(statistics.median(cpu), 3)
        if not ss and key.split("_")[0] in ("rclone", "s3fs"):
            continue  # that peer did not run
        results[key] = r
    for key, _, limit, goal in ROWS:
        if key not in results:
            continue
        r = results[key]
        med = r["summary"]["median"] if r["summary"] else None
        if limit:
            lim = results[limit]["summary"]
            r["ratio_to_limit"] = benchlib.ratio(med, lim["median"] if lim else None)
            # Pair the rounds: each round's ratio, then the median of those.
            by_round = {}
            for s in samples:
                if s["workload"] in (key, limit) and s["value"] is not None:
                    by_round.setdefault(s["round"], {})[s["workload"]] = s["value"]
            paired = [v[key] / v[limit] for v in by_round.values() if key in v and limit in v and v[limit]]
            r["paired_ratio_median"] = round(statistics.median(paired), 3) if paired else None
        if goal:
            kind, thr = goal
            if med is None:
                r["goal"] = "n/a"
            elif kind == "ratio":
                val = r.get("ratio_to_limit")
                r["goal"] = f"≥{thr:.2f}× raw: " + ("**met**" if val is not None and val >= thr else "**missed**")
            else:
                r["goal"] = f"< {thr:.0f} ms: " + ("**met**" if med < thr else "**missed**")
    # tierfs against each peer on the same bytes: read rate ÷ peer's rate,
    # and the peer's time to the first 4 KiB ÷ tierfs's (above 1: tierfs ahead).
    def med(k):
        s = results.get(k, {}).get("summary")
        return s["median"] if s else None
    vs = {}
    for peer in ("rclone", "s3fs"):
        if f"{peer}_read" in results:
            vs[peer] = {"full_read": benchlib.ratio(med("stub_read"), med(f"{peer}_read")),
                        "first_byte_speedup": benchlib.ratio(med(f"{peer}_first_byte"), med("first_byte"))}
    doc_vs = {p: {k: (round(v, 3) if v is not None else None) for k, v in d.items()} for p, d in vs.items()}
    doc = {"section": SECTION, "schema": 1, "tierfs_vs_peers": doc_vs, **meta, "machine": mach, "results": results,
           "raw_samples": samples}
    with open(a.json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    md = render(doc, os.path.relpath(a.json_out, os.path.dirname(os.path.abspath(a.md))))
    benchlib.splice_markdown(a.md, SECTION, md)
    print(md)


def render(doc, json_rel):
    m, p = doc["machine"], doc["params"]
    lines = []
    w = lines.append
    w(f"Command: `{doc['command']}` — {doc['runs']} round(s), median shown; (±x%) is the max–min spread "
      "relative to the median. Ratios: tierfs median ÷ limit median, and in brackets the median of the "
      "per-round ratios (each round measures both on the same fresh file)."
      + (" **Quick smoke-test sizes: not representative.**" if doc["quick"] else ""))
    w("")
    w(f"Date: {m['date']}. Machine: {m['nproc']} × {m['cpu'] or 'CPU'}, kernel {m['kernel']}. "
      f"S3: {p['seaweedfs']} on 127.0.0.1, data on the same disk. File: {p['file_size_mib']} MiB of random "
      f"bytes, new content every round; {p['part_size_mib']} MiB parts, {p['concurrency']} in flight on both "
      f"sides. tierfs at {m['git']}. Raw samples: [`{json_rel}`]({json_rel}).")
    w("")
    w("| Measurement | unit | median | ratio to raw | tierfs daemon CPU | goal |")
    w("|---|---|---:|---:|---:|---|")
    for key, r in doc["results"].items():
        s = r["summary"]
        if s is None:
            cell = f"**failed** ({r['failed_runs']}/{r['runs']}): `{r.get('error')}`"
        else:
            cell = f"{benchlib.fmt(s['median'])} (±{s['spread_pct'] / 2:.0f}%)"
            if r["failed_runs"]:
                cell += f", **{r['failed_runs']}/{r['runs']} runs failed**: `{r.get('error')}`"
        rat = "–"
        if "ratio_to_limit" in r:
            rat = benchlib.fmt_ratio(r["ratio_to_limit"])
            if r.get("paired_ratio_median") is not None:
                rat += f" ({r['paired_ratio_median']:.2f}×)"
        cpu = f"{r['daemon_cpu_s']:.2f} s" if "daemon_cpu_s" in r else "–"
        w(f"| {r['label']} | {r['unit'] or ''} | {cell} | {rat} | {cpu} | {r.get('goal', '')} |")
    w("")
    vs = doc.get("tierfs_vs_peers") or {}
    if vs:
        w("tierfs against the peers on the same bytes (above 1: tierfs ahead):")
        w("")
        w("| Peer | full read: tierfs rate ÷ peer's | first 4 KiB: peer's time ÷ tierfs's |")
        w("|---|---:|---:|")
        for peer, d in vs.items():
            w(f"| {peer} | {benchlib.fmt_ratio(d['full_read'])} | {benchlib.fmt_ratio(d['first_byte_speedup'])} |")
        w("")
        w(f"Peers: `{p.get('rclone_command', '')}` ({p.get('rclone_version', '')}); `{p.get('s3fs_command', '')}` "
          f"({p.get('s3fs_version', '')}). They read `raw/rN`, the plain object coldbench uploaded with the same "
          "bytes as tierfs's file; page cache dropped before every read.")
        w("")
    hwm = doc["daemons"]["tierfs"]["vm_hwm_kib"]
    w(f"tierfs peak RSS (VmHWM) over the section: {hwm / 1024:.1f} MiB.")
    return "\n".join(lines)


def rerender(a):
    doc = load(a.json)
    md = render(doc, os.path.relpath(a.json, os.path.dirname(os.path.abspath(a.md))))
    benchlib.splice_markdown(a.md, SECTION, md)


def main():
    ap = argparse.ArgumentParser(prog="coldreport.py")
    ap.add_argument("--samples")
    ap.add_argument("--meta")
    ap.add_argument("--machine")
    ap.add_argument("--json-out")
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", help="rerender the Markdown from this JSON instead")
    a = ap.parse_args()
    if a.json:
        rerender(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
