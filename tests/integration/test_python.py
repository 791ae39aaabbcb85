#!/usr/bin/env python3
"""CPython frames in the stacks of Python processes, for every interpreter on the machine.

A known-weights workload (python/weights.py: leaf_a, leaf_b, leaf_c doing 5:3:2 of the same loop under a
recursion of DEPTH frames, in two threads) runs under each interpreter while a profile is taken:
- >= 90% of its samples carry Python frames;
- the leaves' shares are the weights within 5 points;
- the recursion is complete and in order: loop, recurse x (DEPTH + 1), leaf_x, root first;
- every Python frame has a file and a line;
- native frames are there too (the interpreter's _PyEval_EvalFrameDefault at least).
And in the off-CPU profile (python/waits.py: nap_long and nap_short sleeping 6 and 3 ms under a
recursion), a wait names the Python function that waited, with its whole recursion, each nap's share
of the blocked time within 5 points of the workload's own measure.
With CI=true, Debian's python3.11 and one 3.12+ interpreter must be present.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

import harness as h

HZ = 499
WINDOW = 5
DEPTH = 6
WEIGHTS = {"leaf_a": 50, "leaf_b": 30, "leaf_c": 20}
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python", "weights.py")
WAITS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python", "waits.py")
WAITS_DEPTH = 3
NAPS = ("nap_long", "nap_short")
INTERPRETERS = [
    "/usr/bin/python3.11",
    "/root/.pyenv/versions/3.10.13/bin/python3.10",
    "/root/.pyenv/versions/3.11.7/bin/python3.11",
    "/root/.pyenv/versions/3.12.1/bin/python3.12",
    "/root/.pyenv/versions/3.13.0/bin/python3.13",
]


def present():
    return [p for p in INTERPRETERS if os.access(p, os.X_OK)]


class PythonStacks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        found = present()
        h.require(found, "no CPython 3.10+ interpreter (%s)" % ", ".join(INTERPRETERS))
        if os.environ.get("CI") == "true":
            h.require("/usr/bin/python3.11" in found, "CI: Debian's /usr/bin/python3.11 is missing")
            h.require(any(re.search(r"python3\.1[2-9]$", p) for p in found), "CI: no CPython 3.12+")
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="python").start()
        time.sleep(3 * h.TIME_SCALE)  # the start-up burst of learnt processes

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def profile_of(self, python, argv=None):
        w = h.Workload(argv or [python, SCRIPT, str(WINDOW + 3)])
        try:
            time.sleep(0.5)
            raw = self.daemon.profile(WINDOW)
            self.assertEqual(w.wait(timeout=30), 0, "workload failed")
        finally:
            w.kill()
        name = "python-%s.pb.gz" % python.replace("/", "_")
        h.note("profile saved to %s" % h.save_profile(raw, name))
        mine = h.check_profile(self, raw, name).of_pid(w.pid)
        self.assertTrue(mine, "no sample of %s (pid %d)" % (python, w.pid))
        return mine

    def check(self, python, argv=None):
        mine = self.profile_of(python, argv)
        total = sum(x.values[0] for x in mine)
        with_python = [x for x in mine if any(f.python for f in x.frames)]
        n_python = sum(x.values[0] for x in with_python)
        h.note("%s: %d of %d samples with Python frames" % (python, n_python, total))
        self.assertGreaterEqual(n_python, 0.9 * total, "only %d of %d samples have Python frames:\n%s"
                                % (n_python, total, h.describe([x for x in mine if x not in with_python])))
        for x in with_python:
            for f in x.frames:
                if f.python:
                    self.assertTrue(f.filename and f.line > 0 and f.function,
                                    "Python frame without function, file or line: %r %s:%d"
                                    % (f, f.filename, f.line))
            self.assertTrue(any(not f.python for f in x.user_frames()), "no native frame: %r" % x)

        hot, complete = {}, 0
        want = ["loop"] + ["recurse"] * (DEPTH + 1)
        for x in with_python:
            py = [f.function for f in reversed(x.frames) if f.python]  # root first
            leaves = [f for f in py if f in WEIGHTS]
            if not leaves:
                continue
            hot[leaves[-1]] = hot.get(leaves[-1], 0) + x.values[0]
            i = py.index("loop") if "loop" in py else -1
            if i >= 0 and py[i:i + len(want) + 1] == want + [leaves[-1]]:
                complete += x.values[0]
        nhot = sum(hot.values())
        self.assertGreater(nhot, 0.8 * total, "leaf_x in only %d of %d samples" % (nhot, total))
        self.assertGreaterEqual(complete, 0.9 * nhot, "recursion complete in only %d of %d samples:\n%s"
                                % (complete, nhot, h.describe(with_python, 6)))
        shares = {k: 100.0 * hot.get(k, 0) / nhot for k in WEIGHTS}
        h.note("%s: shares %s" % (python, {k: round(v, 1) for k, v in shares.items()}))
        for k, weight in WEIGHTS.items():
            self.assertLess(abs(shares[k] - weight), h.share_tolerance(weight, nhot), "%s: %s share %.1f%%, weight %d%%, %d samples"
                            % (python, k, shares[k], weight, nhot))
        interleaved = [x for x in with_python
                       if any(f.function == "_PyEval_EvalFrameDefault" for f in x.user_frames())]
        self.assertTrue(interleaved, "no _PyEval_EvalFrameDefault among the native frames")

    def test_interpreters(self):
        for python in present():
            with self.subTest(python=python):
                self.check(python)
        text = self.daemon.get("/metrics").text()
        for m in ("anorak_python_frames_walked_total", "anorak_python_code_objects_resolved_total"):
            self.assertGreater(h.metric(text, m), 0, m)

    def test_libpython_mapped_late(self):
        """An interpreter first sampled before its libpython is mapped (a loader slowed by a busy node)
        is walked once the library is there: tests/workload/python_late, run as python3.N, burns native
        CPU for a second, then dlopens the interpreter's libpython and runs the weights script in it."""
        shared = [p for p in present() if p.startswith("/root/.pyenv/")]
        h.require(shared, "no shared-libpython interpreter among %s" % ", ".join(INTERPRETERS))
        python = shared[-1]
        prefix = os.path.dirname(os.path.dirname(python))
        minor = re.search(r"python3\.(\d+)$", python).group(1)
        lib = os.path.join(prefix, "lib", "libpython3.%s.so.1.0" % minor)
        h.require_file(lib, "libpython of " + python)
        tmp = tempfile.mkdtemp(prefix="anorak-python-late-")
        try:
            exe = os.path.join(tmp, "python3." + minor)
            shutil.copy(h.workload("python_late"), exe)
            os.environ["PYTHONHOME"] = prefix
            try:
                self.check(exe, [exe, lib, SCRIPT, "1", str(WINDOW + 3)])
            finally:
                del os.environ["PYTHONHOME"]
        finally:
            shutil.rmtree(tmp)


