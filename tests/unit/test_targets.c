/* Host targets through the relabel engine: the built-in config, a user config, reload. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "labels/targets.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int label_target(struct target_labeler *t, const char *comm, const char *unit, struct labelset *final)
{
	struct cgroup_identity cgroup = { 0 };
	struct labelset discovered = { 0 };

	snprintf(cgroup.systemd_unit, sizeof(cgroup.systemd_unit), "%s", unit);
	struct host_process hp = { .address = "node-1:9760", .pid = 42, .comm = comm, .executable = "",
				   .cgroup_path = "", .cgroup = &cgroup };
	assert_int_equal(host_discovered_labels(&hp, &discovered), 0);
	int kept = target_labeler_apply(t, &discovered, final);
	labelset_free(&discovered);
	return kept;
}

static void test_default_config(void **state)
{
	(void)state;
	struct target_labeler t;
	struct labelset ls = { 0 };

	assert_int_equal(target_labeler_init(&t, NULL), 0);
	assert_int_equal(label_target(&t, "nginx", "nginx.service", &ls), 1);
	/* job from job_name, instance from __address__, the rest mapped, every __ label gone. */
	assert_int_equal(ls.n, 4);
	assert_string_equal(labelset_get(&ls, "job"), "anorak");
	assert_string_equal(labelset_get(&ls, "instance"), "node-1:9760");
	assert_string_equal(labelset_get(&ls, "comm"), "nginx");
	assert_string_equal(labelset_get(&ls, "systemd_unit"), "nginx.service");
	labelset_free(&ls);
	target_labeler_destroy(&t);
}

static void test_user_config_and_reload(void **state)
{
	(void)state;
	char path[] = "/tmp/anorak-targets-XXXXXX";
	int fd = mkstemp(path);
	struct target_labeler t;
	struct labelset ls = { 0 };

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "job_name: node-profiles\n"
			 "relabel_configs:\n"
			 "  - source_labels: [__meta_process_comm]\n"
			 "    regex: 'sleep|cron'\n"
			 "    action: drop\n"
			 "  - source_labels: [__meta_process_comm]\n"
			 "    target_label: program\n");
	assert_int_equal(target_labeler_init(&t, path), 0);
	assert_int_equal(label_target(&t, "cron", "", &ls), 0);
	assert_int_equal(ls.n, 0);
	assert_int_equal(label_target(&t, "nginx", "", &ls), 1);
	assert_string_equal(labelset_get(&ls, "job"), "node-profiles");
	assert_string_equal(labelset_get(&ls, "program"), "nginx");
	assert_null(labelset_get(&ls, "comm"));
	labelset_free(&ls);

	/* A bad file keeps what runs. */
	write_file(path, "job_name: x\nrelabel_configs:\n  - action: hashmod\n    target_label: a\n");
	assert_int_equal(target_labeler_reload(&t), -EINVAL);
	assert_int_equal(label_target(&t, "cron", "", &ls), 0);

	write_file(path, "job_name: other\n");
	assert_int_equal(target_labeler_reload(&t), 0);
	assert_int_equal(label_target(&t, "cron", "", &ls), 1);
	assert_string_equal(labelset_get(&ls, "job"), "other");
	labelset_free(&ls);
	target_labeler_destroy(&t);
	unlink(path);
}

/* Every meta label of a host process; empty ones are absent, as Prometheus leaves them out. */
static void test_host_discovered_labels(void **state)
{
	(void)state;
	struct cgroup_identity cgroup = { .systemd_unit = "nginx.service" };
	struct host_process hp = { .address = "node-1:9760", .pid = 4242, .comm = "nginx",
				   .executable = "/usr/sbin/nginx", .cgroup_path = "/system.slice/nginx.service",
				   .cgroup = &cgroup };
	struct labelset ls = { 0 };

	assert_int_equal(host_discovered_labels(&hp, &ls), 0);
	assert_int_equal(ls.n, 6);
	assert_string_equal(labelset_get(&ls, "__address__"), "node-1:9760");
	assert_string_equal(labelset_get(&ls, "__meta_process_pid"), "4242");
	assert_string_equal(labelset_get(&ls, "__meta_process_comm"), "nginx");
	assert_string_equal(labelset_get(&ls, "__meta_process_executable"), "/usr/sbin/nginx");
	assert_string_equal(labelset_get(&ls, "__meta_process_cgroup"), "/system.slice/nginx.service");
	assert_string_equal(labelset_get(&ls, "__meta_systemd_unit"), "nginx.service");
	assert_null(labelset_get(&ls, "__meta_container_id"));
	labelset_free(&ls);
}

