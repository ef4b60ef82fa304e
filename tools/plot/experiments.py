#!/usr/bin/env python3
"""Runs one dynasim scenario per lesson of the DynamoDB paper and plots what it measured.

Usage:
  python3 tools/plot/experiments.py [--only NAME[,NAME...]] [--quick] [--work DIR] [--out DIR]
                                    [--dynasim PATH] [--seed N] [--reuse] [--extra-set P=V]

For each experiment the script runs `dynasim run SCENARIO --seed N --out WORK/NAME/VARIANT` once
per variant (each variant is a list of `--set` overrides), reads the runs' summary.json,
metrics.csv and partitions.csv, and writes into --out (default docs/experiments/):

  NAME.png   one figure comparing the variants
  NAME.json  the numbers docs/experiments.md quotes, with the exact commands that produced them

Experiments (docs/experiments.md says what each shows and what the paper claims):

  router-cache   constant-work vs bimodal router cache through a router-fleet cold start
                 (scenarios/router-cold-cache.json)
  burst          a hot partition with burst capacity (300 s) and without (0 s)
                 (scenarios/hot-partition-burst.json)
  gac            the same hot partition with global admission control (storage.admission.gac)
  split          a hot partition with and without split for consumption
                 (scenarios/hot-partition.json, storage.splits)
  healing        log replicas vs full replicas only (scenarios/node-loss-healing.json)
  scrub          scrub finding bit rot (scenarios/bit-rot-scrub.json)
  availability   availability under power-off tests, measured at the client and by the
                 per-AZ canaries (scenarios/power-off-game-day.json)

A run that exits with code 2 (the scenario or an override was refused, e.g. a knob that this
build does not have yet) makes the script skip that experiment and print dynasim's reason; the
others still run. Exit code 1 (a check failed) is a result, not an error: the figure shows it.

Every run has a fixed seed, so the same build gives the same figures. --quick shortens every
scenario (for a smoke test); its figures are not the ones the document quotes. --reuse keeps a
run whose directory already holds a summary.json made by the same command line.

Needs python3 and python3-matplotlib (Debian packages); nothing else.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_run import read_partitions  # noqa: E402  (the run directory's CSVs, as plot_run reads them)
from plot_run import read_metrics as read_metrics_file  # noqa: E402


def read_metrics(path):
    """metrics.csv as plot_run reads it, or no columns when the run wrote none."""
    return read_metrics_file(path) if os.path.exists(path) else {}


SLO_AVAILABILITY = 0.9999  # P22 section 1: the 99.99 % SLA for regular tables
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DPI = 80  # keeps each PNG well under 150 KB


class Skipped(Exception):
    """The experiment cannot run on this build (dynasim refused its scenario, exit code 2)."""


# ---------------------------------------------------------------------------------------------
# Running dynasim and reading its output


class Runner:
    def __init__(self, dynasim, work, seed, reuse, quick, extra):
        self.dynasim = dynasim
        self.extra = extra
        self.work = work
        self.seed = seed
        self.reuse = reuse
        self.quick = quick
        self.commands = []
        self.trace_hashes = {}

    def run(self, experiment, variant, scenario, overrides, metrics_interval="10s"):
        """Runs one variant; returns its Run. Raises Skipped on exit code 2."""
        out = os.path.join(self.work, experiment, variant)
        scenario_path = os.path.join("scenarios", scenario)
        if not os.path.exists(os.path.join(ROOT, scenario_path)):
            raise Skipped("%s does not exist in this checkout" % scenario_path)
        command = [self.dynasim, "run", scenario_path, "--seed", str(self.seed), "--quiet",
                   "--metrics-interval", metrics_interval]
        for override in overrides + self.extra:
            command += ["--set", override]
        shown_out = os.path.relpath(out, ROOT) if out.startswith(ROOT + os.sep) else out
        shown = " ".join(shlex.quote(part) for part in
                         ["build/dynasim"] + command[1:] + ["--out", shown_out])
        self.commands.append(shown)
        # What decides the run's result: the arguments after the binary, without --out.
        arguments = " ".join(shlex.quote(part) for part in command[1:])
        stamp = os.path.join(out, "command.txt")
        summary = os.path.join(out, "summary.json")
        if self.reuse and os.path.exists(summary) and os.path.exists(stamp):
            with open(stamp) as handle:
                if handle.read().strip() == arguments:
                    print("  %-14s %-22s reused %s" % (experiment, variant, out), flush=True)
                    return self.record(variant, Run(out, shown))
        os.makedirs(out, exist_ok=True)
        if os.path.exists(stamp):
            os.remove(stamp)
        started = time.monotonic()
        result = subprocess.run(command + ["--out", out], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - started
        if result.returncode == 2:
            reason = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise Skipped("dynasim refused %s (exit code 2): %s"
                          % (shown, reason[0] if reason else "no message"))
        if result.returncode not in (0, 1) or not os.path.exists(summary):
            raise RuntimeError("%s exited with %d:\n%s%s" % (shown, result.returncode,
                                                             result.stdout, result.stderr))
        with open(stamp, "w") as handle:
            handle.write(arguments + "\n")
        print("  %-14s %-22s %s in %.0f s wall" % (
            experiment, variant, "passed" if result.returncode == 0 else "a check failed",
            elapsed), flush=True)
        return self.record(variant, Run(out, shown))

    def record(self, variant, run):
        self.trace_hashes[variant] = run.summary.get("trace_hash")
        return run


class Run:
    def __init__(self, directory, command):
        self.directory = directory
        self.command = command
        with open(os.path.join(directory, "summary.json")) as handle:
            self.summary = json.load(handle)
        self.metrics = read_metrics(os.path.join(directory, "metrics.csv"))
        self.partitions = read_partitions(os.path.join(directory, "partitions.csv"))

    def column(self, name):
        """A metrics.csv column as floats (0 where empty or absent)."""
        values = self.metrics.get(name)
        if values is None:
            return [0.0] * len(self.times())
        return [v or 0.0 for v in values]

    def times(self):
        return self.metrics.get("time_s", [])

    def step(self):
        times = self.times()
        return times[1] - times[0] if len(times) >= 2 else 1.0

    def failed_checks(self):
        return sorted(name for name, check in self.summary.get("checks", {}).items()
                      if not check.get("passed", False))


def window_mean(times, values, start, end):
    """Mean of the values of the rows whose interval end lies in (start, end]."""
    chosen = [v for t, v in zip(times, values) if start < t <= end]
    return sum(chosen) / len(chosen) if chosen else 0.0


def window_max(times, values, start, end):
    chosen = [v for t, v in zip(times, values) if start < t <= end]
    return max(chosen) if chosen else 0.0


def rounded(value, digits=3):
    if isinstance(value, float):
        return round(value, digits)
    return value


def save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def shade(axis, start, end, label, colour="tab:red"):
    axis.axvspan(start, end, color=colour, alpha=0.12, label=label)


def fault_window(run, kind):
    """(start_s, end_s) of the first applied fault of this kind in the summary's fault log."""
    for entry in run.summary.get("faults", {}).get("log", []):
        if entry.get("applied") and kind in entry.get("fault", ""):
            start = parse_seconds(entry.get("time", ""))
            text = entry.get("fault", "")
            length = 0.0
            if " for " in text:
                length = parse_seconds(text.split(" for ")[1].split()[0]) or 0.0
            if start is not None:
                return start, start + length
    return None


DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(text):
    text = text.strip()
    for unit in sorted(DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[:-len(unit)]) * DURATION_UNITS[unit]
            except ValueError:
                return None
    return None


# ---------------------------------------------------------------------------------------------
# router-cache: constant-work vs bimodal router cache (P22 section 6.6)

ROUTER_QUICK = ["duration=80s", "heal=20s", "workload.verify_after=10s", "storage.partitions=12"]


def router_cache(runner):
    variants = [("constant_work", []), ("bimodal", ["storage.routing.cache=bimodal"])]
    quick = ROUTER_QUICK if runner.quick else []
    runs = {name: runner.run("router-cache", name, "router-cold-cache.json", quick + sets, "1s")
            for name, sets in variants}
    some = runs["constant_work"]
    outage = fault_window(some, "power_off") or (60.0, 70.0)
    steady = (outage[0] - 30.0, outage[0])
    after = (outage[1], outage[1] + 10.0)
    numbers = {"restart_s": list(outage), "steady_window_s": list(steady),
               "restart_window_s": list(after), "variants": {}}
    figure, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    colours = {"constant_work": "tab:blue", "bimodal": "tab:orange"}
    for name, run in runs.items():
        times = run.times()
        step = run.step()
        lookups = [v / step for v in run.column("memds_lookups")]
        requests = [v / step for v in run.column("router.requests")]
        entries = [(a + b) / step for a, b in zip(run.column("memds.lookups"),
                                                  run.column("memds.range_entries"))]
        axes[0].plot(times, lookups, drawstyle="steps-pre", color=colours[name],
                     label="MemDS requests/s, %s cache" % name)
        axes[1].plot(times, entries, drawstyle="steps-pre", color=colours[name],
                     label="partition entries MemDS served/s, %s" % name)
        if name == "constant_work":
            axes[0].plot(times, requests, drawstyle="steps-pre", color="grey", linestyle=":",
                         label="router requests/s")
        routing = run.summary.get("routing", {})
        memds = run.summary.get("memds", {})
        steady_lookups = window_mean(times, lookups, *steady)
        steady_requests = window_mean(times, requests, *steady)
        peak_after = window_max(times, lookups, *after)
        numbers["variants"][name] = {
            "command": run.command,
            "passed": run.summary.get("passed"),
            "failed_checks": run.failed_checks(),
            "steady_memds_requests_per_s": rounded(steady_lookups, 1),
            "steady_router_requests_per_s": rounded(steady_requests, 1),
            "steady_memds_per_router_request": rounded(
                steady_lookups / steady_requests if steady_requests else 0.0),
            "restart_peak_memds_requests_per_s": rounded(peak_after, 1),
            "restart_memds_requests_10s": rounded(
                sum(v * step for t, v in zip(times, lookups) if after[0] < t <= after[1]), 0),
            "start_peak_memds_requests_per_s": rounded(window_max(times, lookups, 0.0, 10.0), 1),
            "steady_entries_per_s": rounded(window_mean(times, entries, *steady), 1),
            "restart_peak_entries_per_s": rounded(window_max(times, entries, *after), 1),
            "start_peak_entries_per_s": rounded(window_max(times, entries, 0.0, 10.0), 1),
            "memds_lookups": memds.get("lookups"),
            "memds_range_pages": memds.get("range_pages"),
            "memds_lookups_per_s": memds.get("lookups_per_s"),
            "router_requests": routing.get("requests"),
            "hits": routing.get("hits"),
            "misses": routing.get("misses"),
            "availability": [w.get("fraction") for w in
                             run.summary.get("availability", {}).get("windows", [])],
        }
    heal = some.summary.get("phases", {}).get("heal")
    for axis in axes:
        shade(axis, outage[0], outage[1], "router fleet powered off")
        if heal:
            axis.axvspan(heal["start_s"], heal["end_s"], color="grey", alpha=0.12,
                         label="heal phase (read-back of every key)")
        axis.set_yscale("symlog", linthresh=1.0)
        axis.grid(alpha=0.3, which="both")
        axis.legend(loc="upper right", fontsize="x-small")
    axes[0].set_ylabel("per second (symlog)")
    axes[1].set_ylabel("per second (symlog)")
    axes[1].set_xlabel("simulated time (s)")
    axes[0].set_title("MemDS load through a router-fleet cold start (%s partitions, %s routers)"
                      % (some.summary.get("storage", {}).get("partitions", "?"),
                         some.summary.get("routing", {}).get("routers", "?")))
    return figure, numbers


