#!/usr/bin/env python3
"""Faults around what the daemon reads and who it serves: binaries replaced or truncated while their
samples are symbolized, BPF maps and caches sized tiny by flags, and scrapers that disconnect while
they wait for their window. The daemon keeps serving, its profiles stay valid and its metrics tell.
"""
import ctypes.util
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

import harness as h

HZ = 99

# A child that spins in crc32() of its own copy of libz (argv[1]) until killed: its hot frames are in
# a file that is not an executable, so it can be truncated while mapped (an executable cannot: ETXTBSY).
CRC_CHILD = r"""
import ctypes, os, sys
lib = ctypes.CDLL(sys.argv[1])
lib.crc32.restype = ctypes.c_ulong
lib.crc32.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint]
buf = os.urandom(1 << 20)
print("crc pid=%d" % os.getpid(), flush=True)
while True:
    lib.crc32(0, buf, len(buf))
"""


def libz_path():
    name = ctypes.util.find_library("z")
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        p = os.path.join(d, name or "libz.so.1")
        if os.path.exists(p):
            return os.path.realpath(p)
    return None


class FaultsIO(unittest.TestCase):
    def test_binary_replaced_and_truncated(self):
        h.require_daemon()
        libz = libz_path()
        h.require(libz is not None, "libz.so.1 not found")
        tmp = tempfile.mkdtemp(prefix="anorak-faults-")
        exe, lib = os.path.join(tmp, "weights-copy"), os.path.join(tmp, "libz-copy.so")
        shutil.copy2(h.workload("weights"), exe)
        shutil.copy2(libz, lib)
        procs = []
        try:
            with h.Daemon("--sampling.frequency=%d" % HZ, name="binaries") as d:
                procs.append(h.Workload([exe, "-t", "1", "-d", "20"]))
                procs.append(h.Workload([sys.executable, "-c", CRC_CHILD, lib]))
                weights, crc = procs
                result = {}
                t = threading.Thread(target=lambda: result.update(raw=d.profile(4)))
                t.start()
                time.sleep(1.5)
                # Replaced: a new file renamed over the path (how package managers and image layers do it).
                with open(exe + ".new", "wb") as f:
                    f.write(os.urandom(64 << 10))
                os.rename(exe + ".new", exe)
                # Truncated in place while mapped: the child dies of SIGBUS at its next page fault.
                with open(lib, "r+b") as f:
                    f.truncate(100)
                t.join(60)
                self.assertIn("raw", result, "the profile request failed")
                p = h.check_profile(self, result["raw"], "profile across the replaced and truncated files")
                # The running process still maps the original inode: its functions are named from it.
                names = {f.function for s in p.of_pid(weights.pid) for f in s.frames}
                self.assertTrue({"hot_a", "hot_b", "hot_c"} & names,
                                "the replaced executable's own code lost its names: %s" % sorted(names)[:20])
                self.assertTrue(p.of_pid(crc.pid), "no sample of the libz child before its file was cut")
                crc.proc.wait(10)
                h.note("libz child exit status %s (SIGBUS is %d)" % (crc.proc.returncode, -7))
                # The truncated file is read again by the next profile: still valid, still serving.
                h.check_profile(self, d.profile(2), "profile after the faults")
                self.assertEqual(d.get("/-/healthy").status, 200)
                text = d.get("/metrics").text()
                h.note("\n".join(l for l in text.splitlines() if l.startswith("anorak_symbol_")))
                self.assertIsNotNone(h.metric(text, "anorak_symbol_unresolved_total"))
        finally:
            for w in procs:
                w.kill()
            shutil.rmtree(tmp)

    def test_tiny_maps_and_caches(self):
        h.require_daemon()
        flags = ["--sampling.frequency=997", "--bpf.stack-map-entries=64", "--bpf.count-map-entries=64",
                 "--processes.max=8", "--symbols.cache-size=1MiB", "--storage.max-bytes=1MiB",
                 "--unwind.table-memory=64KiB", "--bpf.cgroup-map-entries=16"]
        with h.Daemon(*flags, name="tiny") as d:
            busy = [h.Workload([h.workload("weights"), "-t", "4", "-m", "mixed", "-d", "12"]),
                    h.Workload([h.workload("libcwork"), "-m", "qsort", "-d", "12"])]
            # More processes at once than the table holds, whatever else the machine runs.
            busy += [h.Workload([h.workload("weights"), "-t", "1", "-d", "4"]) for _ in range(12)]
            try:
                for _ in range(3):
                    h.check_profile(self, d.profile(3), "profile with tiny maps")
                    self.assertEqual(d.get("/-/healthy").status, 200)
                h.check_profile(self, d.get("/debug/pprof/profile?start=1&end=%d" % (time.time() + 60)).body,
                                "history range with tiny maps")
            finally:
                for w in busy:
                    w.kill()
            text = d.get("/metrics").text()
            dropped = {
                "count_map_full": h.metric(text, 'anorak_samples_dropped_total{reason="count_map_full"}'),
                "stack_map_full": h.metric(text, 'anorak_stacks_dropped_total{reason="stack_map_full"}'),
                "untracked_processes": h.metric(text, "anorak_processes_untracked_total"),
                "history_evictions": h.metric(text, 'anorak_history_evictions_total{reason="size"}'),
            }
            h.note("drops with tiny maps: %s" % dropped)
            for what, n in dropped.items():
                self.assertIsNotNone(n, what)
            self.assertGreater(dropped["count_map_full"], 0, "64 count entries per generation never filled")
            self.assertGreater(dropped["stack_map_full"], 0, "64 stacks per generation never filled")
            self.assertGreater(dropped["untracked_processes"], 0, "8 tracked processes never filled")
            self.assertLessEqual(h.metric(text, "anorak_processes_tracked"), 8)
            self.assertLessEqual(h.metric(text, "anorak_history_bytes"), h.metric(text, "anorak_history_max_bytes"))
            # The table loaded last stays even when it alone is larger than the cache (libc's can be).
            if h.metric(text, "anorak_symbol_cache_tables") > 1:
                self.assertLessEqual(h.metric(text, "anorak_symbol_cache_bytes"),
                                     h.metric(text, "anorak_symbol_cache_max_bytes"))

    def test_scraper_disconnects_mid_wait(self):
        h.require_daemon()
        window = 60
        with h.Daemon("--web.max-connections=6", "--web.max-requests=2", name="disconnect") as d:
            socks = []
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                s.sendall(b"GET /debug/pprof/profile?seconds=%d HTTP/1.1\r\nHost: x\r\n\r\n" % window)
                socks.append(s)
            deadline = time.monotonic() + 10 * h.TIME_SCALE
            while h.metric(d.get("/metrics").text(), "anorak_profile_requests_in_flight") != 2:
                self.assertLess(time.monotonic(), deadline, "the two profiles never waited")
                time.sleep(0.1)
            # Past --web.max-requests: 503 with Retry-After, as node_exporter answers past its limit.
            r = d.get("/debug/pprof/profile?seconds=1")
            self.assertEqual(r.status, 503, r.text())
            self.assertEqual(r.header("Retry-After"), "1")
            t0 = time.monotonic()
            # One abortive close (RST), one orderly close (FIN): both clients are gone.
            socks[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for s in socks:
                s.close()
            self.assertEqual(d.get("/-/healthy").status, 200)
            # The daemon notices while the window still runs and frees both slots, counted as 499 (once
            # the handler has returned, just after the slot is freed).
            while True:
                text = d.get("/metrics").text()
                if (h.metric(text, "anorak_profile_requests_in_flight") == 0 and
                        h.metric(text, "anorak_http_requests_total",
                                 '{handler="/debug/pprof/profile",code="499"}') == 2):
                    break
                self.assertLess(time.monotonic() - t0, window / 2, "the wait slots were held for the window")
                time.sleep(0.2)
            results = []
            threads = [threading.Thread(target=lambda: results.append(d.profile(1))) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(len(results), 2)
            for raw in results:
                h.check_profile(self, raw, "profile after the disconnects")
            self.assertEqual(d.proc.poll(), None, "anorak died writing to a closed connection")

if __name__ == "__main__":
    h.main(total_timeout=200)
