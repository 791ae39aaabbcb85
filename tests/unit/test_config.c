#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labels/config.h"

static int parse(const char *yaml, struct anorak_file_config **cfg, char *err, size_t errlen)
{
	return anorak_config_parse(yaml, strlen(yaml), cfg, err, errlen);
}

static void test_good_file(void **state)
{
	(void)state;
	struct anorak_file_config *cfg;
	struct labelset ls = { 0 };
	char err[256];

	assert_int_equal(parse("job_name: kubernetes-pods\n"
			       "relabel_configs:\n"
			       "  - source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_pod_name]\n"
			       "    separator: /\n"
			       "    regex: (.+)\n"
			       "    target_label: pod\n"
			       "    replacement: $1\n"
			       "    action: replace\n"
			       "  - source_labels: [__meta_kubernetes_pod_name]\n"
			       "    modulus: 4\n"
			       "    target_label: shard\n"
			       "    action: hashmod\n"
			       "  - action: labeldrop\n"
			       "    regex: __meta_kubernetes_pod_label_.*\n",
			       &cfg, err, sizeof(err)),
			 0);
	assert_string_equal(cfg->job_name, "kubernetes-pods");
	assert_int_equal(cfg->rules.n, 3);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_namespace", "default"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_pod_name", "web-1"), 0);
	assert_int_equal(relabel_process(&cfg->rules, &ls), 1);
	assert_string_equal(labelset_get(&ls, "pod"), "default/web-1");
	assert_non_null(labelset_get(&ls, "shard"));
	labelset_free(&ls);
	anorak_config_free(cfg);
}

