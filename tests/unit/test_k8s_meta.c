/* Pod JSON -> targets and their discovered labels, compared with what Prometheus' pod.go makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels/k8s_meta.h"
#include "labels/k8s_pod.h"

#define P "__meta_kubernetes_pod_"

static void load_pod(const char *name, struct k8s_pod *pod)
{
	char path[512], *buf;
	FILE *f;
	long len;

	snprintf(path, sizeof(path), "%s/k8s/%s", FIXTURES_SRC_DIR, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc(len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, len, f), (size_t)len);
	fclose(f);
	buf[len] = '\0';
	assert_int_equal(k8s_pod_parse(buf, len, pod), 0);
	free(buf);
}

static size_t count(const char *const *kv)
{
	size_t n = 0;

	while (kv && kv[n])
		n++;
	return n;
}

static void expect_in(const struct labelset *ls, const char *const *kv)
{
	for (size_t i = 0; kv && kv[i]; i++) {
		const char *eq = strchr(kv[i], '=');
		char name[256];

		assert_non_null(eq);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - kv[i]), kv[i]);
		const char *got = labelset_get(ls, name);
		if (!got || strcmp(got, eq + 1) != 0)
			fail_msg("label %s: want \"%s\", got \"%s\"", name, eq + 1, got ? got : "(absent)");
	}
}

/* The target's labels are exactly common + extra: same names, same values, nothing more. */
static void expect_labels(const struct k8s_target *t, const char *const *common,
			  const char *const *extra)
{
	if (t->labels.n != count(common) + count(extra)) {
		for (size_t i = 0; i < t->labels.n; i++)
			print_message("  %s=%s\n", t->labels.labels[i].name, t->labels.labels[i].value);
		fail_msg("want %zu labels, got %zu", count(common) + count(extra), t->labels.n);
	}
	expect_in(&t->labels, common);
	expect_in(&t->labels, extra);
}

static void targets_of(const char *fixture, struct k8s_target **t, size_t *n)
{
	struct k8s_pod pod;

	load_pod(fixture, &pod);
	assert_int_equal(k8s_pod_targets(&pod, t, n), 0);
	k8s_pod_free(&pod);
}

static void test_multi_container_ports(void **state)
{
	(void)state;
	static const char *const common[] = {
		"__meta_kubernetes_namespace=shop",
		P "name=web-7d4b9c6f5d-x2k8p",
		P "ip=127.0.1.23",
		P "ready=true",
		P "phase=Running",
		P "node_name=node-1",
		P "host_ip=127.0.0.11",
		P "uid=6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
		P "controller_kind=ReplicaSet",
		P "controller_name=web-7d4b9c6f5d",
		P "label_app_kubernetes_io_name=web",
		P "labelpresent_app_kubernetes_io_name=true",
		P "label_app_kubernetes_io_part_of=shop",
		P "labelpresent_app_kubernetes_io_part_of=true",
		P "labelpresent_empty_value=true", /* the empty value itself is not a label */
		P "label_pod_template_hash=7d4b9c6f5d",
		P "labelpresent_pod_template_hash=true",
		P "label_tier=frontend",
		P "labelpresent_tier=true",
		P "annotation_anorak_dev_sampling_frequency=99",
		P "annotationpresent_anorak_dev_sampling_frequency=true",
		P "annotation_kubectl_kubernetes_io_restartedAt=2024-03-01T09:59:00Z",
		P "annotationpresent_kubectl_kubernetes_io_restartedAt=true",
		P "annotation_prometheus_io_scrape=true",
		P "annotationpresent_prometheus_io_scrape=true",
		NULL,
	};
	static const char *const http[] = {
		"__address__=127.0.1.23:8080",
		P "container_name=app",
		P "container_id=containerd://a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4abcd",
		P "container_image=registry.example.com/shop/web:1.4.2",
		P "container_init=false",
		P "container_port_number=8080",
		P "container_port_name=http",
		P "container_port_protocol=TCP",
		NULL,
	};
	static const char *const unnamed[] = {
		"__address__=127.0.1.23:9090",
		P "container_name=app",
		P "container_id=containerd://a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4abcd",
		P "container_image=registry.example.com/shop/web:1.4.2",
		P "container_init=false",
		P "container_port_number=9090",
		P "container_port_protocol=TCP",
		NULL,
	};
	static const char *const portless[] = {
		"__address__=127.0.1.23",
		P "container_name=log-shipper",
		P "container_id=containerd://1111111111111111111111111111111111111111111111111111111111111111",
		P "container_image=fluent/fluent-bit:2.2",
		P "container_init=false",
		NULL,
	};
	struct k8s_target *t;
	size_t n;

	targets_of("pod-multi.json", &t, &n);
	assert_int_equal(n, 3);
	expect_labels(&t[0], common, http);
	expect_labels(&t[1], common, unnamed);
	expect_labels(&t[2], common, portless);
	assert_string_equal(t[0].container_name, "app");
	assert_string_equal(t[0].container_id,
			    "a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4abcd");
	assert_string_equal(t[1].container_id, t[0].container_id);
	assert_string_equal(t[2].container_name, "log-shipper");
	assert_string_equal(t[2].container_id,
			    "1111111111111111111111111111111111111111111111111111111111111111");
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(t[i].pod_uid, "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b");
		assert_false(t[i].init);
	}
	k8s_targets_free(t, n);
}

