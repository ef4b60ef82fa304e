#!/usr/bin/env python3
"""Turns a dynasim run directory into PNG plots and a self-contained HTML report.

Usage:
  python3 tools/plot/plot_run.py RUN_DIR [--out DIR]

RUN_DIR is what `dynasim run ... --out RUN_DIR` wrote: summary.json, metrics.csv and
partitions.csv (docs/scenarios.md, "Outputs"). The plots go to DIR (default: RUN_DIR/plots):

  throughput.png      operations per second that succeeded and failed, throttled requests when
                      the run counted any, with the fault timeline shaded
  latency.png         whole-operation latency p50, p99 and max per interval, as the clients saw it
  partitions.png      a heat map of the attempts per second each partition received, and of the
                      attempts that failed there
  splits.png          partition count and splits over time (when the run counted splits)
  healing.png         the healing timeline: replicas lost, log replicas and rebuilds per interval,
                      and the faults that caused them
  availability.png    availability per window (the paper's 5-minute windows) against 99.99 %
  report.html         every plot above embedded, the verdict, the checks and the key figures

Needs python3 and python3-matplotlib (Debian packages); nothing else.
"""

import argparse
import base64
import csv
import html
import io
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402

SLO_AVAILABILITY = 0.9999  # P22 section 1: the 99.99 % SLA for regular tables


def read_metrics(path):
    """metrics.csv as a dict of column name -> list of floats (empty cells are None)."""
    columns = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        for name in reader.fieldnames or []:
            columns[name] = []
        for row in reader:
            for name, value in row.items():
                columns[name].append(float(value) if value not in ("", None) else None)
    return columns


def read_partitions(path):
    """partitions.csv as a list of (time_s, partition, attempts, errors)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append((float(row["time_s"]), int(row["partition"]), int(row["attempts"]),
                         int(row["errors"])))
    return rows


DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
                  "d": 86400.0}


def parse_seconds(text):
    """'119.953561800s', '8.8s', '2m' -> seconds."""
    match = re.fullmatch(r"([0-9.]+)(ns|us|ms|s|m|h|d)", text.strip())
    if not match:
        return None
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def fault_spans(summary):
    """[(start_s, end_s, label)] of the applied faults in the summary's fault log."""
    spans = []
    for entry in summary.get("faults", {}).get("log", []):
        if not entry.get("applied", False):
            continue
        start = parse_seconds(entry.get("time", ""))
        if start is None:
            continue
        description = entry.get("fault", "")
        length = None
        match = re.search(r" for ([0-9.]+(?:ns|us|ms|s|m|h|d))", description)
        if match:
            length = parse_seconds(match.group(1))
        spans.append((start, start + (length or 0.0), description))
    return spans


def shade_heal(axis, summary):
    heal = summary.get("phases", {}).get("heal")
    if heal:
        axis.axvspan(heal["start_s"], heal["end_s"], color="grey", alpha=0.12,
                     label="heal phase (workload stopped)")


def shade_faults(axis, spans):
    for index, (start, end, label) in enumerate(spans):
        if end > start:
            axis.axvspan(start, end, color="tab:red", alpha=0.12,
                         label="fault" if index == 0 else None)
        else:
            axis.axvline(start, color="tab:red", alpha=0.5, linewidth=1,
                         label="fault" if index == 0 else None)


def interval_seconds(times):
    if len(times) >= 2:
        return times[1] - times[0]
    return times[0] if times else 1.0


