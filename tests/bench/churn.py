#!/usr/bin/env python3
"""The daemon's memory under process churn (not part of ctest): starts anorak at its default flags,
then starts short-lived CPU-busy processes of several binaries (the test workloads in
build/tests/workload, sh, python3) at CHURN_RATE per second for CHURN_SECONDS, then leaves the daemon
idle for CHURN_AFTER seconds. Each child is busy for CHURN_BUSY_MS (default 2-5 ms, at random) and
lives ~10-50 ms on a loaded machine, so many are sampled: at 300/s that is about 1.5 CPUs with the
starts. The daemon's VmRSS is read every second. Prints RSS before the churn, its peak during, and at the end of the idle time;
the process rate reached; and the daemon's own counts of processes learnt and purged.

    python3 tests/bench/churn.py          # needs root and a built build/
CHURN_RATE=0 is a control run: the same phases with no churn, what the host alone makes the RSS do.
Environment: ANORAK_BUILD_DIR (default build), ANORAK_BIN (default $ANORAK_BUILD_DIR/anorak),
CHURN_COMPARE (another daemon binary run beside it at the same flags on the next port and reported the
same way: on a loaded machine, compare two builds within one run), CHURN_RATE (default 300 processes/s), CHURN_SECONDS
(default 60), CHURN_AFTER (default 60), CHURN_PORT (default 19770), CHURN_FLAGS (more daemon flags,
e.g. --sampling.frequency=19), CHURN_BUSY_MS, CHURN_SPAWNERS (processes starting the children, default 2),
CHURN_INFLIGHT (most children alive at once per spawner, default 128: on a machine too small for the
rate, the rate reached is lower, and printed).
"""
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.path.join(ROOT, os.environ.get("ANORAK_BUILD_DIR", "build")))
RATE = float(os.environ.get("CHURN_RATE", "300"))
SECONDS = float(os.environ.get("CHURN_SECONDS", "60"))
AFTER = float(os.environ.get("CHURN_AFTER", "60"))
PORT = int(os.environ.get("CHURN_PORT", "19770"))
FLAGS = shlex.split(os.environ.get("CHURN_FLAGS", ""))
INFLIGHT = int(os.environ.get("CHURN_INFLIGHT", "128"))
BUSY = [float(x) for x in os.environ.get("CHURN_BUSY_MS", "2-5").split("-")]
WL = os.path.join(BUILD, "tests", "workload")
ANORAK = os.environ.get("ANORAK_BIN", os.path.join(BUILD, "anorak"))
COMPARE = os.environ.get("CHURN_COMPARE", "")

# Metrics printed at the end: what the process table learnt and let go, and the caches beside it.
METRICS = ("anorak_processes_learnt_total", "anorak_processes_purged_total", "anorak_processes_tracked",
           "anorak_processes_untracked_total", "anorak_process_maps_loads_total",
           "anorak_unwind_processes_total", "anorak_symbol_cache_bytes", "anorak_symbol_cache_files", "anorak_symbol_cache_expired_total",
           "anorak_history_bytes", "anorak_malloc_trims_total", "anorak_malloc_trimmed_bytes_total",
           "process_resident_memory_bytes")


def commands(busy_s):
    """One command line per kind of child, busy for about busy_s seconds."""
    ms = max(1, int(busy_s * 1000))
    return [
        [os.path.join(WL, "weights"), "-t", "1", "-d", "%.3f" % busy_s],
        [os.path.join(WL, "weights_nofp"), "-t", "1", "-d", "%.3f" % busy_s],
        [os.path.join(WL, "weights_notables"), "-t", "1", "-d", "%.3f" % busy_s],
        [os.path.join(WL, "libcwork"), "-m", "qsort", "-d", "%.3f" % busy_s],
        [os.path.join(WL, "gowork"), "%.3f" % busy_s, "weights"],
        [os.path.join(WL, "shortlived"), "-m", str(ms)],
        ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do i=$((i+1)); done" % (ms * 400)],
    ]


# Python's start-up alone costs ~15 ms of CPU: one child in PYTHON_EVERY is python3.
PYTHON_EVERY = 16
PYTHON = ["python3", "-S", "-c", "import time\nt=time.monotonic()+0.005\nwhile time.monotonic()<t: pass"]


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and line.split("{")[0].split()[0] in METRICS:
            name, value = line.rsplit(" ", 1)
            out[name] = value
    return out


def wait_ready(proc, port):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit("churn: anorak exited %d" % proc.returncode)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("churn: anorak not ready after 30 s")


