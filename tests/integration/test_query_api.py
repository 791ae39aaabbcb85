#!/usr/bin/env python3
"""Pyroscope's query API (Connect, protobuf over HTTP POST) against the same history as
/debug/pprof/profile?start=&end=. The client here writes and reads protobuf by hand from Pyroscope's
field numbers and shares nothing with the server's encoders: it decodes the flame graph levels back into
stacks and checks the totals per function against the pprof of the same range, SelectSeries totals
against pprof totals, and label names and values against the pprof's target labels."""
import gzip
import http.client
import json
import struct
import os
import re
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness as h

HZ = 99
RUN = 5
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SAMPLES = "process_cpu:samples:count:cpu:nanoseconds"
SERVICE = "/querier.v1.QuerierService/"
# Only this test's workloads are targets (by executable: others may run the same programs from other
# builds; everything else is dropped, so never sampled), with one label more than the default rules give.
CONFIG = """job_name: query-api
relabel_configs:
  - source_labels: [__meta_process_executable]
    regex: '%s/(weights|tracectx_exe)'
    action: keep
  - source_labels: [__meta_process_comm]
    target_label: comm
  - source_labels: [__meta_process_executable]
    target_label: executable
"""
# pprof labels that are not target labels.
SAMPLE_LABELS = ("pid", "tid", "trace_id", "span_id")

# --- protobuf by hand -------------------------------------------------------------------------------


def varint(v):
    v &= (1 << 64) - 1  # negative int64: two's complement, ten bytes
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_int(field, v):
    return varint(field << 3) + varint(v) if v else b""


def f_str(field, s):
    b = s.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def f_double(field, d):
    return varint(field << 3 | 1) + struct.pack("<d", d)


def as_double(v):
    return struct.unpack("<d", v.to_bytes(8, "little"))[0]


def as_str(b):
    return b.decode("utf-8")


LEVEL = {1: ("values", "s64", True)}
FLAMEGRAPH = {1: ("names", as_str, True), 2: ("levels", lambda b: h._msg(b, LEVEL), True),
              3: ("total", "s64", False), 4: ("max_self", "s64", False)}
MERGE_RESPONSE = {1: ("flamegraph", lambda b: h._msg(b, FLAMEGRAPH), False), 2: ("tree", "bytes", False)}
LABEL_PAIR = {1: ("name", as_str, False), 2: ("value", as_str, False)}
POINT = {1: ("value", as_double, False), 2: ("timestamp", "s64", False)}
SERIES = {1: ("labels", lambda b: h._msg(b, LABEL_PAIR), True), 2: ("points", lambda b: h._msg(b, POINT), True)}
SERIES_RESPONSE = {1: ("series", lambda b: h._msg(b, SERIES), True)}
NAMES_RESPONSE = {1: ("names", as_str, True)}
PROFILE_TYPE = {1: ("ID", as_str, False), 2: ("name", as_str, False), 4: ("sample_type", as_str, False),
                5: ("sample_unit", as_str, False), 6: ("period_type", as_str, False), 7: ("period_unit", as_str, False)}
TYPES_RESPONSE = {1: ("profile_types", lambda b: h._msg(b, PROFILE_TYPE), True)}


def flame_stacks(fg):
    """{root-first tuple of names: self} from Pyroscope's levels (x delta-encoded within a level)."""
    levels = []
    for lv in fg["levels"]:
        vals, prev, nodes = lv["values"], 0, []
        assert len(vals) % 4 == 0
        for i in range(0, len(vals), 4):
            x = prev + vals[i]
            total, self_, name = vals[i + 1], vals[i + 2], vals[i + 3]
            nodes.append((x, total, self_, fg["names"][name]))
            prev = x + total
        levels.append(nodes)
    assert levels and levels[0][0][3] == "total", "level 0 is not the total node"
    paths = [[((), levels[0][0])]]
    stacks = {}
    for depth in range(1, len(levels)):
        row = []
        for node in levels[depth]:
            x = node[0]
            parent = [p for p in paths[depth - 1] if p[1][0] <= x and x + node[1] <= p[1][0] + p[1][1]]
            assert len(parent) == 1, "node %r at level %d has %d parents" % (node, depth, len(parent))
            path = parent[0][0] + (node[3],)
            row.append((path, node))
            if node[2]:
                stacks[path] = stacks.get(path, 0) + node[2]
        paths.append(row)
    return stacks


