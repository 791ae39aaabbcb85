#!/usr/bin/env python3
"""Faults the daemon must ride out: process churn (hundreds of short processes per second for 20 s
while profiles are taken) and a garbage /tmp/perf-PID.map next to JIT code. The daemon keeps
serving, its profiles stay valid and its metrics tell what happened."""
import ctypes
import mmap
import os
import platform
import re
import threading
import time
import unittest

import harness as h

HZ = 99
CHURN_SECONDS = 20
CHURN_RATE = 300  # processes started per second


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Churn(threading.Thread):
    """Starts /bin/true CHURN_RATE times a second and reaps it; counts what it started."""

    def __init__(self, seconds):
        super().__init__(daemon=True)
        self.seconds, self.started, self.failed = seconds, 0, 0

    def run(self):
        t0 = time.monotonic()
        pending = []
        while (now := time.monotonic()) - t0 < self.seconds:
            due = int((now - t0) * CHURN_RATE)
            while self.started < due:
                try:
                    pending.append(os.posix_spawn("/bin/true", ["true"], os.environ))
                    self.started += 1
                except OSError:
                    self.failed += 1
                    break
            still = []
            for pid in pending:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    still.append(pid)
            pending = still
            time.sleep(0.005)
        for pid in pending:
            os.waitpid(pid, 0)


class Faults(unittest.TestCase):
    def test_process_churn(self):
        h.require_daemon()
        with h.Daemon("--sampling.frequency=%d" % HZ, name="churn") as d:
            rss0 = rss_kib(d.proc.pid)
            churn = Churn(CHURN_SECONDS)
            churn.start()
            busy = h.Workload([h.workload("weights"), "-t", "1", "-d", str(CHURN_SECONDS)])
            try:
                # Profiles and metrics all through the churn; each must be whole and valid.
                while churn.is_alive():
                    raw = d.profile(4)
                    h.check_profile(self, raw, "profile during churn")
                    self.assertEqual(d.get("/-/healthy").status, 200)
                    metrics = d.get("/metrics").text()
                    tracked, limit = h.metric(metrics, "anorak_processes_tracked"), h.metric(metrics, "anorak_processes_max")
                    self.assertIsNotNone(tracked)
                    self.assertLessEqual(tracked, limit)
            finally:
                busy.kill()
                churn.join(CHURN_SECONDS + 10)
            h.note("churn: %d processes started in %ds (%d spawn failures)"
                   % (churn.started, CHURN_SECONDS, churn.failed))
            self.assertGreater(churn.started, CHURN_RATE * CHURN_SECONDS // 2, "the churn was too slow to count")

            # After the churn, exited processes are let go: the tracked count falls back.
            deadline = time.monotonic() + 15 * h.TIME_SCALE
            while True:
                metrics = d.get("/metrics").text()
                tracked = h.metric(metrics, "anorak_processes_tracked")
                if tracked < 1000 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            self.assertLess(tracked, 1000, "exited processes are still tracked")
            self.assertGreater(h.metric(metrics, "anorak_samples_total", '{outcome="counted"}') or 0, 0)
            h.check_profile(self, d.profile(2), "profile after churn")
            rss1 = rss_kib(d.proc.pid)
            h.note("RSS %d KiB before, %d KiB after the churn" % (rss0, rss1))
            self.assertLess(rss1, 4 * rss0 + 256 * 1024, "RSS grew without bound")

    def test_garbage_perf_map(self):
        h.require_daemon()
        h.require(platform.machine() == "x86_64", "the JIT code below is x86-64")
        # JIT code in anonymous executable memory: mov rcx, N; 1: dec rcx; jnz 1b; ret
        code = bytes([0x48, 0xB9]) + (400_000_000).to_bytes(8, "little") + bytes([0x48, 0xFF, 0xC9, 0x75, 0xFB, 0xC3])
        # Private: a shared anonymous mapping shows as /dev/zero in /proc/PID/maps, not as JIT memory.
        buf = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                        prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        buf.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        path = "/tmp/perf-%d.map" % os.getpid()
        junk = [
            b"\x00\x01\x02 garbage \xff\xfe\n",
            b"x" * 10000 + b"\n",                              # longer than a line may be
            b"ffffffffffffffff 10 wraps_around\n",
            b"-10 10 negative\n",
            b"%x 0 empty_region\n" % addr,
            b"%x zz bad_size\n" % addr,
            b"%x 1\n" % addr,                                  # no name
            b"%x %x jit_hot_loop\n" % (addr, len(code)),       # the one good line
            os.urandom(4096),
            b"\n\n\r\n" * 100,
        ]
        with open(path, "wb") as f:
            for _ in range(50):  # a few MB of it
                for j in junk[:-3]:
                    f.write(j)
            for j in junk:
                f.write(j)
        try:
            with h.Daemon("--sampling.frequency=%d" % HZ, name="perfmap") as d:
                fn = ctypes.CFUNCTYPE(None)(addr)

                def spin():
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 4:
                        fn()

                t = threading.Thread(target=spin)
                t.start()
                try:
                    raw = d.profile(3)
                finally:
                    t.join(30)
                p = h.check_profile(self, raw, "profile with a garbage perf map")
                mine = p.of_pid(os.getpid())
                self.assertTrue(mine, "no sample of this process")
                leaves = [s.user_frames()[0].function for s in mine if s.user_frames()]
                h.note("leaf functions of this process: %s" % sorted(set(leaves))[:10])
                self.assertIn("jit_hot_loop", leaves, "the valid line among the garbage was not used")
                self.assertEqual(d.get("/-/healthy").status, 200)
        finally:
            os.unlink(path)
            buf.close()


if __name__ == "__main__":
    h.main(total_timeout=180)
