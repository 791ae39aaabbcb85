#!/usr/bin/env python3
"""The tables of tests/bench/run.sh: every run, then per workload and Hz the median and the min-max over
the repetitions. Each line of the results file is one tool in one run:
    tool workload hz rep window_s samples bpf_ns cpu_s rss_kb scrape_extra
Rerun on a kept file: python3 tests/bench/summary.py /var/tmp/anorak-bench/results.txt"""
import argparse
import statistics
import sys
from collections import defaultdict

TOOLS = ("anorak", "perf", "bcc")


def load(path):
    runs = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 10:
                sys.exit("summary: %s:%d: expected 10 fields, got %d" % (path, n, len(fields)))
            tool, wl, hz, rep, win, smp, ns, cpu, rss, extra = fields
            runs[(wl, int(hz), int(rep), tool)] = dict(
                win=float(win), n=int(smp), ns=int(ns), cpu=float(cpu), rss=int(rss), extra=extra)
    return runs


def ns_per_sample(r):
    return r["ns"] / r["n"] if r and r["ns"] and r["n"] else None


def ratio(runs, wl, hz, rep):
    a = ns_per_sample(runs.get((wl, hz, rep, "anorak")))
    b = ns_per_sample(runs.get((wl, hz, rep, "bcc")))
    return a / b if a and b else None


def configs(runs):
    """(workload, Hz) in the order they ran."""
    seen = []
    for wl, hz, _, _ in sorted(runs, key=lambda k: k[2]):
        if (wl, hz) not in seen:
            seen.append((wl, hz))
    return seen


def print_runs(runs):
    hdr = "%-13s %5s %3s  %-7s %9s %10s %11s %8s %8s %9s  %s" % (
        "workload", "Hz", "rep", "tool", "samples", "samples/s", "BPF ns/smp", "CPU s", "CPU %", "RSS MiB",
        "scrape extra/size")
    print(hdr)
    print("-" * len(hdr))
    for wl, hz in configs(runs):
        for rep in sorted({k[2] for k in runs if k[:2] == (wl, hz)}):
            for tool in TOOLS:
                r = runs.get((wl, hz, rep, tool))
                if not r:
                    continue
                nsps = ns_per_sample(r)
                print("%-13s %5d %3d  %-7s %9d %10.0f %11s %8.2f %7.2f%% %9.1f  %s" % (
                    wl, hz, rep, tool, r["n"], r["n"] / r["win"] if r["win"] else 0,
                    "%.0f" % nsps if nsps else "n/a", r["cpu"], 100.0 * r["cpu"] / r["win"] if r["win"] else 0,
                    r["rss"] / 1024.0, r["extra"]))
            q = ratio(runs, wl, hz, rep)
            if q:
                print("%-13s %5s %3s  BPF ns/sample anorak/BCC = %.2f" % ("", "", "", q))


def spread(values, fmt):
    """'median [min-max]' of the values that exist, or n/a."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = fmt % statistics.median(values)
    if len(values) == 1:
        return med
    return "%s [%s-%s]" % (med, fmt % min(values), fmt % max(values))


def print_summary(runs):
    reps = defaultdict(set)
    for wl, hz, rep, _ in runs:
        reps[(wl, hz)].add(rep)
    print("Median [min-max] over the repetitions; the ratio is taken within each run, then its median.")
    hdr = "%-13s %5s %4s  %-7s %19s %19s %19s %19s" % (
        "workload", "Hz", "reps", "tool", "samples", "BPF ns/smp", "CPU s", "peak RSS MiB")
    print(hdr)
    print("-" * len(hdr))
    for wl, hz in configs(runs):
        done = sorted(reps[(wl, hz)])
        for tool in TOOLS:
            rs = [runs[(wl, hz, rep, tool)] for rep in done if (wl, hz, rep, tool) in runs]
            if not rs:
                continue
            print("%-13s %5d %4d  %-7s %19s %19s %19s %19s" % (
                wl, hz, len(rs), tool, spread([r["n"] for r in rs], "%d"),
                spread([ns_per_sample(r) for r in rs], "%.0f"), spread([r["cpu"] for r in rs], "%.2f"),
                spread([r["rss"] / 1024.0 for r in rs], "%.1f")))
        q = spread([ratio(runs, wl, hz, rep) for rep in done], "%.2f")
        if q != "n/a":
            print("%-13s %5s %4s  BPF ns/sample anorak/BCC = %s" % ("", "", "", q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--cpus", type=int, help="CPUs the workload kept busy")
    ap.add_argument("--seconds", type=int, help="window of each run")
    ap.add_argument("--encode", help="encode_bench's line")
    args = ap.parse_args()
    runs = load(args.results)
    if not runs:
        sys.exit("summary: %s holds no runs" % args.results)

    print()
    print("Profiler overhead, %s CPUs busy with the workload, %s s window per run" % (
        args.cpus or "all", args.seconds or "?"))
    print("(CPU: utime+stime of each profiler's process from the window start until it answered/exited,")
    print(" start-up and BCC's compile excluded; RSS: peak, VmHWM or /usr/bin/time -v)")
    print()
    print_runs(runs)
    print()
    print_summary(runs)
    print()
    if args.cpus:
        print("expected samples/s at each Hz: Hz x %d CPUs (perf counts every CPU, idle included)" % args.cpus)
    if args.encode:
        print("pprof encoding (encode_bench, best of 3): " + args.encode)


if __name__ == "__main__":
    main()
