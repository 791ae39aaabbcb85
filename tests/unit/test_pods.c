/* The pod store: containers as targets, found by cgroup, container id or pod uid; policies handed to
 * the BPF hook; live label changes; deletion; relabeling after a reload. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "labels/pods.h"

#define UID "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
#define APP_ID "a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4a3f5c0d2e1b4abcd"
#define LOG_ID "1111111111111111111111111111111111111111111111111111111111111111"

static const char *annotation = "";

/* A two-container pod: "app" declares ports 8080 and 9090, "log-shipper" none. */
static void make_pod(struct k8s_pod *pod, const char *tier, const char *app_id, const char *log_id)
{
	char json[2048];
	int n = snprintf(json, sizeof(json),
			 "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\",\"uid\":\"" UID "\","
			 "\"labels\":{\"tier\":\"%s\"},\"annotations\":{%s}},"
			 "\"spec\":{\"nodeName\":\"node-1\",\"containers\":["
			 "{\"name\":\"app\",\"image\":\"web:1\",\"ports\":[{\"name\":\"http\",\"containerPort\":8080,"
			 "\"protocol\":\"TCP\"},{\"containerPort\":9090,\"protocol\":\"TCP\"}]},"
			 "{\"name\":\"log-shipper\",\"image\":\"fluent-bit:2\"}]},"
			 "\"status\":{\"phase\":\"Running\",\"podIP\":\"127.0.1.23\",\"hostIP\":\"127.0.0.11\","
			 "\"containerStatuses\":[{\"name\":\"app\",\"containerID\":\"%s\"},"
			 "{\"name\":\"log-shipper\",\"containerID\":\"%s\"}]}}",
			 tier, annotation, app_id, log_id);

	assert_true(n > 0 && n < (int)sizeof(json));
	assert_int_equal(k8s_pod_parse(json, (size_t)n, pod), 0);
}

struct policy_call {
	uint64_t cgroup_id;
	bool present, dropped;
	unsigned frequency;
	bool has_path;
};

struct recorder {
	struct policy_call calls[16];
	size_t n;
};

static unsigned record_policy(void *ctx, uint64_t cgroup_id, const char *path, const struct pod_policy *policy)
{
	struct recorder *r = ctx;

	assert_true(r->n < 16);
	r->calls[r->n++] = (struct policy_call){ cgroup_id, policy != NULL, policy && policy->dropped,
						 policy ? policy->frequency : 0, path != NULL };
	/* a rate needs the cgroup's directory */
	return policy && path ? policy->frequency : 0;
}

struct fixture {
	char path[64];
	struct target_labeler labeler;
	struct recorder rec;
	struct pod_store *store;
};

static void write_config(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Drops log-shipper containers; maps namespace, pod, container and tier. */
static const char config[] =
	"job_name: kubernetes-pods\n"
	"relabel_configs:\n"
	"  - {source_labels: [__meta_kubernetes_pod_container_name], regex: log-shipper, action: drop}\n"
	"  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}\n"
	"  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}\n"
	"  - {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}\n"
	"  - {source_labels: [__meta_kubernetes_pod_label_tier], target_label: tier}\n"
	"  - {source_labels: [__meta_kubernetes_pod_annotation_anorak_dev_sampling_frequency],\n"
	"     target_label: __sampling_frequency__}\n";

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	log_set_level(LOG_ERROR);
	annotation = "";
	strcpy(f->path, "/tmp/anorak-test-pods-XXXXXX");
	int fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	write_config(f->path, config);
	if (target_labeler_init(&f->labeler, f->path))
		return -1;
	struct pod_store_opts opts = { .policy = record_policy, .ctx = &f->rec, .base_frequency = 19,
				       .max_frequency = 1000 };
	if (pod_store_new(&f->labeler, &opts, &f->store))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pod_store_free(f->store);
	target_labeler_destroy(&f->labeler);
	unlink(f->path);
	free(f);
	return 0;
}

static size_t containers(struct fixture *f)
{
	struct pod_store_stats st;

	pod_store_stats(f->store, &st);
	return st.containers;
}

static void on_pod(struct fixture *f, const char *tier, const char *app_id, const char *log_id, bool deleted)
{
	struct k8s_pod pod;

	make_pod(&pod, tier, app_id, log_id);
	pod_store_on_pod(f->store, &pod, deleted);
	k8s_pod_free(&pod);
}

static struct cgroup_identity identity(const char *container_id, const char *pod_uid)
{
	struct cgroup_identity id = { 0 };

	snprintf(id.container_id, sizeof(id.container_id), "%s", container_id);
	snprintf(id.pod_uid, sizeof(id.pod_uid), "%s", pod_uid);
	return id;
}

