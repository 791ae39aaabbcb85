#!/usr/bin/env python3
"""A process that lives 100 ms and exits must still be symbolized in the profile window it ran in, also
while the daemon builds a large unwind table for another process, and while it looks at a burst of new
processes for trace contexts and Python interpreters."""
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h

HZ = 99
FUNC = "anorak_shortlived_burn_5f3c9a"  # tests/workload/shortlived.c
# A large library (5 MB of .eh_frame: its table takes 0.2-0.4 s to build, longer sanitized); clang's
# build dependency installs it.
LARGE_LIBRARY = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"
# Maps the library, is sampled once (that asks for its tables) and then waits, mapping it.
LOADER = """
import ctypes, sys, time
ctypes.CDLL(sys.argv[1])
print("loader pid=%d" % __import__("os").getpid(), flush=True)
end = time.monotonic() + 0.1
while time.monotonic() < end:
    pass
time.sleep(float(sys.argv[2]))
"""
# New Python processes started at once around the short one: each is sampled while it starts, and looked
# at for trace contexts and its interpreter.
BURST = 150
BURST_CHILD = "import sys, time; time.sleep(float(sys.argv[1]))"


class ShortLived(unittest.TestCase):
    def run_shortlived(self, d, count, seconds, before_each=None, after_each=None):
        """Runs shortlived COUNT times, one after another, inside a profile of SECONDS; returns (pids,
        profile)."""
        result = {}

        def fetch():
            try:
                result["raw"] = d.profile(seconds)
            except Exception as e:  # reported below
                result["error"] = e

        prog = h.workload("shortlived")
        self.wait_settled(d)
        t = threading.Thread(target=fetch)
        t.start()
        time.sleep(1.0)  # inside the window
        pids = []
        for i in range(count):
            if before_each:
                before_each(i)
            w = h.Workload([prog, "-m", "100"])
            if after_each:
                after_each(i)
            self.assertEqual(w.wait(timeout=10), 0, "shortlived failed")
            pids.append(w.pid)
            time.sleep(0.3)
        t.join(30 * h.TIME_SCALE)
        self.assertFalse(t.is_alive(), "profile request did not finish")
        if "error" in result:
            raise result["error"]
        return pids, h.check_profile(self, result["raw"], "shortlived profile")

    def wait_settled(self, d):
        """Waits until the daemon has read the processes running at its start (fewer than 3 new in a
        second: a busy node starts some all the time): until then a new process's read may wait behind
        theirs."""
        deadline = time.time() + 20 * h.TIME_SCALE
        last = None
        while True:
            learnt = h.metric(d.get("/metrics").text(), "anorak_processes_learnt_total")
            if learnt is not None and last is not None and learnt - last < 3:
                return
            self.assertLess(time.time(), deadline, "the daemon kept learning processes for 20 s")
            last = learnt
            time.sleep(1.0)

    def assert_symbolized(self, p, pids):
        real = os.path.realpath(h.workload("shortlived"))
        for pid in pids:
            mine = p.of_pid(pid)
            self.assertTrue(mine, "no sample of shortlived pid %d (100 ms at %d Hz ~ 10 samples)" % (pid, HZ))
            named = [x for x in mine if FUNC in x.functions]
            n = sum(x.values[0] for x in named)
            self.assertGreaterEqual(n, 0.5 * sum(x.values[0] for x in mine),
                                    "pid %d: %s in too few samples:\n%s" % (pid, FUNC, h.describe(mine)))
            for x in named:
                f = x.frames[x.functions.index(FUNC)]
                self.assertEqual(f.mapping_file, real, "mapping of %s" % FUNC)
                self.assertEqual(x.labels.get("comm"), "shortlived")
                self.assertIn("main", x.functions, "caller chain of %s: %r" % (FUNC, x))

    def test_shortlived_symbolized(self):
        h.require_daemon()
        with h.Daemon("--sampling.frequency=%d" % HZ, name="shortlived") as d:
            pids, p = self.run_shortlived(d, 2, 5)
            self.assert_symbolized(p, pids)

    def test_shortlived_during_table_build(self):
        """Each shortlived starts as another process's large table begins to build: reading the new
        process must not wait for that build."""
        h.require_daemon()
        self.assertTrue(os.path.exists(LARGE_LIBRARY), "%s missing (installed with clang)" % LARGE_LIBRARY)
        tmp = tempfile.mkdtemp(prefix="anorak-shortlived-")
        loaders = []
        try:
            # A copy of its own for each loader: a new file, so its table is built anew.
            libs = [os.path.join(tmp, "libLLVM-copy%d.so" % i) for i in range(3)]
            for lib in libs:
                shutil.copyfile(LARGE_LIBRARY, lib)
            with h.Daemon("--sampling.frequency=%d" % HZ, name="shortlived-build") as d:
                def start_loader(i):
                    loaders.append(h.Workload(["python3", "-c", LOADER, libs[i], str(20 * h.TIME_SCALE)]))
                    time.sleep(0.03)  # sampled while spinning: its build begins

                pids, p = self.run_shortlived(d, len(libs), 8, start_loader)
                self.assert_symbolized(p, pids)
                # The builds run one after another on the builder thread: on a loaded machine the last
                # may still run when the short processes are done. A libLLVM table takes about 0.1 s
                # (rows written through a mapping of the map), the three back to back 0.3 s.
                deadline = time.monotonic() + 30 * h.TIME_SCALE
                while True:
                    metrics = d.get("/metrics").text()
                    slow = h.metric(metrics, "anorak_unwind_table_build_duration_seconds_count") - \
                        h.metric(metrics, "anorak_unwind_table_build_duration_seconds_bucket", '{le="0.05"}')
                    if slow >= len(libs) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                self.assertGreaterEqual(slow, len(libs), "the large tables did not take 0.05 s or more to "
                                        "build: the test did not test what it means to")
        finally:
            for w in loaders:
                w.kill()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_shortlived_during_burst(self):
        """A short process started amid a burst of new ones: reading it must not wait for the others'
        discovery (symbol tables of every mapped file, the interpreter's state)."""
        h.require_daemon()
        burst = []
        try:
            with h.Daemon("--sampling.frequency=%d" % HZ, name="shortlived-burst") as d:
                before = self.python_processes(d)

                def start_burst(i):
                    for _ in range(BURST // 2):
                        burst.append(subprocess.Popen(["nice", "-n", "10", "python3", "-c", BURST_CHILD,
                                                       str(30 * h.TIME_SCALE)],
                                                      stdin=subprocess.DEVNULL))

                pids, p = self.run_shortlived(d, 1, 6, start_burst, after_each=start_burst)
                self.assert_symbolized(p, pids)
                looked_at = self.python_processes(d) - before
                self.assertGreaterEqual(looked_at, BURST // 2, "only %d of the burst's %d Python processes "
                                        "were looked at: the test did not test what it means to"
                                        % (looked_at, BURST))
        finally:
            for w in burst:
                w.kill()
                w.wait()

    def python_processes(self, d):
        return h.metric_sum(d.get("/metrics").text(), "anorak_python_processes_total")


if __name__ == "__main__":
    h.main(total_timeout=180)
