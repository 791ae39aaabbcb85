#!/usr/bin/env python3
"""Load: 50 scrapers each asking for /debug/pprof/profile?seconds=5 again and again, and wrk hammering
/metrics, for 60 s while a workload is profiled, against the daemon with its default HTTP limits.
No request may fail (no error status, no socket error or timeout on either side), every profile must
decode and pass pprofcheck, and the daemon's peak RSS (VmHWM) must stay under RSS_BOUND_MIB.

The full run is 60 s (ANORAK_LOAD_SECONDS overrides). The sanitizer build runs 20 s by default: it is
there for memory errors, and AddressSanitizer's quarantine makes its RSS meaningless, so its bound is
ASAN_RSS_BOUND_MIB instead.

RSS bound: the history ring (--storage.max-bytes, 64 MiB, of which a minute fills a few) plus the
symbol cache (--symbols.cache-size, 16 MiB) plus 50 profiles encoded at once (well under 1 MiB each
here) plus 128 worker threads' buffers: 160 MiB leaves room without hiding a leak of the per-request
kind (50 x 12 rounds of a profile's size would exceed it).
"""
import concurrent.futures
import os
import re
import subprocess
import threading
import time
import unittest

import harness as h

HZ = 99
SCRAPERS = 50
WINDOW = 5
SECONDS = int(os.environ.get("ANORAK_LOAD_SECONDS", "20" if h.SANITIZED else "60"))
WRK_CONNECTIONS = 8
RSS_BOUND_MIB = 160
ASAN_RSS_BOUND_MIB = 1024


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"%s:\s+(\d+)" % field, f.read()).group(1))


class Scraper(threading.Thread):
    """Asks for one profile after another until the deadline; keeps bodies and failures."""

    def __init__(self, port, deadline):
        super().__init__(daemon=True)
        self.port, self.deadline = port, deadline
        self.bodies, self.failures = [], []

    def run(self):
        while time.monotonic() < self.deadline:
            try:
                r = h.http_get(self.port, "/debug/pprof/profile?seconds=%d" % WINDOW,
                               timeout=(WINDOW + 60) * h.TIME_SCALE)
            except OSError as e:
                self.failures.append(repr(e))
                continue
            if r.status != 200:
                self.failures.append("status %d: %s" % (r.status, r.text()[:200]))
            else:
                self.bodies.append(r.body)


def parse_wrk(out):
    """(requests, non-2xx/3xx responses, socket errors) from wrk's report."""
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return requests, bad, errors


class Load(unittest.TestCase):
    def validate(self, raw):
        """The strict checker and the decoder: returns a problem or None."""
        ok, out = h.pprofcheck(raw)
        if not ok:
            return "pprofcheck: " + out[-500:]
        p = h.decode_profile(raw)
        if p.problems:
            return "decoder: %s" % p.problems[:5]
        if p.sample_types != [("samples", "count"), ("cpu", "nanoseconds")] or p.duration_nanos <= 0:
            return "bad shape: %s duration %d" % (p.sample_types, p.duration_nanos)
        return None

    def test_scrapes_and_metrics_under_load(self):
        h.require_daemon()
        wrk = h.require_tool("wrk")
        with h.Daemon("--sampling.frequency=%d" % HZ, name="load") as d:
            busy = h.Workload([h.workload("weights"), "-t", "2", "-d", str(SECONDS + 30)])
            try:
                rss0 = status_kib(d.proc.pid, "VmRSS")
                deadline = time.monotonic() + SECONDS
                scrapers = [Scraper(d.port, deadline) for _ in range(SCRAPERS)]
                for s in scrapers:
                    s.start()
                # wrk's own timeout is the daemon's read timeout: a slow /metrics is fine, a lost one is not.
                w = subprocess.run([wrk, "-t", "2", "-c", str(WRK_CONNECTIONS), "-d", "%ds" % SECONDS,
                                    "--timeout", "30s", "http://%s/metrics" % d.address],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                   timeout=SECONDS + 120)
                for s in scrapers:
                    s.join((WINDOW + 90) * h.TIME_SCALE)
                    self.assertFalse(s.is_alive(), "a scraper is stuck")
                hwm = status_kib(d.proc.pid, "VmHWM")
                rss1 = status_kib(d.proc.pid, "VmRSS")
                metrics = d.get("/metrics").text()
            finally:
                busy.kill()

            requests, bad, errors = parse_wrk(w.stdout)
            bodies = [b for s in scrapers for b in s.bodies]
            failures = [f for s in scrapers for f in s.failures]
            h.note("%d s: %d profiles, %d failed; wrk: %d /metrics requests, %d non-2xx, %d socket errors; "
                   "RSS %d KiB before, %d KiB after, peak %d KiB"
                   % (SECONDS, len(bodies), len(failures), requests, bad, errors, rss0, rss1, hwm))
            self.assertEqual(w.returncode, 0, w.stdout)
            self.assertEqual(failures, [], "profile requests failed")
            self.assertGreater(requests, 0, w.stdout)
            self.assertEqual((bad, errors), (0, 0), "wrk saw failed /metrics requests:\n" + w.stdout)
            # Every scraper got its profiles: about SECONDS / WINDOW each.
            for s in scrapers:
                self.assertGreaterEqual(len(s.bodies), 1)
            self.assertRegex(metrics, r'(?m)^anorak_http_requests_total\{handler="/debug/pprof/profile",code="200"\} %d$'
                             % len(bodies))
            self.assertNotRegex(metrics, r'(?m)^anorak_http_requests_total\{handler="(/metrics|/debug/pprof/profile)",'
                                         r'code="[45]\d\d"\} [1-9]')
            # 58 connections from 127.0.0.1 stay under --web.max-connections-per-client (64): a scraper's
            # closed connection that civetweb has not closed yet does not count against its next one.
            self.assertRegex(metrics, r'(?m)^anorak_http_connections_refused_total\{reason="per_client"\} 0$')
            self.assertRegex(metrics, r'(?m)^anorak_http_connections_refused_total\{reason="waiting_full"\} 0$')

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                problems = [p for p in pool.map(self.validate, bodies) if p]
            self.assertEqual(problems, [], "%d of %d profiles are invalid" % (len(problems), len(bodies)))
            bound = (ASAN_RSS_BOUND_MIB if h.SANITIZED else RSS_BOUND_MIB) * 1024
            self.assertLess(hwm, bound, "peak RSS %d KiB is above the bound of %d KiB" % (hwm, bound))


if __name__ == "__main__":
    h.main(total_timeout=SECONDS + 240)