static void test_init_containers(void **state)
{
	(void)state;
	static const char *const common[] = {
		"__meta_kubernetes_namespace=data",
		P "name=db-0",
		P "ip=127.0.1.40",
		P "ready=false",
		P "phase=Pending",
		P "node_name=node-1",
		P "host_ip=127.0.0.11",
		P "uid=0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a",
		P "controller_kind=StatefulSet",
		P "controller_name=db",
		P "label_statefulset_kubernetes_io_pod_name=db-0",
		P "labelpresent_statefulset_kubernetes_io_pod_name=true",
		NULL,
	};
	/* Regular containers first; a status without containerID means no container_id label. */
	static const char *const pg[] = {
		"__address__=127.0.1.40:5432",
		P "container_name=postgres",
		P "container_image=postgres:16",
		P "container_init=false",
		P "container_port_number=5432",
		P "container_port_name=pg",
		P "container_port_protocol=TCP",
		NULL,
	};
	static const char *const perms[] = {
		"__address__=127.0.1.40",
		P "container_name=init-perms",
		P "container_id=cri-o://b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
		P "container_image=busybox:1.36",
		P "container_init=true",
		NULL,
	};
	static const char *const migrate[] = {
		"__address__=127.0.1.40:6060",
		P "container_name=migrate",
		P "container_image=example/migrate:3",
		P "container_init=true",
		P "container_port_number=6060",
		P "container_port_name=debug",
		P "container_port_protocol=TCP",
		NULL,
	};
	struct k8s_target *t;
	size_t n;

	targets_of("pod-init.json", &t, &n);
	assert_int_equal(n, 3);
	expect_labels(&t[0], common, pg);
	expect_labels(&t[1], common, perms);
	expect_labels(&t[2], common, migrate);
	assert_false(t[0].init);
	assert_string_equal(t[0].container_id, "");
	assert_true(t[1].init);
	assert_string_equal(t[1].container_id,
			    "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
	assert_true(t[2].init);
	assert_string_equal(t[2].container_name, "migrate");
	assert_string_equal(t[2].container_id, "");
	k8s_targets_free(t, n);
}

static void test_no_pod_ip_no_targets(void **state)
{
	(void)state;
	struct k8s_target *t;
	size_t n = 99;

	targets_of("pod-noip.json", &t, &n);
	assert_int_equal(n, 0);
	assert_null(t);
}

static void test_host_network(void **state)
{
	(void)state;
	static const char *const want[] = {
		"__address__=127.0.0.11:9100",
		"__meta_kubernetes_namespace=monitoring",
		P "name=node-exporter-q7z5w",
		P "ip=127.0.0.11",
		P "ready=true",
		P "phase=Running",
		P "node_name=node-1",
		P "host_ip=127.0.0.11",
		P "uid=9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
		P "controller_kind=DaemonSet",
		P "controller_name=node-exporter",
		P "label_app=node-exporter",
		P "labelpresent_app=true",
		P "label_controller_revision_hash=5c9d8f7b6",
		P "labelpresent_controller_revision_hash=true",
		P "label_pod_template_generation=3",
		P "labelpresent_pod_template_generation=true",
		P "container_name=node-exporter",
		P "container_id=docker://cafebabecafebabecafebabecafebabecafebabecafebabecafebabecafebabe",
		P "container_image=quay.io/prometheus/node-exporter:v1.7.0",
		P "container_init=false",
		P "container_port_number=9100",
		P "container_port_name=metrics",
		P "container_port_protocol=TCP",
		NULL,
	};
	struct k8s_target *t;
	size_t n;

	targets_of("pod-hostnet.json", &t, &n);
	assert_int_equal(n, 1);
	expect_labels(&t[0], want, NULL);
	assert_string_equal(t[0].container_id,
			    "cafebabecafebabecafebabecafebabecafebabecafebabecafebabecafebabe");
	k8s_targets_free(t, n);
}

static void test_failed_terminating_pod_is_a_target(void **state)
{
	(void)state;
	static const char *const want[] = {
		"__address__=127.0.1.77",
		"__meta_kubernetes_namespace=jobs",
		P "name=batch-28471230-zx9qv",
		P "ip=127.0.1.77",
		P "ready=false",
		P "phase=Failed",
		P "node_name=node-1",
		P "host_ip=127.0.0.11",
		P "uid=12345678-90ab-4cde-8f01-234567890abc",
		P "controller_kind=Job",
		P "controller_name=batch-28471230",
		P "label_batch_kubernetes_io_job_name=batch-28471230",
		P "labelpresent_batch_kubernetes_io_job_name=true",
		P "label_job_name=batch-28471230",
		P "labelpresent_job_name=true",
		P "container_name=worker",
		P "container_id=containerd://deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
		P "container_image=example/worker@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		P "container_init=false",
		NULL,
	};
	struct k8s_target *t;
	size_t n;

	targets_of("pod-failed.json", &t, &n);
	assert_int_equal(n, 1);
	expect_labels(&t[0], want, NULL);
	k8s_targets_free(t, n);
}

/* No Ready condition, no hostIP, no statuses, a non-controller owner, an IPv6 pod IP, an unnamed UDP
 * port next to a named TCP one with the same number. */
static void test_bare_pod(void **state)
{
	(void)state;
	static const char *const common[] = {
		"__meta_kubernetes_namespace=edge",
		P "name=v6-pod",
		P "ip=fd00:10:244::5",
		P "ready=unknown",
		P "phase=Running",
		P "node_name=node-1",
		P "uid=abcdefab-cdef-4abc-8def-abcdefabcdef",
		P "container_name=dns",
		P "container_image=coredns/coredns:1.11.1",
		P "container_init=false",
		P "container_port_number=53",
		"__address__=[fd00:10:244::5]:53",
		NULL,
	};
	static const char *const udp[] = { P "container_port_protocol=UDP", NULL };
	static const char *const tcp[] = {
		P "container_port_protocol=TCP",
		P "container_port_name=dns-tcp",
		NULL,
	};
	struct k8s_target *t;
	size_t n;

	targets_of("pod-bare.json", &t, &n);
	assert_int_equal(n, 2);
	expect_labels(&t[0], common, udp);
	expect_labels(&t[1], common, tcp);
	assert_string_equal(t[0].container_id, "");
	k8s_targets_free(t, n);
}

static void test_sanitize(void **state)
{
	(void)state;
	char out[64];

	assert_int_equal(k8s_sanitize_label_name("app.kubernetes.io/name", out, sizeof(out)), 0);
	assert_string_equal(out, "app_kubernetes_io_name");
	assert_int_equal(k8s_sanitize_label_name("9Lives-x", out, sizeof(out)), 0);
	assert_string_equal(out, "9Lives_x");
	/* One '_' per UTF-8 character, one per invalid byte (as Go's regexp replaces runes). */
	assert_int_equal(k8s_sanitize_label_name("caf\xc3\xa9!\xff\xfe", out, sizeof(out)), 0);
	assert_string_equal(out, "caf____");
	assert_int_equal(k8s_sanitize_label_name("abcdef", out, 4), -ENAMETOOLONG);
}

static void test_decode_refuses(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{\"metadata\":{\"name\":\"x\"}}", /* no namespace */
		"[1,2]",
		"{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\"},\"spec\":{\"containers\":"
		"[{\"name\":\"c\",\"ports\":[{\"containerPort\":70000}]}]}}",
		"{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\",\"labels\":{\"a\":1}}}",
		"{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\"}} trailing",
		"{\"metadata\":",
	};
	struct k8s_pod pod;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(k8s_pod_parse(bad[i], strlen(bad[i]), &pod), -EINVAL);
		assert_null(pod.arena);
	}
}

static void test_decode_bounds(void **state)
{
	(void)state;
	size_t cap = 64 + (K8S_POD_MAX_CONTAINERS + 1) * 16, len;
	char *json = malloc(cap);
	struct k8s_pod pod;

	assert_non_null(json);
	len = (size_t)snprintf(json, cap, "{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\"},"
					  "\"spec\":{\"containers\":[");
	for (int i = 0; i <= K8S_POD_MAX_CONTAINERS; i++)
		len += (size_t)snprintf(json + len, cap - len, "%s{\"name\":\"c%d\"}", i ? "," : "", i);
	len += (size_t)snprintf(json + len, cap - len, "]}}");
	assert_true(len < cap);
	assert_int_equal(k8s_pod_parse(json, len, &pod), -EINVAL);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multi_container_ports),
		cmocka_unit_test(test_init_containers),
		cmocka_unit_test(test_no_pod_ip_no_targets),
		cmocka_unit_test(test_host_network),
		cmocka_unit_test(test_failed_terminating_pod_is_a_target),
		cmocka_unit_test(test_bare_pod),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_decode_refuses),
		cmocka_unit_test(test_decode_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