static void test_defaults_and_empty(void **state)
{
	(void)state;
	struct anorak_file_config *cfg;
	char err[256];

	/* An empty file, like an empty Prometheus config, is all defaults. */
	assert_int_equal(parse("", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->job_name, ANORAK_DEFAULT_JOB_NAME);
	assert_int_equal(cfg->rules.n, 0);
	anorak_config_free(cfg);

	assert_int_equal(parse("relabel_configs:\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->rules.n, 0);
	anorak_config_free(cfg);

	/* yaml.v2 turns any scalar into a string field; null leaves it empty. */
	assert_int_equal(parse("job_name: 123\nrelabel_configs:\n"
			       "  - {separator: 1, source_labels: [a, b], target_label: x}\n"
			       "  - {separator: ~, regex: ~, replacement: ~, target_label: y}\n",
			       &cfg, err, sizeof(err)),
			 0);
	assert_string_equal(cfg->job_name, "123");
	anorak_config_free(cfg);
}

static void test_default_config(void **state)
{
	(void)state;
	struct anorak_file_config *cfg;
	struct labelset ls = { 0 };
	char err[256];

	assert_int_equal(parse(anorak_default_config, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->job_name, "anorak");

	/* A host target. */
	assert_int_equal(labelset_set(&ls, "__address__", "node-1"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_process_comm", "nginx"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_systemd_unit", "nginx.service"), 0);
	assert_int_equal(relabel_prepare(&ls, cfg->job_name), 0);
	assert_int_equal(relabel_process(&cfg->rules, &ls), 1);
	assert_int_equal(relabel_finalize(&ls, err, sizeof(err)), 0);
	assert_int_equal(ls.n, 4);
	assert_string_equal(labelset_get(&ls, "comm"), "nginx");
	assert_string_equal(labelset_get(&ls, "systemd_unit"), "nginx.service");
	assert_string_equal(labelset_get(&ls, "job"), "anorak");
	assert_string_equal(labelset_get(&ls, "instance"), "node-1:80");
	labelset_free(&ls);

	/* A Kubernetes container; the annotation is readable until relabel_finalize. */
	assert_int_equal(labelset_set(&ls, "__address__", "127.0.0.5:8080"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_namespace", "shop"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_pod_name", "web-1"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_pod_container_name", "app"), 0);
	assert_int_equal(labelset_set(&ls, "__meta_kubernetes_pod_annotation_anorak_dev_sampling_frequency",
				      "99"), 0);
	assert_int_equal(relabel_prepare(&ls, cfg->job_name), 0);
	assert_int_equal(relabel_process(&cfg->rules, &ls), 1);
	assert_string_equal(labelset_get(&ls, "__sampling_frequency__"), "99");
	assert_int_equal(relabel_finalize(&ls, err, sizeof(err)), 0);
	assert_int_equal(ls.n, 5);
	assert_string_equal(labelset_get(&ls, "namespace"), "shop");
	assert_string_equal(labelset_get(&ls, "pod"), "web-1");
	assert_string_equal(labelset_get(&ls, "container"), "app");
	assert_string_equal(labelset_get(&ls, "instance"), "127.0.0.5:8080");
	labelset_free(&ls);
	anorak_config_free(cfg);
}

struct error_case {
	const char *yaml, *err;
};

static const struct error_case error_cases[] = {
	{ "job_name: a\nfoo: 1\n", "line 2: unknown field \"foo\" in config file" },
	{ "job_name: a\njob_name: b\n", "line 2: key \"job_name\" already set in config file" },
	{ "job_name: ''\n", "line 1: job_name is empty" },
	{ "job_name: [a]\n", "line 1: job_name: expected a string, got a sequence" },
	{ "- a\n", "line 1: config file: expected a mapping, got a sequence" },
	{ "relabel_configs: {a: 1}\n", "line 1: relabel_configs: expected a sequence, got a mapping" },
	{ "relabel_configs:\n  -\n", "line 2: empty or null target relabeling rule in scrape config" },
	{ "relabel_configs:\n  - [a]\n", "line 2: relabel_configs entry: expected a mapping, got a sequence" },
	{ "relabel_configs:\n  - target_label: a\n    foo: 1\n",
	  "line 3: unknown field \"foo\" in relabel_configs entry" },
	{ "relabel_configs:\n  - target_label: a\n    target_label: b\n",
	  "line 3: key \"target_label\" already set in relabel_configs entry" },
	{ "relabel_configs:\n  - target_label: a\n    modulus: -1\n",
	  "line 3: modulus: \"-1\" is not an unsigned 64-bit integer" },
	{ "relabel_configs:\n  - target_label: a\n    modulus: '5'\n",
	  "line 3: modulus: \"5\" is not an unsigned 64-bit integer" },
	{ "relabel_configs:\n  - target_label: a\n    modulus: 18446744073709551616\n",
	  "line 3: modulus: \"18446744073709551616\" is not an unsigned 64-bit integer" },
	{ "relabel_configs:\n  - target_label: a\n    source_labels: x\n",
	  "line 3: source_labels: expected a sequence of label names, got a scalar" },
	{ "relabel_configs:\n  - target_label: a\n    separator: [1]\n",
	  "line 3: separator: expected a string, got a sequence" },
	{ "relabel_configs:\n  - target_label: a\n    action: nope\n",
	  "line 3: unknown relabel action \"nope\"" },
	/* Validation errors name the rule's first line. */
	{ "relabel_configs:\n  - target_label: a\n  - action: hashmod\n    target_label: h\n",
	  "line 3: relabel configuration for hashmod requires non-zero modulus" },
	{ "job_name: a\n  b: c\n", "line 2: mapping values are not allowed in this context" },
	{ "relabel_configs: [\n", "line 2: did not find expected node content while parsing a flow node" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		struct anorak_file_config *cfg = (void *)1;
		char err[512];

		assert_int_equal(parse(error_cases[i].yaml, &cfg, err, sizeof(err)), -EINVAL);
		assert_null(cfg);
		if (strcmp(err, error_cases[i].err))
			fail_msg("%s\n  got  %s\n  want %s", error_cases[i].yaml, err, error_cases[i].err);
	}
}

static void test_limits(void **state)
{
	(void)state;
	struct anorak_file_config *cfg;
	size_t rule_len = strlen("  - {target_label: a}\n");
	size_t n = ANORAK_CONFIG_MAX_RULES + 1, len;
	char err[256], *yaml, *p;

	/* Rules: the limit is fine, one more is refused. */
	yaml = p = malloc(32 + n * rule_len);
	assert_non_null(yaml);
	p += sprintf(p, "relabel_configs:\n");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "  - {target_label: a}\n");
	len = (size_t)(p - yaml);
	assert_int_equal(anorak_config_parse(yaml, len - rule_len, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->rules.n, ANORAK_CONFIG_MAX_RULES);
	anorak_config_free(cfg);
	assert_int_equal(anorak_config_parse(yaml, len, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 1002: relabel_configs: more than 1000 rules");
	free(yaml);

	/* Size: a comment-padded file just over the limit. */
	len = ANORAK_CONFIG_MAX_BYTES + 1;
	yaml = malloc(len);
	assert_non_null(yaml);
	memset(yaml, ' ', len);
	yaml[0] = '#';
	assert_int_equal(anorak_config_parse(yaml, len, &cfg, err, sizeof(err)), -EFBIG);
	assert_int_equal(anorak_config_parse(yaml, len - 1, &cfg, err, sizeof(err)), 0);
	anorak_config_free(cfg);
	free(yaml);
}

static void test_load(void **state)
{
	(void)state;
	char path[] = "/tmp/anorak-config-XXXXXX", err[512], want[600];
	struct anorak_file_config *cfg;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("job_name: from-file\nrelabel_configs:\n  - {action: hashmod, target_label: h}\n", f);
	fclose(f);
	assert_int_equal(anorak_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: line 3: relabel configuration for hashmod requires non-zero modulus",
		 path);
	assert_string_equal(err, want);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("job_name: from-file\n", f);
	fclose(f);
	assert_int_equal(anorak_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->job_name, "from-file");
	anorak_config_free(cfg);

	/* Too large files are refused before parsing. */
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i <= ANORAK_CONFIG_MAX_BYTES / 64; i++)
		fprintf(f, "#%063d\n", i);
	fclose(f);
	assert_int_equal(anorak_config_load(path, &cfg, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want), "%s: larger than the limit of %d bytes", path, ANORAK_CONFIG_MAX_BYTES);
	assert_string_equal(err, want);
	unlink(path);

	assert_int_equal(anorak_config_load(path, &cfg, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot read: %s", path, strerror(ENOENT));
	assert_string_equal(err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_defaults_and_empty),
		cmocka_unit_test(test_default_config),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