def plot_throughput(metrics, spans, summary, path):
    times = metrics["time_s"]
    step = interval_seconds(times)
    succeeded = [(v or 0) / step for v in metrics["succeeded"]]
    failed = [(v or 0) / step for v in metrics["failed"]]
    figure, axis = plt.subplots(figsize=(10, 4))
    # Rows are stamped with their interval's end: steps-pre holds each value over its interval.
    axis.plot(times, succeeded, label="succeeded / s", color="tab:green", drawstyle="steps-pre")
    axis.plot(times, failed, label="failed / s", color="tab:red", drawstyle="steps-pre")
    throttled = [name for name in metrics if "throttl" in name]
    for name in throttled:
        axis.plot(times, [(v or 0) / step for v in metrics[name]], label=name + " / s",
                  linestyle="--", drawstyle="steps-pre")
    shade_faults(axis, spans)
    shade_heal(axis, summary)
    axis.set_xlabel("simulated time (s)")
    axis.set_ylabel("operations per second")
    axis.set_title("Throughput and errors as the clients saw them")
    axis.legend(loc="upper right", fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_latency(metrics, spans, summary, path):
    times = metrics["time_s"]
    figure, axis = plt.subplots(figsize=(10, 4))
    for name, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99"),
                        ("latency_max_ms", "max")):
        points = [(t, v) for t, v in zip(times, metrics[name]) if v is not None and v > 0]
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], label=label,
                      drawstyle="steps-pre")
    shade_faults(axis, spans)
    shade_heal(axis, summary)
    axis.set_yscale("log")
    axis.set_xlabel("simulated time (s)")
    axis.set_ylabel("latency (ms, log scale)")
    axis.set_title("Whole-operation latency at the client (retries and backoff included)")
    axis.legend(loc="upper right", fontsize="small")
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_partitions(rows, metrics, path):
    if not rows:
        return False
    times = sorted({row[0] for row in rows} | set(metrics["time_s"]))
    column = {t: i for i, t in enumerate(times)}
    partitions = sorted({row[1] for row in rows})
    line = {p: i for i, p in enumerate(partitions)}
    step = interval_seconds(metrics["time_s"])
    load = [[0.0] * len(times) for _ in partitions]
    errors = [[0.0] * len(times) for _ in partitions]
    for time_s, partition, attempts, failed in rows:
        load[line[partition]][column[time_s]] = attempts / step
        errors[line[partition]][column[time_s]] = failed / step
    height = min(12, 2 + 0.25 * len(partitions))
    figure, axes = plt.subplots(2, 1, figsize=(10, 2 * height), sharex=True)
    extent = [times[0] - step, times[-1], -0.5, len(partitions) - 0.5]
    for axis, data, title, colours in ((axes[0], load, "attempts per second", "viridis"),
                                       (axes[1], errors, "failed attempts per second", "magma")):
        image = axis.imshow(data, aspect="auto", origin="lower", extent=extent, cmap=colours,
                            interpolation="nearest")
        figure.colorbar(image, ax=axis, label=title)
        axis.set_ylabel("partition")
        axis.set_title("Per-partition " + title)
    axes[1].set_xlabel("simulated time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_splits(metrics, summary, path):
    """The partition count over time from summary.json's partitions (initial count and each
    split's time), each split marked with its reason and parent."""
    partitions = summary.get("partitions", {})
    splits = partitions.get("splits") if isinstance(partitions.get("splits"), list) else []
    # The counters count per replica (each split begins and commits on every replica): shown
    # only when the summary lists no splits.
    counters = [] if splits else [name for name in ("splits.begun", "splits.commits_applied")
                                  if name in metrics]
    if not splits and not counters:
        return False
    figure, axis = plt.subplots(figsize=(10, 3.5))
    initial = partitions.get("initial")
    end = summary.get("sim_seconds") or (metrics["time_s"][-1] if metrics.get("time_s") else 0)
    if initial is not None:
        times = [0.0] + [split["time_s"] for split in splits] + [end]
        counts = [initial + i for i in range(len(splits) + 1)] + [initial + len(splits)]
        axis.step(times, counts, where="post", label="partition count", color="black")
        for split in splits:
            axis.axvline(split["time_s"], color="tab:red", alpha=0.3)
            axis.annotate("%s of %s" % (split.get("reason", "split"), split.get("parent")),
                          (split["time_s"], initial), rotation=90, fontsize="x-small",
                          va="bottom", ha="right")
    for name in counters:
        total, cumulative = 0.0, []
        for value in metrics[name]:
            total += value or 0
            cumulative.append(total)
        axis.step(metrics["time_s"], cumulative, where="post", label=name + " (cumulative)")
    axis.set_xlabel("simulated time (s)")
    axis.set_ylabel("partitions / splits")
    axis.set_title("Partitions and splits")
    axis.legend(loc="upper left", fontsize="small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_healing(metrics, spans, summary, path):
    names = [name for name in metrics if name.startswith("healing.")]
    if not names and not spans:
        return False
    times = metrics["time_s"]
    figure, axis = plt.subplots(figsize=(10, 4))
    for name in sorted(names):
        values = metrics[name]
        if any(v for v in values):
            axis.plot(times, [v or 0 for v in values], label=name, drawstyle="steps-pre")
    shade_faults(axis, spans)
    shade_heal(axis, summary)
    for start, _, label in spans:
        axis.annotate(label, (start, 0), xytext=(2, 4), textcoords="offset points",
                      fontsize="x-small", rotation=90, va="bottom", color="tab:red")
    axis.set_xlabel("simulated time (s)")
    axis.set_ylabel("events per interval")
    axis.set_title("Healing timeline and faults")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="upper right", fontsize="x-small")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_availability(summary, path):
    windows = summary.get("availability", {}).get("windows", [])
    windows = [w for w in windows if w.get("fraction") is not None]
    if not windows:
        return False
    labels = ["%d-%d min" % (w["start_ns"] // 60_000_000_000, w["end_ns"] // 60_000_000_000)
              for w in windows]
    values = [100.0 * w["fraction"] for w in windows]
    colours = ["tab:green" if w["fraction"] >= SLO_AVAILABILITY else "tab:orange"
               for w in windows]
    figure, axis = plt.subplots(figsize=(max(6, 0.8 * len(windows) + 2), 3.5))
    axis.bar(range(len(windows)), values, color=colours)
    axis.axhline(100.0 * SLO_AVAILABILITY, color="black", linestyle="--", linewidth=1,
                 label="99.99 % (P22 section 1)")
    axis.set_xticks(range(len(windows)))
    axis.set_xticklabels(labels, rotation=30, fontsize="small")
    low = min(values + [100.0 * SLO_AVAILABILITY])
    axis.set_ylim(max(0.0, low - (100.0 - low) * 0.5 - 0.01), 100.0)
    axis.set_ylabel("availability (%)")
    axis.set_title("Availability per %s window, measured at the client"
                   % summary.get("availability", {}).get("window", ""))
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def embedded(path):
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def figure_table(summary):
    rows = []
    for name in ("seed", "trace_hash", "events", "sim_seconds", "wall_seconds",
                 "events_per_second", "sim_seconds_per_wall_second"):
        if name in summary:
            value = summary[name]
            if isinstance(value, float):
                value = "%.3f" % value
            rows.append((name, value))
    latency = summary.get("operation_latency_ms", {}).get("all")
    if latency:
        for key in ("p50", "p99", "p999", "max"):
            if latency.get(key) is not None:
                rows.append(("operation latency %s (ms)" % key, "%.3f" % latency[key]))
    for section in ("requests", "partitions", "memds"):
        if isinstance(summary.get(section), dict):
            for key, value in summary[section].items():
                rows.append(("%s.%s" % (section, key), json.dumps(value)))
    return rows


def write_report(summary, plots, path):
    verdict = "PASSED" if summary.get("passed") else "FAILED"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>dynasim: %s seed %s</title>" % (html.escape(str(summary.get("scenario"))),
                                                 html.escape(str(summary.get("seed")))),
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left}.pass{color:#080}.fail{color:#b00}img{max-width:100%}"
        "code{background:#f4f4f4;padding:2px 4px}</style></head><body>",
        "<h1>%s, seed %s: <span class='%s'>%s</span></h1>" % (
            html.escape(str(summary.get("scenario"))), html.escape(str(summary.get("seed"))),
            "pass" if summary.get("passed") else "fail", verdict),
    ]
    if summary.get("reproduce"):
        parts.append("<p>Reproduce: <code>%s</code></p>" % html.escape(summary["reproduce"]))
    parts.append("<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>first violation"
                 "</th></tr>")
    for name, check in sorted(summary.get("checks", {}).items()):
        passed = check.get("passed", False)
        parts.append("<tr><td>%s</td><td class='%s'>%s</td><td>%s</td></tr>" % (
            html.escape(name), "pass" if passed else "fail", "passed" if passed else "FAILED",
            html.escape(str(check.get("first_violation", "")))))
    parts.append("</table><h2>Figures</h2><table>")
    for name, value in figure_table(summary):
        parts.append("<tr><td>%s</td><td>%s</td></tr>" % (html.escape(name),
                                                          html.escape(str(value))))
    parts.append("</table>")
    for title, image in plots:
        parts.append("<h2>%s</h2><img src='%s' alt='%s'>" % (html.escape(title), embedded(image),
                                                             html.escape(title)))
    parts.append("</body></html>")
    with open(path, "w") as handle:
        handle.write("\n".join(parts))


