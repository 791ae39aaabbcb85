#!/usr/bin/env python3
"""The container image, run the way integrations/kubernetes/daemonset.yaml runs it.

scripts/image.sh builds the image (making the Debian base with debootstrap where no registry is
reachable). The podman command line is derived from the DaemonSet's container, so the two cannot
differ: hostPID (--pid=host), root with exactly its capabilities (no --privileged), its seccomp and
AppArmor profiles, no privilege escalation, a read-only root filesystem without podman's tmpfs
mounts, its volumes read-only (/sys/kernel/btf, /sys/fs/cgroup with HostToContainer propagation, the
ConfigMap as a directory of its files), NODE_NAME from the downward API, its memory and CPU limits,
its args. /proc and /sys are the runtime's, as in a pod. Two things differ, because there is no
cluster: the fake API server on loopback is named with --kubernetes.api-server (a pod finds the
in-cluster one from its service account), and with --network=host the listen address is a free
loopback port (the DaemonSet's :9760 would be the host's).

Checked: /-/healthy and /-/ready at the probes' paths; /metrics; a ?seconds=3 profile of a host
process (not in the image: its stacks are symbolized from the host's binary through /proc/PID/root)
and of a process in a pod's container cgroup (labeled by the ConfigMap's rules); the container's root
filesystem refuses writes; SIGTERM (podman stop) ends the daemon with exit status 0. And the runtime
stage: every library the daemon links resolves, and there is no compiler, linker or header. And
--save's archive loads as an OCI archive and as a docker save archive.

Label `image` (not `integration`): it builds an image, so scripts/test.sh runs it last, on its own.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h
import kube

try:
    import yaml
except ImportError:
    yaml = None

IMAGE_SH = os.path.join(h.SOURCE_DIR, "scripts", "image.sh")
K8S = os.path.join(h.SOURCE_DIR, "integrations", "kubernetes")
BUILD_TIMEOUT = 480


def manifest(name):
    with open(os.path.join(K8S, name)) as f:
        return yaml.safe_load(f)


def quantity_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(q[:-2]) * units[q[-2:]] if q[-2:] in units else int(q)


def quantity_cpus(q):
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def podman_args(ds, configmap, config_dir, port, api_url):
    """podman run options and the container's arguments for the DaemonSet's one container."""
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    opts = ["--network=host"]
    if pod.get("hostPID"):
        opts.append("--pid=host")
    if "runAsUser" in sc:
        opts.append("--user=%d" % sc["runAsUser"])
    assert not sc.get("privileged"), "the DaemonSet asks for a privileged container"
    opts += ["--cap-drop=" + ",".join(x.lower() for x in sc["capabilities"]["drop"]),
             "--cap-add=" + ",".join(sc["capabilities"]["add"])]
    if sc.get("allowPrivilegeEscalation") is False:
        opts.append("--security-opt=no-new-privileges")
    if sc.get("seccompProfile", {}).get("type") == "Unconfined":
        opts.append("--security-opt=seccomp=unconfined")
    if sc.get("appArmorProfile", {}).get("type") == "Unconfined":
        opts.append("--security-opt=apparmor=unconfined")
    if sc.get("readOnlyRootFilesystem"):
        opts += ["--read-only", "--read-only-tmpfs=false"]
    limits = c["resources"]["limits"]
    opts += ["--memory=%d" % quantity_bytes(limits["memory"]), "--cpus=%g" % quantity_cpus(limits["cpu"])]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        if "configMap" in v:
            assert v["configMap"]["name"] == configmap["metadata"]["name"]
            for key, text in configmap["data"].items():
                with open(os.path.join(config_dir, key), "w") as f:
                    f.write(text)
            src = config_dir
        elif v["hostPath"].get("type") == "DirectoryOrCreate":
            # A directory the daemon writes (the debuginfod cache): the test's own, not the host's.
            src = config_dir + "-" + m["name"]
            os.makedirs(src, exist_ok=True)
        else:
            src = v["hostPath"]["path"]
        flags = ["ro"] if m.get("readOnly") else []
        if m.get("mountPropagation") == "HostToContainer":
            flags.append("rslave")
        opts.append("--volume=%s:%s%s" % (src, m["mountPath"], ":" + ",".join(flags) if flags else ""))
    for e in c.get("env", []):
        if "value" in e:
            opts.append("--env=%s=%s" % (e["name"], e["value"]))
            continue
        assert e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", e
        opts.append("--env=%s=%s" % (e["name"], kube.NODE))
    args = []
    for a in c["args"]:
        if a.startswith("--web.listen-address="):
            a = "--web.listen-address=127.0.0.1:%d" % port
        args.append(a)
    args.append("--kubernetes.api-server=" + api_url)
    return opts, args


class Image(kube.ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        h.require(yaml is not None, "python3-yaml not installed")
        h.require(os.geteuid() == 0, "must run as root (podman, BPF)")
        h.require_tool("podman")
        os.makedirs(h.LOG_DIR, exist_ok=True)
        cls.build_log = os.path.join(h.LOG_DIR, "test_image-build.log")
        t0 = time.monotonic()
        with open(cls.build_log, "w") as log:
            rc = subprocess.run(["bash", IMAGE_SH], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT).returncode
        h.note("scripts/image.sh: %.0f s, exit %d (log %s)" % (time.monotonic() - t0, rc, cls.build_log))
        if rc != 0:
            with open(cls.build_log) as f:
                tail = f.read()[-4000:]
            raise AssertionError("scripts/image.sh failed (exit %d):\n%s" % (rc, tail))
        out = h.run(["bash", IMAGE_SH, "--podman-options"], timeout=120)
        h.require(out.returncode == 0, "scripts/image.sh --podman-options failed: " + out.stderr[-2000:])
        lines = dict(line.split(":", 1) for line in out.stdout.splitlines())
        cls.podman_global, cls.podman_run = lines["global"].split(), lines["run"].split()
        cls.ds = manifest("daemonset.yaml")
        cls.image = cls.ds["spec"]["template"]["spec"]["containers"][0]["image"]

    def setUp(self):
        super().setUp()
        self.config_dir = tempfile.mkdtemp(prefix="anorak-configmap-")
        self.name = "anorak-test-%d" % os.getpid()
        self.port = h.free_port()

    def tearDown(self):
        subprocess.run(["podman", *self.podman_global, "rm", "--force", "--time=5", self.name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        for f in os.listdir(self.config_dir):
            os.unlink(os.path.join(self.config_dir, f))
        os.rmdir(self.config_dir)
        for d in glob.glob(self.config_dir + "-*"):
            shutil.rmtree(d)
        super().tearDown()

    def podman(self, *argv, timeout=60, check=True):
        r = h.run(["podman", *self.podman_global, *argv], timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("podman %s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
        return r

    def logs(self):
        r = self.podman("logs", self.name, check=False)
        return (r.stdout + r.stderr)[-6000:]

    def get(self, path, timeout=10):
        return h.http_get(self.port, path, timeout=timeout)

    def wait_ready(self):
        deadline = time.monotonic() + h.READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.get("/-/ready", timeout=2).status == 200:
                    return
            except OSError:
                pass
            state = self.podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()
            if state not in ("running", "created", "configured"):
                break
            time.sleep(0.3)
        raise AssertionError("the container is not ready; its log:\n" + self.logs())

    def test_daemonset_in_podman(self):
        app_uid, app_cid = kube.new_uid(), kube.container_id()
        self.api.set_pod(kube.pod("shop-0", "shop", app_uid, "127.0.1.20", [("app", app_cid, [8080])],
                                  {"app": "shop"}, {"prometheus.io/port": "8080"}))
        pod_w = self.cgroups.start(self.cgroups.container(app_uid, app_cid),
                                   [h.workload("weights"), "-t", "1", "-d", "60"])
        self.workloads.append(pod_w)
        host_w = h.Workload([h.workload("weights"), "-t", "1", "-d", "60"])
        self.workloads.append(host_w)

        opts, args = podman_args(self.ds, manifest("configmap.yaml"), self.config_dir, self.port, self.api.url)
        argv = ["run", "--detach", "--name", self.name, *self.podman_run, *opts, self.image, *args]
        h.note("podman " + " ".join(self.podman_global + argv))
        self.podman(*argv)
        self.wait_ready()

        for probe in ("livenessProbe", "readinessProbe"):
            path = self.ds["spec"]["template"]["spec"]["containers"][0][probe]["httpGet"]["path"]
            self.assertEqual(self.get(path).status, 200, probe + " " + path)
        m = self.get("/metrics")
        self.assertEqual(m.status, 200)
        self.assertEqual(h.metric(m.text(), "anorak_kubernetes_containers"), 1, "the fake API server's pod")

        time.sleep(1.5)  # the pod's cgroup is linked and a drain has run
        r = self.get("/debug/pprof/profile?seconds=3", timeout=30)
        self.assertEqual(r.status, 200, r.text()[:500])
        p = h.check_profile(self, r.body, "profile from the container")

        host = p.of_pid(host_w.pid)
        self.assertTrue(host, "no sample of the host process %d; log:\n%s" % (host_w.pid, self.logs()))
        names = {f.function for x in host for f in x.user_frames()}
        # Every stack is main -> worker -> hot_a, hot_b or hot_c (weights.c), all named from the binary.
        self.assertTrue({"main", "worker"} <= names and names & {"hot_a", "hot_b", "hot_c"},
                        "host stacks not symbolized through /proc/PID/root: %s" % h.describe(host))
        files = {f.mapping_file for x in host for f in x.user_frames() if f.function == "worker"}
        self.assertEqual(files, {h.workload("weights")}, "the host binary's path as the host sees it")

        in_pod = p.of_pid(pod_w.pid)
        self.assertTrue(in_pod, "no sample of the pod's container process")
        for x in in_pod:
            self.assertEqual({k: x.labels.get(k) for k in ("job", "namespace", "pod", "container", "instance")},
                             {"job": "kubernetes-pods", "namespace": "shop", "pod": "shop-0", "container": "app",
                              "instance": "127.0.1.20:8080"}, "labels of the pod's samples")
        self.assertIn("worker", {f.function for x in in_pod for f in x.frames})

        # The mounts the daemon reads are read-only, as in the pod: the runtime's /sys and /proc/sys,
        # the DaemonSet's volumes. (Like a readOnly hostPath volume with HostToContainer propagation,
        # the bind is not recursively read-only: a hybrid host's cgroup submounts stay as they are.)
        mounts = {}
        for line in self.podman("exec", self.name, "cat", "/proc/self/mountinfo").stdout.splitlines():
            fields = line.split()
            mounts[fields[4]] = fields[5].split(",")
        # The one writable volume is the debuginfod cache the daemon writes; the rest are read-only.
        volumes = [m["mountPath"] for m in self.ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                   if m.get("readOnly")]
        for path in ["/sys", "/proc/sys"] + volumes:
            self.assertIn("ro", mounts.get(path, []), "%s is not mounted read-only: %s" % (path, mounts.get(path)))

        ro = self.podman("exec", self.name, "/bin/sh", "-c", "touch /anorak-write-test", check=False)
        self.assertNotEqual(ro.returncode, 0, "the root filesystem is writable")
        self.assertIn("Read-only file system", ro.stderr)
        self.assertEqual(self.podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", self.name)
                         .stdout.strip(), "true")

        self.podman("stop", "--time=10", self.name, timeout=30)
        code = self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()
        self.assertEqual(code, "0", "exit status after SIGTERM; log:\n" + self.logs())

    def test_runtime_stage_has_only_runtime_libraries(self):
        script = ("ldd /usr/bin/anorak; "
                  "for t in cc gcc clang ld as make cmake; do command -v $t && echo FOUND $t; done; "
                  "ls /usr/include 2>/dev/null | head -n 3 | sed 's/^/HEADER /'; "
                  "dpkg-query -W -f '${Package}\\n' | grep -E -- '-dev$|^(gcc|cpp|clang|llvm|binutils|make|cmake)(-[0-9]+)?$' | sed 's/^/PACKAGE /'")
        r = self.podman("run", "--rm", *self.podman_run, "--entrypoint", "/bin/sh", self.image, "-c", script)
        self.assertNotIn("not found", r.stdout, "a library the daemon links is missing:\n" + r.stdout)
        self.assertIn("libbpf.so.1 => ", r.stdout)
        for word in ("FOUND", "HEADER", "PACKAGE"):
            self.assertNotIn(word + " ", r.stdout, "build tools in the runtime image:\n" + r.stdout)
        size = int(self.podman("image", "inspect", "--format", "{{.Size}}", self.image).stdout)
        h.note("%s: %.1f MB" % (self.image, size / 1e6))

    def test_saved_archive_loads_both_ways(self):
        """--save: one archive, read as an OCI archive (ctr, podman) and through its manifest.json as
        docker save's format (docker load before 25), each into an empty image store."""
        work = tempfile.mkdtemp(prefix="anorak-", dir="/var/tmp")
        archive = os.path.join(work, "anorak.tar")
        try:
            r = h.run(["bash", IMAGE_SH, "--save", archive], timeout=BUILD_TIMEOUT)
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
            name = "docker.io/library/" + self.image
            for transport in ("oci-archive", "docker-archive"):
                # podman refuses a runroot path longer than 50 characters.
                store = ["--root", os.path.join(work, transport, "root"), "--runroot", os.path.join(work, transport[:3])]
                self.podman(*store, "pull", "--quiet", "%s:%s" % (transport, archive), timeout=120)
                v = self.podman(*store, "run", "--rm", *self.podman_run, name, "--version")
                self.assertIn("anorak, version", v.stdout, transport)
                self.podman(*store, "rmi", "--all", "--force")
        finally:
            subprocess.run(["rm", "-rf", work], timeout=60)


if __name__ == "__main__":
    h.main(total_timeout=BUILD_TIMEOUT + 120)
