#!/usr/bin/env python3
"""Off-CPU profile (/debug/pprof/offcpu) of a workload with known waits.

`offcpu` runs one thread that waits, round after round, in a pipe read (10 ms), a nanosleep (6 ms) and
a contended mutex (4 ms), and keeps its own measure of the time spent in each (a status file). With
every blocking switch followed (--offcpu.probability=1), the profile of a window must give that
thread's blocked time within 15% in total and within 5 points per place, with complete stacks from the
blocking call down to the thread's start; the CPU profile taken at the same time keeps its shape; the
daemon's own waits are not in it; the history (?start=&end=) and Pyroscope's query API serve the same
waits under their own profile type.
"""
import json
import os
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as h
import test_query_api as q

WINDOW = 5
PLACES = ("wait_pipe", "wait_sleep", "wait_mutex")
THREAD_ROOTS = ("start_thread", "__GI___clone3", "clone3", "__clone3", "clone", "__clone")
OFFCPU = "process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds"
WAITS = "process_offcpu:samples:count:offcpu:nanoseconds"


def read_status(path):
    """(tid, [pipe_ns, sleep_ns, mutex_ns]) from the workload's status file."""
    with open(path) as f:
        fields = [int(x) for x in f.read().split()]
    return fields[0], fields[1:4]


def place_of(sample):
    """The wait place a sample is in (its first frame named like one), or None."""
    return next((f.function for f in sample.frames if f.function in PLACES), None)


