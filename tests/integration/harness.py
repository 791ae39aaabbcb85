"""Shared helpers of the integration tests (python3 standard library only).

Environment (set by ctest): ANORAK_BIN (the daemon), ANORAK_BUILD_DIR (workloads in tests/workload/,
the checker in tests/tools/pprofcheck), ANORAK_SOURCE_DIR.

- Daemon: starts build/anorak on a free 127.0.0.1 port with the given flags, waits for /-/ready,
  fetches URLs with timeouts, stops it with SIGTERM and checks it exits 0 within a few seconds. Its
  log (stderr + stdout) is kept in a file and printed when a test fails.
- pprofcheck(): the strict validator; pprofcheck_json(): its JSON summary.
- decode_profile(): an independent decoder of gzip'd pprof into plain Python objects, so the tests
  can assert on stacks, labels and mappings, and cross-check pprofcheck's summary.
- require(): a precondition (root, BPF, a tool). An unmet precondition fails the test, naming it;
  nothing is ever skipped.
"""

import gzip
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

CI = os.environ.get("CI", "").lower() == "true"
SOURCE_DIR = os.environ.get("ANORAK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("ANORAK_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
ANORAK_BIN = os.environ.get("ANORAK_BIN") or os.path.join(BUILD_DIR, "anorak")
PPROFCHECK = os.environ.get("ANORAK_PPROFCHECK") or os.path.join(BUILD_DIR, "tests", "tools", "pprofcheck")
WORKLOAD_DIR = os.path.join(BUILD_DIR, "tests", "workload")
LOG_DIR = os.path.join(BUILD_DIR, "tests", "integration-logs")


def _sanitized_build():
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            return re.search(r"^ANORAK_SANITIZE:BOOL=(ON|TRUE|1)$", f.read(), re.M) is not None
    except OSError:
        return False


SANITIZED = _sanitized_build()
# Timeouts are stretched for the ASan build (slower start, leak check at exit).
TIME_SCALE = float(os.environ.get("ANORAK_TEST_TIME_SCALE", "3" if SANITIZED else "1"))
STOP_TIMEOUT = 5.0 * TIME_SCALE
READY_TIMEOUT = 30.0 * TIME_SCALE

_daemons = []  # every Daemon started by this process, for logs on failure and cleanup


def note(msg):
    print("  [harness] " + msg, file=sys.stderr, flush=True)


# --- preconditions ----------------------------------------------------------------------------------

def require(cond, why):
    """Fails the current test, naming the precondition, when cond is false."""
    if not cond:
        raise AssertionError("precondition not met: " + why)


def require_root_bpf():
    require(os.geteuid() == 0, "must run as root (BPF, perf events)")
    require(os.path.exists("/sys/kernel/btf/vmlinux"), "kernel has no BTF (/sys/kernel/btf/vmlinux)")
    require(os.path.exists("/proc/sys/kernel/perf_event_paranoid"), "kernel has no perf events")


def require_file(path, what):
    require(os.path.isfile(path) and os.access(path, os.X_OK), "%s not built: %s" % (what, path))


def require_tool(name):
    path = shutil.which(name)
    require(path is not None, "tool not installed: " + name)
    return path


def require_daemon():
    require_root_bpf()
    require_file(ANORAK_BIN, "the daemon")


def workload(name):
    path = os.path.join(WORKLOAD_DIR, name)
    require_file(path, "workload " + name)
    return path


# --- network ------------------------------------------------------------------------------------------

def metric(text, name, labels=""):
    """One series' value in a /metrics text: name, then its labels as written ('{reason="limit"}');
    None when absent."""
    m = re.search(r"(?m)^%s%s ([0-9.e+-]+|[+-]Inf|NaN)$" % (re.escape(name), re.escape(labels)), text)
    return float(m.group(1)) if m else None


def metric_sum(text, name):
    """The sum of a family's series over all their labels in a /metrics text (0 when absent)."""
    return sum(float(v) for v in re.findall(r"(?m)^%s\{[^}]*\} (\S+)$" % re.escape(name), text))


def online_cpus():
    n = 0
    with open("/sys/devices/system/cpu/online") as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    return n


def on_cpu_seconds(w):
    """Time on CPU of all a workload's threads from the scheduler's own clock (schedstat), not
    tick-sampled utime."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % w.pid):
        with open("/proc/%d/task/%s/schedstat" % (w.pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def share_tolerance(weight, n, points=5.0):
    """How far a sampled share (percent) may stray from its weight: `points`, or 3 standard deviations
    of a share sampled n times when a busy machine gave the workload few samples (on an idle 2-CPU
    machine, ~1000 samples: 5 points)."""
    return max(points, 3 * 100.0 * math.sqrt(weight / 100.0 * (1 - weight / 100.0) / max(n, 1)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def text(self):
        return self.body.decode("utf-8", "replace")


def http_get(port, path, timeout=10.0, host="127.0.0.1", headers=None):
    """GET http://host:port/path; returns a Response (any status). Raises socket.timeout/OSError."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return Response(r.status, r.getheaders(), body, time.monotonic() - t0)
    finally:
        conn.close()


# --- the daemon ---------------------------------------------------------------------------------------

class Daemon:
    """build/anorak on a free loopback port. Use as a context manager or call start()/stop()."""

    def __init__(self, *flags, port=None, env=None, name=None, preexec_fn=None):
        self.flags = list(flags)
        self.preexec_fn = preexec_fn  # runs in the child before exec (capabilities, limits)
        self.port = port or free_port()
        self.env = env
        self.proc = None
        self.returncode = None
        self.name = name or "anorak"
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, "%s-%s-%d.log" % (
            os.path.splitext(os.path.basename(sys.argv[0]))[0], self.name, self.port))
        _daemons.append(self)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def argv(self):
        return [ANORAK_BIN, "--web.listen-address=" + self.address] + self.flags

    def start(self, wait_ready=True):
        env = dict(os.environ)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.pop("DEBUGINFOD_URLS", None)  # no test reaches a debuginfod server it did not start
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "wb")
        note("starting: " + " ".join(self.argv()))
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                     preexec_fn=self.preexec_fn)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("anorak exited with %d before it was ready; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                r = http_get(self.port, "/-/ready", timeout=2)
                if r.status == 200:
                    note("ready after %.1fs on %s" % (timeout - (deadline - time.monotonic()), self.address))
                    return
                last = "status %d: %s" % (r.status, r.text()[:200])
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError("anorak not ready within %.0fs (last answer: %s); log:\n%s"
                             % (timeout, last, self.log_tail()))

    def get(self, path, timeout=10.0, **kw):
        return http_get(self.port, path, timeout=timeout, **kw)

    def profile(self, seconds, timeout=None, query=None, path="/debug/pprof/profile"):
        """GET /debug/pprof/profile?seconds=N (or path); asserts 200 and returns the body (bytes)."""
        q = query if query is not None else "seconds=%d" % seconds
        r = self.get(path + "?" + q, timeout=timeout or (seconds + 20) * TIME_SCALE)
        if r.status != 200:
            raise AssertionError("profile ?%s: status %d: %s" % (q, r.status, r.text()[:300]))
        return r.body

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=None, check=True):
        """Sends sig and waits; with check, asserts exit status 0 within timeout."""
        if self.proc is None:
            return None
        timeout = timeout or STOP_TIMEOUT
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(sig)
            rc = self.wait_exit(timeout)
            if rc is None:
                stacks = self.thread_stacks()
                self.kill()
                if check:
                    raise AssertionError("anorak did not exit within %.1fs of %s; log:\n%s\nthreads:\n%s"
                                         % (timeout, signal.Signals(sig).name, self.log_tail(), stacks))
            else:
                note("exited %d %.2fs after %s" % (rc, time.monotonic() - t0, signal.Signals(sig).name))
        self.returncode = self.proc.returncode
        self._close_log()
        if check and self.returncode != 0:
            raise AssertionError("anorak exited with status %s after %s (expected 0); log:\n%s"
                                 % (self.returncode, signal.Signals(sig).name, self.log_tail()))
        return self.returncode

    def thread_stacks(self):
        """Every thread's backtrace of the running daemon, to tell where a stop hangs."""
        gdb = shutil.which("gdb")
        if not gdb:
            return "(gdb not installed: no backtraces)"
        try:
            r = subprocess.run([gdb, "-p", str(self.proc.pid), "-batch", "-nx",
                                "-ex", "thread apply all bt 30"],
                               capture_output=True, text=True, timeout=60)
            return r.stdout[-20000:] + r.stderr[-2000:]
        except subprocess.TimeoutExpired:
            return "(gdb did not finish within 60s)"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        text = self.log().splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()
        return False


