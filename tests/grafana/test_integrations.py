#!/usr/bin/env python3
"""Checks integrations/ (Kubernetes manifests, Prometheus, Parca and Alloy configs) without a cluster.

- Kubernetes: every manifest parses; kinds, apiVersions and required fields; the DaemonSet's hostPID,
  exact capability list, read-only root, NODE_NAME from the downward API, probes on /-/healthy and
  /-/ready at the port named http (9760), volumes, resources; RBAC grants pods get/list/watch to the
  DaemonSet's ServiceAccount; every flag the DaemonSet passes is one `anorak --help` lists.
- One rules file: the ConfigMap holds integrations/prometheus/pod-labels.yml byte for byte, and
  Prometheus' kubernetes-pods job ends with exactly its rules (the rules before them only keep
  targets or set __ labels, so no final label differs).
- promtool check config passes on prometheus.yml. Debian's promtool is built without Kubernetes
  discovery, so each kubernetes_sd_configs block is checked here (role, namespaces) and replaced by a
  file_sd_configs block before promtool sees the file; the token/CA paths of the in-cluster
  service account are pointed at temporary files. Everything else is promtool's own check.
- promtool check service-discovery applies the kubernetes-pods job to a container's meta labels:
  the final labels are job, instance, namespace, pod, container, as anorak's config gives them.
- Parca and Alloy: process_cpu, as a delta, at /debug/pprof/profile, and process_offcpu at
  /debug/pprof/offcpu (a custom profile); the other Go profiles
  disabled; timeouts Parca and Alloy accept; the job name is Prometheus' job; discovery selects the
  DaemonSet's pods and port.

Needs python3-yaml and promtool (and the built daemon for the flag check); under CI=true a missing
one fails the test.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

SRC = os.environ.get("ANORAK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
INTEGRATIONS = os.path.join(SRC, "integrations")
CAPABILITIES = {"BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH", "SYSLOG", "CHECKPOINT_RESTORE", "SYS_RESOURCE"}
API_VERSIONS = {"Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1", "Service": "v1",
                "DaemonSet": "apps/v1", "ClusterRole": "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding": "rbac.authorization.k8s.io/v1"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
PORT = 9760
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount/"
# Keys of a Parca scrape config (Parca decodes its config with unknown fields refused).
PARCA_SCRAPE_KEYS = {"job_name", "params", "scrape_interval", "scrape_timeout", "scheme", "normalized_addresses",
                     "profiling_config", "relabel_configs", "kubernetes_sd_configs", "static_configs",
                     "authorization", "basic_auth", "tls_config", "follow_redirects"}

try:
    import yaml
except ImportError:
    yaml = None


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    if not m:
        raise AssertionError("not a duration: %r" % duration)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_alloy(text):
    """A small reader of Alloy's syntax, enough for the shipped file: returns a list of blocks
    {name, label, attrs: {key: raw value}, blocks: [...]}; raises on unbalanced braces or a line it
    does not understand."""
    root = {"name": "", "label": None, "attrs": {}, "blocks": []}
    stack = [root]
    pending = None  # a multi-line attribute value: [key, text, bracket depth]
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s*//.*$", "", raw).strip()
        if not line:
            continue
        if pending:
            pending[1] += " " + line
            pending[2] += line.count("[") - line.count("]")
            if pending[2] == 0:
                stack[-1]["attrs"][pending[0]] = pending[1]
                pending = None
            continue
        m = re.fullmatch(r'([a-z_][a-z0-9_.]*)(?:\s+"([^"]*)")?\s*\{', line)
        if m:
            block = {"name": m.group(1), "label": m.group(2), "attrs": {}, "blocks": []}
            stack[-1]["blocks"].append(block)
            stack.append(block)
            continue
        if line == "}":
            if len(stack) == 1:
                raise AssertionError("line %d: unbalanced }" % n)
            stack.pop()
            continue
        m = re.fullmatch(r"([a-z_][a-z0-9_]*)\s*=\s*(.+)", line)
        if not m:
            raise AssertionError("line %d: cannot read %r" % (n, raw))
        depth = m.group(2).count("[") - m.group(2).count("]")
        if depth:
            pending = [m.group(1), m.group(2), depth]
        else:
            stack[-1]["attrs"][m.group(1)] = m.group(2)
    if len(stack) != 1 or pending:
        raise AssertionError("unterminated block or value at end of file")
    return root["blocks"]


def alloy_string(raw):
    return json.loads(raw)


class Integrations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(yaml is not None, "python3-yaml is not installed")
        cls.docs = []
        for f in sorted(glob.glob(os.path.join(INTEGRATIONS, "kubernetes", "*.yaml"))):
            with open(f) as fh:
                cls.docs.extend((f, d) for d in yaml.safe_load_all(fh) if d is not None)
        if not cls.docs:
            raise AssertionError("no manifests in integrations/kubernetes")
        cls.by_kind = {}
        for f, d in cls.docs:
            cls.by_kind.setdefault(d.get("kind"), []).append(d)
        cls.rules_path = os.path.join(INTEGRATIONS, "prometheus", "pod-labels.yml")
        with open(cls.rules_path) as fh:
            cls.rules_text = fh.read()
        cls.rules = yaml.safe_load(cls.rules_text)
        with open(os.path.join(INTEGRATIONS, "prometheus", "prometheus.yml")) as fh:
            cls.prometheus = yaml.safe_load(fh)

    def one(self, kind):
        items = self.by_kind.get(kind, [])
        self.assertEqual(1, len(items), "expected one %s, found %d" % (kind, len(items)))
        return items[0]

    def container(self):
        (c,) = self.one("DaemonSet")["spec"]["template"]["spec"]["containers"]
        return c

    def pod_labels(self):
        return self.one("DaemonSet")["spec"]["template"]["metadata"]["labels"]

    def prom_job(self, name):
        jobs = [j for j in self.prometheus["scrape_configs"] if j["job_name"] == name]
        self.assertEqual(1, len(jobs), "Prometheus job %s" % name)
        return jobs[0]

    # --- Kubernetes manifests -----------------------------------------------------------------------

    def test_kinds_and_required_fields(self):
        self.assertEqual(set(API_VERSIONS), set(self.by_kind), "kinds of integrations/kubernetes")
        ns = self.one("Namespace")["metadata"]["name"]
        for f, d in self.docs:
            where = "%s %s" % (f, d.get("kind"))
            self.assertEqual(API_VERSIONS[d["kind"]], d.get("apiVersion"), where)
            self.assertRegex(d["metadata"].get("name", ""), r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", where)
            if d["kind"] in CLUSTER_SCOPED:
                self.assertNotIn("namespace", d["metadata"], where)
            else:
                self.assertEqual(ns, d["metadata"].get("namespace"), where)

    def test_daemonset(self):
        ds = self.one("DaemonSet")
        spec = ds["spec"]
        self.assertEqual(spec["selector"]["matchLabels"],
                         {k: v for k, v in self.pod_labels().items() if k in spec["selector"]["matchLabels"]})
        pod = spec["template"]["spec"]
        self.assertIs(True, pod.get("hostPID"), "hostPID")
        self.assertNotIn("hostNetwork", pod)
        sc = self.container()["securityContext"]
        self.assertEqual(CAPABILITIES, set(sc["capabilities"]["add"]), "capability list")
        self.assertEqual(["ALL"], sc["capabilities"]["drop"])
        self.assertIs(True, sc["readOnlyRootFilesystem"])
        self.assertIs(False, sc.get("privileged", False))
        self.assertIs(False, sc.get("allowPrivilegeEscalation"))

    def test_node_name_from_downward_api(self):
        env = {e["name"]: e for e in self.container().get("env", [])}
        self.assertIn("NODE_NAME", env)
        self.assertEqual("spec.nodeName", env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"])

    def test_probes_and_port(self):
        c = self.container()
        ports = {p["name"]: p for p in c["ports"]}
        self.assertEqual(PORT, ports["http"]["containerPort"])
        for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
            get = c[probe]["httpGet"]
            self.assertEqual(path, get["path"], probe)
            self.assertIn(get["port"], (PORT, "http"), probe)
        listen = [a for a in c.get("args", []) if a.startswith("--web.listen-address=")]
        for a in listen:
            self.assertTrue(a.endswith(":%d" % PORT), a)

    def test_volumes(self):
        pod = self.one("DaemonSet")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in self.container()["volumeMounts"]}
        for path in ("/sys/kernel/btf", "/sys/fs/cgroup"):
            self.assertIn(path, mounts, "mount of " + path)
            self.assertIs(True, mounts[path].get("readOnly"), path)
            self.assertEqual(path, volumes[mounts[path]["name"]]["hostPath"]["path"])
        # --config.file names a key of the ConfigMap mounted at its directory.
        (cfg,) = [a.split("=", 1)[1] for a in self.container()["args"] if a.startswith("--config.file=")]
        m = mounts[os.path.dirname(cfg)]
        cm_name = volumes[m["name"]]["configMap"]["name"]
        cm = self.one("ConfigMap")
        self.assertEqual(cm_name, cm["metadata"]["name"])
        self.assertIn(os.path.basename(cfg), cm["data"])

    def test_debuginfod_cache_on_the_node(self):
        # readOnlyRootFilesystem: the cache directory must be a writable volume, and one on the node
        # so a restarted pod keeps what it fetched.
        pod = self.one("DaemonSet")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in self.container()["volumeMounts"]}
        (cache,) = [a.split("=", 1)[1] for a in self.container()["args"]
                    if a.startswith("--symbols.debuginfod-cache-dir=")]
        self.assertIn(cache, mounts, "mount of the debuginfod cache")
        self.assertIs(False, mounts[cache].get("readOnly", False))
        self.assertEqual(cache, volumes[mounts[cache]["name"]]["hostPath"]["path"])
        env = {e["name"]: e for e in self.container().get("env", [])}
        self.assertIn("DEBUGINFOD_URLS", env)

    def test_resources(self):
        res = self.container()["resources"]
        units = {"Mi": 2**20, "Gi": 2**30, "m": 0.001, "": 1}

        def qty(s):
            m = re.fullmatch(r"(\d+)(Mi|Gi|m|)", str(s))
            self.assertIsNotNone(m, "quantity %r" % s)
            return int(m.group(1)) * units[m.group(2)]
        for r in ("cpu", "memory"):
            self.assertLessEqual(qty(res["requests"][r]), qty(res["limits"][r]), r)
        # Measured: 16 MB resident + up to 16 MiB symbol cache + ~6 MiB BPF maps.
        self.assertGreaterEqual(qty(res["requests"]["memory"]), 48 * 2**20)

    def test_rbac(self):
        role = self.one("ClusterRole")
        self.assertEqual([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}], role["rules"])
        sa = self.one("ServiceAccount")
        binding = self.one("ClusterRoleBinding")
        self.assertEqual({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": role["metadata"]["name"]}, binding["roleRef"])
        self.assertIn({"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                       "namespace": sa["metadata"]["namespace"]}, binding["subjects"])
        self.assertEqual(sa["metadata"]["name"], self.one("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"])

    def test_service_selects_the_pods(self):
        svc = self.one("Service")["spec"]
        for k, v in svc["selector"].items():
            self.assertEqual(v, self.pod_labels().get(k), "Service selector %s" % k)
        self.assertIn("http", [p["targetPort"] for p in svc["ports"]])

    def test_flags_are_anorak_flags(self):
        bin_path = os.environ.get("ANORAK_BIN") or harness.ANORAK_BIN
        harness.require_file(bin_path, "the daemon (for --help)")
        out = subprocess.run([bin_path, "--help"], capture_output=True, text=True, timeout=30)
        known = set(re.findall(r"--(?:\[no-\])?([a-z][a-z0-9.-]*)", out.stdout + out.stderr))
        for a in self.container()["args"]:
            name = re.match(r"--([a-z0-9.-]+)", a).group(1)
            self.assertIn(name, known, "flag %s is not in anorak --help" % a)

    # --- one rules file ----------------------------------------------------------------------------

    def test_configmap_is_the_rules_file(self):
        self.assertEqual(self.rules_text, self.one("ConfigMap")["data"]["anorak.yml"],
                         "integrations/kubernetes/configmap.yaml differs from integrations/prometheus/pod-labels.yml "
                         "(regenerate it with the kubectl command in its header)")

    def test_prometheus_uses_the_rules_file(self):
        job = self.prom_job(self.rules["job_name"])
        rules = self.rules["relabel_configs"]
        got = job["relabel_configs"]
        self.assertEqual(rules, got[len(got) - len(rules):], "the job must end with pod-labels.yml's rules")
        for r in got[:len(got) - len(rules)]:
            action = r.get("action", "replace")
            self.assertTrue(action in ("keep", "drop", "keepequal", "dropequal")
                            or r.get("target_label", "").startswith("__"),
                            "a selection rule sets a final label: %r" % r)

    # --- promtool ------------------------------------------------------------------------------------

    def promtool_config(self, tmp):
        """prometheus.yml as promtool here can read it (see the module docstring)."""
        cfg = json.loads(json.dumps(self.prometheus))
        targets = os.path.join(tmp, "targets.json")
        with open(targets, "w") as f:
            json.dump([], f)
        for name in ("token", "ca.crt"):
            with open(os.path.join(tmp, name), "w") as f:
                f.write("x\n")
        for job in cfg["scrape_configs"]:
            for sd in job.pop("kubernetes_sd_configs", []):
                self.assertIn(sd["role"], ("pod", "node", "service", "endpoints", "endpointslice", "ingress"))
                self.assertLessEqual(set(sd), {"role", "namespaces", "selectors", "api_server", "kubeconfig_file"})
                for ns in sd.get("namespaces", {}).get("names", []):
                    self.assertRegex(ns, r"^[a-z0-9-]+$")
                job.setdefault("file_sd_configs", []).append({"files": [targets]})
        text = json.dumps(cfg).replace(SA_DIR, tmp + "/")
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_promtool_check_config(self):
        promtool = harness.require_tool("promtool")
        with tempfile.TemporaryDirectory() as tmp:
            path = self.promtool_config(tmp)
            r = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True, timeout=60)
            self.assertEqual(0, r.returncode, r.stdout + r.stderr)
            self.assertIn("SUCCESS", r.stdout + r.stderr)

    def service_discovery(self, promtool, meta):
        """Final labels of the kubernetes-pods job for one target with the given discovered labels."""
        job = json.loads(json.dumps(self.prom_job(self.rules["job_name"])))
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": [meta["__address__"]],
                                  "labels": {k: v for k, v in meta.items() if k != "__address__"}}]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            json.dump({"scrape_configs": [job]}, f)
        try:
            r = subprocess.run([promtool, "check", "service-discovery", f.name, job["job_name"], "--timeout=100ms"],
                               capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(f.name)
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)
        (target,) = json.loads(r.stdout)
        return {k: v for k, v in target["labels"].items() if not k.startswith("__")}

    def test_promtool_final_labels(self):
        promtool = harness.require_tool("promtool")
        meta = {"__address__": "10.1.2.3:8080", "__meta_kubernetes_namespace": "shop",
                "__meta_kubernetes_pod_name": "cart-7d9f", "__meta_kubernetes_pod_container_name": "cart",
                "__meta_kubernetes_pod_container_port_number": "8080",
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_port": "8080",
                "__meta_kubernetes_pod_annotation_anorak_dev_sampling_frequency": "99"}
        self.assertEqual({"job": "kubernetes-pods", "instance": "10.1.2.3:8080", "namespace": "shop",
                          "pod": "cart-7d9f", "container": "cart"}, self.service_discovery(promtool, meta))

    # --- Parca and Alloy -----------------------------------------------------------------------------

    def discovery_matches_daemonset(self, label_rules, port_regex):
        """label_rules: (label name, regex) keep rules on pod labels; port_regex: keep on port name."""
        labels = self.pod_labels()
        for name, regex in label_rules:
            key = [k for k in labels if re.sub(r"[^A-Za-z0-9_]", "_", k) == name]
            self.assertTrue(key, "no DaemonSet pod label for %s" % name)
            self.assertRegex(labels[key[0]], "^(?:%s)$" % regex)
        self.assertRegex("http", "^(?:%s)$" % port_regex)

    def test_parca(self):
        with open(os.path.join(INTEGRATIONS, "parca", "parca.yaml")) as f:
            cfg = yaml.safe_load(f)
        self.assertIn("object_storage", cfg)
        (job,) = cfg["scrape_configs"]
        self.assertLessEqual(set(job), PARCA_SCRAPE_KEYS)
        self.assertEqual(self.rules["job_name"], job["job_name"])
        self.assertGreater(seconds(job["scrape_timeout"]), seconds(job["scrape_interval"]), "Parca wants timeout > interval")
        pprof = job["profiling_config"]["pprof_config"]
        self.assertEqual({"enabled": True, "path": "/debug/pprof/profile", "delta": True}, pprof["process_cpu"])
        for other in ("memory", "block", "goroutine", "mutex"):
            self.assertIs(False, pprof[other]["enabled"], other)
        self.assertEqual({"enabled": False, "path": "/debug/pprof/offcpu", "delta": True}, pprof["process_offcpu"])
        self.assertEqual({"process_cpu", "process_offcpu", "memory", "block", "goroutine", "mutex"}, set(pprof))
        keep = {(r["source_labels"][0], r["regex"]) for r in job["relabel_configs"] if r.get("action") == "keep"}
        pod_rules = [(s[len("__meta_kubernetes_pod_label_"):], rx) for s, rx in keep if s.startswith("__meta_kubernetes_pod_label_")]
        port = [rx for s, rx in keep if s == "__meta_kubernetes_pod_container_port_name"]
        self.assertTrue(pod_rules and port)
        self.discovery_matches_daemonset(pod_rules, port[0])
        self.no_sample_label_overwritten([r.get("target_label") for r in job["relabel_configs"]])

    def no_sample_label_overwritten(self, target_labels):
        """A scrape target label with a sample label's name would hide or rename the sample's."""
        sample = {r["target_label"] for r in self.rules["relabel_configs"] if not r["target_label"].startswith("__")}
        self.assertEqual(set(), sample & set(target_labels))

    def test_alloy(self):
        with open(os.path.join(INTEGRATIONS, "alloy", "config.alloy")) as f:
            blocks = parse_alloy(f.read())
        comps = {(b["name"], b["label"]): b for b in blocks}
        (scrape,) = [b for b in blocks if b["name"] == "pyroscope.scrape"]
        a = scrape["attrs"]
        self.assertEqual(self.rules["job_name"], alloy_string(a["job_name"]))
        interval, timeout = seconds(alloy_string(a["scrape_interval"])), seconds(alloy_string(a["scrape_timeout"]))
        self.assertLessEqual(timeout, interval, "Alloy refuses scrape_timeout > scrape_interval")
        self.assertGreaterEqual(timeout, interval - 1, "the ?seconds= window must fit in the timeout")
        (pc,) = [b for b in scrape["blocks"] if b["name"] == "profiling_config"]
        profiles = {b["name"] + (" " + b["label"] if b["label"] else ""): b["attrs"] for b in pc["blocks"]}
        offcpu = profiles["profile.custom process_offcpu"]
        self.assertEqual(("false", "true", "/debug/pprof/offcpu"),
                         (offcpu["enabled"], offcpu["delta"], alloy_string(offcpu["path"])))
        self.assertEqual("true", profiles["profile.process_cpu"]["enabled"])
        self.assertEqual("true", profiles["profile.process_cpu"].get("delta", "true"))
        self.assertEqual("/debug/pprof/profile", alloy_string(profiles["profile.process_cpu"].get("path", '"/debug/pprof/profile"')))
        for other in ("memory", "block", "goroutine", "mutex"):  # enabled by default in Alloy
            self.assertEqual("false", profiles["profile." + other]["enabled"], other)
        # forward_to and targets name components of the file.
        refs = re.findall(r"([a-z_]+\.[a-z_]+)\.([a-z_]+)\.(?:receiver|targets|output)", a["forward_to"] + " " + a["targets"])
        for name, label in refs:
            self.assertIn((name, label), comps, "reference to %s.%s" % (name, label))
        (disc,) = [b for b in blocks if b["name"] == "discovery.kubernetes"]
        self.assertEqual("pod", alloy_string(disc["attrs"]["role"]))
        (sel,) = [b for b in disc["blocks"] if b["name"] == "selectors"]
        key, value = alloy_string(sel["attrs"]["label"]).split("=", 1)
        self.assertEqual(value, self.pod_labels().get(key), "discovery selector %s" % key)
        (relabel,) = [b for b in blocks if b["name"] == "discovery.relabel"]
        port = [r["attrs"] for r in relabel["blocks"]
                if r["attrs"].get("source_labels") == '["__meta_kubernetes_pod_container_port_name"]']
        self.assertEqual('"keep"', port[0]["action"])
        self.discovery_matches_daemonset([], alloy_string(port[0]["regex"]))
        self.no_sample_label_overwritten([alloy_string(r["attrs"]["target_label"]) for r in relabel["blocks"]
                                          if "target_label" in r["attrs"]])

    def test_alloy_reader_refuses_garbage(self):
        with self.assertRaises(AssertionError):
            parse_alloy('pyroscope.scrape "x" {\n  targets = []\n')
        with self.assertRaises(AssertionError):
            parse_alloy('a "b" {\n  ??? \n}\n')


if __name__ == "__main__":
    harness.main(total_timeout=120)
