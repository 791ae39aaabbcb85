#!/usr/bin/env python3
"""Checks that the container image (Containerfile, .dockerignore, scripts/image.sh) and the DaemonSet
(integrations/kubernetes/daemonset.yaml) agree, without building anything:

- image: the DaemonSet runs anorak:<CMake project version>, the tag scripts/image.sh gives, with pull
  policy Never (the image is loaded on the nodes, not pulled);
- entry point: ENTRYPOINT is exactly the daemon the runtime stage copies in, with no CMD (the flags are
  the DaemonSet's args), and no USER other than the DaemonSet's runAsUser (root);
- capabilities: the list the Containerfile states as what the image needs is the DaemonSet's;
- ports: EXPOSE, the DaemonSet's port named http and its --web.listen-address, and anorak's default;
- paths: each hostPath the DaemonSet mounts is one the Containerfile says the image reads; the
  image declares no VOLUME (with readOnlyRootFilesystem nothing in it may expect to be written);
- labels: the OCI labels source, version, revision, licenses; version and revision from build args
  scripts/image.sh passes;
- build context: .dockerignore lets in every source folder CMakeLists.txt uses for the daemon, and
  keeps out build directories, .git and tests.

tests/integration/test_image.py runs the built image with podman options derived from the DaemonSet,
so what is checked there cannot drift either.
"""
import fnmatch
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

try:
    import yaml
except ImportError:
    yaml = None

SRC = os.environ.get("ANORAK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def read(*path):
    with open(os.path.join(SRC, *path)) as f:
        return f.read()


def instructions(text):
    """The Containerfile's instructions as (KEYWORD, argument) with continuation lines joined; a list
    per build stage (each starting with its FROM), after the ARGs before the first FROM."""
    stages = [[]]
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, arg = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), arg.strip()))
    return stages


def ignored(patterns, path):
    """.dockerignore semantics for the patterns used here: the last matching pattern decides, a
    leading ! lets a path back in, a pattern matches the path or a folder above it."""
    parts = path.strip("/").split("/")
    result = False
    for p in patterns:
        neg = p.startswith("!")
        p = p[1:] if neg else p
        p = p.strip("/")
        if any(fnmatch.fnmatchcase("/".join(parts[:i]), p) for i in range(1, len(parts) + 1)):
            result = not neg
    return result


