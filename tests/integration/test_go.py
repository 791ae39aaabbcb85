#!/usr/bin/env python3
"""Go programs get named, complete stacks, stripped or not.

`gowork` (tests/workload/gowork), built as is and with -ldflags='-s -w' (no .symtab, no DWARF: only
.gopclntab names its code; no .eh_frame either way: its unwind rows come from .gopclntab's pcsp tables),
is profiled in three modes:
- inline: CPU in main.step, inlined into the frameless main.leaf, under main.middle and main.main. At least
  99% of the frames in its binary are named, main-package frames carry file:line, main.step is its own
  Line above main.leaf, and main.leaf's caller main.middle is there (a frame-pointer walk skips it).
- sha256: CPU in crypto/sha256.block, standard-library assembly without a frame pointer, under main.hash.
- weights: work5/work3/work2, the same work per call chosen 5:3:2 at random per call, in two goroutines:
  their shares are within 3 points of 50/30/20.
Each time at least 95% of the program's samples have a complete stack (ending at runtime.goexit,
runtime.main or runtime.mstart), and the unwinder counts the Go binary and its rows.
`gocgo` spends its CPU in C code called through cgo: unwound by the C code's .eh_frame rows up to
runtime.asmcgocall on the g0 stack, where the walk stops cleanly, counted as reason="go_cgo".
In inline mode the same holds for the ?start=&end= profile of that time, which comes from the history
ring (names, file:line, main.step its own Line above main.leaf), and for the Pyroscope flame graph of
that time (SelectMergeStacktraces), where main.step is a node of its own under main.leaf.
"""
import collections
import http.client
import time
import unittest
import urllib.parse

import harness as h
from test_query_api import CPU, MERGE_RESPONSE, SERVICE, f_int, f_str, flame_stacks

# Enough samples for 3-point shares (3 standard deviations at 2500 samples): 499 Hz, and a longer window
# for the weights, whose two goroutines share the machine's two CPUs with the other tests.
HZ = 499
WINDOW = 5
WEIGHTS_WINDOW = 15
# The daemon gives a new process its tables from its first sample on, in its event thread (behind the
# other processes' events on a busy machine); until then its stacks are walked by frame pointer, which
# loses the callers of frameless functions. Each profile starts once a short one shows the hot function
# under its caller, polled at most READY_TRIES times.
READY_WINDOW = 1
READY_TRIES = 30
# The hot function and its caller in each mode.
HOT = {"inline": ("main.leaf", "main.middle"), "sha256": ("crypto/sha256.block", "main.hash"),
       "weights": ("main.work5", "main.weighted"), None: ("burn_c", "runtime.asmcgocall")}
MIN_NAMED = 0.99
MIN_COMPLETE = 0.95
ROOTS = ("runtime.goexit", "runtime.main", "runtime.mstart")
WEIGHTS = {"main.work5": 50, "main.work3": 30, "main.work2": 20}
MAX_SHARE_ERROR = 3.0


