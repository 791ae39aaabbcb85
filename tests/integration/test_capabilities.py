#!/usr/bin/env python3
"""Least privilege: as root (no user namespace) with exactly the capabilities the DaemonSet grants and
every other one dropped (CAP_SYS_ADMIN among them), anorak starts, profiles and symbolizes; with any
one of the required ones removed it refuses to start with one error line naming it.

CAP_SYS_RESOURCE only raises the open-file limit to 65536: without it and with a lower hard limit
anorak starts and says so in one warning naming it (container runtimes often set a high hard limit,
and some do not grant the capability at all).

The child drops capabilities from its bounding set before exec: root's exec'd program gets its
bounding set as permitted and effective capabilities.
"""
import ctypes
import os
import re
import resource
import unittest

import harness as h

PR_CAPBSET_DROP = 24
CAP_SYS_RESOURCE = 24
REQUIRED = {"CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_SYS_PTRACE": 19, "CAP_DAC_READ_SEARCH": 2,
            "CAP_SYSLOG": 34, "CAP_CHECKPOINT_RESTORE": 40}
HZ = 99


def last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def cap_mask(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"%s:\s+([0-9a-f]+)" % field, f.read()).group(1), 16)


def only(keep, nofile_hard=None):
    """A preexec_fn: keeps exactly the capabilities keep (numbers), optionally lowers the open-file
    hard limit."""
    libc = ctypes.CDLL(None, use_errno=True)
    top = last_cap()

    def preexec():
        if nofile_hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, nofile_hard), nofile_hard))
        for cap in range(top + 1):
            if cap not in keep and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP %d" % cap)
    return preexec


def lines(d, level):
    return [l for l in d.log().splitlines() if "level=%s " % level in l]


class Capabilities(unittest.TestCase):
    def setUp(self):
        h.require_daemon()
        h.require(last_cap() >= 40, "kernel without CAP_CHECKPOINT_RESTORE (before 5.9)")
        # CAP_SYS_RESOURCE is granted when this process has it (some sandboxes do not).
        self.have_resource = bool(cap_mask(os.getpid(), "CapBnd") & (1 << CAP_SYS_RESOURCE))
        self.granted = set(REQUIRED.values()) | ({CAP_SYS_RESOURCE} if self.have_resource else set())

    def test_exactly_the_documented_set(self):
        hard = 4096 if self.have_resource else None
        with h.Daemon("--sampling.frequency=%d" % HZ, name="caps", preexec_fn=only(self.granted, hard)) as d:
            eff = cap_mask(d.proc.pid, "CapEff")
            self.assertEqual(eff, sum(1 << c for c in self.granted), "effective set %x" % eff)
            self.assertFalse(eff & (1 << 21), "CAP_SYS_ADMIN is there")
            # Raised to 65536 with CAP_SYS_RESOURCE, else up to the hard limit.
            want = 65536 if self.have_resource else min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            with open("/proc/%d/limits" % d.proc.pid) as f:
                self.assertRegex(f.read(), r"Max open files\s+%d\s" % want)
            w = h.Workload([h.workload("weights"), "-t", "1", "-d", "6"])
            try:
                p = h.check_profile(self, d.profile(3), "profile with the documented capabilities")
            finally:
                w.kill()
            mine = p.of_pid(w.pid)
            self.assertTrue(mine, "no sample of the workload")
            names = {f.function for s in mine for f in s.frames}
            self.assertTrue({"hot_a", "hot_b", "hot_c"} & names, "workload not symbolized: %s" % sorted(names)[:20])
            self.assertTrue(any(f.kernel and f.function for s in p.samples for f in s.frames),
                            "no symbolized kernel frame (CAP_SYSLOG, kallsyms)")
            self.assertEqual(d.get("/-/healthy").status, 200)
            self.assertEqual(lines(d, "error"), [])

    def test_each_missing_capability_is_named(self):
        for name, cap in sorted(REQUIRED.items()):
            with self.subTest(missing=name):
                d = h.Daemon(name="nocap-" + name.lower(), preexec_fn=only(self.granted - {cap}))
                d.start(wait_ready=False)
                rc = d.wait_exit(20 * h.TIME_SCALE)
                if rc is None:
                    d.kill()
                    self.fail("anorak without %s did not exit; log:\n%s" % (name, d.log_tail()))
                d.stop(check=False)
                errors = lines(d, "error")
                h.note("without %s: exit %d: %s" % (name, rc, errors))
                self.assertNotEqual(rc, 0)
                self.assertEqual(len(errors), 1, "expected one error line:\n" + d.log())
                self.assertIn('missing="%s"' % name, errors[0])

    def test_without_sys_resource_a_warning(self):
        keep = set(REQUIRED.values())
        with h.Daemon("--sampling.frequency=%d" % HZ, name="nocap-sys-resource",
                      preexec_fn=only(keep, nofile_hard=4096)) as d:
            warnings = [l for l in lines(d, "warn") if "CAP_SYS_RESOURCE" in l]
            self.assertEqual(len(warnings), 1, d.log())
            self.assertIn('missing="CAP_SYS_RESOURCE"', warnings[0])
            with open("/proc/%d/limits" % d.proc.pid) as f:
                self.assertRegex(f.read(), r"Max open files\s+4096\s+4096")
            h.check_profile(self, d.profile(2), "profile without CAP_SYS_RESOURCE")

if __name__ == "__main__":
    h.main(total_timeout=150)