# ---------------------------------------------------------------------------------------------
# burst / gac / split: a hot partition on a provisioned table (P22 sections 4.1.1, 4.2, 4.4)

HOT_QUICK = ["duration=80s", "heal=20s", "workload.verify_after=5s",
             "workload.phases[0].duration=30s", "workload.phases[1].duration=50s"]
THROTTLED = ("admission.throttled.partition", "admission.throttled.node",
             "admission.throttled.peers")


def hot_partition_figure(runs, title, hot_start):
    figure, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    numbers = {"variants": {}}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for index, (name, run) in enumerate(runs.items()):
        times = run.times()
        step = run.step()
        throttled = [sum(run.column(c)[i] for c in THROTTLED) / step for i in range(len(times))]
        burst = [v / step for v in run.column("admission.burst")]
        failed = [v / step for v in run.column("failed")]
        colour = palette[index % len(palette)]
        axes[0].plot(times, throttled, drawstyle="steps-pre", color=colour,
                     label="attempts throttled by storage/s, %s" % name)
        gac_throttled = [v / step for v in run.column("router.gac_throttled")]
        if any(gac_throttled):
            axes[0].plot(times, gac_throttled, drawstyle="steps-pre", color=colour,
                         linestyle="--", label="attempts throttled by GAC at routers/s, %s" % name)
        axes[1].plot(times, burst, drawstyle="steps-pre", color=colour,
                     label="admitted from burst/s, %s" % name)
        axes[1].plot(times, failed, drawstyle="steps-pre", color=colour, linestyle=":",
                     label="failed operations/s, %s" % name)
        first = next((t for t, v in zip(times, throttled) if t > hot_start and v > 0), None)
        requests = run.summary.get("requests", {})
        admission = run.summary.get("admission", {})
        numbers["variants"][name] = {
            "command": run.command,
            "passed": run.summary.get("passed"),
            "failed_checks": run.failed_checks(),
            "throttled_attempts": int(sum(v * step for v in throttled)),
            "first_throttled_interval_end_s": first,
            "throttled_from_hot_phase_start_s": (first - hot_start) if first is not None else None,
            "admitted_using_burst": int(sum(v * step for v in burst)),
            "throttled_by_gac_at_routers": int(sum(run.column("router.gac_throttled"))),
            "gac": run.summary.get("gac"),
            "requests": requests,
            "admission": {k: v for k, v in admission.items() if not isinstance(v, (list, dict))},
            "failed_operations": int(sum(run.column("failed"))),
            "operations": int(sum(run.column("operations"))),
            "availability": [w.get("fraction") for w in
                             run.summary.get("availability", {}).get("windows", [])],
            "partitions": run.summary.get("partitions"),
        }
    heal = next(iter(runs.values())).summary.get("phases", {}).get("heal")
    for axis in axes:
        axis.axvline(hot_start, color="black", linestyle="--", linewidth=1,
                     label="hot phase starts")
        if heal:
            axis.axvspan(heal["start_s"], heal["end_s"], color="grey", alpha=0.12,
                         label="heal phase (read-back of every key)")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize="x-small")
    axes[0].set_ylabel("attempts per second")
    axes[1].set_ylabel("per second")
    axes[1].set_xlabel("simulated time (s)")
    axes[0].set_title(title)
    return figure, numbers