def spawner(rate, seed, out_fd):
    """Starts children at rate for SECONDS; writes how many it started and over how long to out_fd.
    A process of its own, so that waitpid(-1) reaps only children."""
    devnull = os.open(os.devnull, os.O_RDWR)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
          (os.POSIX_SPAWN_DUP2, devnull, 2)]
    rnd = random.Random(seed)
    inflight, started, kind = 0, 0, seed
    t0 = time.monotonic()
    next_at = t0
    while True:
        while inflight:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            inflight -= 1
        now = time.monotonic()
        if now - t0 >= SECONDS:
            break
        if now < next_at or inflight >= INFLIGHT:
            time.sleep(min(0.002, max(0.0005, next_at - now)))
            continue
        cmds = commands(rnd.uniform(BUSY[0], BUSY[1]) / 1000)
        argv = PYTHON if kind % PYTHON_EVERY == 0 else cmds[kind % len(cmds)]
        kind += 1
        os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa, setpgroup=0)
        started += 1
        inflight += 1
        next_at += 1.0 / rate
        if next_at < now - 0.5:
            next_at = now  # behind by more than half a second: do not burst to catch up
    elapsed = time.monotonic() - t0
    while inflight:
        os.waitpid(-1, 0)
        inflight -= 1
    os.write(out_fd, ("%d %f" % (started, elapsed)).encode())
    os._exit(0)


def churn():
    """CHURN_SPAWNERS processes share the rate; returns how many children started, over how long."""
    if RATE <= 0:  # a control run: the host alone, for as long
        time.sleep(SECONDS)
        return 0, SECONDS
    n = max(1, int(os.environ.get("CHURN_SPAWNERS", "2")))
    pipes = []
    for i in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            spawner(RATE / n, 17 + i, w)
        os.close(w)
        pipes.append((pid, r))
    started, elapsed = 0, 0.0
    for pid, r in pipes:
        text = os.read(r, 100).decode().split()
        os.close(r)
        os.waitpid(pid, 0)
        if len(text) != 2:
            sys.exit("churn: a spawner failed")
        started += int(text[0])
        elapsed = max(elapsed, float(text[1]))
    return started, elapsed


class Daemon:
    """One daemon under test: its process, port, RSS every second and metrics at each phase."""

    def __init__(self, binary, port):
        self.binary, self.port, self.series, self.metrics = binary, port, [], []
        self.proc = subprocess.Popen([binary, "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"] +
                                     FLAGS, preexec_fn=lambda: os.nice(-5))

    def sample(self):
        self.series.append((time.monotonic(), rss_kb(self.proc.pid)))

    def report(self, t_end, before):
        during = [kb for t, kb in self.series if t <= t_end + 2]
        print("%s: RSS MiB: before %.1f  peak during %.1f  at +%.0f s after %.1f  (VmHWM %.1f)" % (
            self.binary, before / 1024, max(during or [0]) / 1024, AFTER, rss_kb(self.proc.pid) / 1024,
            hwm_kb(self.proc.pid) / 1024))
        print("RSS every 10 s (MiB): " + " ".join("%.1f" % (kb / 1024) for _, kb in self.series[::10]))
        m0, m1, m2 = self.metrics
        print("%-52s %14s %14s %14s" % ("metric", "before", "churn end", "+%.0f s" % AFTER))
        for k in sorted(set(m0) | set(m1) | set(m2)):
            print("%-52s %14s %14s %14s" % (k, m0.get(k, "-"), m1.get(k, "-"), m2.get(k, "-")))


def sample_all(daemons, stop):
    while not stop.wait(1.0):
        for d in daemons:
            d.sample()


def main():
    if os.geteuid() != 0:
        sys.exit("churn: must run as root")
    for name in ("weights", "weights_nofp", "weights_notables", "libcwork", "gowork", "shortlived"):
        if not os.access(os.path.join(WL, name), os.X_OK):
            sys.exit("churn: %s not built (cmake --build %s)" % (os.path.join(WL, name), BUILD))
    os.nice(5)  # the children inherit it: the daemons, at their own priority, keep up
    binaries = [ANORAK] + ([COMPARE] if COMPARE else [])
    daemons = [Daemon(b, PORT + i) for i, b in enumerate(binaries)]
    try:
        for d in daemons:
            wait_ready(d.proc, d.port)
        time.sleep(5)
        stop = threading.Event()
        th = threading.Thread(target=sample_all, args=(daemons, stop), daemon=True)
        before = [rss_kb(d.proc.pid) for d in daemons]
        for d in daemons:
            d.metrics.append(metrics(d.port))
        th.start()
        started, elapsed = churn()
        t_end = time.monotonic()
        for d in daemons:
            d.metrics.append(metrics(d.port))
        time.sleep(AFTER)
        stop.set()
        th.join()
        for d in daemons:
            d.metrics.append(metrics(d.port))
        print("churn: %d processes in %.1f s: %.0f/s (asked %.0f/s), %d kinds, daemon flags: %s" % (
            started, elapsed, started / elapsed, RATE, len(commands(0.03)) + 1, " ".join(FLAGS) or "defaults"))
        for d, b in zip(daemons, before):
            d.report(t_end, b)
    finally:
        for d in daemons:
            d.proc.terminate()
            d.proc.wait()


def hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