class GoStacks(unittest.TestCase):
    ranges = {}  # variant: (start, end, pid) of its inline profile

    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="go").start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def samples_of(self, variant, mode, window):
        """Profiles window s of the workload in mode; returns (binary, samples of its pid)."""
        binary = h.workload(variant)
        w = h.Workload([binary, str(READY_TRIES * (READY_WINDOW + 1) + window + 3)] + ([mode] if mode else []))
        try:
            self.wait_for_tables(w, *HOT[mode])
            start = time.time()
            raw = self.daemon.profile(window)
            self.last_run = (start, time.time(), w.pid)
            self.assertIsNone(w.proc.poll(), "workload exited early")
        finally:
            w.kill()
        name = "%s-%s.pb.gz" % (variant, mode or "run")
        h.note("profile saved to %s" % h.save_profile(raw, name))
        mine = h.check_profile(self, raw, name).of_pid(w.pid)
        self.assertTrue(mine, "no sample of pid %d" % w.pid)
        self.check_named(variant, binary, mine)
        return binary, mine

    def wait_for_tables(self, w, inner, outer):
        for _ in range(READY_TRIES):
            p = h.decode_profile(self.daemon.profile(READY_WINDOW))
            n, k = self.share_with(p.of_pid(w.pid), inner, outer)
            if n and k == n:
                return
        self.fail("the workload's %s never showed under %s in a %d s profile, %d times" % (inner, outer, READY_WINDOW,
                                                                                       READY_TRIES))

    def profile_of(self, variant, mode, window=WINDOW):
        binary, mine = self.samples_of(variant, mode, window)
        self.check_complete(variant, mode, mine)
        return binary, mine

    def outermost(self, x):
        user = x.user_frames()
        return (user[-1].function or hex(user[-1].address)) if user else "(no user frames)"

    def check_named(self, variant, binary, mine):
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
                if ours(f) and f.function.startswith("main."):
                    self.assertTrue(f.filename.endswith(".go") and f.line > 0,
                                    "%s: %s without file:line (%r:%d)" % (variant, f.function, f.filename, f.line))
        h.note("%s: %d of %d frames in the binary named; unnamed: %s" % (variant, named, total,
                                                                       unnamed.most_common(5)))
        self.assertGreater(total, 0, "no frame in %s" % binary)
        self.assertGreaterEqual(named / total, MIN_NAMED, "%s: %d of %d frames named" % (variant, named, total))

    def check_complete(self, variant, mode, mine):
        roots = collections.Counter()
        for x in mine:
            roots[self.outermost(x)] += x.values[0]
        total = sum(roots.values())
        complete = sum(n for root, n in roots.items() if root in ROOTS)
        h.note("%s %s: %d of %d samples complete; outermost frames: %s" % (variant, mode, complete, total,
                                                                          roots.most_common(8)))
        self.assertGreaterEqual(complete, MIN_COMPLETE * total,
                                "%s %s: %d of %d stacks complete: %s" % (variant, mode, complete, total,
                                                                         roots.most_common(8)))

    def share_with(self, mine, inner, outer):
        """Samples with inner in the stack, and how many of them have outer further out."""
        n = k = 0
        for x in mine:
            fns = x.functions
            if inner in fns:
                n += x.values[0]
                k += x.values[0] if outer in fns[fns.index(inner) + 1:] else 0
        return n, k

    def history_of(self, pid, start, end, name):
        """The samples of pid in the ?start=&end= profile (from the history ring) of that time."""
        time.sleep(1.5)  # the drain after the profile's end
        q = urllib.parse.urlencode([("start", "%.3f" % start), ("end", "%.3f" % end)])
        r = self.daemon.get("/debug/pprof/profile?" + q, timeout=30 * h.TIME_SCALE)
        self.assertEqual(r.status, 200, "%s: %d %s" % (q, r.status, r.text()[:300]))
        h.save_profile(r.body, name)
        mine = h.check_profile(self, r.body, name).of_pid(pid)
        self.assertTrue(mine, "no sample of pid %d in the range" % pid)
        return mine

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

    def check_inlined_step(self, variant, mine):
        stacks = [x.functions for x in mine]
        inlined = sum(x.values[0] for x in mine if x.functions[:2] == ["main.step", "main.leaf"])
        self.assertGreater(inlined, 0, "%s: main.step never shown inlined in main.leaf: %s" % (variant, stacks[:5]))
        return inlined

    def check_history(self, variant, binary):
        start, end, pid = self.last_run
        past = self.history_of(pid, start, end, variant + "-history.pb.gz")
        self.check_named(variant + " ?start=&end=", binary, past)
        inlined = self.check_inlined_step(variant + " ?start=&end=", past)
        stacks = [x.functions for x in past]
        self.assertTrue(any(s[:2] == ["main.step", "main.leaf"] and "main.main" in s for s in stacks),
                        "%s ?start=&end=: no main.step <- main.leaf <- ... main.main stack: %s" % (variant, stacks[:5]))
        h.note("%s ?start=&end=: %d samples in the inlined main.step" % (variant, inlined))
        GoStacks.ranges[variant] = (start, end)

    def check_inline(self, variant):
        binary, mine = self.profile_of(variant, "inline")
        stacks = [x.functions for x in mine]
        inlined = sum(x.values[0] for x in mine if x.functions[:2] == ["main.step", "main.leaf"])
        in_leaf, with_caller = self.share_with(mine, "main.leaf", "main.middle")
        h.note("%s: of %d samples in main.leaf, %d in the inlined main.step, %d under main.middle"
               % (variant, in_leaf, inlined, with_caller))
        self.assertGreater(inlined, 0, "%s: main.step never shown inlined in main.leaf: %s" % (variant, stacks[:5]))
        # main.leaf sets up no frame: only its pcsp rows find its caller.
        self.assertGreaterEqual(with_caller, MIN_COMPLETE * in_leaf,
                                "%s: main.leaf under main.middle in %d of %d samples" % (variant, with_caller, in_leaf))
        self.check_history(variant, binary)

    def check_sha256(self, variant):
        _, mine = self.profile_of(variant, "sha256")
        total = sum(x.values[0] for x in mine)
        in_block, under_hash = self.share_with(mine, "crypto/sha256.block", "main.hash")
        h.note("%s: %d of %d samples in crypto/sha256.block, %d of them under main.hash"
               % (variant, in_block, total, under_hash))
        self.assertGreaterEqual(in_block, 0.5 * total, "%s: the hot path is not sha256.block" % variant)
        self.assertGreaterEqual(under_hash, MIN_COMPLETE * in_block,
                                "%s: sha256.block under main.hash in %d of %d samples" % (variant, under_hash, in_block))

    def check_weights(self, variant):
        _, mine = self.profile_of(variant, "weights", WEIGHTS_WINDOW)
        counts = {name: self.share_with(mine, name, "main.weighted") for name in WEIGHTS}
        hot = sum(n for n, _ in counts.values())
        self.assertGreater(hot, 0, "no sample in %s" % sorted(WEIGHTS))
        shares = {name: 100.0 * counts[name][0] / hot for name in WEIGHTS}
        h.note("%s: shares %s of %d samples (weights %s)" % (variant, {k: round(v, 1) for k, v in shares.items()},
                                                             hot, WEIGHTS))
        for name, weight in WEIGHTS.items():
            n, under = counts[name]
            self.assertGreaterEqual(under, MIN_COMPLETE * n, "%s under main.weighted in %d of %d" % (name, under, n))
            self.assertLess(abs(shares[name] - weight), MAX_SHARE_ERROR,
                            "%s share %.1f%%, weight %d%% (all: %s)" % (name, shares[name], weight, shares))

    def test_1_inline_unstripped(self):
        self.check_inline("gowork")

    def test_2_inline_stripped(self):
        self.check_inline("gowork_stripped")

    def test_3_sha256_unstripped(self):
        self.check_sha256("gowork")

    def test_4_sha256_stripped(self):
        self.check_sha256("gowork_stripped")

    def test_5_weights_stripped(self):
        self.check_weights("gowork_stripped")

    def test_6_cgo(self):
        before = h.metric(self.daemon.get("/metrics").text(), "anorak_unwind_stacks_stopped_total",
                          '{reason="go_cgo"}') or 0
        _, mine = self.samples_of("gocgo", None, WINDOW)
        in_c = [x for x in mine if "burn_c" in x.functions]
        n = sum(x.values[0] for x in in_c)
        stopped = sum(x.values[0] for x in in_c if self.outermost(x) == "runtime.asmcgocall")
        h.note("gocgo: %d of %d samples in burn_c, %d of them ending at runtime.asmcgocall; outermost: %s" % (
            n, sum(x.values[0] for x in mine), stopped,
            collections.Counter(self.outermost(x) for x in in_c).most_common(5)))
        self.assertGreater(n, 0, "no sample in burn_c")
        self.assertGreaterEqual(stopped, MIN_COMPLETE * n, "burn_c stacks end at runtime.asmcgocall in %d of %d" % (stopped, n))
        after = h.metric(self.daemon.get("/metrics").text(), "anorak_unwind_stacks_stopped_total", '{reason="go_cgo"}')
        self.assertGreater(after, before, "no stack counted as stopped at a cgo call")

    def test_7_metrics(self):
        text = self.daemon.get("/metrics").text()
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_binaries_total") or 0, 1, "no Go binary counted")
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_pclntab_loads_total") or 0, 1)
        self.assertGreater(h.metric(text, "anorak_symbol_go_frames_total") or 0, 0)
        self.assertEqual(h.metric(text, "anorak_symbol_go_pclntab_failures_total", '{reason="corrupt"}'), 0)
        # Both builds of gowork got rows from .gopclntab, none refused.
        self.assertGreaterEqual(h.metric(text, "anorak_unwind_go_tables_total") or 0, 2)
        self.assertGreater(h.metric(text, "anorak_unwind_go_rows_total") or 0, 1000)
        self.assertEqual(h.metric(text, "anorak_unwind_go_functions_refused_total"), 0)
        self.assertEqual(h.metric(text, "anorak_unwind_go_failures_total", '{reason="corrupt"}'), 0)
        for reason in ("go_stack_switch", "go_cgo", "go_spwrite"):
            self.assertIsNotNone(h.metric(text, "anorak_unwind_stacks_stopped_total", '{reason="%s"}' % reason))

    def test_8_flame_graph(self):
        """The inlined main.step is a node of its own under main.leaf, as Pyroscope draws inlined calls."""
        self.assertIn("gowork_stripped", GoStacks.ranges, "test_2_inline_stripped did not get to its range query")
        stacks = self.flame_graph(*GoStacks.ranges["gowork_stripped"])
        inlined = sum(v for path, v in stacks.items() if path[-2:] == ("main.leaf", "main.step"))
        h.note("flame graph: %d of %d in main.leaf -> main.step" % (inlined, sum(stacks.values())))
        self.assertGreater(inlined, 0, "no main.leaf -> main.step path in the flame graph: %s" %
                           sorted(stacks.items(), key=lambda kv: -kv[1])[:5])


if __name__ == "__main__":
    unittest.main(verbosity=2)
