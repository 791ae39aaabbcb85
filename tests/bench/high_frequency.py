#!/usr/bin/env python3
"""Cost of annotation-raised sampling (not part of ctest): 10 pods' containers, each a CPU burner in a
kubelet-shaped cgroup, profiled by anorak at the base rate (no annotation) and then with all 10
annotated at 997 Hz. For each phase, over BENCH_SECONDS (default 20) of steady state:
  - BPF: run_cnt and ns/run of the daemon's perf_event program (profile_cpu, on the base events and
    the containers' own events), from kernel.bpf_stats_enabled=1 and bpftool
  - the daemon's CPU time (utime+stime) and its peak RSS
Needs root and a built build/ (ANORAK_BUILD_DIR). Uses the fake API server of the integration tests.

    python3 tests/bench/high_frequency.py
"""
import json
import os
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
import kube  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
PODS, HZ, BASE = 10, 997, 19


def prog_ids(pid):
    ids = set()
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def bpf_stats(pid):
    """{program name: (run_time_ns, run_cnt)} of the perf_event programs pid holds."""
    out = json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], check=True,
                                    stdout=subprocess.PIPE).stdout)
    mine, stats = prog_ids(pid), {}
    for p in out:
        if p["id"] in mine and p.get("type") == "perf_event":
            ns, cnt = stats.get(p["name"], (0, 0))
            stats[p["name"]] = (ns + p.get("run_time_ns", 0), cnt + p.get("run_cnt", 0))
    return stats


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def phase(api, annotate, pods):
    for name, uid, cid in pods:
        ann = {"anorak.dev/sampling-frequency": str(HZ)} if annotate else {}
        api.set_pod(kube.pod(name, "bench", uid, "127.0.3.%d" % (len(name)), [("burn", cid, [])], {}, ann))
    flags = ["--sampling.frequency=%d" % BASE, "--kubernetes.api-server=" + api.url,
             "--kubernetes.node-name=" + kube.NODE]
    with h.Daemon(*flags, name="bench-hf") as d:
        time.sleep(3)  # the scan links the cgroups and the events open
        pid = d.proc.pid
        s0, c0, t0 = bpf_stats(pid), cpu_seconds(pid), time.monotonic()
        time.sleep(SECONDS)
        s1, c1, t1 = bpf_stats(pid), cpu_seconds(pid), time.monotonic()
        metrics = d.get("/metrics").text()
        rss = peak_rss_mb(pid)
    wall = t1 - t0
    print("%s:" % ("10 containers at %d Hz" % HZ if annotate else "no annotation (%d Hz base)" % BASE))
    for name in sorted(s1):
        ns = s1[name][0] - s0.get(name, (0, 0))[0]
        cnt = s1[name][1] - s0.get(name, (0, 0))[1]
        print("  %-15s %8.0f runs/s  %6.0f ns/run  %5.2f%% of a CPU in BPF" % (
            name, cnt / wall, ns / cnt if cnt else 0, 100 * ns / 1e9 / wall))
    print("  daemon (user space): %.2f%% of a CPU, peak RSS %.1f MB" % (100 * (c1 - c0) / wall, rss))
    for line in metrics.splitlines():
        if line.startswith(("anorak_high_frequency_cgroups ", "anorak_cgroup_perf_events ")):
            print("  " + line)


def main():
    if os.geteuid() != 0:
        sys.exit("high_frequency.py: must run as root")
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    api, cgroups, workloads = kube.FakeAPIServer(), kube.KubeletCgroups(), []
    try:
        pods = []
        for i in range(PODS):
            uid, cid = kube.new_uid(), kube.container_id()
            pods.append(("burn-%d" % i, uid, cid))
            workloads.append(cgroups.start(cgroups.container(uid, cid),
                                           [h.workload("weights"), "-t", "1", "-d", str(3 * SECONDS + 30)]))
        phase(api, False, pods)
        phase(api, True, pods)
    finally:
        for w in workloads:
            w.kill()
        cgroups.close()
        api.close()
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)


if __name__ == "__main__":
    main()
