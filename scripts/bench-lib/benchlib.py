#!/usr/bin/env python3
"""Helpers for scripts/bench: parse raw results, aggregate, write JSON and Markdown.

Standard library only (Python >= 3.9; tomllib is used when present).

Subcommands:
  cargo-declares-bench CARGO_TOML NAME   exit 0 if [[bench]] NAME has harness = false
  cargo-executable NAME                  read cargo --message-format=json, print the bench exe
  machine --workdir D --tierfs BIN --repo R   machine description as JSON
  json-string S / json-list S...         quote for embedding in JSON
  record ...                             parse one raw result, append samples (JSONL)
  report-hot-path ...                    aggregate the hot-path section, write JSON + Markdown
  rerender --json J --md M               rebuild a section's Markdown block from its JSON
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys

MIB = 1024 * 1024


# ---------------------------------------------------------------- small helpers

def run(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw).stdout.strip()
    except OSError:
        return ""


def cargo_declares_bench(cargo_toml, name):
    with open(cargo_toml, "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11+
        benches = tomllib.loads(data.decode()).get("bench", [])
        return any(b.get("name") == name and b.get("harness") is False for b in benches)
    except ImportError:
        text = data.decode()
        for block in re.split(r"^\s*\[", text, flags=re.M):
            if block.startswith("[bench]]") and re.search(rf'name\s*=\s*"{re.escape(name)}"', block):
                return re.search(r"harness\s*=\s*false", block) is not None
        return False


def cargo_executable(name):
    exe = None
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == name:
            exe = msg.get("executable") or exe
    if not exe:
        sys.exit(f"no executable for {name} in cargo output")
    print(exe)


def machine(workdir, tierfs, repo):
    def read(path, default=""):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return default

    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    os_name = ""
    for line in read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    fs = run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", workdir]).split()
    source, fstype, options = (fs + ["", "", ""])[:3]
    disk = {"device": source, "fstype": fstype, "mount_options": options}
    # The whole disk under the partition (if any), its model and rotational flag.
    parent = run(["lsblk", "-n", "-d", "-o", "PKNAME", source]) or os.path.basename(source)
    dev = parent or os.path.basename(source)
    if dev:
        disk["model"] = read(f"/sys/block/{dev}/device/model").strip() or (
            "virtio block device" if dev.startswith("vd") else "")
        disk["rotational"] = read(f"/sys/block/{dev}/queue/rotational").strip() == "1"
        size = read(f"/sys/block/{dev}/size").strip()
        if size.isdigit():
            disk["size_gib"] = round(int(size) * 512 / 2**30, 1)
        disk["scheduler"] = read(f"/sys/block/{dev}/queue/scheduler").strip()
    git = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"]) or "no commit"
    if run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]) or git == "no commit":
        git += " (uncommitted changes)" if git != "no commit" else " (working tree)"
    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "os": os_name,
        "disk": disk,
        "tierfs_version": run([tierfs, "--version"]),
        "git": git,
        "loadavg_start": read("/proc/loadavg").split()[:3],
    }
    print(json.dumps(info, indent=2))


# ---------------------------------------------------------------- recording

def parse_fio(text, workload):
    j = json.loads(text[text.index("{"):])
    job = j["jobs"][0]
    if job.get("error"):
        raise SystemExit(f"fio job error {job['error']}")
    if workload.startswith("seq_write"):
        side = job["write"]
        value, unit = side["bw_bytes"] / MIB, "MiB/s"
    elif workload.startswith("rand_read"):
        side = job["read"]
        value, unit = side["iops"], "IOPS"
    else:
        side = job["read"]
        value, unit = side["bw_bytes"] / MIB, "MiB/s"
    pct = side.get("clat_ns", {}).get("percentile", {})
    extra = {
        "io_bytes": side["io_bytes"],
        "runtime_ms": side["runtime"],
        "clat_us": {
            "p50": pct.get("50.000000", 0) / 1000,
            "p99": pct.get("99.000000", 0) / 1000,
        },
    }
    return [(workload, value, unit, extra)]


def lat(phase):
    return {"p50": phase["lat_us"]["p50"], "p99": phase["lat_us"]["p99"]}


def parse_raw(kind, workload, text, count, wall_s):
    if kind == "fio":
        return parse_fio(text, workload)
    if kind == "smallfiles":
        j = json.loads(text)
        out = []
        cap = {}
        if j.get("capped"):
            # Stopped after max_seconds: the rates are measured over fewer files.
            cap = {"capped": True, "cap_s": j.get("max_seconds"), "done": j["count"],
                   "requested": j.get("requested"), "bound": "partial"}
        for phase in ("create", "stat", "unlink"):
            p = j[phase]
            out.append((f"small_{phase}", p["ops_per_sec"], "files/s",
                        {"seconds": p["seconds"], "lat_us": lat(p), "ops": p["ops"], **cap}))
        out.append(("small_total", j["files_per_sec"], "files/s", {"seconds": j["total_seconds"], **cap}))
        return out
    if kind == "lsl":
        j = json.loads(text)
        return [(workload, j["entries_per_sec"], "entries/s",
                 {"seconds": j["total_seconds"], "readdir_seconds": j["readdir_seconds"],
                  "entries": j["entries"], "stat_lat_us": lat(j["stat"])})]
    if kind == "bytes":
        return [(workload, count / MIB / wall_s, "MiB/s", {"seconds": wall_s, "bytes": count})]
    if kind == "ttfb":
        j = json.loads(text)
        return [(workload, j["seconds"] * 1000, "ms", {"seconds": j["seconds"], "bytes": j["bytes"]})]
    if kind == "wall":
        if count:
            return [(workload, count / wall_s, "entries/s", {"seconds": wall_s, "entries": count})]
        return [(workload, wall_s, "s", {"seconds": wall_s})]
    raise SystemExit(f"unknown kind {kind}")


FAILED_WORKLOADS = {"smallfiles": ["small_create", "small_stat", "small_unlink", "small_total"]}
UNITS = {"fio": None, "smallfiles": "files/s", "lsl": "entries/s", "bytes": "MiB/s", "ttfb": "ms"}


def record(a):
    with open(a.raw) as f:
        text = f.read()
    wall_s = a.wall_ns / 1e9
    if a.capped_secs:
        # Killed at the cap: COUNT entries in more than cap seconds.
        unit = "entries/s" if a.count else "s"
        value = a.count / a.capped_secs if a.count else a.capped_secs
        samples = [(w, value, unit, {"capped": True, "cap_s": a.capped_secs, "seconds": a.capped_secs,
                                     "bound": "upper" if a.count else "lower"})
                   for w in FAILED_WORKLOADS.get(a.kind, [a.workload])]
    elif a.error:
        unit = UNITS.get(a.kind) or ("IOPS" if a.workload.startswith("rand") else
                                     "MiB/s" if a.kind == "fio" else
                                     "entries/s" if a.count else "s")
        samples = [(w, None, unit, {"error": a.error})
                   for w in FAILED_WORKLOADS.get(a.kind, [a.workload])]
    else:
        samples = parse_raw(a.kind, a.workload, text, a.count, wall_s)
    with open(a.samples, "a") as out:
        for workload, value, unit, extra in samples:
            if a.resident_bytes >= 0:
                extra["resident_after_mib"] = round(a.resident_bytes / MIB, 1)
            s = {
                "section": a.section, "workload": workload, "target": a.target, "round": a.round,
                "value": None if value is None else round(value, 3), "unit": unit,
                "wall_s": round(wall_s, 4),
                "daemon_cpu_s": round(a.daemon_cpu_ticks / a.clk_tck, 3),
                "daemon_fds": a.daemon_fds if a.daemon_fds >= 0 else None,
                "cpu_pressure_pct": round(100 * a.psi_cpu_us / a.wall_ns * 1000, 1) if a.wall_ns else 0,
                "io_pressure_pct": round(100 * a.psi_io_us / a.wall_ns * 1000, 1) if a.wall_ns else 0,
                "extra": extra,
            }
            out.write(json.dumps(s) + "\n")
            if value is None:
                print(f"[bench {dt.datetime.now():%H:%M:%S}]   r{a.round} {workload:<15} {a.target:<7} FAILED: {a.error}", file=sys.stderr)
                continue
            tag = ""
            if extra.get("capped"):
                tag = (f" [capped at {extra['cap_s']} s: " +
                       ("bound]" if extra["bound"] != "partial" else f"{extra['done']} of {extra['requested']} files]"))
            print(f"[bench {dt.datetime.now():%H:%M:%S}]   r{a.round} {workload:<15} {a.target:<7} {'≤ ' if extra.get('bound') == 'upper' else ''}"
                  f"{fmt(value)} {unit}{tag}"
                  f"  (wall {wall_s:.2f} s, daemon cpu {s['daemon_cpu_s']:.2f} s,"
                  f" cpu stall {s['cpu_pressure_pct']:.0f}%)", file=sys.stderr)


# ---------------------------------------------------------------- reporting

def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def size_label(mib):
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


PEERS = ("bindfs", "rclone", "s3fs")
ALL_TARGETS = ("direct", "bindfs", "tierfs", "rclone", "s3fs")


def hot_path_workloads(p):
    n, entries = p["small_files"], p["dir_entries"]
    # Issue 7's targets: sequential ≥ 0.95× direct, 4 KiB random ≥ 0.9×;
    # small files and `ls -l` within 5× of direct and ahead of every peer.
    ahead = [(f"tierfs/{peer}", 1.0, "now") for peer in PEERS]
    return [
        # key, label, goals: (ratio key, threshold, stage)
        ("seq_write", f"Sequential write {size_label(p['file_size_mib'])}, 1 MiB blocks, fsync at end",
         [("tierfs/direct", 0.95, "now")]),
        ("seq_read_cold", "Sequential read, 1 MiB blocks, cold cache",
         [("tierfs/direct", 0.95, "now")]),
        ("seq_read_warm", "Sequential read, 1 MiB blocks, warm cache",
         [("tierfs/direct", 0.95, "now")]),
        ("rand_read_4k", f"Random read 4 KiB, QD1 psync, cold, {p['rand_read_seconds']} s (fio default: FADV_RANDOM)",
         [("tierfs/direct", 0.90, "now")]),
        ("rand_read_4k_nohint", "Random read 4 KiB, as above, no fadvise hint (readahead on everywhere)",
         [("tierfs/direct", 0.90, "now")]),
        ("small_create", f"{n:,} × 4 KiB files: create + write + close", []),
        ("small_stat", f"{n:,} files: lstat each", []),
        ("small_unlink", f"{n:,} files: unlink each", []),
        ("small_total", f"{n:,} files: all three phases", [("tierfs/direct", 0.2, "now")] + ahead),
        ("lsl", f"readdir + lstat of {entries:,} entries, cold (fsbench)", []),
        ("ls_l", f"`ls -l` of {entries:,} entries, cold (coreutils)", [("tierfs/direct", 0.2, "now")] + ahead),
    ]


def summarize(values):
    if not values:
        return None
    med = statistics.median(values)
    return {
        "median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3),
        "spread_pct": round(100 * (max(values) - min(values)) / med, 1) if med else 0.0,
        "samples": values,
    }


def goal_text(goals, ratios):
    parts = []
    for key, thr, stage in goals:
        r = ratios.get(key.replace("/", "_vs_"))
        if r is None and key.split("/")[1] in ("rclone", "s3fs", "bindfs"):
            continue  # that peer was not measured
        if thr == 1.0:
            want = f"ahead of {key.split('/')[1]}"
        elif key == "tierfs/direct" and thr <= 0.34:
            want = f"within {1 / thr:.0f}× of direct"
        else:
            want = f"≥{thr:.2f}× direct"
        if r is None:
            verdict = "n/a"
        else:
            ok = r > thr if thr == 1.0 else r >= thr
            verdict = "**met**" if ok else "**missed**"
        parts.append(f"{want}{' (later)' if stage == 'later' else ''}: {verdict}")
    return "; ".join(parts)


def splice_markdown(path, section, fragment):
    begin = f"<!-- bench:{section}:begin -->"
    end = f"<!-- bench:{section}:end -->"
    block = f"{begin}\n<!-- generated by scripts/bench; edits between these markers are overwritten -->\n\n{fragment.rstrip()}\n\n{end}"
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ("# tierfs benchmarks\n\nGenerated by `scripts/bench`; see `scripts/bench --help`.\n")
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def report_hot_path(a):
    with open(a.meta) as f:
        meta = json.load(f)
    with open(a.machine) as f:
        mach = json.load(f)
    samples = []
    with open(a.samples) as f:
        for line in f:
            if line.strip():
                samples.append(json.loads(line))
    with open("/proc/loadavg") as f:
        mach["loadavg_end"] = f.read().split()[:3]

    targets = meta["targets"]
    workloads = hot_path_workloads(meta["params"])
    caps = {}
    results = {}
    for key, label, goals in workloads:
        per = {}
        unit = None
        for t in targets:
            all_ss = [s for s in samples if s["workload"] == key and s["target"] == t]
            failed = [s for s in all_ss if s["value"] is None]
            ss = [s for s in all_ss if s["value"] is not None]
            if all_ss:
                unit = all_ss[0]["unit"]
            if failed and not ss:
                per[t] = {"median": None, "failed_runs": len(failed), "runs": len(all_ss),
                          "error": failed[-1]["extra"]["error"]}
                continue
            if ss:
                per[t] = summarize([s["value"] for s in ss])
                if failed:
                    per[t].update(failed_runs=len(failed), runs=len(all_ss), error=failed[-1]["extra"]["error"])
                per[t]["daemon_cpu_s"] = round(statistics.median(s["daemon_cpu_s"] for s in ss), 3)
                capped = [s for s in ss if s["extra"].get("capped")]
                if capped:
                    e = capped[-1]["extra"]
                    per[t]["capped"] = {"runs": len(capped), "cap_s": e.get("cap_s"), "bound": e.get("bound"),
                                        "done": e.get("done"), "requested": e.get("requested")}
                per[t]["seconds"] = round(statistics.median(s["extra"].get("seconds", s["wall_s"]) for s in ss), 3)
                lats = [s["extra"].get("lat_us") or s["extra"].get("clat_us") or s["extra"].get("stat_lat_us")
                        for s in ss]
                lats = [l for l in lats if l]
                res = [s["extra"]["resident_after_mib"] for s in ss if "resident_after_mib" in s["extra"]]
                if res:
                    per[t]["resident_after_mib"] = round(statistics.median(res), 1)
                if lats:
                    per[t]["lat_us"] = {k: round(statistics.median(l[k] for l in lats), 1) for k in ("p50", "p99")}
        if not per:
            continue
        med = {t: per[t]["median"] if t in per else None for t in ALL_TARGETS}
        ratios = {"tierfs_vs_direct": ratio(med["tierfs"], med["direct"]),
                  "bindfs_vs_direct": ratio(med["bindfs"], med["direct"])}
        for peer in PEERS:
            ratios[f"tierfs_vs_{peer}"] = ratio(med["tierfs"], med[peer])
        ratios = {k: (round(v, 3) if v is not None else None) for k, v in ratios.items()}
        # A peer's capped `ls -l` rate is an upper bound, so tierfs's ratio to it
        # is a lower bound (tierfs at least that much faster).
        bounds = {f"tierfs_vs_{peer}": "lower" for peer in PEERS
                  if (per.get(peer) or {}).get("capped", {}).get("bound") == "upper"}
        results[key] = {"label": label, "unit": unit, "targets": per, "ratios": ratios,
                        "ratio_bounds": bounds, "goals": goal_text(goals, ratios) if goals else ""}

    settle = [s["value"] for s in samples if s["workload"] == "catalog_settle"]
    fd_samples = [s for s in samples if s["target"] == "tierfs" and s.get("daemon_fds") is not None]
    if fd_samples:
        top = max(fd_samples, key=lambda s: s["daemon_fds"])
        meta["daemons"]["tierfs"]["max_fds"] = {"fds": top["daemon_fds"], "after": top["workload"]}
    cpu_p = [s["cpu_pressure_pct"] for s in samples if s["value"] is not None]
    io_p = [s["io_pressure_pct"] for s in samples if s["value"] is not None]
    noise = {
        "cpu_pressure_pct_median": round(statistics.median(cpu_p), 1) if cpu_p else None,
        "cpu_pressure_pct_max": max(cpu_p) if cpu_p else None,
        "io_pressure_pct_median": round(statistics.median(io_p), 1) if io_p else None,
        "max_spread_pct": max((v["spread_pct"] for r in results.values() for v in r["targets"].values()
                               if "spread_pct" in v), default=None),
        "loadavg_start": mach.get("loadavg_start"),
        "loadavg_end": mach.get("loadavg_end"),
    }
    doc = {
        "section": "hot-path", "schema": 1, **meta, "machine": mach, "results": results,
        "catalog_settle_seconds": summarize(settle), "noise": noise, "raw_samples": samples,
    }
    with open(a.json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    md = render_hot_path(doc, os.path.relpath(a.json_out, os.path.dirname(os.path.abspath(a.md))))
    splice_markdown(a.md, "hot-path", md)
    print(md)


def rerender(a):
    """Rebuild a section's Markdown from its JSON (after changing the template)."""
    with open(a.json) as f:
        doc = json.load(f)
    md = render_hot_path(doc, os.path.relpath(a.json, os.path.dirname(os.path.abspath(a.md))))
    splice_markdown(a.md, doc["section"], md)


