#!/usr/bin/env python3
"""Cost of Python stacks: anorak at 499 Hz while a native workload (weights_nofp, 2 threads) and then
the Python one (tests/integration/python/weights.py under each interpreter given, default Debian's
python3.11) keep the CPUs busy. For each phase, over BENCH_SECONDS (default 15):
  - BPF: ns/run of profile_cpu (every sample of the machine, the workload's being most of them), from
    kernel.bpf_stats_enabled=1 and bpftool
  - the daemon's user-space CPU time, and the code objects it resolved (anorak_python_* metrics)
Needs root and a built build/ (ANORAK_BUILD_DIR).

    python3 tests/bench/python_stacks.py [python ...]
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ANORAK_BUILD_DIR", os.path.join(ROOT, "build"))
os.environ.setdefault("ANORAK_BIN", os.path.join(BUILD, "anorak"))
os.environ.setdefault("ANORAK_BUILD_DIR", BUILD)
os.environ.setdefault("ANORAK_SOURCE_DIR", ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402
from high_frequency import bpf_stats, cpu_seconds  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
HZ = 499
SCRIPT = os.path.join(ROOT, "tests", "integration", "python", "weights.py")


def python_metrics(d):
    text = d.get("/metrics").text()
    out = {}
    for name in ("anorak_python_frames_walked_total", "anorak_python_code_objects_resolved_total",
                 "anorak_python_frames_resolved_total"):
        m = re.search(r"^%s (\S+)$" % name, text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def phase(d, label, argv):
    w = h.Workload(argv)
    try:
        time.sleep(2)
        pid = d.proc.pid
        s0, c0, m0, t0 = bpf_stats(pid), cpu_seconds(pid), python_metrics(d), time.monotonic()
        time.sleep(SECONDS)
        s1, c1, m1, t1 = bpf_stats(pid), cpu_seconds(pid), python_metrics(d), time.monotonic()
    finally:
        w.kill()
    wall = t1 - t0
    ns = s1["profile_cpu"][0] - s0.get("profile_cpu", (0, 0))[0]
    cnt = s1["profile_cpu"][1] - s0.get("profile_cpu", (0, 0))[1]
    print("%-40s %6.0f samples/s  %6.0f ns/sample in BPF  daemon %.2f%% of a CPU" % (
        label, cnt / wall, ns / cnt if cnt else 0, 100 * (c1 - c0) / wall))
    delta = {k.replace("anorak_python_", ""): int(m1[k] - m0[k]) for k in m1}
    if any(delta.values()):
        print("%-40s %s" % ("", delta))


def main():
    if os.geteuid() != 0:
        sys.exit("python_stacks.py: must run as root")
    pythons = sys.argv[1:] or ["/usr/bin/python3.11"]
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        with h.Daemon("--sampling.frequency=%d" % HZ, name="bench-python") as d:
            time.sleep(3)
            phase(d, "native (weights_nofp, 2 threads)",
                  [h.workload("weights_nofp"), "-t", "2", "-d", str(SECONDS + 10)])
            for py in pythons:
                phase(d, "python (%s)" % py, [py, SCRIPT, str(SECONDS + 10)])
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)


if __name__ == "__main__":
    main()