/* The container's target carries the labels of its first declared port; found by id, then by cgroup. */
static void test_labels_and_lookup(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity app = identity(APP_ID, UID);

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_int_equal(containers(f), 2);
	struct target *t = pod_store_target(f->store, 1001, &app);
	assert_non_null(t);
	assert_false(t->dropped);
	assert_string_equal(labelset_get(&t->labels, "namespace"), "shop");
	assert_string_equal(labelset_get(&t->labels, "pod"), "web-1");
	assert_string_equal(labelset_get(&t->labels, "container"), "app");
	assert_string_equal(labelset_get(&t->labels, "tier"), "frontend");
	assert_string_equal(labelset_get(&t->labels, "job"), "kubernetes-pods");
	assert_string_equal(labelset_get(&t->labels, "instance"), "127.0.1.23:8080");
	assert_string_equal(labelset_get(&t->discovered, "__meta_kubernetes_pod_container_port_name"), "http");
	target_put(t);

	/* A sample does not link its cgroup (only the cgroup2 scan knows it is the container's). */
	assert_null(pod_store_target(f->store, 1001, NULL));
	pod_store_link_cgroup(f->store, 1001, "/kubepods.slice/cri-containerd-" APP_ID ".scope", &app);
	t = pod_store_target(f->store, 1001, NULL);
	assert_non_null(t);
	assert_string_equal(labelset_get(&t->labels, "container"), "app");
	target_put(t);
	/* A cgroup of no known container. */
	struct cgroup_identity other = identity("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "");
	assert_null(pod_store_target(f->store, 2002, &other));
	assert_null(pod_store_target(f->store, 2002, NULL));
	assert_int_equal(f->rec.n, 0); /* nothing dropped was linked */
}

/* A dropped container's cgroup gets a policy once linked, withdrawn when the pod goes away. */
static void test_dropped_policy(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity shipper = identity(LOG_ID, UID);

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_true(pod_store_take_unlinked(f->store));
	assert_false(pod_store_take_unlinked(f->store));
	pod_store_link_cgroup(f->store, 3003, "/kubepods.slice/x/cri-containerd-" LOG_ID ".scope", &shipper);
	assert_int_equal(f->rec.n, 1);
	assert_int_equal(f->rec.calls[0].cgroup_id, 3003);
	assert_true(f->rec.calls[0].present);
	assert_true(f->rec.calls[0].dropped);
	struct target *t = pod_store_target(f->store, 3003, NULL);
	assert_non_null(t);
	assert_true(t->dropped);
	target_put(t);

	/* Linking again changes nothing. */
	pod_store_link_cgroup(f->store, 3003, "/kubepods.slice/x/cri-containerd-" LOG_ID ".scope", &shipper);
	assert_int_equal(f->rec.n, 1);

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, true);
	assert_int_equal(containers(f), 0);
	assert_int_equal(f->rec.n, 2);
	assert_int_equal(f->rec.calls[1].cgroup_id, 3003);
	assert_false(f->rec.calls[1].present);
	assert_null(pod_store_target(f->store, 3003, NULL));
}