class OffCPU(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.workload_bin = h.workload("offcpu")
        cls.daemon = h.Daemon("--sampling.frequency=99", "--offcpu.probability=1", name="offcpu").start()
        cls.tmp = tempfile.mkdtemp(prefix="anorak-offcpu-", dir="/dev/shm")
        cls.status = os.path.join(cls.tmp, "status")
        cls.start = time.time()
        cls.w = h.Workload([cls.workload_bin, "-d", str(WINDOW + 6), "-s", cls.status])
        cls.cpu_raw = None
        try:
            cls.profile_window()
        finally:
            cls.w.kill()
        cls.end = time.time() + 0.5

    @classmethod
    def profile_window(cls):
        # The window starts once the daemon knows the process (its first wait announced it), as
        # waits of a process it has not learnt yet cannot be labelled, and the workload has written
        # its first status (after its first round of waits, which can come later).
        deadline = time.monotonic() + 10 * h.TIME_SCALE
        while not (os.path.exists(cls.status) and cls.known(cls.w.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        cls.tid, before = read_status(cls.status)
        t0 = time.monotonic()
        cpu = threading.Thread(target=cls.cpu_profile)
        cpu.start()
        cls.raw = cls.daemon.profile(WINDOW, path="/debug/pprof/offcpu")
        _, after = read_status(cls.status)
        cls.measured_seconds = time.monotonic() - t0
        cpu.join()
        cls.measured = [a - b for a, b in zip(after, before)]

    @classmethod
    def known(cls, pid):
        targets = json.loads(cls.daemon.get("/api/v1/targets").text())["data"]["activeTargets"]
        return any(t["discoveredLabels"].get("__meta_process_pid") == str(pid) for t in targets)

    @classmethod
    def cpu_profile(cls):
        cls.cpu_raw = cls.daemon.profile(WINDOW)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        for name in os.listdir(cls.tmp):
            os.unlink(os.path.join(cls.tmp, name))
        os.rmdir(cls.tmp)

    def thread_samples(self, p):
        return [x for x in p.samples if x.numlabels.get("tid") == self.tid]

    def test_1_blocked_time_and_shares(self):
        h.save_profile(self.raw, "offcpu.pb.gz")
        p = h.check_profile(self, self.raw, "off-CPU profile", ptype="offcpu")
        self.assertEqual(p.period, 1)
        got = {place: 0 for place in PLACES}
        for x in self.thread_samples(p):
            place = place_of(x)
            if place:
                got[place] += x.values[1]
        # The request spans the profile's window and a little more (the drains that bound it, the
        # encoding): the thread's blocked time is taken at its measured rate over the window itself.
        window_share = p.duration_nanos / 1e9 / self.measured_seconds
        total_got, total_measured = sum(got.values()), sum(self.measured) * window_share
        h.note("measured %s ns over %.3f s, window %.3f s, profiled %s ns" % (
            dict(zip(PLACES, self.measured)), self.measured_seconds, p.duration_nanos / 1e9, got))
        self.assertGreater(total_measured, WINDOW * 0.5e9, "the workload barely waited")
        self.assertLess(abs(total_got - total_measured), 0.15 * total_measured,
                        "off-CPU total %d ns, the thread measured %d ns" % (total_got, total_measured))
        for place, measured in zip(PLACES, self.measured):
            self.assertLess(abs(got[place] / total_got - measured / total_measured), 0.05,
                            "%s: %s of the profile, %s measured" % (place, got, self.measured))

    def test_2_complete_stacks(self):
        p = h.decode_profile(self.raw)
        samples = [x for x in self.thread_samples(p) if place_of(x)]
        self.assertTrue(samples, "no sample of the waiting thread")
        for x in samples:
            user = [f.function for f in x.user_frames()]
            kernel = [f.function for f in x.kernel_frames()]
            self.assertIn("waiter", user, x)
            self.assertIn(user[-1], THREAD_ROOTS, "stack does not reach the thread's start: %s" % user)
            self.assertTrue(kernel and kernel[0] in ("__schedule", "schedule"),
                            "kernel stack does not start where the thread left the CPU: %s" % kernel)
            self.assertEqual(x.values[0] > 0, x.values[1] > 0, x)

    def test_3_cpu_profile_beside_it(self):
        p = h.check_profile(self, self.cpu_raw, "CPU profile")
        self.assertTrue(p.samples, "the CPU profile is empty")
        for x in p.samples:
            self.assertEqual(x.values[1], x.values[0] * p.period, "an off-CPU count in the CPU profile: %s" % x)

    def test_4_not_the_daemon(self):
        p = h.decode_profile(self.raw)
        pid = self.daemon.proc.pid
        self.assertEqual([x for x in p.samples if x.numlabels.get("pid") == pid], [])

    def history(self, path):
        query = urllib.parse.urlencode([("start", "%.3f" % self.start), ("end", "%.3f" % self.end)])
        return self.daemon.profile(0, query=query, path=path)

    def test_5_history_and_query_api(self):
        p = h.check_profile(self, self.history("/debug/pprof/offcpu"), "off-CPU history", ptype="offcpu")
        waits = [x for x in self.thread_samples(p) if place_of(x)]
        self.assertEqual({place_of(x) for x in waits}, set(PLACES))
        cpu = h.check_profile(self, self.history("/debug/pprof/profile"), "CPU history")
        for x in cpu.samples:
            self.assertEqual(x.values[1], x.values[0] * cpu.period, "an off-CPU count in the CPU history: %s" % x)
        api = q.QueryAPI("test_profile_types")
        api.daemon = self.daemon
        types = api.ok("ProfileTypes", b"", q.TYPES_RESPONSE)["profile_types"]
        self.assertTrue({OFFCPU, WAITS} <= {t["ID"] for t in types}, types)
        start_ms, end_ms = int(self.start * 1000), int(self.end * 1000)
        for type_id in (OFFCPU, WAITS):
            body = q.f_str(1, type_id) + q.f_str(2, "{}") + q.f_int(3, start_ms) + q.f_int(4, end_ms)
            fg = api.ok("SelectMergeStacktraces", body, q.MERGE_RESPONSE)["flamegraph"]
            self.assertTrue(set(PLACES) <= set(fg["names"]), type_id)
            self.assertGreater(fg["total"], 0, type_id)


class OffByDefault(unittest.TestCase):
    def test_offcpu_is_off_by_default(self):
        h.require_daemon()
        with h.Daemon(name="offcpu-default") as d:
            r = d.get("/debug/pprof/offcpu?seconds=1")
            self.assertEqual(r.status, 404, r.text())
            self.assertIn("--offcpu.probability", r.text())
            self.assertEqual(h.metric(d.get("/metrics").text(), "anorak_offcpu_probability"), 0)


if __name__ == "__main__":
    h.main(total_timeout=240)
