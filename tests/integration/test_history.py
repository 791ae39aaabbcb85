#!/usr/bin/env python3
"""Always-on history: a CPU burst in a test process, then /debug/pprof/profile?start=&end= covering the
burst returns its stacks, the window before returns none of them; match[] narrows by target labels; a
range outside what is kept is a 404 naming the covered range; bad queries are 400s."""
import time
import unittest
import urllib.parse

import harness as h

HZ = 99
BURST = 3
HOT = {"hot_a", "hot_b", "hot_c"}


def range_query(start, end, *matches):
    q = [("start", "%.3f" % start), ("end", "%.3f" % end)] + [("match[]", m) for m in matches]
    return "/debug/pprof/profile?" + urllib.parse.urlencode(q)


class History(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.weights = h.workload("weights")
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="history").start()
        cls.t_ready = time.time()
        # A quiet first window, then the burst in a later one (windows are 10 s).
        time.sleep(12)
        cls.burst_start = time.time()
        w = h.Workload([cls.weights, "-t", "1", "-d", str(BURST)])
        try:
            assert w.wait(timeout=30 * h.TIME_SCALE) == 0, "workload failed"
        finally:
            w.kill()
        cls.burst_end = time.time()
        cls.pid = w.pid
        time.sleep(1.5)  # the drain after the burst

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def get_profile(self, query, name):
        r = self.daemon.get(query, timeout=30 * h.TIME_SCALE)
        self.assertEqual(r.status, 200, "%s: %d %s" % (query, r.status, r.text()[:300]))
        self.assertTrue(r.elapsed < 10 * h.TIME_SCALE, "a past range is answered at once, took %.1fs" % r.elapsed)
        self.assertTrue(r.header("Content-Type").startswith("application/octet-stream"))
        h.save_profile(r.body, name)
        return h.check_profile(self, r.body, name)

    def burst_samples(self, p):
        return [x for x in p.of_pid(self.pid) if HOT & set(x.functions)]

    def test_1_burst_range_has_its_stacks(self):
        p = self.get_profile(range_query(self.burst_start, self.burst_end), "history-burst.pb.gz")
        mine = self.burst_samples(p)
        self.assertTrue(mine, "no hot_x stack of pid %d in the burst's range:\n%s" % (self.pid, h.describe(p.samples)))
        count = sum(x.values[0] for x in mine)
        # 99 Hz for BURST s of one busy thread, on a shared machine: at least a quarter of it.
        self.assertGreater(count, HZ * BURST / 4, "only %d samples of the burst" % count)
        for x in mine:
            self.assertIn("main", x.functions)
            self.assertEqual(x.values[1], x.values[0] * (10 ** 9 // HZ))
        # Windows are included whole, and time_nanos/duration_nanos say what they cover.
        self.assertLessEqual(p.time_nanos, self.burst_start * 1e9)
        self.assertGreaterEqual(p.time_nanos + p.duration_nanos, self.burst_end * 1e9 - 1.5e9)
        self.assertLessEqual(p.duration_nanos, 25e9)

    def test_2_window_before_has_none(self):
        p = self.get_profile(range_query(self.t_ready, self.t_ready + 2), "history-before.pb.gz")
        self.assertLessEqual(p.time_nanos + p.duration_nanos, self.burst_start * 1e9,
                             "the window before the burst reaches into it")
        self.assertEqual(self.burst_samples(p), [], "burst stacks in the window before it")
        self.assertEqual(p.of_pid(self.pid), [])

    def test_3_match_narrows(self):
        p = self.get_profile(range_query(self.burst_start, self.burst_end), "history-all.pb.gz")
        mine = self.burst_samples(p)
        self.assertTrue(mine)
        labels = mine[0].labels
        self.assertTrue(labels, "the burst's samples have no target labels")
        # A label of the burst's target that some other sample does not share, if any; else any label.
        others = [x for x in p.samples if x.numlabels.get("pid") != self.pid]
        key = next((k for k in sorted(labels) if any(o.labels.get(k) != labels[k] for o in others)),
                   sorted(labels)[0])
        sel = '{%s="%s"}' % (key, labels[key].replace("\\", "\\\\").replace('"', '\\"'))
        narrowed = self.get_profile(range_query(self.burst_start, self.burst_end, sel), "history-match.pb.gz")
        self.assertTrue(self.burst_samples(narrowed))
        for x in narrowed.samples:
            self.assertEqual(x.labels.get(key), labels[key], "match[]=%s let through %r" % (sel, x))
        self.assertEqual(sum(x.values[0] for x in self.burst_samples(narrowed)),
                         sum(x.values[0] for x in mine))
        excluded_sel = '{%s!="%s"}' % (key, labels[key].replace("\\", "\\\\").replace('"', '\\"'))
        r = self.daemon.get(range_query(self.burst_start, self.burst_end, excluded_sel))
        if r.status == 200:
            self.assertEqual(self.burst_samples(h.decode_profile(r.body)), [])
        # Two match[] select the union; a regex selects by pattern. (The range may reach into the open
        # window, which other processes' samples keep growing: compare the burst's own samples.)
        union = self.get_profile(range_query(self.burst_start, self.burst_end, sel, '{%s="no-such-value"}' % key),
                                 "history-union.pb.gz")
        for x in union.samples:
            self.assertEqual(x.labels.get(key), labels[key], "match[]=%s let through %r" % (sel, x))
        self.assertEqual(sum(x.values[0] for x in self.burst_samples(union)), sum(x.values[0] for x in mine))
        rex = self.get_profile(range_query(self.burst_start, self.burst_end, '{%s=~".+"}' % key), "history-re.pb.gz")
        self.assertTrue(self.burst_samples(rex))

    def test_4_outside_retention_is_404(self):
        r = self.daemon.get(range_query(1000000000, 1000000100))
        self.assertEqual(r.status, 404, r.text())
        self.assertIn("the history covers", r.text())
        # The covered range in the message includes the burst.
        nums = [int(x) for x in r.text().split("(unix ")[1].split(",")[0].split(" to ")]
        self.assertLessEqual(nums[0], self.burst_start)
        self.assertGreaterEqual(nums[1], self.burst_end - 2)

    def test_5_bad_queries_are_400(self):
        for q, want in [("start=1", "end is missing"), ("start=abc&end=5", "invalid start"),
                        ("start=10&end=5", "end must be after start"),
                        ("start=1&end=2&match[]=" + urllib.parse.quote("{a=b}"), "invalid match[]")]:
            r = self.daemon.get("/debug/pprof/profile?" + q)
            self.assertEqual(r.status, 400, q)
            self.assertIn(want, r.text(), q)
        # The daemon keeps serving.
        self.assertEqual(self.daemon.get("/-/healthy").status, 200)

    def test_6_metrics(self):
        text = self.daemon.get("/metrics").text()
        for name in ("anorak_history_bytes", "anorak_history_windows", "anorak_history_evictions_total",
                     "anorak_history_max_bytes", "anorak_history_query_held_bytes"):
            self.assertIn("\n" + name, text)
        adds = [l for l in text.splitlines() if l.startswith("anorak_history_add_duration_seconds_count ")]
        self.assertGreaterEqual(float(adds[0].split()[1]), 10, "every drain adds to the history")
        windows = [l for l in text.splitlines() if l.startswith("anorak_history_windows ")]
        self.assertGreaterEqual(float(windows[0].split()[1]), 1)


if __name__ == "__main__":
    h.main(total_timeout=240)