def hot_start_s(runner):
    return 30.0 if runner.quick else 180.0


def burst(runner):
    quick = HOT_QUICK if runner.quick else []
    runs = {}
    for name, sets in (("burst 300 s", ["storage.admission.burst_window=300s"]),
                       ("no burst", ["storage.admission.burst_window=1ms"])):
        runs[name] = runner.run("burst", name.replace(" ", "-"), "hot-partition-burst.json",
                                quick + sets, "5s")
    return hot_partition_figure(runs, "One hot partition (100 WCU allocated), with and "
                                "without burst capacity", hot_start_s(runner))


# GAC sits in the request routers (P22 section 4.2), so the run needs routing.
GAC_ROUTING = 'storage.routing={"routers_per_az": 1, "memds_nodes": 3}'


def gac(runner):
    quick = HOT_QUICK if runner.quick else []
    no_burst = "storage.admission.burst_window=1ms"
    variants = (("partition buckets only", [GAC_ROUTING, no_burst]),
                ("GAC", [GAC_ROUTING, no_burst, "storage.admission.gac={}"]))
    runs = run_feature_last(runner, "gac", "hot-partition-burst.json", variants, quick)
    return hot_partition_figure(runs, "One hot partition, no burst, with and without global "
                                "admission control", hot_start_s(runner))


