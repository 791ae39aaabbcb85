#!/usr/bin/env python3
"""--config.file: job_name and relabel_configs decide the labels of host targets, a target dropped by
the rules is not served, and SIGHUP re-reads the file (a bad file keeps the running config)."""
import os
import signal
import tempfile
import time
import unittest

import harness as h

HZ = 99

CONFIG = """job_name: node-profiles
relabel_configs:
  - source_labels: [__meta_process_comm]
    regex: weights
    action: drop
  - source_labels: [__meta_process_comm]
    target_label: program
"""


class ConfigFile(unittest.TestCase):
    def test_rules_and_reload(self):
        h.require_daemon()
        dropped_prog, kept_prog = h.workload("weights"), h.workload("tracectx_exe")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(CONFIG)
            path = f.name
        try:
            with h.Daemon("--sampling.frequency=%d" % HZ, "--config.file=" + path, name="config") as d:
                dropped = h.Workload([dropped_prog, "-t", "1", "-d", "6"])
                kept = h.Workload([kept_prog, "-d", "6"])
                try:
                    raw = d.profile(3)
                finally:
                    dropped.kill()
                    kept.kill()
                p = h.check_profile(self, raw, "config profile")
                self.assertFalse(p.of_pid(dropped.pid), "a target the rules drop was served")
                mine = p.of_pid(kept.pid)
                self.assertTrue(mine, "no sample of the kept workload")
                for x in mine:
                    self.assertEqual(x.labels.get("job"), "node-profiles", repr(x))
                    self.assertEqual(x.labels.get("program"), "tracectx_exe", repr(x))
                    self.assertNotIn("comm", x.labels, repr(x))
                    self.assertTrue(x.labels.get("instance", "").endswith(":%d" % d.port), repr(x))
                metrics = d.get("/metrics").text()
                # Stopped in BPF by the process filter, not drained and discarded.
                self.assertRegex(metrics, r"(?m)^anorak_bpf_filtered_samples_total [1-9]")
                self.assertRegex(metrics, r"(?m)^anorak_bpf_processes_dropped_total [1-9]")

                # A bad file: the daemon says why and keeps serving with the old rules.
                with open(path, "w") as f:
                    f.write("job_name: x\nrelabel_configs:\n  - action: hashmod\n    target_label: a\n")
                d.send_signal(signal.SIGHUP)
                deadline = time.time() + 10 * h.TIME_SCALE
                while "keeping the running configuration" not in d.log() and time.time() < deadline:
                    time.sleep(0.1)
                self.assertIn("requires non-zero modulus", d.log())
                self.assertIn("keeping the running configuration", d.log())
                self.assertEqual(d.get("/-/healthy").status, 200)

                # A good file: processes learnt from now on get its labels.
                with open(path, "w") as f:
                    f.write("job_name: reloaded\n")
                d.send_signal(signal.SIGHUP)
                deadline = time.time() + 10 * h.TIME_SCALE
                while "configuration reloaded" not in d.log() and time.time() < deadline:
                    time.sleep(0.1)
                again = h.Workload([dropped_prog, "-t", "1", "-d", "5"])
                try:
                    raw = d.profile(3)
                finally:
                    again.kill()
                p = h.check_profile(self, raw, "reloaded profile")
                mine = p.of_pid(again.pid)
                self.assertTrue(mine, "the reloaded config no longer drops weights, yet no sample")
                self.assertEqual({x.labels.get("job") for x in mine}, {"reloaded"})
                self.assertEqual({x.labels.get("comm") for x in mine}, {None})
        finally:
            os.unlink(path)


if __name__ == "__main__":
    h.main(total_timeout=120)
