#!/usr/bin/env python3
"""End to end with a fake API server and kubelet-shaped cgroups: a CPU burner in a pod's container
cgroup gets exactly the labels Prometheus' kubernetes_sd_configs (role pod) and the same
relabel_configs give that container; a pod dropped by a rule is stopped by the BPF cgroup filter; a
label change applies from then on; a deleted pod's target goes away; /api/v1/targets lists them all;
/-/ready waits for the first pod list."""
import json
import os
import tempfile
import time
import unittest

import harness as h
import kube

HZ = 99

CONFIG = """job_name: kubernetes-pods
relabel_configs:
  - source_labels: [__meta_kubernetes_pod_label_profiling]
    regex: "off"
    action: drop
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_container_name]
    target_label: container
"""


class Kubernetes(kube.ClusterTestCase):
    def setUp(self):
        super().setUp()
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(CONFIG)
            self.config = f.name

    def tearDown(self):
        super().tearDown()
        os.unlink(self.config)

    def burn(self, pod_uid, cid, seconds):
        path = self.cgroups.container(pod_uid, cid)
        w = self.cgroups.start(path, [h.workload("weights"), "-t", "1", "-d", str(seconds)])
        self.workloads.append(w)
        return w

    def test_pod_labels_filter_and_changes(self):
        web_uid, web_cid = kube.new_uid(), kube.container_id()
        batch_uid, batch_cid = kube.new_uid(), kube.container_id()
        web_labels = {"app": "web", "app.kubernetes.io/part-of": "shop"}
        web = kube.pod("web-0", "shop", web_uid, "127.0.1.10", [("app", web_cid, [8080, 9090])], web_labels)
        batch = kube.pod("batch-0", "jobs", batch_uid, "127.0.1.11", [("worker", batch_cid, [])],
                         {"app": "batch", "profiling": "off"})
        self.api.set_pod(web)
        self.api.set_pod(batch)
        web_w = self.burn(web_uid, web_cid, 40)
        batch_w = self.burn(batch_uid, batch_cid, 40)

        flags = ["--sampling.frequency=%d" % HZ, "--config.file=" + self.config,
                 "--kubernetes.api-server=" + self.api.url, "--kubernetes.node-name=" + kube.NODE]
        with h.Daemon(*flags, name="k8s") as d:
            expected = {"job": "kubernetes-pods", "instance": "127.0.1.10:8080", "app": "web",
                        "app_kubernetes_io_part_of": "shop", "namespace": "shop", "pod": "web-0",
                        "container": "app"}
            # The scan links the containers' cgroups within a second of the list.
            deadline = time.time() + 10 * h.TIME_SCALE
            while time.time() < deadline:
                m = d.get("/metrics").text()
                if (h.metric(m, "anorak_bpf_cgroup_policies") or 0) >= 1:
                    break
                time.sleep(0.2)
            self.assertEqual(h.metric(m, "anorak_bpf_cgroup_policies"), 1, "the dropped pod's cgroup has no policy")
            self.assertEqual(h.metric(m, "anorak_kubernetes_containers"), 2)
            time.sleep(1.5)  # samples taken before the policy was set are drained by now

            before = d.get("/metrics").text()
            cpu_before = batch_w.cpu_seconds()
            raw = d.profile(3)
            cpu_after = batch_w.cpu_seconds()
            after = d.get("/metrics").text()
            p = h.check_profile(self, raw, "kubernetes profile")

            mine = p.of_pid(web_w.pid)
            self.assertTrue(mine, "no sample of the pod's container")
            for x in mine:
                self.assertEqual(x.labels, expected, "labels of a sample of web-0/app")
            self.assertFalse(p.of_pid(batch_w.pid), "a pod the rules drop was served")

            # The dropped pod is stopped by the BPF filter: every one of its samples in the window,
            # none discarded later at the drain.
            filtered = h.metric(after, "anorak_bpf_filtered_samples_total") - h.metric(before, "anorak_bpf_filtered_samples_total")
            expected_samples = (cpu_after - cpu_before) * HZ
            h.note("batch: %.2f CPU s in the window, %d samples filtered in BPF (%.0f expected)" % (
                cpu_after - cpu_before, filtered, expected_samples))
            self.assertGreater(expected_samples, 20, "the dropped pod's workload did not run")
            self.assertGreater(filtered, 0.6 * expected_samples)
            self.assertLess(filtered, 1.4 * expected_samples + 10)
            self.assertEqual(h.metric(after, "anorak_target_dropped_samples_total"),
                             h.metric(before, "anorak_target_dropped_samples_total"),
                             "samples of the dropped pod reached the drain")

            # /api/v1/targets: Prometheus' shape, the discovered labels, the dropped target.
            t = json.loads(d.get("/api/v1/targets").text())
            self.assertEqual(t["status"], "success")
            actives = [a for a in t["data"]["activeTargets"] if a["labels"].get("pod") == "web-0"]
            self.assertEqual(len(actives), 1, t["data"]["activeTargets"])
            a = actives[0]
            self.assertEqual(a["labels"], expected)
            self.assertEqual(a["scrapePool"], "kubernetes-pods")
            self.assertEqual(a["health"], "up")
            self.assertEqual(a["samplingFrequency"], HZ)
            dl = a["discoveredLabels"]
            self.assertEqual(dl["__address__"], "127.0.1.10:8080")
            self.assertEqual(dl["__meta_kubernetes_pod_container_port_number"], "8080")
            self.assertEqual(dl["__meta_kubernetes_pod_container_id"], "containerd://" + web_cid)
            self.assertEqual(dl["__meta_kubernetes_pod_controller_kind"], "StatefulSet")
            self.assertEqual(dl["__meta_kubernetes_pod_labelpresent_app"], "true")
            self.assertEqual(dl["job"], "kubernetes-pods")
            dropped = [x for x in t["data"]["droppedTargets"]
                       if x["discoveredLabels"].get("__meta_kubernetes_pod_name") == "batch-0"]
            self.assertEqual(len(dropped), 1)
            self.assertGreaterEqual(t["data"]["droppedTargetCounts"]["kubernetes-pods"], 1)

            # A label change applies from then on.
            changed = kube.pod("web-0", "shop", web_uid, "127.0.1.10", [("app", web_cid, [8080, 9090])],
                               dict(web_labels, app="web-v2"))
            self.api.set_pod(changed)
            time.sleep(1.5)
            p = h.check_profile(self, d.profile(2), "profile after the label change")
            mine = p.of_pid(web_w.pid)
            self.assertTrue(mine)
            self.assertEqual({x.labels["app"] for x in mine}, {"web-v2"})

            # A deleted pod's target is gone; its processes are host targets again.
            self.api.delete_pod(web_uid)
            time.sleep(1.5)
            t = json.loads(d.get("/api/v1/targets").text())
            self.assertFalse([a for a in t["data"]["activeTargets"] if a["labels"].get("pod") == "web-0"])
            p = h.check_profile(self, d.profile(2), "profile after the pod was deleted")
            mine = p.of_pid(web_w.pid)
            self.assertTrue(mine)
            self.assertEqual({x.labels.get("pod") for x in mine}, {None})

    def test_ready_waits_for_the_pod_list(self):
        port = h.free_port()  # nothing listens there yet
        flags = ["--kubernetes.api-server=http://127.0.0.1:%d" % port, "--kubernetes.node-name=" + kube.NODE]
        d = h.Daemon(*flags, name="k8s-unready")
        d.start(wait_ready=False)
        try:
            # Listening takes a while on a loaded machine (the BPF verifier): wait for it, not a fixed time.
            deadline = time.monotonic() + h.READY_TIMEOUT
            while "listening" not in d.log():
                self.assertLess(time.monotonic(), deadline, "anorak never listened")
                time.sleep(0.1)
            time.sleep(1 * h.TIME_SCALE)  # a few list attempts fail meanwhile
            self.assertEqual(d.get("/-/healthy").status, 200)
            self.assertEqual(d.get("/-/ready").status, 503, "ready before any pod list")
            self.assertRegex(d.get("/metrics").text(), r'(?m)^anorak_kubernetes_requests_total\{[^}]*result="network_error"[^}]*\} [1-9]')
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