def tree_stacks(data):
    """{root-first tuple of names: self} from Pyroscope's tree bytes: depth first from a nameless root,
    each node as varint name length, name, varint self, varint number of children."""
    def uvarint(i):
        v = shift = 0
        while True:
            b = data[i]
            v |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                return v, i
            shift += 7
    stacks, parents, i, first = {}, [()], 0, True
    while parents:
        path = parents.pop()
        n, i = uvarint(i)
        name = data[i:i + n].decode()
        i += n
        self_, i = uvarint(i)
        children, i = uvarint(i)
        if first:
            assert (name, self_) == ("", 0), "the root is not nameless"
            first = False
        else:
            path = path + (name,)
        if self_:
            stacks[path] = stacks.get(path, 0) + self_
        parents.extend([path] * children)
    assert i == len(data), "%d bytes after the tree" % (len(data) - i)
    return stacks


def per_function(stacks):
    """(self per leaf function, inclusive per function counted once per stack)."""
    self_, incl = {}, {}
    for path, v in stacks.items():
        self_[path[-1]] = self_.get(path[-1], 0) + v
        for name in set(path):
            incl[name] = incl.get(name, 0) + v
    return self_, incl


def frame_name(f):
    return f.function or "0x%x" % f.address


def pprof_stacks(p, index, pred=None):
    stacks = {}
    for x in p.samples:
        if pred and not pred(x):
            continue
        path = tuple(frame_name(f) for f in reversed(x.frames))
        stacks[path] = stacks.get(path, 0) + x.values[index]
    return stacks


