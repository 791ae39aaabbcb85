#!/usr/bin/env python3
"""Debug files from a debuginfod server name the frames of stripped binaries.

Copies of four workloads with distinct build ids are stripped (strip --strip-all): A's debug part,
split off with objcopy --only-keep-debug, is served by Debian's own debuginfod on 127.0.0.1; the
others' are not (B's serves as a wrong answer in 3).
1. A's frames are named in the window after its fetch; B's stay addresses (the server answers 404).
2. With the server stopped, a restarted daemon names A from its cache directory; B's fetch fails
   (connection refused), counted, B stays addresses.
3. A server answering A with another binary's debug file and B with junk larger than
   --symbols.max-elf-size costs one counted failure each; one that never answers for C is cut at
   --symbols.debuginfod-timeout; profiles and /metrics are served meanwhile, and the daemon stops
   promptly with fetches still waiting.
"""
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as h

WAIT = 60 * h.TIME_SCALE  # upper bound for an event to happen, never a measured duration
RUN_SECONDS = 120


def wait_for(what, cond, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def own_frames(profile, path):
    """(named, all) frames in the file at path, each counted as often as its stack was sampled."""
    frames = [(f, x.values[0]) for x in profile.samples for f in x.frames if f.mapping_file == path]
    return sum(n for f, n in frames if f.function), sum(n for _, n in frames)


class BadServer:
    """Answers the build ids of `answers` with their bytes (200), holds requests for those in `hang`
    open until stopped, answers 404 to the others; records the request paths and header names."""

    def __init__(self, answers, hang):
        self.requests = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, sorted(self.headers.keys())))
                if any(bid in self.path for bid in hang):
                    outer.release.wait(WAIT)
                    return
                body = next((b for bid, b in answers.items() if bid in self.path), None)
                self.send_response(404 if body is None else 200)
                body = body or b"not found"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up on a body it does not want

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Debuginfod(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        cls.server_bin = h.require_tool("debuginfod")
        objcopy, strip = h.require_tool("objcopy"), h.require_tool("strip")
        cls.tmp = tempfile.mkdtemp(prefix="anorak-debuginfod-")
        cls.a = os.path.join(cls.tmp, "weights_a")
        cls.b = os.path.join(cls.tmp, "weights_b")
        cls.c = os.path.join(cls.tmp, "weights_c")
        cls.d = os.path.join(cls.tmp, "libcwork_d")
        srv = os.path.join(cls.tmp, "served")
        os.mkdir(srv)
        shutil.copy(h.workload("weights"), cls.a)
        shutil.copy(h.workload("weights_notables"), cls.b)
        shutil.copy(h.workload("weights_nofp"), cls.c)
        shutil.copy(h.workload("libcwork"), cls.d)
        h.run([objcopy, "--only-keep-debug", cls.a, os.path.join(srv, "weights_a.debug")], timeout=30)
        cls.debug_b = os.path.join(cls.tmp, "weights_b.debug")  # served by no real server
        h.run([objcopy, "--only-keep-debug", cls.b, cls.debug_b], timeout=30)
        for path in (cls.a, cls.b, cls.c, cls.d):
            h.run([strip, "--strip-all", path], timeout=30)
        cls.bid_a, cls.bid_b, cls.bid_c, cls.bid_d = (h.gnu_build_id(p) for p in (cls.a, cls.b, cls.c, cls.d))
        h.require(len({cls.bid_a, cls.bid_b, cls.bid_c, cls.bid_d} - {None}) == 4,
                  "four workloads with distinct build ids")
        cls.cache = os.path.join(cls.tmp, "cache")
        cls.port = h.free_port()
        cls.url = "http://127.0.0.1:%d" % cls.port
        cls.server_log = open(os.path.join(cls.tmp, "debuginfod.log"), "wb")
        # -F: index the ELF/DWARF files under srv; -t 0 -g 0: one scan, no grooming.
        cls.server = subprocess.Popen([cls.server_bin, "-F", "-p", str(cls.port), "-t", "0", "-g", "0",
                                       "-d", os.path.join(cls.tmp, "db.sqlite"), srv],
                                      stdout=cls.server_log, stderr=subprocess.STDOUT)
        wait_for("debuginfod to serve %s" % cls.bid_a, lambda: cls.served(cls.bid_a) == 200)

    @classmethod
    def served(cls, bid):
        try:
            return h.http_get(cls.port, "/buildid/%s/debuginfo" % bid, timeout=5).status
        except OSError:
            return None

    @classmethod
    def tearDownClass(cls):
        if cls.server.poll() is None:
            cls.server.kill()
            cls.server.wait(timeout=10)
        cls.server_log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def daemon(self, name, urls, cache, *flags):
        return h.Daemon("--sampling.frequency=99", "--symbols.debuginfod-urls=" + urls,
                        "--symbols.debuginfod-cache-dir=" + cache, *flags, name=name).start()

    def workloads(self, *paths):
        return [h.Workload([path, "-t", "1", "-d", str(RUN_SECONDS)]) for path in paths or (self.a, self.b)]

    def metrics(self, d):
        r = d.get("/metrics", timeout=10)
        self.assertEqual(r.status, 200)
        return r.text()

    def fetches(self, d, result):
        return h.metric(self.metrics(d), "anorak_debuginfod_fetches_total", '{result="%s"}' % result) or 0

    def profile(self, d, name):
        raw = d.profile(3)
        h.save_profile(raw, name)
        return h.check_profile(self, raw, name)

    def assert_named(self, p, path, what):
        named, total = own_frames(p, path)
        h.note("%s: %d of %d frames named" % (what, named, total))
        self.assertGreater(total, 0, "no frames of %s in the profile" % what)
        self.assertGreaterEqual(named, 0.95 * total, "%s: %d of %d frames named:\n%s" % (
            what, named, total, h.describe(p.samples)))

    def assert_addresses(self, p, path, what):
        named, total = own_frames(p, path)
        self.assertGreater(total, 0, "no frames of %s in the profile" % what)
        self.assertEqual(named, 0, "%s: %d of %d frames named without a debug file" % (what, named, total))

    def test_1_fetched_then_named(self):
        d = self.daemon("fetch", self.url, self.cache)
        t0 = time.time()
        ws = self.workloads()
        try:
            wait_for("A fetched", lambda: self.fetches(d, "ok") >= 1)
            wait_for("B not found", lambda: self.fetches(d, "not_found") >= 1)
            p = self.profile(d, "debuginfod-fetched.pb.gz")
            self.assert_named(p, self.a, "A (debug file on the server)")
            self.assert_addresses(p, self.b, "B (no debug file anywhere)")
            # The first frames of A asked for the fetch: in the history they stay addresses, and the
            # windows drained after it are named.
            def history_of_a():
                q = urllib.parse.urlencode([("start", "%.3f" % t0), ("end", "%.3f" % time.time())])
                named, total = own_frames(h.decode_profile(d.profile(0, query=q)), self.a)
                return (named, total) if named else None
            named, total = wait_for("named frames of A in the history", history_of_a)
            h.note("history since A started: %d of %d frames of A named" % (named, total))
            self.assertLess(named, total, "frames symbolized before the fetch stay addresses")
            m = self.metrics(d)
            self.assertEqual(h.metric(m, "anorak_debuginfod_fetches_total", '{result="error"}'), 0)
            self.assertGreater(h.metric(m, "anorak_debuginfod_fetched_bytes_total"), 0)
            self.assertGreaterEqual(h.metric(m, "anorak_debuginfod_cache_files"), 1)
        finally:
            for w in ws:
                w.kill()
            d.stop()
        self.assertTrue(os.path.exists(os.path.join(self.cache, self.bid_a + ".debug")))
        self.assertFalse(os.path.exists(os.path.join(self.cache, self.bid_b + ".debug")))

    def test_2_restart_names_from_cache(self):
        self.server.terminate()
        self.server.wait(timeout=30)
        h.require(os.path.exists(os.path.join(self.cache, self.bid_a + ".debug")), "test_1's cache")
        d = self.daemon("cached", self.url, self.cache)
        ws = self.workloads()
        try:
            wait_for("B's fetch to fail", lambda: self.fetches(d, "error") >= 1)
            p = self.profile(d, "debuginfod-cached.pb.gz")
            self.assert_named(p, self.a, "A (from the cache, server down)")
            self.assert_addresses(p, self.b, "B (server down)")
            m = self.metrics(d)
            self.assertGreaterEqual(h.metric(m, "anorak_debuginfod_cache_lookups_total", '{result="hit"}'), 1)
            self.assertEqual(h.metric(m, "anorak_debuginfod_fetches_total", '{result="ok"}'), 0)
        finally:
            for w in ws:
                w.kill()
            d.stop()

    def test_3_bad_answers_and_timeout(self):
        with open(self.debug_b, "rb") as f:
            wrong_elf = f.read()
        # A: a real debug file, of another binary. B: 2 MiB of junk, over --symbols.max-elf-size.
        # C and D: no answer at all. Other build ids (the node's processes): 404.
        srv = BadServer({self.bid_a: wrong_elf, self.bid_b: b"\x7fELF junk " * (200 << 10)},
                        hang={self.bid_c, self.bid_d})
        cache = os.path.join(self.tmp, "cache-bad")
        d = self.daemon("bad", srv.url, cache, "--symbols.debuginfod-timeout=10s", "--symbols.max-elf-size=1MiB")
        ws = self.workloads(self.a, self.b, self.c)
        try:
            wait_for("A and B refused", lambda: self.fetches(d, "error") >= 2)
            # C's fetch is (or is about to be) waiting on the server: profiles are served meanwhile.
            p = self.profile(d, "debuginfod-bad.pb.gz")
            for path, what in ((self.a, "A (another binary's debug file)"), (self.b, "B (too large)"),
                               (self.c, "C (no answer)")):
                self.assert_addresses(p, path, what)
            wait_for("C's fetch to time out", lambda: self.fetches(d, "timeout") >= 1)
            p = self.profile(d, "debuginfod-timeout.pb.gz")
            self.assert_addresses(p, self.c, "C (timed out)")
            m = self.metrics(d)
            self.assertEqual(h.metric(m, "anorak_debuginfod_fetches_total", '{result="error"}'), 2,
                             "one failure for each bad answer")
            self.assertEqual(h.metric(m, "anorak_debuginfod_fetches_total", '{result="ok"}'), 0)
            self.assertEqual(h.metric(m, "anorak_debuginfod_cache_files"), 0)
            self.assertEqual(os.listdir(cache), [".client"])
            # A stop cuts a fetch in flight short: d.stop() checks the exit status and time.
            ws.append(h.Workload([self.d, "-m", "qsort", "-d", str(RUN_SECONDS)]))
            wait_for("D's fetch in flight", lambda: h.metric(
                self.metrics(d), "anorak_debuginfod_fetches_in_flight") >= 1)
            d.stop()
        finally:
            for w in ws:
                w.kill()
            d.stop()
            srv.stop()
        # Privacy: a request names a build id and nothing else of the node.
        for path, headers in srv.requests:
            self.assertRegex(path, r"^/buildid/[0-9a-f]+/debuginfo$")
        h.note("request headers: %s" % sorted({k for _, hs in srv.requests for k in hs}))

if __name__ == "__main__":
    h.main(total_timeout=300)