class ImageAgreement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(yaml is not None, "python3-yaml not installed")
        cls.containerfile = read("Containerfile")
        cls.stages = instructions(cls.containerfile)
        cls.final = cls.stages[-1]
        cls.ds = yaml.safe_load(read("integrations", "kubernetes", "daemonset.yaml"))
        cls.pod = cls.ds["spec"]["template"]["spec"]
        (cls.c,) = cls.pod["containers"]
        cls.image_sh = read("scripts", "image.sh")
        cls.version = re.search(r"^project\(anorak VERSION ([0-9.]+)", read("CMakeLists.txt"), re.M).group(1)

    def final_args(self, word):
        return [a for w, a in self.final if w == word]

    def test_image_and_pull_policy(self):
        self.assertEqual("anorak:" + self.version, self.c["image"], "the DaemonSet's image")
        self.assertEqual("Never", self.c["imagePullPolicy"], "a locally loaded image is never pulled")
        self.assertIn('-t "anorak:$VERSION"', self.image_sh)
        self.assertIn("s/^project(anorak VERSION", self.image_sh, "image.sh takes the version from CMakeLists.txt")

    def test_entrypoint_is_the_daemon(self):
        (entry,) = self.final_args("ENTRYPOINT")
        (binary,) = eval(entry, {})  # exec form: a JSON list of one string
        self.assertIn("--from=build /anorak " + binary, self.final_args("COPY"))
        self.assertEqual([], self.final_args("CMD"), "flags come from the DaemonSet's args")
        self.assertTrue(self.c["args"], "the DaemonSet passes the flags")
        self.assertNotIn("command", self.c, "the DaemonSet keeps the image's ENTRYPOINT")
        for user in self.final_args("USER"):
            self.assertEqual(str(self.c["securityContext"]["runAsUser"]), user)

    def test_capabilities(self):
        m = re.search(r"root with the capabilities (.*?) and no others", re.sub(r"\s*\n#\s*", " ", self.containerfile))
        self.assertIsNotNone(m, "the Containerfile states the capabilities it needs")
        stated = set(re.split(r",\s*", m.group(1)))
        sc = self.c["securityContext"]
        self.assertEqual(set(sc["capabilities"]["add"]), stated)
        self.assertEqual(["ALL"], sc["capabilities"]["drop"])
        self.assertIs(False, sc.get("privileged", False))

    def test_ports(self):
        (expose,) = self.final_args("EXPOSE")
        port = int(expose.split("/")[0])
        ports = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        self.assertEqual(port, ports["http"])
        listen = [a.split("=", 1)[1] for a in self.c["args"] if a.startswith("--web.listen-address=")]
        for a in listen:
            self.assertEqual(port, int(a.rsplit(":", 1)[1]), a)
        bin_path = os.environ.get("ANORAK_BIN") or harness.ANORAK_BIN
        harness.require_file(bin_path, "the daemon (for --help)")
        out = subprocess.run([bin_path, "--help"], capture_output=True, text=True, timeout=30)
        default = re.search(r'--web\.listen-address=":(\d+)"', out.stdout + out.stderr)
        self.assertIsNotNone(default, "anorak --help shows the default listen address")
        self.assertEqual(port, int(default.group(1)), "EXPOSE is anorak's default port")

    def test_paths(self):
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        text = re.sub(r"\s+", " ", self.containerfile)
        # The one writable mount is the debuginfod cache the daemon is told to write to.
        writable = {a.split("=", 1)[1] for a in self.c["args"] if a.startswith("--symbols.debuginfod-cache-dir=")}
        for m in self.c["volumeMounts"]:
            v = volumes[m["name"]]
            self.assertIs(m["mountPath"] not in writable, bool(m.get("readOnly")), m["mountPath"])
            if "hostPath" in v and m["mountPath"] not in writable:
                self.assertIn(m["mountPath"] + " ", text, "the Containerfile names the mount " + m["mountPath"])
        self.assertEqual([], [a for st in self.stages for w, a in st if w == "VOLUME"])
        self.assertIs(True, self.c["securityContext"]["readOnlyRootFilesystem"])
        self.assertIs(True, self.pod["hostPID"], "stacks are read through the host's /proc/PID/root")

    def test_labels(self):
        labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', " ".join(self.final_args("LABEL"))))
        for key in ("source", "version", "revision", "licenses"):
            self.assertIn("org.opencontainers.image." + key, labels)
        for key, arg in (("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")):
            self.assertEqual("${%s}" % arg, labels["org.opencontainers.image." + key])
            self.assertIn("ARG " + arg, [w + " " + a.split("=")[0] for w, a in self.final])
            self.assertIn('--build-arg "%s=$%s"' % (arg, arg), self.image_sh)

    def test_build_context(self):
        patterns = [line.strip() for line in read(".dockerignore").splitlines()
                    if line.strip() and not line.startswith("#")]
        cmake = read("CMakeLists.txt")
        needed = set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([A-Za-z0-9_.-]+)", cmake))
        needed |= set(re.findall(r"^add_subdirectory\(([A-Za-z0-9_/.-]+)\)", cmake, re.M))
        needed -= {"tests"}  # the image builds with -DANORAK_TESTS=OFF
        needed |= {"CMakeLists.txt", "scripts/install-deps.sh"}
        for path in sorted(needed):
            self.assertFalse(ignored(patterns, path), "%s is needed by the image build but ignored" % path)
        for path in ("build", "build-asan", "build-fuzz", "build/anorak", ".git", "tests", "README.md"):
            self.assertTrue(ignored(patterns, path), "%s is sent to the image build" % path)
        self.assertIn("-DANORAK_TESTS=OFF", self.containerfile)


if __name__ == "__main__":
    harness.main(total_timeout=60)
