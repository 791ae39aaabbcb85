#!/usr/bin/env python3
"""--web.config.file: HTTPS with a self-signed certificate made here by openssl, basic auth with a bcrypt
user (wrong password 401, plain HTTP refused, right password a valid profile), users re-read when the
file changes, client certificates required when the file says so, and a bad file a startup error."""
import ctypes
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness as h


def bcrypt(password):
    """A bcrypt hash from libxcrypt (what the daemon checks with), at the lowest cost."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2y$", 4, None, 0)
    return lib.crypt(password.encode(), salt).decode()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    """server.crt/key for 127.0.0.1, and a CA that signs client.crt/key."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "server.key", "-out", "server.crt", "-days", "1",
            "-subj", "/CN=anorak-test", "-addext", "subjectAltName=IP:127.0.0.1", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=anorak-test-ca", cwd=d)
    openssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=scraper", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.crt", "-days", "1", cwd=d)


def auth(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


class Client:
    def __init__(self, port, cafile, cert=None):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)
        if cert:
            self.ctx.load_cert_chain(*cert)

    def get(self, path, headers=None, timeout=20):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return h.Response(r.status, r.getheaders(), r.read(), 0)
        finally:
            conn.close()

    def wait_ready(self, d, headers):
        deadline = time.monotonic() + h.READY_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if d.proc.poll() is not None:
                raise AssertionError("anorak exited with %d; log:\n%s" % (d.proc.returncode, d.log_tail()))
            try:
                r = self.get("/-/ready", headers, timeout=2)
                if r.status == 200:
                    return
                last = r.status
            except OSError as e:
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError("not ready over TLS (last: %s); log:\n%s" % (last, d.log_tail()))


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class WebConfig(unittest.TestCase):
    def setUp(self):
        h.require_daemon()
        h.require_tool("openssl")
        self.dir = tempfile.mkdtemp(prefix="anorak-web-")
        make_certs(self.dir)
        self.path = os.path.join(self.dir, "web.yml")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_tls_basic_auth_and_reload(self):
        write(self.path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
              "basic_auth_users:\n  alice: %s\n" % bcrypt("s3cret"))
        d = h.Daemon("--sampling.frequency=99", "--web.config.file=" + self.path, name="web")
        d.start(wait_ready=False)
        try:
            c = Client(d.port, os.path.join(self.dir, "server.crt"))
            alice = auth("alice", "s3cret")
            c.wait_ready(d, alice)

            # No TLS: the server does not speak plain HTTP.
            with self.assertRaises((OSError, http.client.HTTPException)):
                r = h.http_get(d.port, "/metrics", timeout=5)
                self.fail("plain HTTP answered %d" % r.status)

            for headers in ({}, auth("alice", "wrong"), auth("mallory", "s3cret")):
                r = c.get("/metrics", headers)
                self.assertEqual(r.status, 401, headers)
                self.assertEqual(r.header("WWW-Authenticate"), "Basic")

            r = c.get("/debug/pprof/profile?seconds=2", alice, timeout=30 * h.TIME_SCALE)
            self.assertEqual(r.status, 200, r.text()[:300])
            h.check_profile(self, r.body, "profile over TLS")
            metrics = c.get("/metrics", alice).text()
            self.assertRegex(metrics, r'(?m)^anorak_http_requests_total\{handler="/metrics",code="401"\} [3-9]')

            # Users are re-read when the file changes; TLS stays as it started.
            write(self.path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                  "basic_auth_users:\n  bob: %s\n" % bcrypt("hunter2"))
            self.assertEqual(c.get("/-/healthy", alice).status, 401)
            self.assertEqual(c.get("/-/healthy", auth("bob", "hunter2")).status, 200)

            # A broken file is logged and the last good one stays in force.
            write(self.path, "basic_auth_users:\n  bob: hunter2\n")
            self.assertEqual(c.get("/-/healthy", auth("bob", "hunter2")).status, 200)
            self.assertIn("web config not reloaded", d.log())
            self.assertIn("is not a bcrypt hash", d.log())
        finally:
            d.stop()

    def test_client_certificates(self):
        write(self.path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
              "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
              "  min_version: TLS13\n")
        d = h.Daemon("--web.config.file=" + self.path, name="web-mtls")
        d.start(wait_ready=False)
        try:
            j = lambda name: os.path.join(self.dir, name)
            good = Client(d.port, j("server.crt"), cert=(j("client.crt"), j("client.key")))
            good.wait_ready(d, {})
            self.assertEqual(good.get("/-/healthy").status, 200)
            # Without a certificate, and with one the CA did not sign (the server's own), no answer.
            for cert in (None, (j("server.crt"), j("server.key"))):
                with self.assertRaises((OSError, ssl.SSLError, http.client.HTTPException)):
                    r = Client(d.port, j("server.crt"), cert=cert).get("/-/healthy", timeout=5)
                    self.fail("answered %d with client certificate %s" % (r.status, cert))
            # TLS 1.2 is below min_version.
            old = ssl.create_default_context(cafile=j("server.crt"))
            old.load_cert_chain(j("client.crt"), j("client.key"))
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            with self.assertRaises(ssl.SSLError):
                with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
                    old.wrap_socket(s, server_hostname="127.0.0.1")
        finally:
            d.stop()

    def test_bad_file_is_a_startup_error(self):
        cases = [
            ("basic_auth_users:\n  alice: plaintext\n", "is not a bcrypt hash"),
            ("tls_server_config:\n  cert_file: server.crt\n", "missing key_file"),
            ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "cannot load cert_file"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n", "key values mismatch"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [x]\n",
             "not supported"),
        ]
        for text, why in cases:
            write(self.path, text)
            d = h.Daemon("--web.config.file=" + self.path, name="web-bad")
            d.start(wait_ready=False)
            rc = d.wait_exit(10 * h.TIME_SCALE)
            d.kill()
            self.assertIsNotNone(rc, "anorak kept running with " + text)
            self.assertNotEqual(rc, 0, text)
            self.assertIn("invalid --web.config.file", d.log(), text)
            self.assertIn(why, d.log(), text)
            self.assertIn(self.path, d.log(), text)


if __name__ == "__main__":
    h.main(total_timeout=240)
