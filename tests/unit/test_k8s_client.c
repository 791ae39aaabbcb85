/*
 * The Kubernetes client against tests/fixtures/k8s/fake_apiserver.py (python3, loopback): list pages,
 * a watch with every event type, 410 handling, an oversized object, the server dying and coming back
 * with a rotated token. Plus the connection settings from kubeconfig and in-cluster.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "labels/k8s_client.h"
#include "labels/k8s_conn.h"
#include "common/metrics.h"

#define FAKE_SERVER FIXTURES_SRC_DIR "/k8s/fake_apiserver.py"
#define MAX_EVENTS 64

struct server {
	pid_t pid;
	int out; /* its stdout */
	char buf[4096];
	size_t len;
};

struct recorder {
	pthread_mutex_t lock;
	char events[MAX_EVENTS][96];
	size_t n;
};

static char python3[512];

static bool find_python3(void)
{
	const char *path = getenv("PATH");
	char dirs[4096], *save = NULL;

	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(python3, sizeof(python3), "%s/python3", d);
		if (access(python3, X_OK) == 0)
			return true;
	}
	return false;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The next line of the server's output starting with prefix (others are skipped), within timeout. */
static bool server_line(struct server *s, const char *prefix, char *out, size_t outlen, double timeout)
{
	double deadline = now_s() + timeout;

	for (;;) {
		char *nl;

		while ((nl = memchr(s->buf, '\n', s->len))) {
			size_t n = (size_t)(nl - s->buf);
			bool match = strncmp(s->buf, prefix, strlen(prefix)) == 0;

			if (match)
				snprintf(out, outlen, "%.*s", (int)n, s->buf);
			memmove(s->buf, nl + 1, s->len - n - 1);
			s->len -= n + 1;
			if (match)
				return true;
		}
		struct pollfd p = { .fd = s->out, .events = POLLIN };
		int left = (int)((deadline - now_s()) * 1000);

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		ssize_t r = read(s->out, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
		if (r <= 0)
			return false;
		s->len += (size_t)r;
	}
}

static int server_start(struct server *s, const char *token, int port, const char *scenario)
{
	char port_arg[16], line[64];
	int fds[2];

	snprintf(port_arg, sizeof(port_arg), "%d", port);
	assert_int_equal(pipe(fds), 0);
	*s = (struct server){ .out = fds[0] };
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(python3, "python3", FAKE_SERVER, "--token", token, "--port", port_arg,
		      "--scenario", scenario, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	if (!server_line(s, "PORT ", line, sizeof(line), 10))
		fail_msg("fake API server did not start");
	return atoi(line + 5);
}

static void server_kill(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		close(s->out);
		s->pid = 0;
	}
}

static void record(void *ctx, const struct k8s_pod *pod, bool deleted)
{
	struct recorder *r = ctx;

	pthread_mutex_lock(&r->lock);
	if (r->n < MAX_EVENTS)
		snprintf(r->events[r->n++], sizeof(r->events[0]), "%s %s/%s %s", deleted ? "DEL" : "UPD",
			 pod->namespace, pod->name, pod->resource_version);
	pthread_mutex_unlock(&r->lock);
}

static size_t recorded(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static bool wait_events(struct recorder *r, size_t n, double timeout)
{
	double deadline = now_s() + timeout;

	while (recorded(r) < n && now_s() < deadline)
		usleep(20000);
	return recorded(r) >= n;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_list_watch_relist_backoff(void **state)
{
	(void)state;
	static const char *const want[] = {
		"UPD default/a 10",  "UPD default/b 11",  "UPD default/c 12", /* two list pages */
		"UPD default/d 101", "UPD default/a 102", "DEL default/b 104", /* watch, then ERROR 410 */
		"UPD default/d 150", "DEL default/c 12", /* relist after a 410 list: a unchanged, c gone */
		"UPD default/d 201", "UPD default/e 202", /* resumed watch; the oversized object skipped */
		"UPD default/f 300", /* after the server died and came back */
	};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	struct recorder rec = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char dir[] = "/tmp/anorak-k8s-XXXXXX", path[256], tmp[256], text[512], line[256];
	struct k8s_client_stats st;
	struct k8s_client *client;
	struct server srv;
	double t0;
	int port;

	if (!find_python3())
		fail_msg("python3 is missing (needed for the fake API server)");
	assert_non_null(mkdtemp(dir));
	port = server_start(&srv, "tok-1", 0, "main");

	/* A kubeconfig with a relative tokenFile, so the token is re-read when it rotates. */
	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, "tok-1\n");
	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
		 "clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:%d/\n"
		 "users:\n- name: bot\n  user:\n    tokenFile: token\n"
		 "contexts:\n- name: test\n  context: {cluster: fake, user: bot}\n",
		 port);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	write_file(path, text);

	struct k8s_client_config cfg = {
		.kubeconfig = path,
		.node_name = "node-1",
		.watch_timeout_s = 30,
		.max_object_bytes = 64 * 1024,
		.backoff_min_ms = 100,
		.backoff_max_ms = 400,
	};
	assert_int_equal(k8s_client_start(&cfg, record, &rec, &client), 0);

	assert_true(wait_events(&rec, 10, 20));
	assert_true(k8s_client_synced(client));
	if (!server_line(&srv, "BOOKMARK-SENT", line, sizeof(line), 10))
		fail_msg("the third watch did not start");
	sleep(1); /* let the client read the bookmark before the server dies */

	/* Rotate the token the way kubelet does (a new file renamed over the old), then kill. */
	snprintf(tmp, sizeof(tmp), "%s/token.new", dir);
	write_file(tmp, "tok-2\n");
	snprintf(path, sizeof(path), "%s/token", dir);
	assert_int_equal(rename(tmp, path), 0);
	server_kill(&srv);

	t0 = now_s();
	do {
		usleep(20000);
		k8s_client_stats(client, &st);
	} while (st.requests[K8S_REQ_WATCH][K8S_RES_NETWORK_ERROR] < 3 && now_s() - t0 < 10);
	assert_true(st.requests[K8S_REQ_WATCH][K8S_RES_NETWORK_ERROR] >= 3);
	assert_true(st.backoff_ms >= 100);
	assert_int_equal(st.pods, 3); /* a, d, e: kept while the server is away */
	assert_true(st.synced);

	assert_int_equal(server_start(&srv, "tok-2", port, "recover"), port);
	assert_true(wait_events(&rec, nwant, 10));

	struct metrics_buf m = { 0 };
	assert_int_equal(metrics_render(&m), 0);
	assert_non_null(strstr(m.data, "anorak_kubernetes_synced 1\n"));
	assert_non_null(strstr(m.data, "anorak_kubernetes_objects_skipped_total{reason=\"too_large\"} 1\n"));
	assert_non_null(strstr(m.data, "anorak_kubernetes_pods 4\n"));
	assert_non_null(strstr(m.data, "anorak_kubernetes_relists_total 2\n"));
	assert_non_null(strstr(m.data, "anorak_kubernetes_requests_total{request=\"watch\",result=\"gone\"} 1\n"));
	metrics_buf_free(&m);

	t0 = now_s();
	k8s_client_stats(client, &st);
	k8s_client_stop(client);
	assert_true(now_s() - t0 < 3);
	server_kill(&srv);

	assert_int_equal(rec.n, nwant);
	for (size_t i = 0; i < nwant; i++)
		assert_string_equal(rec.events[i], want[i]);
	assert_int_equal(st.pods, 4);
	assert_int_equal(st.relists, 2); /* the ERROR 410 event and the 410 list */
	assert_int_equal(st.requests[K8S_REQ_WATCH][K8S_RES_GONE], 1);
	assert_int_equal(st.requests[K8S_REQ_LIST][K8S_RES_GONE], 1);
	assert_int_equal(st.requests[K8S_REQ_LIST][K8S_RES_SUCCESS], 3);
	assert_int_equal(st.requests[K8S_REQ_LIST][K8S_RES_HTTP_ERROR], 0); /* refused requests */
	assert_int_equal(st.requests[K8S_REQ_WATCH][K8S_RES_HTTP_ERROR], 0);
	assert_int_equal(st.requests[K8S_REQ_WATCH][K8S_RES_SUCCESS], 1); /* watch 2 ended cleanly */
	assert_int_equal(st.watch_restarts, 1);
	assert_int_equal(st.skipped[K8S_SKIP_TOO_LARGE], 1);
	assert_int_equal(st.skipped[K8S_SKIP_INVALID], 0);

	unlink(path);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	unlink(path);
	rmdir(dir);
}

static void test_kubeconfig(void **state)
{
	(void)state;
	char dir[] = "/tmp/anorak-kc-XXXXXX", path[256];
	struct k8s_conn conn;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/config", dir);
	/* "Q0EtUEVN" is base64 of "CA-PEM", "S0VZ" of "KEY". */
	write_file(path,
		   "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
		   "clusters:\n"
		   "- name: other\n  cluster: {server: 'https://other:6443'}\n"
		   "- name: prod\n  cluster:\n    server: https://127.0.0.1:6443\n"
		   "    certificate-authority-data: Q0EtUEVN\n    insecure-skip-tls-verify: true\n"
		   "users:\n- name: admin\n  user:\n    client-certificate: certs/admin.crt\n"
		   "    token: abc.def\n"
		   "contexts:\n- name: prod\n  context:\n    cluster: prod\n    user: admin\n"
		   "    namespace: default\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), -EINVAL); /* a certificate without a key */

	write_file(path,
		   "current-context: prod\n"
		   "clusters:\n- name: prod\n  cluster:\n    server: https://127.0.0.1:6443\n"
		   "    certificate-authority-data: Q0EtUEVN\n    insecure-skip-tls-verify: true\n"
		   "users:\n- name: admin\n  user:\n    client-certificate: certs/admin.crt\n"
		   "    client-key: /etc/admin.key\n    token: abc.def\n"
		   "contexts:\n- name: prod\n  context: {cluster: prod, user: admin}\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), 0);
	assert_string_equal(conn.server, "https://127.0.0.1:6443");
	assert_int_equal(conn.ca.len, 6);
	assert_memory_equal(conn.ca.data, "CA-PEM", 6);
	assert_null(conn.ca.file);
	assert_true(conn.insecure);
	assert_string_equal(conn.token, "abc.def");
	assert_null(conn.token_file);
	char want[300];
	snprintf(want, sizeof(want), "%s/certs/admin.crt", dir);
	assert_string_equal(conn.cert.file, want);
	assert_string_equal(conn.key.file, "/etc/admin.key");
	k8s_conn_free(&conn);

	write_file(path,
		   "current-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://k:443', "
		   "certificate-authority: ca.pem}\nusers:\n- name: u\n  user:\n    client-certificate-data: "
		   "Q0EtUEVN\n    client-key-data: S0VZ\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), 0);
	assert_false(conn.insecure);
	snprintf(want, sizeof(want), "%s/ca.pem", dir);
	assert_string_equal(conn.ca.file, want);
	assert_int_equal(conn.key.len, 3);
	assert_memory_equal(conn.key.data, "KEY", 3);
	assert_null(conn.token);
	k8s_conn_free(&conn);

	write_file(path,
		   "current-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://k:443'}\n"
		   "users:\n- name: u\n  user:\n    exec: {command: aws}\n"
		   "contexts:\n- name: c\n  context: {cluster: k, user: u}\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), -ENOTSUP);
	write_file(path, "clusters: []\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), -EINVAL);
	write_file(path, "current-context: [unclosed\n");
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), -EINVAL);
	unlink(path);
	rmdir(dir);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(k8s_conn_from_kubeconfig(path, &conn), -ENOENT);
}

static void test_in_cluster(void **state)
{
	(void)state;
	struct k8s_conn conn;

	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_int_equal(k8s_conn_in_cluster("/sa", &conn), -ENOENT);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.96.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(k8s_conn_in_cluster("/sa", &conn), 0);
	assert_string_equal(conn.server, "https://127.0.96.1:443");
	assert_string_equal(conn.token_file, "/sa/token");
	assert_string_equal(conn.ca.file, "/sa/ca.crt");
	k8s_conn_free(&conn);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(k8s_conn_in_cluster("/sa", &conn), 0);
	assert_string_equal(conn.server, "https://[fd00::1]:443");
	k8s_conn_free(&conn);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");

	assert_int_equal(k8s_conn_from_url("ftp://x", &conn), -EINVAL);
	assert_int_equal(k8s_conn_from_url("http://127.0.0.1:8001//", &conn), 0);
	assert_string_equal(conn.server, "http://127.0.0.1:8001");
	k8s_conn_free(&conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubeconfig),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_list_watch_relist_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