class QueryAPI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_daemon()
        weights, tracectx = h.workload("weights"), h.workload("tracectx_exe")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(CONFIG % re.escape(os.path.realpath(h.WORKLOAD_DIR)))
            cls.config = f.name
        cls.daemon = h.Daemon("--sampling.frequency=%d" % HZ, "--config.file=" + cls.config,
                              name="query-api").start()
        cls.start = time.time()
        w = h.Workload([weights, "-t", "2", "-d", str(RUN)])
        t = subprocess.Popen([tracectx, "-d", str(RUN)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             universal_newlines=True)
        cls.targets, running = set(), threading.Event()
        reader = threading.Thread(target=cls.read_targets, args=(running,))
        running.set()
        reader.start()
        try:
            first = t.stdout.readline()
            cls.span = first.split("span_id=")[1].strip()
            assert w.wait(timeout=30 * h.TIME_SCALE) == 0, "weights failed"
            t.communicate(timeout=30 * h.TIME_SCALE)
        finally:
            running.clear()
            reader.join()
            w.kill()
            t.kill()
            t.wait(5)
        cls.end = time.time() + 0.5
        # Past the window holding `end`: every window of the range is closed, so both APIs see the same.
        time.sleep(12)
        cls.start_ms, cls.end_ms = int(cls.start * 1000), int(cls.end * 1000)
        q = urllib.parse.urlencode([("start", "%.3f" % (cls.start_ms / 1000)), ("end", "%.3f" % (cls.end_ms / 1000))])
        raw = cls.daemon.profile(0, query=q)
        cls.pprof = h.decode_profile(raw)
        assert cls.pprof.samples, "the pprof of the range is empty"

    @classmethod
    def read_targets(cls, running):
        """Every active target's labels (as sorted tuples) seen while the workloads run."""
        while running.is_set():
            r = cls.daemon.get("/api/v1/targets")
            assert r.status == 200, "/api/v1/targets: %d" % r.status
            for target in json.loads(r.text())["data"]["activeTargets"]:
                cls.targets.add(tuple(sorted(target["labels"].items())))
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        os.unlink(cls.config)

    def call(self, method, body, content_type="application/proto", verb="POST", encoding=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30 * h.TIME_SCALE)
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        try:
            conn.request(verb, SERVICE + method, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            conn.close()

    def ok(self, method, body, spec):
        status, ctype, data = self.call(method, body)
        self.assertEqual(status, 200, "%s: %d %s" % (method, status, data[:300]))
        self.assertEqual(ctype, "application/proto")
        return h._msg(data, spec)

    def flame(self, type_id, selector="{}", max_nodes=-1, method="SelectMergeStacktraces", spans=(), tree=False):
        fmt = 2 if tree else 0  # PROFILE_FORMAT_TREE
        if method == "SelectMergeStacktraces":
            body = (f_str(1, type_id) + f_str(2, selector) + f_int(3, self.start_ms) + f_int(4, self.end_ms) +
                    f_int(5, max_nodes) + f_int(6, fmt))
        else:
            body = (f_str(1, type_id) + f_str(2, selector) + b"".join(f_str(3, s) for s in spans) +
                    f_int(4, self.start_ms) + f_int(5, self.end_ms) + f_int(6, max_nodes) + f_int(7, fmt))
        resp = self.ok(method, body, MERGE_RESPONSE)
        if tree:
            self.assertEqual(resp["flamegraph"], 0, "a flame graph next to the tree")
            return resp["tree"]
        self.assertEqual(resp["tree"], b"")
        return resp["flamegraph"]

    def test_profile_types(self):
        # As Pyroscope: the types with profiles in the range. This daemon records no off-CPU waits.
        types = self.ok("ProfileTypes", f_int(1, self.start_ms) + f_int(2, self.end_ms), TYPES_RESPONSE)["profile_types"]
        self.assertEqual({t["ID"] for t in types}, {CPU, SAMPLES})
        before = self.ok("ProfileTypes", f_int(1, 1000) + f_int(2, 2000), TYPES_RESPONSE)["profile_types"]
        self.assertEqual(before, [])
        for t in types:
            self.assertEqual(t["ID"], ":".join([t["name"], t["sample_type"], t["sample_unit"], t["period_type"],
                                                t["period_unit"]]))

    def test_profile_stats(self):
        spec = {1: ("data_ingested", "int", False), 2: ("oldest", "s64", False), 3: ("newest", "s64", False)}
        stats = self.ok("GetProfileStats", b"", spec)
        self.assertEqual(stats["data_ingested"], 1)
        self.assertLessEqual(stats["oldest"], self.start_ms)
        self.assertGreaterEqual(stats["newest"], self.end_ms)

    def test_flame_graph_matches_pprof(self):
        for type_id, index in ((CPU, 1), (SAMPLES, 0)):
            fg = self.flame(type_id)
            self.assertEqual(fg["names"][0], "total")
            self.assertEqual(fg["total"], self.pprof.total(index))
            got = flame_stacks(fg)
            want = pprof_stacks(self.pprof, index)
            self.assertEqual(per_function(got), per_function(want), type_id)
            self.assertEqual(got, want, type_id)
            self.assertEqual(fg["max_self"], max(got.values()))
            self.assertTrue({"hot_a", "hot_b", "hot_c", "burn_with_context"} <= set(fg["names"]))
            self.assertEqual(tree_stacks(self.flame(type_id, tree=True)), want, type_id)

    def test_tree_max_nodes_and_span(self):
        small = tree_stacks(self.flame(CPU, max_nodes=8, tree=True))
        self.assertEqual(sum(small.values()), self.pprof.total(1))
        self.assertTrue(any(path[-1] == "other" for path in small), small)
        self.assertLess(len(small), len(pprof_stacks(self.pprof, 1)))
        got = tree_stacks(self.flame(CPU, method="SelectMergeSpanProfile", spans=[self.span], tree=True))
        self.assertEqual(got, pprof_stacks(self.pprof, 1, lambda x: x.labels.get("span_id") == self.span))

    def test_flame_graph_max_nodes_and_selector(self):
        fg = self.flame(CPU, max_nodes=8)
        self.assertEqual(fg["total"], self.pprof.total(1))
        self.assertIn("other", fg["names"])
        nodes = sum(len(l["values"]) // 4 for l in fg["levels"])
        self.assertLess(nodes, sum(len(l["values"]) // 4 for l in self.flame(CPU)["levels"]))
        self.assertEqual(sum(flame_stacks(fg).values()), self.pprof.total(1))
        fg = self.flame(CPU, '{comm="weights"}')
        want = pprof_stacks(self.pprof, 1, lambda x: x.labels.get("comm") == "weights")
        self.assertTrue(want, "no sample with comm=weights: %s" % h.describe(self.pprof.samples))
        self.assertEqual(flame_stacks(fg), want)

    def test_span_profile(self):
        fg = self.flame(CPU, method="SelectMergeSpanProfile", spans=[self.span])
        want = pprof_stacks(self.pprof, 1, lambda x: x.labels.get("span_id") == self.span)
        self.assertTrue(want, "no sample with span_id %s" % self.span)
        got = flame_stacks(fg)
        self.assertEqual(got, want)
        names = {n for path in got for n in path}
        self.assertIn("burn_with_context", names)
        self.assertNotIn("burn_without_context", names)

    def series(self, group_by=(), step=1.0, aggregation=0, selector="{}"):
        body = (f_str(1, CPU) + f_str(2, selector) + f_int(3, self.start_ms) + f_int(4, self.end_ms) +
                b"".join(f_str(5, g) for g in group_by) + f_double(6, step) + f_int(7, aggregation))
        return self.ok("SelectSeries", body, SERIES_RESPONSE)["series"]

    def test_series_totals(self):
        series = self.series()
        self.assertEqual(len(series), 1)
        self.assertEqual(series[0]["labels"], [])
        points = series[0]["points"]
        self.assertEqual(round(sum(p["value"] for p in points)), self.pprof.total(1))
        ts = [p["timestamp"] for p in points]
        self.assertEqual(ts, sorted(ts))
        # A step finer than the 10 s windows: every point of the range has its window's share, so the
        # graph has no gaps (the workloads ran all along).
        npoints = (self.end_ms - self.start_ms + 999) // 1000 + 1
        self.assertEqual(ts, [self.start_ms + 1000 * k for k in range(npoints)])
        by_comm = {}
        for x in self.pprof.samples:
            by_comm[x.labels.get("comm")] = by_comm.get(x.labels.get("comm"), 0) + x.values[1]
        got = {}
        for s in self.series(group_by=["comm"], step=5):
            labels = {l["name"]: l["value"] for l in s["labels"]}
            got[labels.get("comm")] = round(sum(p["value"] for p in s["points"]))
        self.assertEqual(got, by_comm)
        avg = self.series(aggregation=1)
        self.assertTrue(avg and avg[0]["points"])

    def label_names(self, matchers=()):
        body = b"".join(f_str(1, m) for m in matchers) + f_int(2, self.start_ms) + f_int(3, self.end_ms)
        return self.ok("LabelNames", body, NAMES_RESPONSE)["names"]

    def label_values(self, name, matchers=()):
        body = f_str(1, name) + b"".join(f_str(2, m) for m in matchers) + f_int(3, self.start_ms) + f_int(4, self.end_ms)
        return self.ok("LabelValues", body, NAMES_RESPONSE)["names"]

    def test_label_names_and_values(self):
        # Targets with samples in the range: each sample's target labels are a whole target's.
        sampled = set()
        for x in self.pprof.samples:
            labels = tuple(sorted((k, v) for k, v in x.labels.items() if k not in SAMPLE_LABELS))
            self.assertIn(labels, self.targets, "a sample's labels are no target's in /api/v1/targets")
            sampled.add(labels)
        comms = {dict(t).get("comm") for t in sampled}
        self.assertEqual(comms, {"weights", "tracectx_exe"}, "targets with samples: %r" % sampled)
        names = {}
        for target in sampled:
            for k, v in target:
                names.setdefault(k, set()).add(v)
        self.assertIn("executable", names)
        # Every name and value returned is a target's, and every target with samples gives all of its.
        self.assertEqual(self.label_names(), sorted(names))
        for name in names:
            self.assertEqual(self.label_values(name), sorted(names[name]), name)
        self.assertEqual(self.label_values("no_such_label"), [])
        # Matchers narrow to the targets they select.
        self.assertEqual(self.label_values("comm", ['{comm=~"weigh.s"}']), ["weights"])
        exe = [dict(t)["executable"] for t in sampled if dict(t)["comm"] == "tracectx_exe"]
        self.assertEqual(self.label_values("executable", ['{comm="tracectx_exe"}']), exe)
        self.assertEqual(self.label_names(['{comm="tracectx_exe"}']), sorted(names))
        self.assertEqual(self.label_names(['{comm="nothing"}']), [])

    def test_gzip_requests(self):
        body = f_int(2, self.start_ms) + f_int(3, self.end_ms)
        status, ctype, data = self.call("LabelNames", gzip.compress(body), encoding="gzip")
        self.assertEqual((status, ctype), (200, "application/proto"), data[:300])
        self.assertEqual(h._msg(data, NAMES_RESPONSE)["names"], self.label_names())
        status, _, data = self.call("LabelNames", body, encoding="identity")
        self.assertEqual(status, 200, data[:300])
        status, ctype, data = self.call("LabelNames", gzip.compress(body)[:-3], encoding="gzip")
        self.assertEqual((status, ctype, json.loads(data)["code"]), (400, "application/json", "invalid_argument"))
        status, _, data = self.call("LabelNames", body, encoding="br")
        self.assertEqual((status, json.loads(data)["code"]), (501, "unimplemented"))
        # A small body that inflates past the 1 MiB bound.
        status, _, data = self.call("LabelNames", gzip.compress(bytes(8 << 20)), encoding="gzip")
        self.assertEqual(status, 413, data[:300])
        self.assertEqual(self.daemon.get("/-/healthy").status, 200)

    def test_errors(self):
        status, ctype, data = self.call("SelectHeatmap", b"")
        self.assertEqual(status, 501)
        self.assertEqual(ctype, "application/json")
        self.assertEqual(json.loads(data)["code"], "unimplemented")
        status, ctype, data = self.call("SelectMergeStacktraces", f_str(1, CPU) + f_str(2, "{a=b}"))
        self.assertEqual(status, 400)
        err = json.loads(data)
        self.assertEqual(err["code"], "invalid_argument")
        self.assertIn("parse error", err["message"])
        status, _, data = self.call("SelectMergeStacktraces", f_str(1, "memory:alloc_space:bytes:space:bytes"))
        self.assertEqual((status, json.loads(data)["code"]), (400, "invalid_argument"))
        series_past_2262 = (f_str(1, CPU) + f_str(2, "{}") + f_int(3, 1000) + f_int(4, (2**63 - 1) // 10**6 - 10) +
                            f_double(6, 1e9))
        status, _, data = self.call("SelectSeries", series_past_2262)
        self.assertEqual((status, json.loads(data)["code"]), (400, "invalid_argument"), data)
        self.assertIn("2262", json.loads(data)["message"])
        status, _, data = self.call("LabelNames", b"\xff\xff")
        self.assertEqual((status, json.loads(data)["code"]), (400, "invalid_argument"))
        status, _, _ = self.call("LabelNames", b"{}", content_type="application/json")
        self.assertEqual(status, 415)
        status, _, _ = self.call("LabelNames", None, verb="GET")
        self.assertEqual(status, 405)
        self.assertEqual(self.daemon.get("/-/healthy").status, 200)

    def test_error_quoting_control_characters(self):
        """A selector of 300 control characters, quoted in the error, once overflowed the reply's buffer
        and took the daemon down: it is a 400 with a whole Connect error, and the daemon keeps serving."""
        selector = "{" + "\x1c" * 300 + "}"
        for _ in range(3):
            status, ctype, data = self.call("SelectMergeSpanProfile", f_str(1, CPU) + f_str(2, selector))
            self.assertEqual((status, ctype), (400, "application/json"), data[:300])
            err = json.loads(data)
            self.assertEqual(err["code"], "invalid_argument")
            self.assertIn("\x1c" * 20, err["message"])
        self.assertEqual(self.daemon.get("/-/healthy").status, 200)
        self.assertEqual(self.daemon.get("/metrics").status, 200)
        self.ok("ProfileTypes", f_int(1, self.start_ms) + f_int(2, self.end_ms), TYPES_RESPONSE)


if __name__ == "__main__":
    h.main(total_timeout=240)