def run_feature_last(runner, experiment, scenario, variants, quick):
    """Runs the variants last-first (the last one tries the new knob, so a build without it is
    refused at once), and returns them in the given order."""
    runs = {}
    for name, sets in reversed(variants):
        runs[name] = runner.run(experiment, name.replace(" ", "-"), scenario, quick + sets, "5s")
    return {name: runs[name] for name, _ in variants}


def split(runner):
    quick = ["duration=2m", "heal=30s", "workload.verify_after=10s"] if runner.quick else []
    variants = (("no split", ["storage.splits.enabled=false"]),
                ("split for consumption", ["storage.splits.enabled=true"]))
    runs = run_feature_last(runner, "split", "hot-partition.json", variants, quick)
    return hot_partition_figure(runs, "A hot partition with and without split for consumption",
                                0.0)


# ---------------------------------------------------------------------------------------------
# healing: log replicas vs full replicas only (P22 section 5.1)

HEALING_QUICK = ["duration=4m", "heal=1m", "workload.verify_after=20s", "storage.partitions=12",
                 'faults.timeline=[{"at": "1m", "kind": "power_off", "target": "az-a/r0/h1", '
                 '"for": "2m"}]']


def healing(runner):
    quick = HEALING_QUICK if runner.quick else []
    runs = {}
    for name, sets in (("log replicas", ["storage.healing.log_replicas=true"]),
                       ("full replicas only", ["storage.healing.log_replicas=false"])):
        runs[name] = runner.run("healing", name.replace(" ", "-"), "node-loss-healing.json",
                                quick + sets)
    measures = (("time_at_two_copies_s", "time at two copies"),
                ("quorum_restore_s", "write quorum restored"),
                ("full_replica_s", "full replica"))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    numbers = {"variants": {}}
    width = 0.38
    colours = {"log replicas": "tab:blue", "full replicas only": "tab:orange"}
    for offset, (name, run) in zip((-width / 2, width / 2), runs.items()):
        section = run.summary.get("healing", {})
        positions, heights, errors_low, errors_high = [], [], [], []
        for index, (key, _) in enumerate(measures):
            stats = section.get(key, {})
            p50, p99, largest = stats.get("p50"), stats.get("p99"), stats.get("max")
            positions.append(index + offset)
            heights.append(p50 or 0.0)
            errors_low.append(0.0)
            errors_high.append(max(0.0, (p99 or 0.0) - (p50 or 0.0)))
            if largest is not None:
                axes[0].plot(index + offset, largest, marker="x", color="black",
                             linestyle="none")
        axes[0].bar(positions, heights, width, color=colours[name],
                    label="%s (bar p50, whisker p99)" % name,
                    yerr=[errors_low, errors_high], capsize=4)
        windows = run.summary.get("availability", {}).get("windows", [])
        values = [100.0 * (w.get("fraction") or 0.0) for w in windows]
        axes[1].plot(range(1, len(values) + 1), values, marker="o", color=colours[name],
                     label=name)
        numbers["variants"][name] = {
            "command": run.command,
            "passed": run.summary.get("passed"),
            "failed_checks": run.failed_checks(),
            "events": section.get("events"),
            "unfinished": section.get("unfinished"),
            "configurations_committed": section.get("configurations_committed"),
            "groups_sharing_an_az": section.get("groups_sharing_an_az"),
            "time_at_two_copies_s": section.get("time_at_two_copies_s"),
            "quorum_restore_s": section.get("quorum_restore_s"),
            "full_replica_s": section.get("full_replica_s"),
            "availability": [rounded(w.get("fraction"), 5) for w in windows],
            "failed_operations": int(sum(run.column("failed"))),
        }
    axes[0].plot([], [], marker="x", color="black", linestyle="none", label="max")
    axes[0].set_xticks(range(len(measures)))
    axes[0].set_xticklabels([label for _, label in measures])
    axes[0].set_ylabel("seconds after the replica was last heard")
    axes[0].set_yscale("log")
    axes[0].set_ylim(bottom=1.0)
    axes[0].grid(alpha=0.3, which="both", axis="y")
    axes[0].legend(loc="upper left", fontsize="x-small")
    axes[0].set_title("Healing after each replica loss")
    axes[1].axhline(100.0 * SLO_AVAILABILITY, color="black", linestyle="--", linewidth=1,
                    label="99.99 %")
    axes[1].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[1].set_xlabel("availability window (%s each)"
                       % runs["log replicas"].summary.get("availability", {}).get("window", ""))
    axes[1].set_ylabel("operations that succeeded (%)")
    axes[1].grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize="x-small")
    axes[1].set_title("Availability at the clients")
    return figure, numbers


