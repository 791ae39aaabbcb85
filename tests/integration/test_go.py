#!/usr/bin/env python3
"""Go programs get named stacks, stripped or not.

`gowork` (tests/workload/gowork) burns CPU in main.step, inlined into main.leaf, under main.middle and
main.main. Built as is and with -ldflags='-s -w' (no .symtab, no DWARF: only .gopclntab names its code),
each is profiled for 5 s: at least 99% of the frames in its own binary that the stack walk reached must
be named, main-package frames must carry their file and line, and the inlined main.step must appear as
its own Line above main.leaf. The same holds for the ?start=&end= profile of that time, which comes
from the history ring, and for the Pyroscope flame graph of that time, where main.step is a node of
its own under main.leaf. Noted for the unwinding work: where each stack ends, and how often the
frame-pointer walk skips main.middle (the caller of the frameless main.leaf).
"""
import collections
import http.client
import time
import unittest
import urllib.parse

import harness as h
from test_query_api import CPU, MERGE_RESPONSE, SERVICE, f_int, f_str, flame_stacks

HZ = 99
WINDOW = 5
MIN_NAMED = 0.99


class GoSymbols(unittest.TestCase):
    ranges = {}  # variant: (start, end) of its run

    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="go").start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def profile_of(self, binary, name):
        """Profiles WINDOW s of the workload; returns (samples of its pid, its pid)."""
        w = h.Workload([binary, str(WINDOW + 3)])
        try:
            raw = self.daemon.profile(WINDOW)
            self.assertEqual(w.wait(timeout=30), 0, "workload failed")
        finally:
            w.kill()
        h.note("profile saved to %s" % h.save_profile(raw, name))
        p = h.check_profile(self, raw, name)
        mine = p.of_pid(w.pid)
        self.assertTrue(mine, "no sample of pid %d" % w.pid)
        return mine, w.pid

    def history_of(self, pid, start, end, name):
        """The samples of pid in the ?start=&end= profile (from the history ring) of that time."""
        time.sleep(1.5)  # the drain after the workload's end
        q = urllib.parse.urlencode([("start", "%.3f" % start), ("end", "%.3f" % end)])
        r = self.daemon.get("/debug/pprof/profile?" + q, timeout=30 * h.TIME_SCALE)
        self.assertEqual(r.status, 200, "%s: %d %s" % (q, r.status, r.text()[:300]))
        h.save_profile(r.body, name)
        mine = h.check_profile(self, r.body, name).of_pid(pid)
        self.assertTrue(mine, "no sample of pid %d in the range" % pid)
        return mine

    def check_binary(self, variant):
        binary = h.workload(variant)
        start = time.time()
        mine, pid = self.profile_of(binary, variant + ".pb.gz")
        self.check_samples(variant, binary, mine)
        end = time.time()
        past = self.history_of(pid, start, end, variant + "-history.pb.gz")
        self.check_samples(variant + " ?start=&end=", binary, past)
        GoSymbols.ranges[variant] = (start, end)

    def flame_graph(self, start, end):
        """Pyroscope's SelectMergeStacktraces over [start, end]: {root-first names: self}."""
        body = f_str(1, CPU) + f_str(2, "{}") + f_int(3, int(start * 1000)) + f_int(4, int(end * 1000) + 1000)
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30 * h.TIME_SCALE)
        try:
            conn.request("POST", SERVICE + "SelectMergeStacktraces", body=body,
                         headers={"Content-Type": "application/proto"})
            r = conn.getresponse()
            data = r.read()
            self.assertEqual(r.status, 200, "SelectMergeStacktraces: %d %s" % (r.status, data[:300]))
        finally:
            conn.close()
        return flame_stacks(h._msg(data, MERGE_RESPONSE)["flamegraph"])

    def check_samples(self, variant, binary, mine):
        ours = lambda f: not f.kernel and f.mapping_file == binary
        named = total = 0
        unnamed = collections.Counter()
        for x in mine:
            for f in x.frames:
                if ours(f):
                    total += x.values[0]
                    named += x.values[0] if f.function else 0
                    if not f.function:
                        unnamed[hex(f.address)] += x.values[0]
        h.note("%s: %d of %d frames in the binary named; unnamed: %s" % (variant, named, total,
                                                                       unnamed.most_common(5)))
        self.assertGreater(total, 0, "no frame in %s" % binary)
        self.assertGreaterEqual(named / total, MIN_NAMED, "%s: %d of %d frames named" % (variant, named, total))

        for x in mine:
            for f in x.frames:
                if ours(f) and f.function.startswith("main."):
                    self.assertTrue(f.filename.endswith("gowork/main.go") and f.line > 0,
                                    "%s: %s without file:line (%r:%d)" % (variant, f.function, f.filename, f.line))

        stacks = [x.functions for x in mine]
        inlined = sum(x.values[0] for x in mine if x.functions[:2] == ["main.step", "main.leaf"])
        in_leaf = sum(x.values[0] for x in mine if "main.leaf" in x.functions)
        h.note("%s: %d of %d samples in main.leaf are in the inlined main.step" % (variant, inlined, in_leaf))
        self.assertGreater(inlined, 0, "%s: main.step never shown inlined in main.leaf: %s" % (variant, stacks[:5]))
        # main.leaf has no frame of its own (Go sets none up in frameless leaves), so a frame-pointer walk
        # from it skips its caller main.middle: noted, for the pclntab unwinding step.
        self.assertTrue(any(s[:2] == ["main.step", "main.leaf"] and "main.main" in s for s in stacks),
                        "%s: no main.step <- main.leaf <- ... main.main stack: %s" % (variant, stacks[:5]))
        lost = sum(x.values[0] for x in mine if "main.leaf" in x.functions and "main.middle" not in x.functions)
        h.note("%s: %d of %d samples in main.leaf lack its caller main.middle" % (variant, lost, in_leaf))
        self.note_roots(variant, mine)

    def note_roots(self, variant, mine):
        """Where each stack ends (its outermost user frame): what the unwinding step has to get past."""
        roots = collections.Counter()
        for x in mine:
            user = x.user_frames()
            roots[(user[-1].function or hex(user[-1].address)) if user else "(no user frames)"] += x.values[0]
        h.note("%s: outermost frames of %d samples: %s" % (variant, sum(roots.values()), roots.most_common(8)))

    def test_1_unstripped(self):
        self.check_binary("gowork")

    def test_2_stripped(self):
        self.check_binary("gowork_stripped")

    def test_4_flame_graph(self):
        """The inlined main.step is a node of its own under main.leaf, as Pyroscope draws inlined calls."""
        self.assertIn("gowork_stripped", GoSymbols.ranges, "test_2_stripped did not get to its range query")
        stacks = self.flame_graph(*GoSymbols.ranges["gowork_stripped"])
        inlined = sum(v for path, v in stacks.items() if path[-2:] == ("main.leaf", "main.step"))
        h.note("flame graph: %d of %d in main.leaf -> main.step" % (inlined, sum(stacks.values())))
        self.assertGreater(inlined, 0, "no main.leaf -> main.step path in the flame graph: %s" %
                           sorted(stacks.items(), key=lambda kv: -kv[1])[:5])

    def test_3_metrics(self):
        text = self.daemon.get("/metrics").text()
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_binaries_total") or 0, 1, "no Go binary counted")
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_pclntab_loads_total") or 0, 1)
        self.assertGreater(h.metric(text, "anorak_symbol_go_frames_total") or 0, 0)
        self.assertEqual(h.metric(text, "anorak_symbol_go_pclntab_failures_total", '{reason="corrupt"}'), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
