#!/usr/bin/env python3
"""Complete user stacks from .eh_frame unwind tables, without frame pointers.

- `weights_nofp` (-O2 -fomit-frame-pointer): >= 95% of its samples have the whole chain from the
  thread entry (_start or clone3) through main/thread_main and worker, and the hot_a/b/c shares are
  those of the weights.
- `weights_notables` (frame pointers, but no unwind tables for its own code): the same, through the
  frame-pointer fallback inside a table-unwound stack (libc's start-up frames have tables).
- `libcwork` (a frame-pointer program) spending its time in Debian's libc (built without frame
  pointers): memcpy's leaf frame is followed by its caller and main, with no gap; qsort's libc frames
  (and the comparator called back from them) by sort_hot and main.
- The anorak_unwind_* metrics count what happened.
"""
import os
import re
import time
import unittest

import harness as h

HZ = 99
WINDOW = 5
WEIGHTS = {"hot_a": 50, "hot_b": 30, "hot_c": 20}
LIBC = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")


def user_functions(sample):
    """Function names of the user frames, root first."""
    return [f.function for f in reversed(sample.user_frames())]


def complete_weights_chain(funcs):
    """Whether root-first user frames go from the thread entry to worker with nothing missing."""
    if not funcs:
        return False
    if funcs[0] == "_start":
        want = [re.compile(r"__libc_start_main"), re.compile(r"^__libc_start_call_main$"),
                re.compile(r"^main$"), re.compile(r"^worker$")]
    elif "clone" in funcs[0]:
        want = [re.compile(r"^start_thread$"), re.compile(r"^thread_main$"), re.compile(r"^worker$")]
    else:
        return False
    rest = funcs[1:1 + len(want)]
    return len(rest) == len(want) and all(w.search(f or "") for w, f in zip(want, rest))


class UnwindTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, name="unwind").start()
        cls.settle()

    @classmethod
    def settle(cls):
        """Waits until the start-up burst is over: every process on the machine is learnt at its first
        sample and gets its tables from the one event thread, so a workload started meanwhile would
        wait in that queue and its first samples would have no tables."""
        deadline = time.monotonic() + 30 * h.TIME_SCALE
        last, stable_since = None, time.monotonic()
        while time.monotonic() < deadline:
            text = cls.daemon.get("/metrics").text()
            m = re.search(r'^anorak_unwind_tables_built_total\{result="success"\} (\S+)$', text, re.M)
            now = m.group(1) if m else None
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 2:
                h.note("unwind tables settled: %s built" % last)
                return
            time.sleep(0.2)
        h.note("unwind tables still being built after 30 s; going on")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def profile_while(self, argv, name):
        w = h.Workload(argv)
        try:
            raw = self.daemon.profile(WINDOW)
            self.assertEqual(w.wait(timeout=30), 0, "workload failed")
        finally:
            w.kill()
        h.note("profile saved to %s" % h.save_profile(raw, name))
        p = h.check_profile(self, raw, name)
        mine = p.of_pid(w.pid)
        self.assertTrue(mine, "no sample of %s (pid %d)" % (argv[0], w.pid))
        return mine

    def check_weights(self, binary, name):
        mine = self.profile_while([h.workload(binary), "-t", "2", "-d", str(WINDOW + 3)], name)
        total = sum(x.values[0] for x in mine)
        complete = sum(x.values[0] for x in mine if complete_weights_chain(user_functions(x)))
        incomplete = [x for x in mine if not complete_weights_chain(user_functions(x))]
        h.note("%s: %d of %d samples complete" % (binary, complete, total))
        self.assertGreaterEqual(complete, 0.95 * total, "only %d of %d samples have the whole chain; "
                                "the others:\n%s" % (complete, total, h.describe(incomplete, 12)))

        hot = {}
        for x in mine:
            funcs = user_functions(x)
            leaf_hot = [f for f in funcs if f in WEIGHTS]
            if leaf_hot:
                hot[leaf_hot[-1]] = hot.get(leaf_hot[-1], 0) + x.values[0]
        nhot = sum(hot.values())
        self.assertGreater(nhot, 0.8 * total, "hot_x in only %d of %d samples" % (nhot, total))
        shares = {k: 100.0 * hot.get(k, 0) / nhot for k in WEIGHTS}
        h.note("%s: shares %s" % (binary, {k: round(v, 1) for k, v in shares.items()}))
        for k, weight in WEIGHTS.items():
            self.assertLess(abs(shares[k] - weight), h.share_tolerance(weight, nhot),
                            "%s share %.1f%%, weight %d%%, %d samples" % (k, shares[k], weight, nhot))
        return mine

    def test_1_no_frame_pointers(self):
        self.check_weights("weights_nofp", "unwind-nofp.pb.gz")

    def test_2_no_tables_frame_pointer_fallback(self):
        before = self.metric('anorak_unwind_frames_total{method="frame_pointer"}')
        self.check_weights("weights_notables", "unwind-notables.pb.gz")
        after = self.metric('anorak_unwind_frames_total{method="frame_pointer"}')
        self.assertGreater(after - before, 100, "the frame-pointer fallback was hardly used")

    def libc_samples(self, mode):
        mine = self.profile_while([h.workload("libcwork"), "-m", mode, "-d", str(WINDOW + 3)],
                                  "unwind-libc-%s.pb.gz" % mode)
        return mine, sum(x.values[0] for x in mine)

    def test_3_libc_memcpy(self):
        mine, total = self.libc_samples("memcpy")
        in_libc = [x for x in mine if x.user_frames() and x.user_frames()[0].mapping_file == LIBC]
        n_libc = sum(x.values[0] for x in in_libc)
        self.assertGreaterEqual(n_libc, 0.5 * total, "memcpy: only %d of %d samples end in libc:\n%s"
                                % (n_libc, total, h.describe(mine)))
        good = 0
        for x in in_libc:
            funcs = [f.function for f in x.user_frames()]  # leaf first
            if funcs[1:3] == ["copy_hot", "main"]:
                good += x.values[0]
        self.assertGreaterEqual(good, 0.95 * n_libc, "memcpy: %d of %d libc-leaf samples go leaf -> "
                                "copy_hot -> main:\n%s" % (good, n_libc, h.describe(in_libc)))

    def test_4_libc_qsort(self):
        mine, total = self.libc_samples("qsort")
        sorting = [x for x in mine if "sort_hot" in [f.function for f in x.user_frames()]
                   and x.user_frames()[0].function != "sort_hot"]
        n = sum(x.values[0] for x in sorting)
        self.assertGreaterEqual(n, 0.5 * total, "qsort: only %d of %d samples below sort_hot:\n%s"
                                % (n, total, h.describe(mine)))
        good = 0
        for x in sorting:
            frames = x.user_frames()  # leaf first
            i = [f.function for f in frames].index("sort_hot")
            between = frames[:i]
            # Everything below sort_hot is libc (qsort, its merge sort, memcpy) or the comparator.
            if (all(f.mapping_file == LIBC or f.function == "compare_ints" for f in between)
                    and any(f.mapping_file == LIBC for f in between)
                    and i + 1 < len(frames) and frames[i + 1].function == "main"):
                good += x.values[0]
        self.assertGreaterEqual(good, 0.95 * n, "qsort: %d of %d samples go libc/comparator -> sort_hot "
                                "-> main:\n%s" % (good, n, h.describe(sorting)))

    def metric(self, series, daemon=None):
        text = (daemon or self.daemon).get("/metrics").text()
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        self.fail("no %s in /metrics" % series)

    def test_5_metrics(self):
        self.assertGreater(self.metric('anorak_unwind_frames_total{method="table"}'), 0)
        self.assertGreater(self.metric('anorak_unwind_stacks_total{result="complete"}'), 0)
        self.assertGreater(self.metric('anorak_unwind_tables_built_total{result="success"}'), 0)
        self.assertGreater(self.metric("anorak_unwind_table_bytes"), 0)
        self.assertLessEqual(self.metric("anorak_unwind_table_bytes"),
                             self.metric("anorak_unwind_table_capacity_bytes"))
        self.assertGreater(self.metric("anorak_unwind_tables"), 0)
        self.metric('anorak_unwind_stacks_truncated_total{reason="no_table"}')
        self.metric("anorak_unwind_tables_evicted_total")

    def test_6_eviction(self):
        # 1 MiB: room for about 100k rows, less than libc plus the tables of this machine's other
        # processes, so tables are evicted, least recently used first, and counted.
        small = h.Daemon("--sampling.frequency=%d" % HZ, "--unwind.table-memory=1MiB", name="unwind-small").start()
        try:
            w = h.Workload([h.workload("weights_nofp"), "-t", "1", "-d", "4"])
            try:
                raw = small.profile(3)
                self.assertEqual(w.wait(timeout=30), 0)
            finally:
                w.kill()
            h.check_profile(self, raw, "unwind-small.pb.gz")
            capacity = self.metric("anorak_unwind_table_capacity_bytes", small)
            self.assertLessEqual(capacity, 1 << 20)
            self.assertLessEqual(self.metric("anorak_unwind_table_bytes", small), capacity)
            built = self.metric('anorak_unwind_tables_built_total{result="success"}', small)
            evicted = self.metric("anorak_unwind_tables_evicted_total", small)
            h.note("1 MiB of tables: %d built, %d evicted" % (built, evicted))
            self.assertGreater(evicted, 0, "no table was evicted with 1 MiB for %d tables" % built)
        finally:
            small.stop()


if __name__ == "__main__":
    h.main(total_timeout=200)
