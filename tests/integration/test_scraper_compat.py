#!/usr/bin/env python3
"""Replays what Parca and Grafana Alloy do to a target, against anorak running the shipped config.

anorak runs with --config.file=integrations/prometheus/pod-labels.yml (the DaemonSet's config). While
a workload burns CPU, two scrapes run at once, as the shipped configs make them:
- Parca (scrape_interval 3 s here): GET /debug/pprof/profile?seconds=3 with Go's default
  Accept-Encoding: gzip, within Parca's timeout (interval + 3 s);
- Alloy: GET /debug/pprof/profile?seconds=2 (interval - 1) with no Accept-Encoding, within its
  timeout (the interval).
Each answer must be what both accept: 200, Content-Type application/octet-stream, no Content-Encoding
(the body itself is gzip'd pprof, as Go's net/http/pprof sends it), no HTML or JSON, a valid profile
(pprofcheck) with mapping/location/function ids 1..N, UTF-8 strings, sample type names without "-",
at most 30 label names per Pyroscope series and valid label names. The samples carry the shipped
config's job. Also: the probe paths answer 200, and /metrics has every anorak_* metric the health
dashboard queries.
"""
import glob
import http.client
import os
import re
import threading
import time
import unittest

import harness as h

CONFIG = os.path.join(h.SOURCE_DIR, "integrations", "prometheus", "pod-labels.yml")
PARCA_INTERVAL = 3
ALLOY_INTERVAL = 3
# Labels pyroscope.scrape adds to every series (integrations/alloy/config.alloy adds node).
ALLOY_SERIES_LABELS = {"__name__", "job", "instance", "service_name", "node"}
# Pyroscope: per series at most 30 label names; trace_id and span_id do not make series.
MAX_SERIES_LABELS = 30
# Written only with Kubernetes discovery (raised rates are per pod).
KUBERNETES_ONLY = ("anorak_kubernetes_", "anorak_high_frequency_", "anorak_cgroup_scan")


def scrape(port, seconds, accept_encoding, timeout):
    """GET the profile like the scraper: Accept-Encoding as given (None: no header at all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.putrequest("GET", "/debug/pprof/profile?seconds=%d" % seconds, skip_accept_encoding=True)
        if accept_encoding:
            conn.putheader("Accept-Encoding", accept_encoding)
        conn.putheader("User-Agent", "anorak-test-scraper")
        conn.endheaders()
        r = conn.getresponse()
        return h.Response(r.status, r.getheaders(), r.read(), time.monotonic() - t0)
    finally:
        conn.close()


class ScraperCompat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        h.require(os.path.isfile(CONFIG), "shipped config missing: " + CONFIG)
        cls.d = h.Daemon("--config.file=" + CONFIG, "--sampling.frequency=49", name="compat").start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_probes(self):
        for path in ("/-/healthy", "/-/ready"):
            self.assertEqual(200, self.d.get(path).status, path)

    def test_parca_and_alloy_scrapes(self):
        w = h.Workload([h.workload("weights"), "-t", "1", "-d", str(max(PARCA_INTERVAL, ALLOY_INTERVAL) + 4)])
        out = {}
        scrapers = {
            "parca": (PARCA_INTERVAL, "gzip", PARCA_INTERVAL + 3),
            "alloy": (ALLOY_INTERVAL - 1, None, ALLOY_INTERVAL),
        }

        def run(name, seconds, enc, timeout):
            try:
                out[name] = scrape(self.d.port, seconds, enc, timeout * h.TIME_SCALE)
            except OSError as e:  # a timeout is what the scraper would report
                out[name] = e
        threads = [threading.Thread(target=run, args=(n,) + a) for n, a in scrapers.items()]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60 * h.TIME_SCALE)
        finally:
            w.kill()
        for name, (seconds, _, _) in scrapers.items():
            with self.subTest(name):
                r = out.get(name)
                self.assertIsInstance(r, h.Response, "%s scrape failed: %r" % (name, r))
                self.check_answer(name, r, seconds)

    def check_answer(self, name, r, seconds):
        self.assertEqual(200, r.status, r.body[:200])
        self.assertTrue((r.header("Content-Type") or "").startswith("application/octet-stream"),
                        "Content-Type %r" % r.header("Content-Type"))
        self.assertIsNone(r.header("Content-Encoding"), "the body itself must be the gzip'd profile")
        head = r.body.lstrip()[:16].lower()
        self.assertFalse(head.startswith((b"<", b"{", b"[")), "looks like HTML or JSON: %r" % head)
        raw = h.save_profile(r.body, "compat-%s.pb.gz" % name)
        p = h.check_profile(self, r.body, "%s profile (%s)" % (name, raw))
        self.assertLess(abs(p.duration_nanos - seconds * 1e9), 0.5e9, "duration_nanos %d" % p.duration_nanos)
        # UTF-8: the decoder would have raised; make it explicit for every string.
        for s in p.strings:
            s.encode("utf-8")
        for typ, unit in p.sample_types + [p.period_type]:
            self.assertNotIn("-", typ, "sample type name %r" % typ)
        self.assertTrue(p.samples, "no samples while a workload ran")
        jobs = set()
        for smp in p.samples:
            names = set(smp.labels) - {"trace_id", "span_id"}
            for n in set(smp.labels) | set(smp.numlabels):
                self.assertRegex(n, r"^[a-zA-Z_][a-zA-Z0-9_.]*$", "label name")
            for v in smp.labels.values():
                self.assertLessEqual(len(v.encode()), 2048)
            self.assertLessEqual(len(names | ALLOY_SERIES_LABELS), MAX_SERIES_LABELS, sorted(names))
            jobs.add(smp.labels.get("job"))
        self.assertEqual({"kubernetes-pods"}, jobs, "samples must carry the shipped config's job")

    def test_health_dashboard_metrics_exist(self):
        r = self.d.get("/metrics")
        self.assertEqual(200, r.status)
        written = set(re.findall(r"^# TYPE (\S+) ", r.text(), re.M))
        used = set()
        for f in glob.glob(os.path.join(h.SOURCE_DIR, "grafana", "dashboards", "*.json")):
            with open(f) as fh:
                used.update(re.findall(r"\b(anorak_[a-z0-9_]+)", fh.read()))
        used = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
        missing = sorted(n for n in used - written if not n.startswith(KUBERNETES_ONLY))
        self.assertTrue(used)
        self.assertEqual([], missing, "the health dashboard queries metrics /metrics does not have")


if __name__ == "__main__":
    h.main(total_timeout=120)