# ---------------------------------------------------------------------------------------------
# scrub: bit rot found before it is served (P22 section 5.3)


def scrub(runner):
    quick = ["duration=10m", "heal=2m", "workload.verify_after=30s"] if runner.quick else []
    run = runner.run("scrub", "seed", "bit-rot-scrub.json", quick, "60s")
    section = run.summary.get("scrub", {})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    times = [t / 60.0 for t in run.times()]
    for name, label in (("scrub.failures", "pages that failed verification"),
                        ("scrub.repairs", "ranges repaired from a peer")):
        total, cumulative = 0.0, []
        for value in run.column(name):
            total += value
            cumulative.append(total)
        axes[0].step(times, cumulative, where="post", label=label + " (cumulative)")
    heal = run.summary.get("phases", {}).get("heal")
    if heal:
        axes[0].axvspan(heal["start_s"] / 60.0, heal["end_s"] / 60.0, color="grey", alpha=0.15,
                        label="heal phase (no rot, no traffic)")
    axes[0].set_xlabel("simulated time (minutes)")
    axes[0].set_ylabel("count")
    axes[0].grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize="x-small")
    delay = section.get("detection_delay_s", {})
    axes[0].set_title("Scrub under bit rot: detection delay p50 %s s, p99 %s s, max %s s"
                      % tuple(rounded(delay.get(k), 1) for k in ("p50", "p99", "max")),
                      fontsize="medium")
    fates = (("detected", "detected"), ("overwritten", "overwritten"),
             ("discarded", "discarded (trimmed)"), ("on_wal", "pending on WAL"),
             ("on_free_space", "pending on free space"),
             ("pending_on_live_data", "pending on live data"),
             ("corrupted_reads_served", "corrupted reads served"))
    values = [section.get(key, 0) or 0 for key, _ in fates]
    bars = axes[1].barh(range(len(fates)), values,
                        color=["tab:green", "tab:grey", "tab:grey", "tab:olive", "tab:olive",
                               "tab:red", "tab:red"])
    for bar, value in zip(bars, values):
        axes[1].annotate(str(value), (max(bar.get_width(), 1), bar.get_y() + 0.4),
                         xytext=(3, 0), textcoords="offset points", va="center",
                         fontsize="x-small")
    axes[1].set_yticks(range(len(fates)))
    axes[1].set_yticklabels([label for _, label in fates], fontsize="small")
    axes[1].invert_yaxis()
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlabel("flips (symlog)")
    axes[1].set_title("Fate of the %s flips on used sectors" % section.get("corruptions_injected"),
                      fontsize="medium")
    numbers = {"variants": {"seed": {
        "command": run.command,
        "passed": run.summary.get("passed"),
        "failed_checks": run.failed_checks(),
        "scrub": {k: v for k, v in section.items() if k != "compare"},
        "compare": section.get("compare"),
    }}}
    return figure, numbers