/* MODIFIED: new labels from now on; a reference taken before keeps the old ones; links carry over. */
static void test_label_change(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity app = identity(APP_ID, UID);

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	pod_store_link_cgroup(f->store, 1001, "/x", &app);
	struct target *before = pod_store_target(f->store, 1001, &app);
	on_pod(f, "backend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_int_equal(containers(f), 2);
	struct target *after = pod_store_target(f->store, 1001, NULL);
	assert_non_null(after);
	assert_string_equal(labelset_get(&after->labels, "tier"), "backend");
	assert_string_equal(labelset_get(&before->labels, "tier"), "frontend");
	target_put(before);
	target_put(after);
}

/* Before the status names a container, its pod's cgroup says which pod; the one container without an
 * id is the answer. With two such containers nothing is guessed. */
static void test_pod_uid_fallback(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity unknown = identity("2222222222222222222222222222222222222222222222222222222222222222", UID);

	on_pod(f, "frontend", "", "", false);
	assert_null(pod_store_target(f->store, 4004, &unknown));
	assert_false(pod_store_take_unlinked(f->store)); /* no id to look for yet */

	on_pod(f, "frontend", "containerd://" APP_ID, "", false);
	struct target *t = pod_store_target(f->store, 4004, &unknown);
	assert_non_null(t);
	assert_string_equal(labelset_get(&t->discovered, "__meta_kubernetes_pod_container_name"), "log-shipper");
	target_put(t);
	/* not linked: the status may still name another container for that cgroup */
	assert_null(pod_store_target(f->store, 4004, NULL));
}

/* A reload relabels every container and updates the policies of linked cgroups. */
static void test_relabel(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity shipper = identity(LOG_ID, UID);

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	pod_store_link_cgroup(f->store, 3003, "/x", &shipper);
	assert_int_equal(f->rec.n, 1);
	assert_true(f->rec.calls[0].dropped);

	write_config(f->path, "job_name: again\n");
	assert_int_equal(target_labeler_reload(&f->labeler), 0);
	pod_store_relabel(f->store);
	assert_int_equal(f->rec.n, 2);
	assert_false(f->rec.calls[1].present); /* kept now: no policy */
	struct target *t = pod_store_target(f->store, 3003, NULL);
	assert_non_null(t);
	assert_false(t->dropped);
	assert_string_equal(labelset_get(&t->labels, "job"), "again");
	target_put(t);
}

static void count_target(void *ctx, const struct target *t, unsigned frequency)
{
	(void)t;
	assert_int_equal(frequency, 19);
	(*(int *)ctx)++;
}

/* A pod that loses its IP (Prometheus makes no targets for it) loses its containers. */
static void test_each_and_no_ip(void **state)
{
	struct fixture *f = *state;
	struct k8s_pod pod;
	int n = 0;
	static const char no_ip[] = "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"shop\",\"uid\":\"" UID "\"},"
				    "\"spec\":{\"containers\":[{\"name\":\"app\"}]},\"status\":{\"phase\":\"Pending\"}}";

	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	pod_store_each(f->store, count_target, &n);
	assert_int_equal(n, 2);
	assert_int_equal(k8s_pod_parse(no_ip, strlen(no_ip), &pod), 0);
	pod_store_on_pod(f->store, &pod, false);
	k8s_pod_free(&pod);
	assert_int_equal(containers(f), 0);
}

static void set_frequency(const char *value)
{
	static char text[128];

	if (!value) {
		annotation = "";
		return;
	}
	snprintf(text, sizeof(text), "\"anorak.dev/sampling-frequency\":\"%s\"", value);
	annotation = text;
}

static uint64_t invalid(struct fixture *f)
{
	struct pod_store_stats st;

	pod_store_stats(f->store, &st);
	return st.invalid_frequencies;
}

/* The annotation (mapped to __sampling_frequency__) raises the app container's rate once its cgroup
 * directory is known; invalid values change nothing and are counted; removing it lowers the rate. */
static void test_sampling_frequency(void **state)
{
	struct fixture *f = *state;
	struct cgroup_identity app = identity(APP_ID, UID);
	struct pod_store_stats st;

	set_frequency("199");
	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_true(pod_store_take_unlinked(f->store));
	pod_store_stats(f->store, &st);
	assert_int_equal(st.high_frequency, 0);
	/* the scan finds the container's directory: raised now */
	pod_store_link_cgroup(f->store, 1001, "/kubepods.slice/cri-containerd-" APP_ID ".scope", &app);
	assert_int_equal(f->rec.n, 1);
	assert_int_equal(f->rec.calls[0].frequency, 199);
	assert_true(f->rec.calls[0].has_path);
	/* the container restarted in place: a new cgroup, the rate follows it */
	pod_store_link_cgroup(f->store, 1002, "/kubepods.slice/cri-containerd-" APP_ID ".scope", &app);
	assert_int_equal(f->rec.n, 3);
	assert_false(f->rec.calls[1].present);
	assert_int_equal(f->rec.calls[1].cgroup_id, 1001);
	assert_int_equal(f->rec.calls[2].cgroup_id, 1002);
	assert_int_equal(f->rec.calls[2].frequency, 199);
	pod_store_stats(f->store, &st);
	assert_int_equal(st.high_frequency, 1);

	/* invalid values change nothing (the rate stands) and are each counted */
	const char *bad[] = { "abc", "0", "-5", "1001", "99.5", " 99", "99 ", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_frequency(bad[i]);
		on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
		assert_int_equal(invalid(f), i + 1);
	}
	assert_int_equal(f->rec.n, 3);
	pod_store_stats(f->store, &st);
	assert_int_equal(st.high_frequency, 1);

	/* the base rate needs nothing; the maximum is allowed */
	set_frequency("19");
	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_int_equal(f->rec.n, 4);
	assert_false(f->rec.calls[3].present);
	set_frequency("1000");
	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_int_equal(f->rec.n, 5);
	assert_int_equal(f->rec.calls[4].frequency, 1000);

	/* the annotation removed: back to the base rate */
	set_frequency(NULL);
	on_pod(f, "frontend", "containerd://" APP_ID, "containerd://" LOG_ID, false);
	assert_int_equal(f->rec.n, 6);
	assert_false(f->rec.calls[5].present);
	pod_store_stats(f->store, &st);
	assert_int_equal(st.high_frequency, 0);
	assert_int_equal(invalid(f), 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_labels_and_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropped_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pod_uid_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relabel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_and_no_ip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sampling_frequency, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
