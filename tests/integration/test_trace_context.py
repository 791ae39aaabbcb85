#!/usr/bin/env python3
"""Samples of a thread that published a trace context carry that thread's trace_id/span_id labels, and
only while it is published. Writers: the OTel Thread Context v1 library with its variable in the
executable and in a TLSDESC shared library, and a custom-labels v1 writer (tests/workload/tracectx.c)."""
import re
import subprocess
import threading
import time
import unittest

import harness as h

HZ = 99
WINDOW = 4
WITH = "burn_with_context"
WITHOUT = "burn_without_context"
LINE = re.compile(r"thread (\d+) trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})")
# Sampled while it burns, then loads the TLSDESC writer library (nothing the loader mapped at its start)
# and publishes a context for the rest of its life.
LATE_TRACE, LATE_SPAN = bytes(range(0x30, 0x40)), bytes(range(0xc0, 0xc8))
LATE_LOADER = """
import ctypes, sys, time
end = time.monotonic() + 0.2
while time.monotonic() < end:
    pass
time.sleep(0.1)
lib = ctypes.CDLL(sys.argv[1])
assert lib.anorak_trace_context_set(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), 1) == 0
print("published", flush=True)
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    pass
"""


def start_writer(prog, threads=2, seconds=WINDOW + 4, args=()):
    """Starts the program and returns (process, {tid: (trace_id, span_id)}) once every thread has
    printed its ids."""
    proc = subprocess.Popen([prog, "-d", str(seconds)] + list(args), stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, universal_newlines=True)
    ids = {}

    def reader():
        for line in proc.stdout:
            m = LINE.search(line)
            if m:
                ids[int(m.group(1))] = (m.group(2), m.group(3))
            if len(ids) == threads:
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(10 * h.TIME_SCALE)
    if len(ids) != threads:
        proc.kill()
        proc.wait(5)
        raise AssertionError("%s printed %d thread id lines, expected %d" % (prog, len(ids), threads))
    return proc, ids


