"""Kubernetes for integration tests, without Kubernetes: a fake API server on 127.0.0.1 that lists and
watches the pods of one node, and kubelet-shaped cgroup2 directories (systemd driver, containerd) to
move workload processes into.

FakeAPIServer keeps a dict of pods; set_pod()/delete_pod() change it and push ADDED/MODIFIED/DELETED
events to every open watch (chunked, one JSON object per line, as the API server streams them).
"""
import json
import os
import queue
import threading
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import harness as h

NODE = "test-node"


def pod(name, namespace, uid, ip, containers, labels=None, annotations=None):
    """A running pod; containers is a list of (name, container_id, [ports])."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": labels or {},
                     "annotations": annotations or {}, "resourceVersion": "1",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name.rsplit("-", 1)[0],
                                          "uid": "owner-" + uid, "controller": True}]},
        "spec": {"nodeName": NODE, "containers": [
            {"name": c, "image": "example/%s:1" % c,
             "ports": [{"containerPort": p, "protocol": "TCP"} for p in ports]} for c, _, ports in containers]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": c, "ready": True,
                                          "containerID": "containerd://" + cid if cid else ""}
                                         for c, cid, _ in containers]},
    }


class FakeAPIServer:
    def __init__(self, port=0):
        """port: 0 for a free one; an earlier server's port to stand in for it after a restart."""
        self.pods = {}
        self.rv = 100
        self.lock = threading.Lock()
        self.watches = []
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                q = parse_qs(url.query)
                server.requests.append(self.path)
                if url.path != "/api/v1/pods" or q.get("fieldSelector") != ["spec.nodeName=" + NODE]:
                    self.send_error(400, "unexpected request " + self.path)
                    return
                if q.get("watch") == ["true"] or q.get("watch") == ["1"]:
                    self.watch()
                else:
                    self.list()

            def list(self):
                with server.lock:
                    body = json.dumps({"kind": "PodList", "apiVersion": "v1",
                                       "metadata": {"resourceVersion": str(server.rv)},
                                       "items": list(server.pods.values())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def watch(self):
                events = queue.Queue()
                with server.lock:
                    server.watches.append(events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while True:
                        try:
                            ev = events.get(timeout=1)
                        except queue.Empty:
                            if server.stopping:
                                break
                            continue
                        if ev is None:
                            break
                        data = (json.dumps(ev) + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass
                finally:
                    with server.lock:
                        server.watches.remove(events)
                # A closed server keeps no connection open for the client to reuse.
                self.close_connection = self.close_connection or server.stopping

        self.stopping = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _push(self, kind, obj):
        for w in self.watches:
            w.put({"type": kind, "object": obj})

    def set_pod(self, p):
        with self.lock:
            self.rv += 1
            p["metadata"]["resourceVersion"] = str(self.rv)
            kind = "MODIFIED" if p["metadata"]["uid"] in self.pods else "ADDED"
            self.pods[p["metadata"]["uid"]] = p
            self._push(kind, p)

    def delete_pod(self, uid):
        with self.lock:
            self.rv += 1
            p = self.pods.pop(uid)
            p["metadata"]["resourceVersion"] = str(self.rv)
            self._push("DELETED", p)

    def close(self):
        self.stopping = True
        with self.lock:
            for w in self.watches:
                w.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    raise AssertionError("no cgroup2 hierarchy mounted (/proc/self/mountinfo)")


class KubeletCgroups:
    """Pod and container cgroups as the kubelet's systemd driver names them, under a test root."""

    def __init__(self):
        self.mount = cgroup2_mount()
        self.root = os.path.join(self.mount, "anorak-test-%d" % os.getpid(), "kubepods.slice",
                                 "kubepods-burstable.slice")
        os.makedirs(self.root)
        self.dirs = []

    def container(self, pod_uid, container_id):
        pod_dir = os.path.join(self.root, "kubepods-burstable-pod%s.slice" % pod_uid.replace("-", "_"))
        path = os.path.join(pod_dir, "cri-containerd-%s.scope" % container_id)
        os.makedirs(path)
        self.dirs += [path, pod_dir]
        return path

    def start(self, path, argv):
        """Starts argv inside the cgroup: the shell joins it, then execs the workload."""
        return h.Workload(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path] + argv)

    def close(self):
        top = os.path.dirname(os.path.dirname(self.root))
        for d in sorted(set(self.dirs), key=len, reverse=True) + [self.root, os.path.dirname(self.root), top]:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass


def new_uid():
    return str(uuid.uuid4())


def container_id():
    return uuid.uuid4().hex + uuid.uuid4().hex


class ClusterTestCase(unittest.TestCase):
    """A fake API server, kubelet-shaped cgroups and the workloads started in them, torn down after
    each test."""

    def setUp(self):
        h.require_daemon()
        self.api = FakeAPIServer()
        self.cgroups = KubeletCgroups()
        self.workloads = []

    def tearDown(self):
        for w in self.workloads:
            w.kill()
        self.cgroups.close()
        self.api.close()