# ---------------------------------------------------------------------------------------------
# availability: power-off tests measured at the client (P22 sections 6, 6.3)

AVAILABILITY_QUICK = ["duration=5m", "heal=1m", "workload.verify_after=20s",
                      "storage.partitions=24", "faults.random=[]",
                      'faults.timeline=[{"at": "1m", "kind": "power_off", "target": "az-b", '
                      '"for": "1m"}]']


def availability(runner):
    quick = AVAILABILITY_QUICK if runner.quick else []
    run = runner.run("availability", "seed", "power-off-game-day.json", quick)
    windows = run.summary.get("availability", {}).get("windows", [])
    canaries = run.summary.get("canaries", {})
    series = [("clients (all operations)", [w.get("fraction") for w in windows])]
    for az in sorted(canaries.get("azs", {})):
        series.append(("canary in %s" % az,
                       [w.get("fraction") for w in canaries["azs"][az].get("windows", [])]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 3]})
    width = 0.8 / max(1, len(series))
    lowest = 100.0
    for index, (label, fractions) in enumerate(series):
        values = [100.0 * (f if f is not None else 1.0) for f in fractions]
        lowest = min([lowest] + values)
        axes[0].bar([i + (index - (len(series) - 1) / 2) * width for i in range(len(values))],
                    values, width, label=label)
    axes[0].axhline(100.0 * SLO_AVAILABILITY, color="black", linestyle="--", linewidth=1,
                    label="99.99 % (P22 section 1)")
    axes[0].set_ylim(max(0.0, lowest - (100.0 - lowest) * 0.3 - 0.05), 100.0)
    axes[0].set_xticks(range(len(windows)))
    axes[0].set_xticklabels(["%d-%d" % (w["start_ns"] // 60_000_000_000,
                                        w["end_ns"] // 60_000_000_000) for w in windows],
                            fontsize="small")
    axes[0].set_xlabel("window (minutes)")
    axes[0].set_ylabel("succeeded (%)")
    axes[0].legend(loc="lower left", fontsize="x-small")
    axes[0].set_title("Availability per %s window" % run.summary.get("availability", {})
                      .get("window", ""), fontsize="medium")
    times = [t / 60.0 for t in run.times()]
    step = run.step()
    axes[1].plot(times, [v / step for v in run.column("succeeded")], drawstyle="steps-pre",
                 color="tab:green", label="operations succeeded/s")
    axes[1].plot(times, [v / step for v in run.column("failed")], drawstyle="steps-pre",
                 color="tab:red", label="operations failed/s")
    first = True
    for entry in run.summary.get("faults", {}).get("log", []):
        if not entry.get("applied") or "power_off" not in entry.get("fault", ""):
            continue
        start = parse_seconds(entry.get("time", ""))
        if start is None:
            continue
        text = entry.get("fault", "")
        length = parse_seconds(text.split(" for ")[1].split()[0]) if " for " in text else 0.0
        whole_az = text.count("/") == 0
        axes[1].axvspan(start / 60.0, (start + (length or 0.0)) / 60.0,
                        color="tab:red" if whole_az else "tab:orange",
                        alpha=0.2 if whole_az else 0.08,
                        label=("power-off" if first else None))
        first = False
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[1].set_xlabel("simulated time (minutes)")
    axes[1].set_ylabel("operations per second (symlog)")
    axes[1].grid(alpha=0.3)
    axes[1].legend(loc="lower left", fontsize="x-small")
    axes[1].set_title("Client operations under power-offs", fontsize="medium")
    failed_ops = int(sum(run.column("failed")))
    numbers = {"variants": {"seed": {
        "command": run.command,
        "passed": run.summary.get("passed"),
        "failed_checks": run.failed_checks(),
        "windows": [{"minutes": [w["start_ns"] // 60_000_000_000, w["end_ns"] // 60_000_000_000],
                     "operations": w.get("operations"), "succeeded": w.get("succeeded"),
                     "fraction": rounded(w.get("fraction"), 6)} for w in windows],
        "canaries": {az: {"probes": c.get("probes"), "succeeded": c.get("succeeded"),
                          "fractions": [rounded(w.get("fraction"), 6)
                                        for w in c.get("windows", [])]}
                     for az, c in sorted(canaries.get("azs", {}).items())},
        "canary_worst_window_fraction": canaries.get("worst_window_fraction"),
        "operations": int(sum(run.column("operations"))),
        "failed_operations": failed_ops,
        "faults": {k: v for k, v in run.summary.get("faults", {}).items() if k != "log"},
        "durability": run.summary.get("checks", {}).get("durability"),
    }}}
    return figure, numbers


# ---------------------------------------------------------------------------------------------

EXPERIMENTS = {
    "router-cache": router_cache,
    "burst": burst,
    "gac": gac,
    "split": split,
    "healing": healing,
    "scrub": scrub,
    "availability": availability,
}


def main(argv):
    parser = argparse.ArgumentParser(
        description="Run one dynasim scenario per lesson of the DynamoDB paper and plot it.",
        epilog="Example: python3 tools/plot/experiments.py --only burst")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these experiments (repeat or separate with commas): "
                        + ", ".join(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true",
                        help="shortened scenarios, for a smoke test (not the quoted figures)")
    parser.add_argument("--work", default=os.path.join(ROOT, "out", "experiments"),
                        help="where the run directories go (default: out/experiments)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "experiments"),
                        help="where NAME.png and NAME.json go (default: docs/experiments)")
    parser.add_argument("--dynasim", default=os.path.join(ROOT, "build", "dynasim"),
                        help="the dynasim binary (default: build/dynasim)")
    parser.add_argument("--seed", type=int, default=1, help="the seed of every run (default 1)")
    parser.add_argument("--extra-set", action="append", default=[], metavar="PATH=VALUE",
                        help="one more --set for every run (e.g. to try a knob everywhere)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep runs already made by the same command line")
    arguments = parser.parse_args(argv)

    chosen = [name for item in arguments.only for name in item.split(",") if name]
    unknown = [name for name in chosen if name not in EXPERIMENTS]
    if unknown:
        print("experiments: unknown experiment %s; known: %s"
              % (", ".join(unknown), ", ".join(EXPERIMENTS)), file=sys.stderr)
        return 2
    if not os.access(arguments.dynasim, os.X_OK):
        print("experiments: %s is not an executable; build it first "
              "(ninja -C build dynasim) or pass --dynasim" % arguments.dynasim, file=sys.stderr)
        return 2
    os.makedirs(arguments.out, exist_ok=True)
    skipped = []
    for name in chosen or list(EXPERIMENTS):
        print("experiment %s" % name, flush=True)
        runner = Runner(os.path.abspath(arguments.dynasim), os.path.abspath(arguments.work),
                        arguments.seed, arguments.reuse, arguments.quick,
                        arguments.extra_set)
        try:
            figure, numbers = EXPERIMENTS[name](runner)
        except Skipped as reason:
            print("  skipped %s: %s" % (name, reason), flush=True)
            skipped.append(name)
            continue
        numbers = {"experiment": name, "seed": arguments.seed, "quick": arguments.quick,
                   "commands": runner.commands,
                   "trace_hashes": runner.trace_hashes, **numbers}
        png = os.path.join(arguments.out, name + ".png")
        save(figure, png)
        with open(os.path.join(arguments.out, name + ".json"), "w") as handle:
            json.dump(numbers, handle, indent=1, sort_keys=True)
            handle.write("\n")
        print("  wrote %s (%d KB) and %s.json" % (png, os.path.getsize(png) // 1024, name),
              flush=True)
    if skipped:
        print("experiments: skipped %s (see above)" % ", ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