def main(argv):
    parser = argparse.ArgumentParser(
        description="Turn a dynasim run directory into PNG plots and an HTML report.",
        epilog="Example: dynasim run scenarios/power-off-game-day.json --out out/gd && "
               "python3 tools/plot/plot_run.py out/gd")
    parser.add_argument("run_dir", help="a directory written by 'dynasim run --out'")
    parser.add_argument("--out", help="where the plots go (default: RUN_DIR/plots)")
    arguments = parser.parse_args(argv)

    summary_path = os.path.join(arguments.run_dir, "summary.json")
    metrics_path = os.path.join(arguments.run_dir, "metrics.csv")
    for needed in (summary_path, metrics_path):
        if not os.path.exists(needed):
            print("plot_run: %s is missing; run 'dynasim run SCENARIO --out %s' first"
                  % (needed, arguments.run_dir), file=sys.stderr)
            return 2
    with open(summary_path) as handle:
        summary = json.load(handle)
    metrics = read_metrics(metrics_path)
    if not metrics.get("time_s"):
        print("plot_run: %s has no rows" % metrics_path, file=sys.stderr)
        return 2
    partitions = read_partitions(os.path.join(arguments.run_dir, "partitions.csv"))
    out = arguments.out or os.path.join(arguments.run_dir, "plots")
    os.makedirs(out, exist_ok=True)
    spans = fault_spans(summary)

    plots = []
    path = os.path.join(out, "throughput.png")
    plot_throughput(metrics, spans, summary, path)
    plots.append(("Throughput and throttling", path))
    path = os.path.join(out, "latency.png")
    plot_latency(metrics, spans, summary, path)
    plots.append(("Latency percentiles", path))
    path = os.path.join(out, "partitions.png")
    if plot_partitions(partitions, metrics, path):
        plots.append(("Per-partition heat map", path))
    path = os.path.join(out, "splits.png")
    if plot_splits(metrics, summary, path):
        plots.append(("Partitions and splits", path))
    path = os.path.join(out, "healing.png")
    if plot_healing(metrics, spans, summary, path):
        plots.append(("Healing timeline", path))
    path = os.path.join(out, "availability.png")
    if plot_availability(summary, path):
        plots.append(("Availability windows", path))
    report = os.path.join(out, "report.html")
    write_report(summary, plots, report)
    print("plot_run: %d plots and %s" % (len(plots), report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
