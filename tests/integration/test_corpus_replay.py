#!/usr/bin/env python3
"""The fuzz corpora of the network-facing parsers, replayed as real HTTP requests against a running
daemon under load: every input of tests/fuzz/{corpus,grown}/query_api/ as a Connect call (the first
byte picks the method as fuzz_query_api does, its top bit means a gzip'd body) and every input of
.../http_query/ as the query string of /debug/pprof/profile, pass after pass, while wrk scrapes
/metrics and a workload is profiled. Each answer must be one the API documents (a Connect error is
JSON), and afterwards the daemon must still serve and exit cleanly: in the sanitizer build a memory
error ends the daemon with AddressSanitizer's exit code, which fails the test.

The run lasts ANORAK_REPLAY_SECONDS (default 15; 60 for a soak), bounded by a count of passes.
--storage.retention=2s bounds ?seconds= to 2, so no replayed query holds a worker for long.
"""
import concurrent.futures
import gzip
import http.client
import json
import os
import subprocess
import time
import unittest
import urllib.parse

import harness as h

SECONDS = int(os.environ.get("ANORAK_REPLAY_SECONDS", "15"))
MAX_PASSES = 50
THREADS = 8
WRK_CONNECTIONS = 4
METHODS = ["ProfileTypes", "LabelNames", "LabelValues", "SelectMergeStacktraces", "SelectSeries",
           "SelectMergeSpanProfile", "GetProfileStats", "SelectHeatmap"]
QUERY_API_STATUSES = {200, 400, 413, 429, 500, 501}
PROFILE_STATUSES = {200, 400, 404, 429}  # 404: a past range the history does not hold


def inputs(name):
    """The committed inputs of one fuzz target, hand-made seeds and grown corpus."""
    found = []
    for kind in ("corpus", "grown"):
        d = os.path.join(h.SOURCE_DIR, "tests", "fuzz", kind, name)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                with open(os.path.join(d, f), "rb") as fh:
                    found.append((f, fh.read()))
    return found


def query_string(raw):
    """The fuzz input's query bytes as a request target can carry them: bytes that cannot stand in a
    request line are percent-encoded, everything else (a '%' escape included) goes as it is."""
    return urllib.parse.quote(raw, safe="!$&'()*+,;=:@/?%-._~")


class Replay(unittest.TestCase):
    def call(self, port, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30 * h.TIME_SCALE)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or "", r.read()
        finally:
            conn.close()

    def query_api(self, port, raw):
        if not raw:
            return None
        method = METHODS[(raw[0] & 0x7F) % len(METHODS)]
        headers = {"Content-Type": "application/proto"}
        if raw[0] & 0x80:
            headers["Content-Encoding"] = "gzip"
        status, ctype, body = self.call(port, "POST", "/querier.v1.QuerierService/" + method, raw[1:], headers)
        if status not in QUERY_API_STATUSES:
            return "%s: status %d" % (method, status)
        if status == 200:
            return None if ctype == "application/proto" else "%s: 200 as %s" % (method, ctype)
        if ctype == "application/json":
            err = json.loads(body)
            if not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
                return "%s: %d with a malformed Connect error %r" % (method, status, body[:200])
        return None

    def profile_query(self, port, raw):
        status, _, body = self.call(port, "GET", "/debug/pprof/profile?" + query_string(raw[2:]))
        if status not in PROFILE_STATUSES:
            return "profile ?%r: status %d" % (raw[2:80], status)
        if status == 200:
            gzip.decompress(body)
        return None

    def test_corpora_as_requests(self):
        h.require_daemon()
        wrk = h.require_tool("wrk")
        api, queries = inputs("query_api"), inputs("http_query")
        h.require(len(api) >= 10 and len(queries) >= 5,
                  "the committed fuzz corpora of query_api and http_query (tests/fuzz/corpus, tests/fuzz/grown)")
        with h.Daemon("--sampling.frequency=99", "--storage.retention=2s", name="replay") as d:
            busy = h.Workload([h.workload("weights"), "-t", "1", "-d", str(SECONDS + 60)])
            try:
                load = subprocess.Popen([wrk, "-t", "1", "-c", str(WRK_CONNECTIONS), "-d", "%ds" % SECONDS,
                                         "--timeout", "30s", "http://%s/metrics" % d.address],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
                deadline = time.monotonic() + SECONDS
                jobs = [(self.query_api, raw) for _, raw in api] + [(self.profile_query, raw) for _, raw in queries]
                problems, sent, passes = [], 0, 0
                with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
                    while time.monotonic() < deadline and passes < MAX_PASSES:
                        for p in pool.map(lambda job: job[0](d.port, job[1]), jobs):
                            sent += 1
                            if p:
                                problems.append(p)
                        passes += 1
                out, _ = load.communicate(timeout=SECONDS + 120)
                self.assertEqual(d.get("/-/healthy").status, 200)
                self.assertEqual(d.get("/metrics").status, 200)
            finally:
                busy.kill()
            h.note("%d passes of %d query API and %d profile-query inputs: %d requests, %d problems; wrk: %s"
                   % (passes, len(api), len(queries), sent, len(problems),
                      " ".join(l.strip() for l in out.splitlines() if "requests in" in l)))
            self.assertEqual(problems[:20], [])
            self.assertEqual(load.returncode, 0, out)


if __name__ == "__main__":
    h.main(total_timeout=SECONDS + 300)