def run(argv, timeout, **kw):
    """subprocess.run with a timeout; returns CompletedProcess with text output."""
    return subprocess.run(argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, universal_newlines=True, **kw)


class Workload:
    """A workload process; reads its first stdout line ("NAME pid=P tids=T1,T2") to learn pid/tids."""

    def __init__(self, argv, timeout=10):
        note("workload: " + " ".join(argv))
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     universal_newlines=True)
        self.pid = self.proc.pid
        self.tids = [self.pid]
        line = [None]

        def reader():
            line[0] = self.proc.stdout.readline()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if not line[0]:
            self.kill()
            raise AssertionError("workload %s printed no start line" % argv[0])
        m = re.search(r"tids=([\d,]+)", line[0])
        if m:
            self.tids = [int(x) for x in m.group(1).split(",")]

    def cpu_seconds(self):
        """utime + stime of the whole process so far (from /proc/PID/stat), or None when gone."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def wait(self, timeout):
        rc = self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


# --- pprof: decoder -------------------------------------------------------------------------------------

def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf):
    """Yields (field number, wire type, value): int for varint/fixed, bytes for length-delimited."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
            if i > len(buf):
                raise ValueError("truncated length-delimited field %d" % fn)
        elif wt == 5:
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield fn, wt, v


def _ints(wt, v):
    """A repeated integer field's values, packed (wire type 2) or not."""
    if wt != 2:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _s64(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def _msg(buf, spec):
    """Decodes a message: spec maps field number -> (name, kind, repeated); kind int|s64|bytes|msg fn."""
    out = {name: ([] if rep else (b"" if kind == "bytes" else 0)) for name, kind, rep in spec.values()}
    for fn, wt, v in _fields(buf):
        if fn not in spec:
            continue
        name, kind, rep = spec[fn]
        if kind in ("int", "s64"):
            vals = _ints(wt, v)
            if kind == "s64":
                vals = [_s64(x) for x in vals]
            if rep:
                out[name].extend(vals)
            else:
                out[name] = vals[-1]
        else:
            val = kind(v) if callable(kind) else v
            if rep:
                out[name].append(val)
            else:
                out[name] = val
    return out


_VT = {1: ("type", "int", False), 2: ("unit", "int", False)}
_LABEL = {1: ("key", "int", False), 2: ("str", "int", False), 3: ("num", "s64", False), 4: ("num_unit", "int", False)}
_SAMPLE = {1: ("location_id", "int", True), 2: ("value", "s64", True),
           3: ("label", lambda b: _msg(b, _LABEL), True)}
_MAPPING = {1: ("id", "int", False), 2: ("memory_start", "int", False), 3: ("memory_limit", "int", False),
            4: ("file_offset", "int", False), 5: ("filename", "int", False), 6: ("build_id", "int", False),
            7: ("has_functions", "int", False), 8: ("has_filenames", "int", False),
            9: ("has_line_numbers", "int", False), 10: ("has_inline_frames", "int", False)}
_LINE = {1: ("function_id", "int", False), 2: ("line", "s64", False), 3: ("column", "s64", False)}
_LOCATION = {1: ("id", "int", False), 2: ("mapping_id", "int", False), 3: ("address", "int", False),
             4: ("line", lambda b: _msg(b, _LINE), True), 5: ("is_folded", "int", False)}
_FUNCTION = {1: ("id", "int", False), 2: ("name", "s64", False), 3: ("system_name", "s64", False),
             4: ("filename", "s64", False), 5: ("start_line", "s64", False)}
_PROFILE = {1: ("sample_type", lambda b: _msg(b, _VT), True), 2: ("sample", lambda b: _msg(b, _SAMPLE), True),
            3: ("mapping", lambda b: _msg(b, _MAPPING), True), 4: ("location", lambda b: _msg(b, _LOCATION), True),
            5: ("function", lambda b: _msg(b, _FUNCTION), True), 6: ("string_table", "bytes", True),
            7: ("drop_frames", "s64", False), 8: ("keep_frames", "s64", False), 9: ("time_nanos", "s64", False),
            10: ("duration_nanos", "s64", False), 11: ("period_type", lambda b: _msg(b, _VT), False),
            12: ("period", "s64", False), 13: ("comment", "s64", True), 14: ("default_sample_type", "s64", False)}


class Frame:
    def __init__(self, function, mapping_file, build_id, address, kernel, filename="", line=0):
        self.function, self.mapping_file, self.build_id = function, mapping_file, build_id
        self.address, self.kernel = address, kernel
        self.filename, self.line = filename, line  # the function's source file and the Line's line

    @property
    def python(self):
        """A Python frame: no mapping, its address tagged 0xb (bpf/python.h)."""
        return not self.mapping_file and self.address >> 60 == 0xB

    def __repr__(self):
        return "%s@%s" % (self.function or hex(self.address), os.path.basename(self.mapping_file or "?"))


class Sample:
    def __init__(self, values, labels, numlabels, frames):
        self.values, self.labels, self.numlabels, self.frames = values, labels, numlabels, frames

    @property
    def functions(self):
        return [f.function for f in self.frames]

    def user_frames(self):
        return [f for f in self.frames if not f.kernel]

    def kernel_frames(self):
        return [f for f in self.frames if f.kernel]

    def __repr__(self):
        return "Sample(%s %s %s %s)" % (self.values, self.labels, self.numlabels, self.frames)


class Profile:
    """A decoded pprof profile: sample_types [(type, unit)], period_type, period, time_nanos,
    duration_nanos, samples [Sample] (frames leaf first, inlined frames expanded), mappings [dict]."""

    def __init__(self, raw):
        self.gzipped = raw[:2] == b"\x1f\x8b"
        data = gzip.decompress(raw) if self.gzipped else raw
        p = _msg(data, _PROFILE)
        self.problems = []
        st = [s.decode("utf-8") for s in p["string_table"]]
        self.strings = st
        if not st or st[0] != "":
            self.problems.append("string_table[0] is not empty")

        def s(i):
            if not 0 <= i < len(st):
                self.problems.append("string index %d out of range" % i)
                return ""
            return st[i]

        for what in ("mapping", "location", "function"):
            ids = [x["id"] for x in p[what]]
            if ids != list(range(1, len(ids) + 1)):
                self.problems.append("%s ids are not 1..N in order (Parca): %s" % (what, ids[:10]))
        self.sample_types = [(s(v["type"]), s(v["unit"])) for v in p["sample_type"]]
        pt = p["period_type"]
        self.period_type = (s(pt["type"]), s(pt["unit"])) if pt else None
        self.period = p["period"]
        self.time_nanos = p["time_nanos"]
        self.duration_nanos = p["duration_nanos"]
        self.mappings = []
        maps = {}
        for m in p["mapping"]:
            d = dict(m, filename=s(m["filename"]), build_id=s(m["build_id"]))
            maps[m["id"]] = d
            self.mappings.append(d)
        funcs = {f["id"]: dict(f, name=s(f["name"]), system_name=s(f["system_name"]),
                               filename=s(f["filename"])) for f in p["function"]}
        locs = {}
        for loc in p["location"]:
            m = maps.get(loc["mapping_id"])
            if loc["mapping_id"] and m is None:
                self.problems.append("location %d: unknown mapping %d" % (loc["id"], loc["mapping_id"]))
            mfile = m["filename"] if m else ""
            bid = m["build_id"] if m else ""
            kernel = mfile.startswith("[kernel") or mfile.startswith("[vmlinux")
            frames = []
            for line in loc["line"]:
                f = funcs.get(line["function_id"])
                if f is None:
                    self.problems.append("location %d: unknown function %d" % (loc["id"], line["function_id"]))
                frames.append(Frame(f["name"] if f else "", mfile, bid, loc["address"], kernel,
                                    f["filename"] if f else "", line["line"]))
            if not frames:
                frames.append(Frame("", mfile, bid, loc["address"], kernel))
            locs[loc["id"]] = frames
        self.samples = []
        for smp in p["sample"]:
            frames = []
            for lid in smp["location_id"]:
                if lid not in locs:
                    self.problems.append("sample references unknown location %d" % lid)
                    continue
                frames.extend(locs[lid])
            labels, nums = {}, {}
            for lab in smp["label"]:
                key = s(lab["key"])
                if lab["str"]:
                    labels.setdefault(key, s(lab["str"]))
                else:
                    nums.setdefault(key, lab["num"])
            if len(smp["value"]) != len(self.sample_types):
                self.problems.append("sample has %d values for %d types" % (len(smp["value"]), len(self.sample_types)))
            if not smp["location_id"]:
                self.problems.append("sample without locations")
            self.samples.append(Sample(list(smp["value"]), labels, nums, frames))

    def total(self, index=0, pred=None):
        return sum(x.values[index] for x in self.samples if pred is None or pred(x))

    def of_pid(self, pid):
        return [x for x in self.samples if x.numlabels.get("pid") == pid]

    def function_names(self):
        return {f.function for x in self.samples for f in x.frames}


def decode_profile(raw):
    return Profile(raw)


# --- pprof: the checker ---------------------------------------------------------------------------------

def _write_tmp(raw):
    fd, path = tempfile.mkstemp(prefix="anorak-test-", suffix=".pb.gz")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    return path


def pprofcheck(raw_or_path, timeout=60, ptype="cpu"):
    """Runs `pprofcheck -type PTYPE FILE` (strict); returns (ok, output)."""
    require_file(PPROFCHECK, "pprofcheck")
    path = raw_or_path if isinstance(raw_or_path, str) else _write_tmp(raw_or_path)
    try:
        r = run([PPROFCHECK, "-type", ptype, path], timeout=timeout)
        return r.returncode == 0, (r.stdout + r.stderr).strip()
    finally:
        if not isinstance(raw_or_path, str):
            os.unlink(path)


def pprofcheck_json(raw_or_path, timeout=60, ptype="cpu"):
    """Runs `pprofcheck -json -type PTYPE FILE`; returns the parsed JSON."""
    require_file(PPROFCHECK, "pprofcheck")
    path = raw_or_path if isinstance(raw_or_path, str) else _write_tmp(raw_or_path)
    try:
        r = run([PPROFCHECK, "-json", "-type", ptype, path], timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("pprofcheck -json failed (%d): %s" % (r.returncode, (r.stdout + r.stderr)[-2000:]))
        return json.loads(r.stdout)
    finally:
        if not isinstance(raw_or_path, str):
            os.unlink(path)


def _pick(d, *names):
    if not isinstance(d, dict):
        return None
    low = {k.lower().replace("_", ""): v for k, v in d.items()}
    for n in names:
        v = low.get(n.lower().replace("_", ""))
        if v is not None:
            return v
    return None


def json_summary_totals(j):
    """(number of samples, sum of the first value, set of function names) from pprofcheck -json, read
    tolerantly (snake_case or camelCase keys)."""
    samples = _pick(j, "samples", "sample")
    if not isinstance(samples, list):
        raise AssertionError("pprofcheck -json: no samples list; keys: %s" % sorted(j)[:20])
    total, funcs = 0, set()
    for smp in samples:
        vals = _pick(smp, "values", "value")
        if not isinstance(vals, list) or not vals:
            raise AssertionError("pprofcheck -json: sample without values: %r" % (smp,))
        total += int(vals[0])
        stack = _pick(smp, "stack", "frames", "locations") or []
        for fr in stack:
            name = _pick(fr, "function", "func", "name") if isinstance(fr, dict) else fr
            if isinstance(name, dict):
                name = _pick(name, "name")
            if name:
                funcs.add(name)
    return len(samples), total, funcs


def check_profile(tc, raw, what="profile", ptype="cpu"):
    """Strict checks every profile must pass: gzip, pprofcheck, our decoder's rules, Go's CPU shape
    (ptype "offcpu": the off-CPU shape). Returns the decoded Profile."""
    tc.assertTrue(raw[:2] == b"\x1f\x8b", "%s is not gzip (starts %r)" % (what, raw[:8]))
    ok, out = pprofcheck(raw, ptype=ptype)
    tc.assertTrue(ok, "pprofcheck rejected the %s:\n%s" % (what, out[-3000:]))
    p = decode_profile(raw)
    tc.assertEqual(p.problems, [], "%s: %s" % (what, p.problems[:10]))
    tc.assertEqual(p.sample_types, [("samples", "count"), (ptype, "nanoseconds")], what)
    tc.assertEqual(p.period_type, (ptype, "nanoseconds"), what)
    tc.assertGreater(p.period, 0, what)
    tc.assertGreater(p.time_nanos, 0, what + ": time_nanos unset")
    tc.assertGreater(p.duration_nanos, 0, what + ": duration_nanos unset")
    j = pprofcheck_json(raw, ptype=ptype)
    n, total, funcs = json_summary_totals(j)
    tc.assertEqual(n, len(p.samples), "pprofcheck -json and the decoder disagree on the sample count")
    tc.assertEqual(total, p.total(0), "pprofcheck -json and the decoder disagree on samples/count")
    return p


def save_profile(raw, name):
    os.makedirs(LOG_DIR, exist_ok=True)
    path = os.path.join(LOG_DIR, name)
    with open(path, "wb") as f:
        f.write(raw)
    return path


def gnu_build_id(path):
    """The GNU build id of an ELF file (hex), from `readelf -n`."""
    readelf = require_tool("readelf")
    r = run([readelf, "-n", path], timeout=30)
    m = re.search(r"Build ID:\s*([0-9a-fA-F]+)", r.stdout)
    return m.group(1).lower() if m else None


def describe(samples, limit=8):
    """A short text of the most common stacks, for assertion messages."""
    from collections import Counter
    c = Counter()
    for x in samples:
        c[" <- ".join(f.function or hex(f.address) for f in x.frames[:8])] += x.values[0]
    return "\n".join("  %5d %s" % (v, k) for k, v in c.most_common(limit))


# --- running a test file --------------------------------------------------------------------------------

class _Result(unittest.TextTestResult):
    pass


def _dump_logs():
    for d in _daemons:
        print("\n----- %s log (%s), last lines -----\n%s\n-----" % (d.name, d.log_path, d.log_tail(150)),
              file=sys.stderr, flush=True)


def _cleanup():
    for d in _daemons:
        d.kill()


def main(total_timeout=240):
    """unittest.main with a hard time limit, daemon logs shown on failure and daemons never left behind."""
    def on_alarm(signum, frame):
        print("\n%s: time limit of %ds exceeded" % (sys.argv[0], total_timeout), file=sys.stderr)
        _dump_logs()
        _cleanup()
        os._exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(total_timeout * TIME_SCALE))
    note("CI=%s build=%s sanitized=%s" % (CI, BUILD_DIR, SANITIZED))
    prog = unittest.main(module="__main__", exit=False, verbosity=2, testRunner=unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2, resultclass=_Result))
    res = prog.result
    ok = res.wasSuccessful() and res.testsRun > 0
    if not ok:
        _dump_logs()
    _cleanup()
    signal.alarm(0)
    sys.exit(0 if ok else 1)