def bindfs_seq_note(doc):
    """A sentence saying bindfs's fio rows had fewer rounds than the rest, if so."""
    n = doc.get("bindfs_seq_runs")
    if n is None or n >= doc["runs"] or "bindfs" not in doc["targets"] \
            or "seq" not in doc.get("workload_groups", ["seq"]):
        return ""
    return (f" bindfs's sequential and random-read rows: {n} round(s) (`--bindfs-seq-runs`; no summary "
            "ratio uses them, and its 2 GiB write alone takes ~35 s a round).")


def seq_runs_note(doc):
    """A sentence saying the fio rows had more (or fewer) rounds than the rest, if so."""
    n = doc.get("seq_runs")
    if n is None or n == doc["runs"] or "seq" not in doc.get("workload_groups", ["seq"]):
        return ""
    who = " and ".join(t for t in ("direct", "tierfs") if t in doc["targets"])
    return (f" Sequential and random-read rows of {who}: {n} round(s) (`--seq-runs`: the disk's "
            "speed varies from one 2 GiB run to the next, and more rounds steady the median).")


def render_hot_path(doc, json_rel):
    m, p, d, n = doc["machine"], doc["params"], doc["daemons"], doc["noise"]
    disk = m["disk"]
    targets = doc["targets"]
    lines = []
    w = lines.append
    notes = []

    def footnote(err):
        if err not in notes:
            notes.append(err)
        return notes.index(err) + 1
    w(f"Command: `{doc['command']}` — {doc['runs']} round(s) per cell, median shown; "
      "(±x%) is the max–min spread of the rounds relative to the median."
      + (" **Quick smoke-test sizes: not representative.**" if doc["quick"] else "")
      + seq_runs_note(doc) + bindfs_seq_note(doc))
    w("")
    w(f"Date: {m['date']}. Machine: {m['nproc']} × {m['cpu'] or 'CPU'}, {m['mem_gib']} GiB RAM, "
      f"kernel {m['kernel']} ({m['os']}). Disk: {disk.get('fstype')} on {disk.get('device')}"
      f" ({disk.get('model') or 'unknown model'}, rotational={1 if disk.get('rotational') else 0}"
      f"{', %s GiB' % disk['size_gib'] if 'size_gib' in disk else ''}). "
      f"tierfs {m.get('tierfs_version', '').replace('tierfs ', '')} at {m['git']}; {p['fio_version']}; "
      f"{p['bindfs_version']}. Raw samples: [`{json_rel}`]({json_rel}).")
    w("")
    head = ["Workload", "unit"] + targets
    rcols = []
    if "tierfs" in targets and "direct" in targets:
        rcols.append(("tierfs/direct", "tierfs_vs_direct"))
    if "bindfs" in targets and "direct" in targets:
        rcols.append(("bindfs/direct", "bindfs_vs_direct"))
    for peer in PEERS:
        if "tierfs" in targets and peer in targets:
            rcols.append((f"tierfs/{peer}", f"tierfs_vs_{peer}"))
    head += [c for c, _ in rcols] + ["goal"]
    w("| " + " | ".join(head) + " |")
    w("|" + "|".join(["---", "---"] + ["---:"] * (len(targets) + len(rcols)) + ["---"]) + "|")
    for key, r in doc["results"].items():
        cells = [r["label"], r["unit"]]
        for t in targets:
            v = r["targets"].get(t)
            if v is None:
                cells.append("–")
            elif v["median"] is None:
                cells.append(f"**failed** ({v['failed_runs']}/{v['runs']} runs)<sup>{footnote(v['error'])}</sup>")
            else:
                cell = f"{fmt(v['median'])} (±{v['spread_pct'] / 2:.0f}%)"
                c = v.get("capped")
                if c and c.get("bound") == "upper":
                    cell = f"≤ {fmt(v['median'])} (> {c['cap_s']} s, stopped)"
                elif c and c.get("bound") == "lower":
                    cell = f"> {fmt(v['median'])} (stopped)"
                elif c:
                    cell += f" (capped at {c['cap_s']} s: {c['done']:,} of {c['requested']:,} files)"
                if v.get("failed_runs"):
                    cell += f", **{v['failed_runs']}/{v['runs']} runs failed**<sup>{footnote(v['error'])}</sup>"
                cells.append(cell)
        cells += [("≥ " if r.get("ratio_bounds", {}).get(k) == "lower" else "") + fmt_ratio(r["ratios"].get(k))
                  for _, k in rcols]
        cells.append(r["goals"])
        w("| " + " | ".join(cells) + " |")
    w("")
    for i, e in enumerate(notes, 1):
        w(f"<sup>{i}</sup> Failure: `{e}`  ")
    if notes:
        w("")

    # Per-operation latency and where the time went.
    w("Per-operation latency (median over rounds of each run's p50 / p99, µs), the FUSE daemon's CPU time per run "
      "(user+system, median), and how much of the test file was in the page cache after the run "
      "(MiB, backing file, per target in column order):")
    w("")
    fuse_targets = [t for t in targets if t != "direct"]
    head = (["Workload"] + [f"{t} p50 / p99" for t in targets] + [f"{t} daemon CPU" for t in fuse_targets]
            + ["cached after (" + "/".join(targets) + ")"])
    w("| " + " | ".join(head) + " |")
    w("|" + "|".join(["---"] + ["---:"] * (len(targets) + len(fuse_targets) + 1)) + "|")
    for key, r in doc["results"].items():
        cells = [key]
        for t in targets:
            v = r["targets"].get(t) or {}
            l = v.get("lat_us")
            cells.append(f"{fmt(l['p50'])} / {fmt(l['p99'])}" if l else "–")
        for t in fuse_targets:
            v = r["targets"].get(t)
            cells.append(f"{v['daemon_cpu_s']:.2f} s" if v and "daemon_cpu_s" in v else "–")
        res = [r["targets"].get(t, {}).get("resident_after_mib") for t in targets]
        cells.append(" / ".join(fmt(x) for x in res) if any(x is not None for x in res) else "–")
        w("| " + " | ".join(cells) + " |")
    w("")

    tf, bf = d.get("tierfs", {}), d.get("bindfs", {})
    st = doc.get("catalog_settle_seconds")
    w("Daemons:")
    w("")
    if "tierfs" in targets:
        w(f"- tierfs peak RSS (VmHWM) over the whole section: **{tf['vm_hwm_kib'] / 1024:.1f} MiB** "
          f"(RSS {tf['rss_after_mount_kib'] / 1024:.1f} MiB after mounting, {tf['vm_rss_end_kib'] / 1024:.1f} MiB at the end); "
          f"passthrough: {tf['passthrough']}.")
        if tf.get("max_fds"):
            w(f"- tierfs open descriptors, highest seen after a measurement: {tf['max_fds']['fds']:,} "
              f"(after `{tf['max_fds']['after']}`); the daemon keeps an `O_PATH` descriptor for every inode "
              f"the kernel has looked up and not forgotten. Both daemons ran with RLIMIT_NOFILE "
              f"{p.get('daemon_nofile_limit', '?')} (the shell had {p.get('shell_nofile_limit', '?')}).")
        if "ls" in doc.get("workload_groups", ["ls"]):
            w(f"- tierfs mount time with {p['dir_entries']:,} files already in the hot dir (start-up reconcile "
              f"into a new catalog): {tf['mount_seconds']:.2f} s.")
        if st:
            w(f"- After each small-file run, the daemon needed a further {fmt(st['median'])} s (median; "
              f"{fmt(st['min'])}–{fmt(st['max'])} s) until its catalog queue was empty and it was idle: catalog "
              "work is deferred, not free (see the discussion below).")
    if "bindfs" in targets:
        w(f"- bindfs peak RSS (VmHWM): {bf['vm_hwm_kib'] / 1024:.1f} MiB.")
    for peer in ("rclone", "s3fs"):
        if peer in targets and d.get(peer):
            w(f"- {peer} peak RSS (VmHWM): {d[peer]['vm_hwm_kib'] / 1024:.1f} MiB.")
    if any(t in targets for t in ("rclone", "s3fs")):
        w("")
        w(f"Peers: `{p.get('rclone_command', 'rclone mount')}` ({p.get('rclone_version', '')}); "
          f"`{p.get('s3fs_command', 's3fs')}` ({p.get('s3fs_version', '')}); both on the run's SeaweedFS "
          f"(127.0.0.1, data on the same disk). They ran {doc.get('peer_runs', 1)} round(s) and every workload "
          f"of theirs had a {doc.get('peer_cap_seconds', '?')} s cap: a capped small-file run reports the rate over "
          f"the files it did (\"capped at … s: k of N files\"); a capped `ls -l` was killed, and its rate is an "
          f"upper bound (≤, \"> cap s, stopped\"), so tierfs's ratio to it is a lower bound (≥). The "
          f"{p['dir_entries']:,} listing entries for the peers were {p.get('peer_listing_setup', '')}. "
          "rclone's \"cold\" reads come from its local VFS cache (the file written before), as for a user.")
    w("")
    w(f"Noise: CPU pressure (PSI `some`, share of wall time some task was waiting for a CPU) during the "
      f"measurements: median {fmt(n['cpu_pressure_pct_median'])}%, max {fmt(n['cpu_pressure_pct_max'])}%; "
      f"IO pressure median {fmt(n['io_pressure_pct_median'])}%. Load average at start {' '.join(n['loadavg_start'] or [])}, "
      f"at end {' '.join(n['loadavg_end'] or [])}. Largest round-to-round spread in any cell: "
      f"{fmt(n['max_spread_pct'])}%.")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main():
    # Values may start with "--" (rclone flags): no argparse for these two.
    if sys.argv[1:2] == ["json-list"]:
        print(json.dumps(sys.argv[2:]))
        return
    if sys.argv[1:2] == ["json-string"] and len(sys.argv) == 3:
        print(json.dumps(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(prog="benchlib.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cargo-declares-bench")
    c.add_argument("cargo_toml")
    c.add_argument("name")
    c = sub.add_parser("cargo-executable")
    c.add_argument("name")
    c = sub.add_parser("machine")
    c.add_argument("--workdir", required=True)
    c.add_argument("--tierfs", required=True)
    c.add_argument("--repo", required=True)
    c = sub.add_parser("json-string")
    c.add_argument("s")
    c = sub.add_parser("json-list")
    c.add_argument("items", nargs="*")
    c = sub.add_parser("record")
    c.add_argument("--error", default="")
    for name in ("samples", "section", "workload", "target", "kind", "raw"):
        c.add_argument(f"--{name}", required=True)
    for name in ("round", "count", "capped-secs", "wall-ns", "daemon-cpu-ticks", "clk-tck", "psi-cpu-us", "psi-io-us",
                 "resident-bytes", "daemon-fds"):
        c.add_argument(f"--{name}", type=int, required=True)
    c = sub.add_parser("report-hot-path")
    for name in ("samples", "meta", "machine", "json-out", "md"):
        c.add_argument(f"--{name}", required=True)
    c = sub.add_parser("rerender", help="rebuild the Markdown block from a section's JSON")
    c.add_argument("--json", required=True)
    c.add_argument("--md", required=True)
    a = ap.parse_args()

    if a.cmd == "cargo-declares-bench":
        sys.exit(0 if cargo_declares_bench(a.cargo_toml, a.name) else 1)
    elif a.cmd == "cargo-executable":
        cargo_executable(a.name)
    elif a.cmd == "machine":
        machine(a.workdir, a.tierfs, a.repo)
    elif a.cmd == "json-string":
        print(json.dumps(a.s))
    elif a.cmd == "json-list":
        print(json.dumps(a.items))
    elif a.cmd == "record":
        record(a)
    elif a.cmd == "report-hot-path":
        report_hot_path(a)
    elif a.cmd == "rerender":
        rerender(a)


if __name__ == "__main__":
    main()