class PythonWaits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.found = present()
        h.require(cls.found, "no CPython 3.10+ interpreter (%s)" % ", ".join(INTERPRETERS))
        cls.daemon = h.Daemon("--offcpu.probability=1", name="python-offcpu").start()
        time.sleep(3 * h.TIME_SCALE)  # the start-up burst of learnt processes

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def python_processes(self):
        return h.metric_sum(self.daemon.get("/metrics").text(), "anorak_python_processes_total")

    def profile_waits(self, python, status):
        """The off-CPU samples of waits.py under python, once the daemon has found its interpreter."""
        before = self.python_processes()
        w = h.Workload([python, WAITS_SCRIPT, str(WINDOW + 3 * h.TIME_SCALE), status])
        try:
            deadline = time.monotonic() + 3 * h.TIME_SCALE
            while self.python_processes() <= before and time.monotonic() < deadline:
                time.sleep(0.1)
            raw = self.daemon.profile(WINDOW, path="/debug/pprof/offcpu")
            self.assertEqual(w.wait(timeout=30 * h.TIME_SCALE), 0, "workload failed")
        finally:
            w.kill()
        h.note("profile saved to %s" % h.save_profile(raw, "python-offcpu-%s.pb.gz" % python.replace("/", "_")))
        return h.check_profile(self, raw, "off-CPU profile of " + python, ptype="offcpu").of_pid(w.pid)

    def check_waits(self, python):
        with tempfile.NamedTemporaryFile(prefix="anorak-waits-", mode="r") as status:
            mine = self.profile_waits(python, status.name)
            measured = dict(zip(NAPS, (int(x) for x in status.read().split())))
        total = sum(x.values[1] for x in mine)
        self.assertGreater(total, 0, "%s: no off-CPU time" % python)
        got, complete = {nap: 0 for nap in NAPS}, 0
        want = ["main"] + ["recurse"] * (WAITS_DEPTH + 1)
        for x in mine:
            py = [f.function for f in reversed(x.frames) if f.python]  # root first
            if py and py[-1] in got:
                got[py[-1]] += x.values[1]
                complete += x.values[1] if py[-len(want) - 1:-1] == want else 0
        named = sum(got.values())
        h.note("%s: %.0f%% of %d ns off-CPU in a nap, %.0f%% complete; profiled %s, measured %s"
               % (python, 100.0 * named / total, total, 100.0 * complete / max(named, 1), got, measured))
        self.assertGreaterEqual(named, 0.9 * total, "%s: only %d of %d ns name a nap:\n%s"
                                % (python, named, total, h.describe(mine, 6)))
        self.assertGreaterEqual(complete, 0.95 * named, "%s: recursion complete in %d of %d ns:\n%s"
                                % (python, complete, named, h.describe(mine, 6)))
        for nap in NAPS:
            share, truth = 100.0 * got[nap] / named, 100.0 * measured[nap] / sum(measured.values())
            self.assertLess(abs(share - truth), 5.0, "%s: %s %.1f%% of the waits, measured %.1f%%"
                            % (python, nap, share, truth))

    def test_waits_name_python_functions(self):
        for python in self.found:
            with self.subTest(python=python):
                self.check_waits(python)


if __name__ == "__main__":
    unittest.main()
