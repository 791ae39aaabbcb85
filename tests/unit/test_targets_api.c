/* /api/v1/targets rendering: Prometheus' JSON shape, active targets deduplicated by labels, dropped
 * targets listed (up to the cap) and counted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "exporter/encode/targets_api.h"

static struct target *make(const char *comm, const char *final_comm, bool dropped)
{
	struct target *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	atomic_init(&t->refs, 1);
	assert_int_equal(labelset_set(&t->discovered, "__address__", "node:9760"), 0);
	assert_int_equal(labelset_set(&t->discovered, "__meta_process_comm", comm), 0);
	t->dropped = dropped;
	if (!dropped) {
		assert_int_equal(labelset_set(&t->labels, "job", "anorak"), 0);
		assert_int_equal(labelset_set(&t->labels, "comm", final_comm), 0);
	}
	return t;
}

static void add(struct target_list *l, struct target *t)
{
	assert_int_equal(target_list_add(l, t, 19), 0);
	target_put(t);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, key, &v));
	return v;
}

static void test_shape_and_dedup(void **state)
{
	struct target_list l = { 0 };
	size_t active, dropped;
	char *text;
	size_t len;

	(void)state;
	add(&l, make("nginx", "nginx", false));
	add(&l, make("nginx-worker", "nginx", false)); /* same final labels: one target */
	add(&l, make("cron", "", true));
	add(&l, make("sshd", "sshd", false));
	target_list_count(&l, &active, &dropped);
	assert_int_equal(active, 2);
	assert_int_equal(dropped, 1);

	assert_int_equal(targets_api_render(&l, "anorak", &text, &len), 0);
	assert_int_equal(strlen(text), len);
	json_object *root = json_tokener_parse(text);
	assert_non_null(root);
	assert_string_equal(json_object_get_string(get(root, "status")), "success");
	json_object *data = get(root, "data");
	json_object *act = get(data, "activeTargets"), *drop = get(data, "droppedTargets");
	assert_int_equal(json_object_array_length(act), 2);
	assert_int_equal(json_object_array_length(drop), 1);
	assert_int_equal(json_object_get_int(get(get(data, "droppedTargetCounts"), "anorak")), 1);
	for (size_t i = 0; i < 2; i++) {
		json_object *t = json_object_array_get_idx(act, i);
		json_object *dl = get(t, "discoveredLabels");

		assert_string_equal(json_object_get_string(get(t, "scrapePool")), "anorak");
		assert_string_equal(json_object_get_string(get(t, "health")), "up");
		assert_int_equal(json_object_get_int(get(t, "samplingFrequency")), 19);
		assert_string_equal(json_object_get_string(get(get(t, "labels"), "job")), "anorak");
		/* what relabeling started from: discovery's labels and the scrape config's */
		assert_string_equal(json_object_get_string(get(dl, "job")), "anorak");
		assert_string_equal(json_object_get_string(get(dl, "__scheme__")), "http");
		assert_string_equal(json_object_get_string(get(dl, "__address__")), "node:9760");
	}
	json_object *dl = get(json_object_array_get_idx(drop, 0), "discoveredLabels");
	assert_string_equal(json_object_get_string(get(dl, "__meta_process_comm")), "cron");
	json_object_put(root);
	free(text);
	target_list_free(&l);
}

static void test_dropped_cap(void **state)
{
	struct target_list l = { 0 };
	char *text;
	size_t len;

	(void)state;
	for (int i = 0; i < TARGETS_API_MAX_DROPPED + 5; i++)
		add(&l, make("x", "", true));
	assert_int_equal(targets_api_render(&l, "job", &text, &len), 0);
	json_object *root = json_tokener_parse(text);
	json_object *data = get(root, "data");
	assert_int_equal(json_object_array_length(get(data, "droppedTargets")), TARGETS_API_MAX_DROPPED);
	assert_int_equal(json_object_get_int(get(get(data, "droppedTargetCounts"), "job")),
			 TARGETS_API_MAX_DROPPED + 5);
	assert_int_equal(json_object_array_length(get(data, "activeTargets")), 0);
	json_object_put(root);
	free(text);
	target_list_free(&l);
}

static void test_empty(void **state)
{
	struct target_list l = { 0 };
	char *text;
	size_t len;

	(void)state;
	assert_int_equal(targets_api_render(&l, "job", &text, &len), 0);
	assert_string_equal(text, "{\"status\":\"success\",\"data\":{\"activeTargets\":[],\"droppedTargets\":[],"
				  "\"droppedTargetCounts\":{\"job\":0}}}");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape_and_dedup),
		cmocka_unit_test(test_dropped_cap),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
