#!/usr/bin/env python3
"""The API server goes away and comes back while anorak runs: meanwhile anorak keeps serving and keeps
the pods it knew (a pod's samples keep their labels), its metrics count the failed requests and the
backoff; once the server is back the watch resumes and a pod added then gets its labels."""
import re
import time

import harness as h
import kube

HZ = 99
DOWN_SECONDS = 3  # short enough that the client's backoff (0.5 s doubling) stays within a few seconds


def failed_requests(text):
    return sum(float(v) for v in re.findall(r'(?m)^anorak_kubernetes_requests_total\{[^}]*result="(?!success)[^"]*"\} (\S+)$', text))


class APIServerRestart(kube.ClusterTestCase):
    def burn(self, pod_uid, cid, seconds):
        w = self.cgroups.start(self.cgroups.container(pod_uid, cid),
                               [h.workload("weights"), "-t", "1", "-d", str(seconds)])
        self.workloads.append(w)
        return w

    def pod_of(self, d, w, seconds=2):
        p = h.check_profile(self, d.profile(seconds), "profile")
        pods = {s.labels.get("pod") for s in p.of_pid(w.pid)}
        self.assertTrue(pods, "no sample of pid %d" % w.pid)
        return pods

    def wait_for(self, d, what, cond, timeout):
        deadline = time.monotonic() + timeout * h.TIME_SCALE
        while True:
            text = d.get("/metrics").text()
            if cond(text):
                return text
            self.assertLess(time.monotonic(), deadline, "timed out waiting for " + what)
            time.sleep(0.2)

    def test_api_server_killed_and_restarted(self):
        a_uid, a_cid = kube.new_uid(), kube.container_id()
        self.api.set_pod(kube.pod("web-0", "shop", a_uid, "127.0.1.10", [("app", a_cid, [8080])]))
        a = self.burn(a_uid, a_cid, 90)
        flags = ["--sampling.frequency=%d" % HZ, "--kubernetes.api-server=" + self.api.url,
                 "--kubernetes.node-name=" + kube.NODE]
        with h.Daemon(*flags, name="apirestart") as d:
            self.wait_for(d, "the container", lambda t: h.metric(t, "anorak_kubernetes_containers") == 1, 15)
            self.assertEqual(self.pod_of(d, a), {"web-0"})
            before = d.get("/metrics").text()

            port = self.api.port
            self.api.close()
            t_down = time.monotonic()
            # Down: still serving, the pod it knew still labels its samples, the failures are counted.
            self.assertEqual(d.get("/-/healthy").status, 200)
            self.assertEqual(self.pod_of(d, a), {"web-0"})
            down = self.wait_for(d, "failed requests to be counted",
                                 lambda t: failed_requests(t) > failed_requests(before), 15)
            self.assertEqual(h.metric(down, "anorak_kubernetes_pods"), 1)
            time.sleep(max(0, DOWN_SECONDS - (time.monotonic() - t_down)))

            self.api = kube.FakeAPIServer(port=port)
            a_pod = kube.pod("web-0", "shop", a_uid, "127.0.1.10", [("app", a_cid, [8080])])
            self.api.set_pod(a_pod)
            deadline = time.monotonic() + 40 * h.TIME_SCALE
            while not self.api.watches:
                self.assertLess(time.monotonic(), deadline, "anorak never watched the restarted server")
                time.sleep(0.2)
            b_uid, b_cid = kube.new_uid(), kube.container_id()
            self.api.set_pod(kube.pod("web-1", "shop", b_uid, "127.0.1.11", [("app", b_cid, [8080])]))
            b = self.burn(b_uid, b_cid, 60)
            after = self.wait_for(d, "the new pod's container",
                                  lambda t: h.metric(t, "anorak_kubernetes_containers") == 2, 20)
            self.assertEqual(self.pod_of(d, b), {"web-1"})
            self.assertEqual(self.pod_of(d, a), {"web-0"})
            self.assertEqual(h.metric(after, "anorak_kubernetes_synced"), 1)
            self.assertGreater(h.metric(after, "anorak_kubernetes_backoff_seconds_total"),
                               h.metric(before, "anorak_kubernetes_backoff_seconds_total"))
            h.note("failed requests %d -> %d, backoff %.1f s, watch restarts %d -> %d" % (
                failed_requests(before), failed_requests(after),
                h.metric(after, "anorak_kubernetes_backoff_seconds_total"),
                h.metric(before, "anorak_kubernetes_watch_restarts_total"),
                h.metric(after, "anorak_kubernetes_watch_restarts_total")))


if __name__ == "__main__":
    h.main(total_timeout=200)
