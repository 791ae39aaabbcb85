#!/usr/bin/env python3
"""CPU hotplug, for real through sysfs: CPU 1 taken offline while the daemon runs releases its
sampling event, and brought back online gets a new one, which samples a process pinned to CPU 1.
CPU 1 is always put back online (finally), and is offline for a few seconds at most.
"""
import os
import sys
import time
import unittest

import harness as h

CPU = 1
ONLINE = "/sys/devices/system/cpu/cpu%d/online" % CPU

SPIN = r"""
import os
os.sched_setaffinity(0, {%d})
print("spin pid=%%d" %% os.getpid(), flush=True)
while True:
    pass
""" % CPU


def set_online(on):
    with open(ONLINE, "w") as f:
        f.write("1" if on else "0")


def is_online():
    with open(ONLINE) as f:
        return f.read().strip() == "1"


def wait_metrics(tc, d, want, what):
    """Waits until every (name, labels) of want has its value in /metrics; bounded."""
    deadline = time.monotonic() + 15 * h.TIME_SCALE
    while True:
        text = d.get("/metrics").text()
        got = {k: h.metric(text, *k) for k in want}
        if got == want:
            return
        tc.assertLess(time.monotonic(), deadline, "%s: %s, expected %s" % (what, got, want))
        time.sleep(0.2)


class CpuHotplug(unittest.TestCase):
    def test_offline_releases_online_reopens(self):
        h.require_root_bpf()
        h.require_daemon()
        h.require(os.path.exists(ONLINE) and os.access(ONLINE, os.W_OK),
                  "%s is missing or not writable: CPU %d cannot be taken offline here" % (ONLINE, CPU))
        h.require(is_online(), "CPU %d is offline before the test" % CPU)
        ncpus = h.online_cpus()
        with h.Daemon("--sampling.frequency=99", name="hotplug") as d:
            wait_metrics(self, d, {("anorak_perf_events", ""): ncpus}, "before")
            try:
                set_online(False)
                wait_metrics(self, d, {("anorak_perf_events", ""): ncpus - 1,
                                       ("anorak_cpu_hotplug_total", '{change="offline"}'): 1},
                             "CPU %d offline" % CPU)
            finally:
                set_online(True)
            self.assertTrue(is_online(), "CPU %d did not come back online" % CPU)
            wait_metrics(self, d, {("anorak_perf_events", ""): ncpus,
                                   ("anorak_cpu_hotplug_total", '{change="online"}'): 1},
                         "CPU %d online again" % CPU)

            w = h.Workload([sys.executable, "-c", SPIN])
            try:
                p = h.decode_profile(d.profile(2))
                mine = p.of_pid(w.pid)
                print("  samples of the process pinned to CPU %d: %d" % (CPU, len(mine)))
                self.assertTrue(mine, "no sample of the process pinned to CPU %d after it came back" % CPU)
            finally:
                w.kill()
            self.assertEqual(h.metric(d.get("/metrics").text(), "anorak_cpu_hotplug_errors_total"), 0)


def restore_online():
    if os.path.exists(ONLINE) and not is_online():
        set_online(True)


def cleanup_with_cpu(cleanup=h._cleanup):
    """The harness's cleanup, also run on its time limit (which exits without finally blocks)."""
    restore_online()
    cleanup()


if __name__ == "__main__":
    h._cleanup = cleanup_with_cpu
    try:
        h.main(total_timeout=120)
    finally:
        restore_online()
