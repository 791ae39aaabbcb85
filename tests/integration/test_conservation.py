#!/usr/bin/env python3
"""Conservation: over consecutive, non-overlapping profile windows the samples served add up exactly to
what the BPF program counted minus the drops the metrics report.

The history's windows tile time from the first drain (each ends where the next begins, to the
nanosecond), so three ?start=&end= ranges cut at two window edges cover every kept sample once. The
drain ledger (anorak_bpf_counted_drained_samples_total, anorak_drained_samples_total{outcome}) changes
together with the history at the end of each drain: a scrape before and after the queries that sees the
same anorak_drains_completed_total saw exactly the samples the queries saw. BPF's count is its own
per-generation counter, read after the kernel waited out the programs writing the drained generation,
so a sample lost anywhere between the BPF map and the pprof body breaks the equality.

Targets of a process name the config drops are started over and over next to a kept workload: their
first samples are counted before the BPF filter learns of them, so the identity holds with drops in it.
"""
import os
import re
import tempfile
import threading
import time
import unittest

import harness as h

HZ = 99
CONFIG = """relabel_configs:
  - source_labels: [__meta_process_comm]
    regex: weights
    action: drop
  - source_labels: [__meta_process_comm]
    target_label: comm
"""
CLOSED_WINDOWS = 2  # closed history windows (10 s each) before the ranges are cut: three ranges
FAR_NS = 4102444800 * 10**9  # 2100-01-01: an end after every window


def metrics(d):
    r = d.get("/metrics")
    assert r.status == 200, r.status
    out = {}
    for line in r.text().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = int(float(m.group(2)))
    return out


def edge(ns):
    return "%d.%09d" % divmod(ns, 10**9)


def history_range(d, start_ns, end_ns):
    """The history profile of [start_ns, end_ns): (raw body, time_nanos, end ns)."""
    r = d.get("/debug/pprof/profile?start=%s&end=%s" % (edge(start_ns), edge(end_ns)), timeout=30)
    if r.status != 200:
        raise AssertionError("history range %s..%s: %d %s" % (edge(start_ns), edge(end_ns), r.status, r.text()))
    p = h.decode_profile(r.body)
    return r.body, p.time_nanos, p.time_nanos + p.duration_nanos


class DroppedChurn(threading.Thread):
    """Starts a short `weights` (a target the config drops) every 0.3 s until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.started = 0

    def run(self):
        prog = h.workload("weights")
        while not self.stop.is_set():
            h.run([prog, "-t", "1", "-d", "0.15"], timeout=30)
            self.started += 1
            self.stop.wait(0.15)


class Conservation(unittest.TestCase):
    def snapshot(self, d):
        """Three ranges tiling the whole history and the ledger they match, from a quiet moment
        between two drains (retried when a drain completed in between)."""
        _, first_ns, _ = history_range(d, 1, FAR_NS)
        _, _, e1 = history_range(d, first_ns, first_ns + 1)   # the first window alone
        _, _, e2 = history_range(d, e1, e1 + 1)               # the second window alone
        edges = ((first_ns, e1), (e1, e2), (e2, FAR_NS))
        for attempt in range(40):
            t0 = time.monotonic()
            before = metrics(d)
            bodies = [d.get("/debug/pprof/profile?start=%s&end=%s" % (edge(a), edge(b)), timeout=30)
                      for a, b in edges]
            after = metrics(d)
            h.note("attempt %d took %.2fs" % (attempt + 1, time.monotonic() - t0))
            if before["anorak_drains_completed_total"] == after["anorak_drains_completed_total"]:
                for r in bodies:
                    self.assertEqual(r.status, 200, r.text())
                return before, after, [(r.body, a, b) for r, (a, b) in zip(bodies, edges)]
        self.fail("no drain-free moment for the history queries in 40 attempts")

    def test_served_equals_counted_minus_drops(self):
        h.require_daemon()
        kept_prog = h.workload("tracectx_exe")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(CONFIG)
            path = f.name
        churn = DroppedChurn()
        kept = None
        try:
            with h.Daemon("--sampling.frequency=%d" % HZ, "--config.file=" + path, name="conservation") as d:
                kept = h.Workload([kept_prog, "-d", "60"])
                churn.start()
                deadline = time.monotonic() + (CLOSED_WINDOWS * 10 + 30) * h.TIME_SCALE
                while metrics(d).get("anorak_history_windows", 0) < CLOSED_WINDOWS:
                    self.assertLess(time.monotonic(), deadline, "the history closed no windows")
                    time.sleep(1)
                churn.stop.set()
                churn.join(30)
                time.sleep(2)  # a drain or two into the open window, the third range
                before, after, ranges = self.snapshot(d)

                served, spans = [], []
                for raw, a, b in ranges:
                    p = h.check_profile(self, raw, "history range %s..%s" % (edge(a), edge(b)))
                    spans.append((p.time_nanos, p.time_nanos + p.duration_nanos))
                    served.append(p.total(0))
                    # Every sample is the kept workload's or another host process's, never a dropped target's.
                    self.assertFalse([s for s in p.samples if s.labels.get("comm") == "weights"],
                                     "a sample of a dropped target was served")
                # Each range is exactly its windows, and the next starts where it ends.
                self.assertEqual(spans[0][0], ranges[0][1])
                self.assertEqual(spans[0][1], spans[1][0], "ranges 1 and 2 do not meet")
                self.assertEqual(spans[1][1], spans[2][0], "ranges 2 and 3 do not meet")
                for n, total in enumerate(served):
                    self.assertGreater(total, 0, "range %d served nothing" % (n + 1))

                m = before
                counted = m["anorak_bpf_counted_drained_samples_total"]
                outcome = {o: m['anorak_drained_samples_total{outcome="%s"}' % o]
                           for o in ("stored", "target_dropped", "no_stack", "out_of_memory")}
                history_lost = m["anorak_history_samples_lost_total"]
                h.note("served per range %s = %d; BPF counted %d; drained %s; history lost %d; "
                       "%d dropped-target processes started"
                       % (served, sum(served), counted, outcome, history_lost, churn.started))
                self.assertEqual(m['anorak_history_evictions_total{reason="retention"}'] +
                                 m['anorak_history_evictions_total{reason="size"}'], 0,
                                 "windows were evicted: the ranges no longer start at the first drain")
                self.assertEqual(m["anorak_drain_errors_total"], 0)
                # Every counted sample was read from its map exactly once...
                self.assertEqual(counted, sum(outcome.values()),
                                 "BPF counted %d samples in the drained generations, %d were read"
                                 % (counted, sum(outcome.values())))
                # ...and every one not reported dropped was served exactly once.
                self.assertEqual(sum(served), counted - outcome["target_dropped"] - outcome["no_stack"]
                                 - outcome["out_of_memory"] - history_lost)
                # Not an empty identity: the kept workload's samples are in it, and the live BPF count
                # runs ahead of (never behind) the drained generations.
                self.assertGreater(sum(served), HZ * 10)
                self.assertGreaterEqual(after['anorak_samples_total{outcome="counted"}'], counted)
                self.assertGreater(churn.started, 0)
        finally:
            churn.stop.set()
            if kept:
                kept.kill()
            os.unlink(path)


if __name__ == "__main__":
    h.main(total_timeout=200)
