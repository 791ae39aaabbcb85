#!/usr/bin/env python3
"""Go programs get named stacks, stripped or not.

`gowork` (tests/workload/gowork) burns CPU in main.step, inlined into main.leaf, under main.middle and
main.main. Built as is and with -ldflags='-s -w' (no .symtab, no DWARF: only .gopclntab names its code),
each is profiled for 5 s: at least 99% of the frames in its own binary that the stack walk reached must
be named, main-package frames must carry their file and line, and the inlined main.step must appear as
its own Line above main.leaf. Noted for the unwinding work: where each stack ends, and how often the
frame-pointer walk skips main.middle (the caller of the frameless main.leaf).
"""
import collections
import unittest

import harness as h

HZ = 99
WINDOW = 5
MIN_NAMED = 0.99


class GoSymbols(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="go").start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def profile_of(self, binary, name):
        """Profiles WINDOW s of the workload; returns (samples of its pid, the profile)."""
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
        return mine, p

    def check_binary(self, variant):
        binary = h.workload(variant)
        mine, p = self.profile_of(binary, variant + ".pb.gz")
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

    def test_3_metrics(self):
        text = self.daemon.get("/metrics").text()
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_binaries_total") or 0, 1, "no Go binary counted")
        self.assertGreaterEqual(h.metric(text, "anorak_symbol_go_pclntab_loads_total") or 0, 1)
        self.assertGreater(h.metric(text, "anorak_symbol_go_frames_total") or 0, 0)
        self.assertEqual(h.metric(text, "anorak_symbol_go_pclntab_failures_total", '{reason="corrupt"}'), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