/* target_make keeps the discovered labels, relabels them, and says when the rules drop the target. */
static void test_target_make(void **state)
{
	(void)state;
	char path[] = "/tmp/anorak-targets-XXXXXX";
	int fd = mkstemp(path);
	struct target_labeler t;
	struct labelset discovered = { 0 };

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "job_name: j\nrelabel_configs:\n"
			 "  - {source_labels: [__meta_process_comm], regex: cron, action: drop}\n"
			 "  - {source_labels: [__meta_process_comm], target_label: comm}\n");
	assert_int_equal(target_labeler_init(&t, path), 0);

	assert_int_equal(labelset_set(&discovered, "__address__", "h:1"), 0);
	assert_int_equal(labelset_set(&discovered, "__meta_process_comm", "nginx"), 0);
	struct target *kept = target_make(&t, &discovered);
	assert_non_null(kept);
	assert_int_equal(discovered.n, 0);
	assert_false(kept->dropped);
	assert_string_equal(labelset_get(&kept->labels, "comm"), "nginx");
	assert_string_equal(labelset_get(&kept->labels, "instance"), "h:1");
	assert_string_equal(labelset_get(&kept->discovered, "__meta_process_comm"), "nginx");

	assert_int_equal(labelset_set(&discovered, "__address__", "h:1"), 0);
	assert_int_equal(labelset_set(&discovered, "__meta_process_comm", "cron"), 0);
	struct target *dropped = target_make(&t, &discovered);
	assert_non_null(dropped);
	assert_true(dropped->dropped);
	assert_int_equal(dropped->labels.n, 0);
	assert_string_equal(labelset_get(&dropped->discovered, "__meta_process_comm"), "cron");

	/* a reference outlives the maker's */
	struct target *ref = target_get(kept);
	target_put(kept);
	assert_string_equal(labelset_get(&ref->labels, "comm"), "nginx");
	target_put(ref);
	target_put(dropped);
	target_labeler_destroy(&t);
	unlink(path);
}

/* __sampling_frequency__ as the rules leave it: a decimal rate from 1 to the maximum; the base rate, no
 * value or a dropped target ask for nothing; anything else is invalid. */
static void test_sampling_frequency(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		bool dropped;
		int want;
	} cases[] = {
		{ "", false, 0 },	  { "199", false, 199 },   { "1000", false, 1000 },  { "1", false, 1 },
		{ "19", false, 0 },	  { "199", true, 0 },	   { "1001", false, -EINVAL }, { "0", false, -EINVAL },
		{ "-5", false, -EINVAL }, { "+5", false, -EINVAL }, { " 5", false, -EINVAL }, { "5 ", false, -EINVAL },
		{ "5Hz", false, -EINVAL }, { "fast", false, -EINVAL }, { "0x10", false, -EINVAL },
		{ "99999999999999999999999", false, -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct target t = { .dropped = cases[i].dropped };

		snprintf(t.sampling_frequency, sizeof(t.sampling_frequency), "%s", cases[i].value);
		if (target_sampling_frequency(&t, 19, 1000) != cases[i].want)
			fail_msg("\"%s\"%s: got %d, want %d", cases[i].value, cases[i].dropped ? " (dropped)" : "",
				 target_sampling_frequency(&t, 19, 1000), cases[i].want);
	}
}

static void test_bad_file_at_start(void **state)
{
	(void)state;
	struct target_labeler t;

	assert_int_equal(target_labeler_init(&t, "/nonexistent/anorak.yml") < 0, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_config),
		cmocka_unit_test(test_user_config_and_reload),
		cmocka_unit_test(test_host_discovered_labels),
		cmocka_unit_test(test_target_make),
		cmocka_unit_test(test_sampling_frequency),
		cmocka_unit_test(test_bad_file_at_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