class TraceContext(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="tracectx")
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def check_writer(self, name, source):
        prog = h.workload(name)
        proc, ids = start_writer(prog)
        try:
            time.sleep(1.0)  # the first sample announces the process; discovery follows
            raw = self.daemon.profile(WINDOW)
            metrics = self.daemon.get("/metrics").text()
            m = re.search(r'^anorak_trace_context_processes\{%s\} (\d+)' % re.escape(source), metrics, re.M)
            self.assertTrue(m and int(m.group(1)) >= 1, "%s: no live process counted as {%s}:\n%s" % (
                name, source, "\n".join(l for l in metrics.splitlines() if "trace_context" in l)))
        finally:
            proc.kill()
            proc.wait(5)
        h.save_profile(raw, name + ".pb.gz")
        p = h.check_profile(self, raw, name)
        mine = p.of_pid(proc.pid)
        self.assertTrue(mine, "no sample of %s (pid %d)" % (name, proc.pid))

        with_ctx = [x for x in mine if WITH in x.functions]
        without_ctx = [x for x in mine if WITHOUT in x.functions]
        self.assertTrue(with_ctx and without_ctx, "%s: samples in %s: %d, in %s: %d\n%s" % (
            name, WITH, len(with_ctx), WITHOUT, len(without_ctx), h.describe(mine)))
        for x in with_ctx:
            tid = x.numlabels.get("tid")
            self.assertIn(tid, ids, "%s: sample of an unknown thread %r" % (name, x))
            trace, span = ids[tid]
            self.assertEqual(x.labels.get("trace_id"), trace, "%s: trace_id of tid %d in %r" % (name, tid, x))
            self.assertEqual(x.labels.get("span_id"), span, "%s: span_id of tid %d in %r" % (name, tid, x))
        for x in without_ctx:
            self.assertNotIn("trace_id", x.labels, "%s: sample outside any context has ids: %r" % (name, x))
            self.assertNotIn("span_id", x.labels, "%s: sample outside any context has ids: %r" % (name, x))
        tids = {x.numlabels.get("tid") for x in with_ctx}
        self.assertEqual(tids, set(ids), "%s: both threads' contexts seen" % name)

        metrics = self.daemon.get("/metrics").text()
        m = re.search(r'^anorak_trace_context_samples_total\{result="ids"\} (\d+)', metrics, re.M)
        self.assertTrue(m and int(m.group(1)) > 0, "trace context samples metric:\n" + metrics[-2000:])

    def test_otel_in_executable(self):
        self.check_writer("tracectx_exe", 'kind="otel_v1",tls="static"')

    def test_otel_in_tlsdesc_library(self):
        self.check_writer("tracectx_dso", 'kind="otel_v1",tls="tlsdesc"')

    def test_custom_labels(self):
        self.check_writer("tracectx_custom", 'kind="custom_labels_v1",tls="static"')

    def invalid_samples(self):
        metrics = self.daemon.get("/metrics").text()
        m = re.search(r'^anorak_trace_context_samples_total\{result="invalid"\} (\d+)', metrics, re.M)
        self.assertTrue(m, "no invalid trace context samples metric:\n" + metrics[-2000:])
        return int(m.group(1))

    def test_custom_labels_bad_first_id(self):
        """Label sets whose first trace_id (thread 0) or span_id (thread 1) is two characters short, with a
        valid duplicate after it: on duplicate keys the first wins, so no sample carries ids, and the
        samples count as invalid."""
        name = "tracectx_custom_bad_first"
        before = self.invalid_samples()
        proc, ids = start_writer(h.workload("tracectx_custom"), args=["-b"])
        try:
            time.sleep(1.0)  # the first sample announces the process; discovery follows
            raw = self.daemon.profile(WINDOW)
        finally:
            proc.kill()
            proc.wait(5)
        h.save_profile(raw, name + ".pb.gz")
        p = h.check_profile(self, raw, name)
        mine = p.of_pid(proc.pid)
        with_ctx = [x for x in mine if WITH in x.functions]
        tids = {x.numlabels.get("tid") for x in with_ctx}
        self.assertEqual(tids, set(ids), "%s: samples of both threads with their label sets published\n%s" % (
            name, h.describe(mine)))
        for x in mine:
            self.assertNotIn("trace_id", x.labels, "%s: a bad first trace_id/span_id gave ids: %r" % (name, x))
            self.assertNotIn("span_id", x.labels, "%s: a bad first trace_id/span_id gave ids: %r" % (name, x))
        self.assertGreater(self.invalid_samples(), before, "%s: samples not counted as invalid" % name)

    def second_looks_found(self):
        return h.metric(self.daemon.get("/metrics").text(), "anorak_trace_context_second_looks_total",
                        '{result="found"}')

    def test_library_loaded_after_first_sample(self):
        """A process younger than 2 s in which nothing was found is looked at once more, 1 s later: here it
        loads the writer library 0.3 s after it started, after its first sample was looked at."""
        self.wait_settled()
        before = self.second_looks_found()
        proc = subprocess.Popen(["python3", "-c", LATE_LOADER, h.workload("libtracectxwriter.so"),
                                 LATE_TRACE.hex(), LATE_SPAN.hex(), str(WINDOW + 4 * h.TIME_SCALE)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, universal_newlines=True)
        try:
            self.assertEqual(proc.stdout.readline().strip(), "published", "the late loader failed")
            time.sleep(1.5 * h.TIME_SCALE)  # the second look follows the first by 1 s
            raw = self.daemon.profile(WINDOW)
        finally:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()
        p = h.check_profile(self, raw, "late_loader")
        mine = p.of_pid(proc.pid)
        self.assertTrue(mine, "no sample of the late loader (pid %d)" % proc.pid)
        for x in mine:
            self.assertEqual((x.labels.get("trace_id"), x.labels.get("span_id")), (LATE_TRACE.hex(), LATE_SPAN.hex()),
                             "a sample of the late loader without its context: %r" % x)
        self.assertGreater(self.second_looks_found(), before, "no second look found a trace context: the "
                           "first look saw the library already, the test did not test what it means to")

    def wait_settled(self):
        """Waits until the daemon has looked at the processes running at its start (fewer than 3 new in a
        second, none waiting for discovery): behind them, the first look would come after the load."""
        deadline = time.time() + 20 * h.TIME_SCALE
        last = None
        while time.time() < deadline:
            text = self.daemon.get("/metrics").text()
            learnt = h.metric(text, "anorak_processes_learnt_total")
            if (learnt is not None and last is not None and learnt - last < 3 and
                    h.metric(text, "anorak_discovery_processes_queued") == 0):
                return
            last = learnt
            time.sleep(1.0)


if __name__ == "__main__":
    h.main(total_timeout=150)
