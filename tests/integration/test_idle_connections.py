#!/usr/bin/env python3
"""Idle and slow-header connections do not take the HTTP server (issue 14, part 1), loopback only.

- 1000 idle connections (connected, sending nothing) from 1000 loopback addresses and 50 slow-header
  connections (a byte a second) from 50 more are held open for 30 s while /metrics is fetched (2 s
  client timeout) and 2 s profiles are taken (5 s client timeout) again and again, against the daemon
  with its default HTTP limits. The latencies and the daemon's peak RSS are printed; once the
  connections close, the daemon's waiting room is empty and its thread count is back to where it was.
- One client address gets at most --web.max-connections-per-client connections; the rest are reset
  and counted, and other addresses are still served.
- A connection whose header does not arrive within --web.read-timeout is closed and counted.
"""
import re
import resource
import socket
import threading
import time
import unittest

import harness as h

IDLE = 1000
SLOW = 50
HOLD_SECONDS = 30
METRICS_TIMEOUT = 2.0
PROFILE_SECONDS = 2
PROFILE_TIMEOUT = 5.0


def status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"%s:\s+(\d+)" % field, f.read()).group(1))


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    h.require(hard >= wanted, "this test opens %d sockets; the hard open-file limit is %d" % (wanted, hard))
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect(port, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def wait_metric(tc, d, name, labels, pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout * h.TIME_SCALE
    while True:
        v = h.metric(d.get("/metrics").text(), name, labels)
        if v is not None and pred(v):
            return v
        tc.assertLess(time.monotonic(), deadline, "%s: %s%s is %s" % (what, name, labels, v))
        time.sleep(0.2)


class SlowHeaders(threading.Thread):
    """Sends one more header byte a second on every socket, never ending the header."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks, self.stop = socks, threading.Event()

    def run(self):
        data = b"GET /metrics HTTP/1.1\r\nX-Slow: "
        while not self.stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(data)
                except OSError:
                    pass  # dropped at the read timeout: it may be, near the end
            data = b"a"


class Profiles(threading.Thread):
    """?seconds=2 profiles one after another until stopped; keeps latencies and failures."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop = d, threading.Event()
        self.latencies, self.failures = [], []

    def run(self):
        while not self.stop.is_set():
            try:
                r = self.d.get("/debug/pprof/profile?seconds=%d" % PROFILE_SECONDS,
                               timeout=PROFILE_TIMEOUT * h.TIME_SCALE)
                if r.status != 200:
                    self.failures.append("status %d: %s" % (r.status, r.text()[:200]))
                self.latencies.append(r.elapsed)
            except OSError as e:
                self.failures.append(repr(e))


class IdleConnections(unittest.TestCase):
    def test_idle_and_slow_connections_leave_scrapes_served(self):
        h.require_root_bpf()
        h.require_daemon()
        raise_nofile(IDLE + SLOW + 200)
        with h.Daemon(name="idle") as d:
            d.get("/metrics")
            threads_before = status(d.proc.pid, "Threads")
            rss_before = status(d.proc.pid, "VmRSS")
            idle = [connect(d.port, "127.1.%d.%d" % (i // 250, i % 250 + 1)) for i in range(IDLE)]
            slow = [connect(d.port, "127.2.0.%d" % (i + 1)) for i in range(SLOW)]
            sender, profiles = SlowHeaders(slow), Profiles(d)
            try:
                sender.start()
                wait_metric(self, d, "anorak_http_connections", '{state="waiting"}',
                            lambda v: v >= IDLE + SLOW, "the connections never all waited")
                profiles.start()
                latencies, rss_open = [], 0
                end = time.monotonic() + HOLD_SECONDS
                while time.monotonic() < end:
                    r = d.get("/metrics", timeout=METRICS_TIMEOUT * h.TIME_SCALE)
                    self.assertEqual(r.status, 200)
                    latencies.append(r.elapsed)
                    rss_open = max(rss_open, status(d.proc.pid, "VmRSS"))
                    time.sleep(0.5)
                profiles.stop.set()
                profiles.join((PROFILE_TIMEOUT + 5) * h.TIME_SCALE)
            finally:
                sender.stop.set()
                for s in idle + slow:
                    s.close()
            print("  /metrics: %d answers, slowest %.3f s, median %.3f s" % (
                len(latencies), max(latencies), sorted(latencies)[len(latencies) // 2]))
            if profiles.latencies:
                print("  profiles ?seconds=%d: %d answers, slowest %.3f s" % (
                    PROFILE_SECONDS, len(profiles.latencies), max(profiles.latencies)))
            self.assertEqual(profiles.failures, [], "profiles failed under idle connections")
            self.assertGreaterEqual(len(profiles.latencies), 3, "too few profiles in %d s" % HOLD_SECONDS)

            wait_metric(self, d, "anorak_http_connections", '{state="waiting"}', lambda v: v == 0,
                        "the closed connections stayed in the waiting room")
            threads_after = status(d.proc.pid, "Threads")
            rss_after = status(d.proc.pid, "VmRSS")
            print("  RSS: %d KiB before, %d KiB at most while open, %d KiB after; peak (VmHWM) %d KiB; "
                  "threads %d before, %d after" % (rss_before, rss_open, rss_after,
                                                  status(d.proc.pid, "VmHWM"), threads_before, threads_after))
            self.assertEqual(threads_after, threads_before, "the connections left threads behind")
            self.assertEqual(h.metric(d.get("/metrics").text(), "anorak_http_connections_refused_total",
                                      '{reason="waiting_full"}'), 0)

    def test_one_client_address_is_capped(self):
        h.require_daemon()
        cap, extra = 8, 12
        with h.Daemon("--web.max-connections-per-client=%d" % cap, name="per-client") as d:
            socks = []
            reset_early = 0  # the guard can reset one before connect() has returned on a loaded machine
            try:
                for _ in range(cap + extra):
                    try:
                        socks.append(connect(d.port, "127.0.0.2"))
                    except ConnectionResetError:
                        reset_early += 1
                refused = wait_metric(self, d, "anorak_http_connections_refused_total",
                                      '{reason="per_client"}', lambda v: v >= extra,
                                      "connections past the cap were not refused")
                self.assertEqual(refused, extra)
                text = d.get("/metrics").text()
                self.assertEqual(h.metric(text, "anorak_http_connections", '{state="waiting"}'), cap)
                # The refused ones were reset: reading them ends at once.
                reset = reset_early
                for s in socks:
                    s.settimeout(0.5)
                    try:
                        reset += s.recv(1) == b""
                    except ConnectionResetError:
                        reset += 1
                    except socket.timeout:
                        pass
                self.assertEqual(reset, extra)
            finally:
                for s in socks:
                    s.close()

    def test_header_timeout_closes_and_counts(self):
        h.require_daemon()
        with h.Daemon("--web.read-timeout=2s", name="header-timeout") as d:
            s = connect(d.port, "127.0.0.3")
            try:
                s.sendall(b"GET /metrics HTTP/1.1\r\n")
                s.settimeout(15 * h.TIME_SCALE)
                try:
                    self.assertEqual(s.recv(1), b"", "a half-sent request was answered")
                except ConnectionResetError:
                    pass
            finally:
                s.close()
            self.assertEqual(h.metric(d.get("/metrics").text(), "anorak_http_header_timeouts_total"), 1)


if __name__ == "__main__":
    h.main(total_timeout=150)
