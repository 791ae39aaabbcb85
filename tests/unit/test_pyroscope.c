/* Pyroscope's flame graph layout on a known tree, exactly (names in pop order, levels of
 * [x delta, total, self, name], self before children, children by name, "other" under max_nodes),
 * Pyroscope's tree bytes, SelectSeries points at steps finer and coarser than the window, and Connect
 * errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "common/text.h"

#include "exporter/store/history.h"
#include "exporter/symbols/process.h"
#include "exporter/encode/pyroscope.h"
#include "querier/v1/querier.pb-c.h"
#include "exporter/store/slices.h"

#define S 1000000000LL

static struct history *h;
static struct process *proc;

/* Stacks root first over the one-byte "functions" 0x1 (a), 0x2 (b), 0x3 (c), 0x4 (d). */
static const struct {
	uint64_t frames[3];
	uint32_t n, count;
} stacks[] = {
	{ { 0x1, 0x2 }, 2, 3 }, /* a;b 3 */
	{ { 0x1, 0x3 }, 2, 2 }, /* a;c 2 */
	{ { 0x1 }, 1, 1 },      /* a 1 */
	{ { 0x4 }, 1, 4 },      /* d 4 */
};

static int setup(void **state)
{
	struct history_opts o = { .retention_ns = 3600 * S, .max_bytes = 64 << 20, .window_ns = 10 * S };
	struct slice *s = slice_new(1, 1700000000LL * S, 100);

	(void)state;
	assert_int_equal(history_new(&o, &h), 0);
	proc = calloc(1, sizeof(*proc));
	atomic_init(&proc->refs, 1);
	proc->tgid = 5;
	proc->target = calloc(1, sizeof(*proc->target));
	atomic_init(&proc->target->refs, 1);
	labelset_set(&proc->target->labels, "job", "anorak");
	for (size_t i = 0; i < sizeof(stacks) / sizeof(stacks[0]); i++) {
		uint64_t leaf_first[3];

		for (uint32_t k = 0; k < stacks[i].n; k++)
			leaf_first[k] = stacks[i].frames[stacks[i].n - 1 - k];
		struct slice_sample smp = { .process = process_get(proc), .target = target_get(proc->target), .tid = 5,
					    .count = stacks[i].count };

		assert_int_equal(slice_add(s, &smp, i + 1, leaf_first, stacks[i].n, 0, NULL, 0), 0);
	}
	slice_seal(s, 1700000001LL * S);
	assert_int_equal(history_add_slice(h, s), 0);
	slice_free(s);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	history_free(h);
	process_put(proc);
	return 0;
}

static Querier__V1__FlameGraph *flame(int64_t max_nodes, Querier__V1__SelectMergeStacktracesResponse **resp)
{
	Querier__V1__SelectMergeStacktracesRequest req = QUERIER__V1__SELECT_MERGE_STACKTRACES_REQUEST__INIT;
	struct http_reply r;
	uint8_t buf[256];

	req.profile_typeid = "process_cpu:samples:count:cpu:nanoseconds";
	req.label_selector = "{job=\"anorak\"}";
	req.max_nodes = max_nodes;
	size_t len = querier__v1__select_merge_stacktraces_request__pack(&req, buf);
	assert_int_equal(pyroscope_serve(h, "SelectMergeStacktraces", buf, len, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/proto");
	*resp = querier__v1__select_merge_stacktraces_response__unpack(NULL, r.len, r.body);
	free(r.body);
	assert_non_null(*resp);
	assert_non_null((*resp)->flamegraph);
	return (*resp)->flamegraph;
}

static void expect_level(const Querier__V1__FlameGraph *fg, size_t level, const int64_t *want, size_t n)
{
	assert_true(level < fg->n_levels);
	assert_int_equal(fg->levels[level]->n_values, n);
	for (size_t i = 0; i < n; i++)
		if (fg->levels[level]->values[i] != want[i])
			fail_msg("level %zu value %zu: %lld, want %lld", level, i,
				 (long long)fg->levels[level]->values[i], (long long)want[i]);
}

static void test_levels(void **state)
{
	(void)state;
	Querier__V1__SelectMergeStacktracesResponse *resp;
	Querier__V1__FlameGraph *fg = flame(0, &resp);
	static const char *const names[] = { "total", "0x4", "0x1", "0x3", "0x2" };

	assert_int_equal(fg->total, 10);
	assert_int_equal(fg->max_self, 4);
	assert_int_equal(fg->n_names, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(fg->names[i], names[i]);
	assert_int_equal(fg->n_levels, 3);
	expect_level(fg, 0, (int64_t[]){ 0, 10, 0, 0 }, 4);
	expect_level(fg, 1, (int64_t[]){ 0, 6, 1, 2, 0, 4, 4, 1 }, 8);
	expect_level(fg, 2, (int64_t[]){ 1, 3, 3, 4, 0, 2, 2, 3 }, 8);
	querier__v1__select_merge_stacktraces_response__free_unpacked(resp, NULL);

	/* Three nodes: totals 6 (a), 4 (d), 3 (b) stay; c (2) goes into "other" after b. */
	fg = flame(3, &resp);
	assert_int_equal(fg->total, 10);
	assert_int_equal(fg->n_levels, 3);
	expect_level(fg, 1, (int64_t[]){ 0, 6, 1, 2, 0, 4, 4, 1 }, 8);
	expect_level(fg, 2, (int64_t[]){ 1, 3, 3, 4, 0, 2, 2, 3 }, 8);
	assert_string_equal(fg->names[3], "other");
	assert_string_equal(fg->names[4], "0x2");
	querier__v1__select_merge_stacktraces_response__free_unpacked(resp, NULL);
}

/* SelectMergeStacktraces with format = PROFILE_FORMAT_TREE: only the tree bytes. */
static void expect_tree(int64_t max_nodes, const uint8_t *want, size_t n)
{
	Querier__V1__SelectMergeStacktracesRequest req = QUERIER__V1__SELECT_MERGE_STACKTRACES_REQUEST__INIT;
	struct http_reply r;
	uint8_t buf[256];

	req.profile_typeid = "process_cpu:samples:count:cpu:nanoseconds";
	req.label_selector = "{}";
	req.max_nodes = max_nodes;
	req.format = QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE;
	size_t len = querier__v1__select_merge_stacktraces_request__pack(&req, buf);
	assert_int_equal(pyroscope_serve(h, "SelectMergeStacktraces", buf, len, &r), 0);
	assert_int_equal(r.status, 200);
	Querier__V1__SelectMergeStacktracesResponse *resp =
		querier__v1__select_merge_stacktraces_response__unpack(NULL, r.len, r.body);
	free(r.body);
	assert_non_null(resp);
	assert_null(resp->flamegraph);
	assert_int_equal(resp->tree.len, n);
	assert_memory_equal(resp->tree.data, want, n);
	querier__v1__select_merge_stacktraces_response__free_unpacked(resp, NULL);
}

/* Each node: name length, name, self, children; depth first, the last child in name order first. */
static void test_tree_bytes(void **state)
{
	(void)state;
	static const uint8_t whole[] = {
		0, 0, 2,                /* "" (the root) self 0, children 0x1 and 0x4 */
		3, '0', 'x', '4', 4, 0, /* d 4 */
		3, '0', 'x', '1', 1, 2, /* a 1, children 0x2 and 0x3 */
		3, '0', 'x', '3', 2, 0, /* a;c 2 */
		3, '0', 'x', '2', 3, 0, /* a;b 3 */
	};
	/* Three nodes: totals 6 (a), 4 (d), 3 (b) stay; c (2) becomes "other", after b by name. */
	static const uint8_t truncated[] = {
		0, 0, 2,
		3, '0', 'x', '4', 4, 0,
		3, '0', 'x', '1', 1, 2,
		5, 'o', 't', 'h', 'e', 'r', 2, 0,
		3, '0', 'x', '2', 3, 0,
	};

	expect_tree(0, whole, sizeof(whole));
	expect_tree(3, truncated, sizeof(truncated));
}

struct point {
	double at_s;
	double value;
};

/* SelectSeries of the sample counts over [from_s, to_s) of t0 at step_s; checks the points. */
static void expect_series(struct history *hist, int64_t t0_ms, int from_s, int to_s, double step_s, bool average,
			  const struct point *want, size_t n)
{
	Querier__V1__SelectSeriesRequest req = QUERIER__V1__SELECT_SERIES_REQUEST__INIT;
	struct http_reply r;
	uint8_t buf[256];

	req.profile_typeid = "process_cpu:samples:count:cpu:nanoseconds";
	req.label_selector = "{}";
	req.start = t0_ms + from_s * 1000LL;
	req.end = t0_ms + to_s * 1000LL;
	req.step = step_s;
	req.aggregation = average ? TYPES__V1__TIME_SERIES_AGGREGATION_TYPE__TIME_SERIES_AGGREGATION_TYPE_AVERAGE : 0;
	size_t len = querier__v1__select_series_request__pack(&req, buf);
	assert_int_equal(pyroscope_serve(hist, "SelectSeries", buf, len, &r), 0);
	assert_int_equal(r.status, 200);
	Querier__V1__SelectSeriesResponse *resp = querier__v1__select_series_response__unpack(NULL, r.len, r.body);
	free(r.body);
	assert_non_null(resp);
	assert_int_equal(resp->n_series, 1);
	const Types__V1__Series *series = resp->series[0];
	if (series->n_points != n)
		fail_msg("step %gs: %zu points, want %zu", step_s, series->n_points, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(series->points[i]->timestamp, t0_ms + (int64_t)(want[i].at_s * 1000));
		if (series->points[i]->value < want[i].value - 1e-6 || series->points[i]->value > want[i].value + 1e-6)
			fail_msg("step %gs, point %zu: %g, want %g", step_s, i, series->points[i]->value, want[i].value);
	}
	querier__v1__select_series_response__free_unpacked(resp, NULL);
}

/* Two sealed 10 s windows: 100 samples over [0, 10 s), 300 over [10, 20 s). */
static void test_series_steps(void **state)
{
	(void)state;
	struct history_opts o = { .retention_ns = 3600 * S, .max_bytes = 64 << 20, .window_ns = 10 * S };
	struct history *hist;
	const int64_t t0 = 1700000000LL * S, t0_ms = t0 / 1000000;

	assert_int_equal(history_new(&o, &hist), 0);
	for (int i = 0; i < 20; i++) {
		struct slice *s = slice_new(1, t0 + i * S, 100);
		struct slice_sample smp = { .process = process_get(proc), .target = target_get(proc->target), .tid = 5,
					    .count = i < 10 ? 10 : 30 };
		uint64_t frame = 0x1;

		assert_int_equal(slice_add(s, &smp, 1, &frame, 1, 0, NULL, 0), 0);
		slice_seal(s, t0 + (i + 1) * S);
		assert_int_equal(history_add_slice(hist, s), 0);
		slice_free(s);
	}

	/* 1 s steps: each window's rate at every step it covers (the step ending at each point). */
	struct point fine[20];
	for (int k = 0; k < 20; k++)
		fine[k] = (struct point){ k + 1, k < 10 ? 10 : 30 };
	expect_series(hist, t0_ms, 0, 20, 1, false, fine, 20);
	/* 2.5 s steps. */
	expect_series(hist, t0_ms, 0, 20, 2.5, false,
		      (struct point[]){ { 2.5, 25 }, { 5, 25 }, { 7.5, 25 }, { 10, 25 }, { 12.5, 75 }, { 15, 75 },
					{ 17.5, 75 }, { 20, 75 } }, 8);
	/* Steps of the window: one window per point. */
	expect_series(hist, t0_ms, 0, 20, 10, false, (struct point[]){ { 10, 100 }, { 20, 300 } }, 2);
	/* 15 s steps: the second window is split by time, 150 in (0, 15 s], 150 after. */
	expect_series(hist, t0_ms, 0, 30, 15, false, (struct point[]){ { 15, 250 }, { 30, 150 } }, 2);
	/* Averages are per window that added to the point. */
	expect_series(hist, t0_ms, 0, 30, 15, true, (struct point[]){ { 15, 125 }, { 30, 150 } }, 2);
	/* A range inside the second window still gets it whole, on its points. */
	expect_series(hist, t0_ms, 12, 14, 1, false, (struct point[]){ { 12, 60 }, { 13, 30 }, { 14, 210 } }, 3);
	history_free(hist);
}

/* 200 targets by pod at 1 ms steps over 10 s: 200 x 10001 points is over the bound, a 400. */
static void test_series_bound(void **state)
{
	(void)state;
	struct history_opts o = { .retention_ns = 3600 * S, .max_bytes = 64 << 20, .window_ns = 10 * S };
	struct history *hist;
	struct process *procs[200];
	const int64_t t0 = 1700000000LL * S;
	struct slice *s = slice_new(1, t0, 100);
	char *group_by[] = { "pod" };

	assert_int_equal(history_new(&o, &hist), 0);
	for (int i = 0; i < 200; i++) {
		char pod[16];
		uint64_t frame = 0x1;

		procs[i] = calloc(1, sizeof(*procs[i]));
		atomic_init(&procs[i]->refs, 1);
		procs[i]->tgid = 100 + i;
		procs[i]->target = calloc(1, sizeof(*procs[i]->target));
		atomic_init(&procs[i]->target->refs, 1);
		snprintf(pod, sizeof(pod), "pod-%d", i);
		labelset_set(&procs[i]->target->labels, "pod", pod);
		struct slice_sample smp = { .process = process_get(procs[i]), .target = target_get(procs[i]->target),
					    .tid = 100 + i, .count = 1 };
		assert_int_equal(slice_add(s, &smp, 1, &frame, 1, 0, NULL, 0), 0);
	}
	slice_seal(s, t0 + S);
	assert_int_equal(history_add_slice(hist, s), 0);
	slice_free(s);

	for (int fine = 1; fine >= 0; fine--) {
		Querier__V1__SelectSeriesRequest req = QUERIER__V1__SELECT_SERIES_REQUEST__INIT;
		struct http_reply r;
		uint8_t buf[256];

		req.profile_typeid = "process_cpu:samples:count:cpu:nanoseconds";
		req.label_selector = "{}";
		req.start = t0 / 1000000;
		req.end = req.start + 10000;
		req.step = fine ? 0.001 : 1;
		req.n_group_by = 1;
		req.group_by = group_by;
		size_t len = querier__v1__select_series_request__pack(&req, buf);
		assert_int_equal(pyroscope_serve(hist, "SelectSeries", buf, len, &r), 0);
		if (fine) {
			assert_int_equal(r.status, 400);
			assert_non_null(strstr(r.body, "or 2000000 points in all"));
		} else {
			assert_int_equal(r.status, 200);
			Querier__V1__SelectSeriesResponse *resp =
				querier__v1__select_series_response__unpack(NULL, r.len, r.body);
			assert_non_null(resp);
			assert_int_equal(resp->n_series, 200);
			querier__v1__select_series_response__free_unpacked(resp, NULL);
		}
		free(r.body);
	}
	history_free(hist);
	for (int i = 0; i < 200; i++)
		process_put(procs[i]);
}

static void test_errors(void **state)
{
	(void)state;
	struct http_reply r;

	assert_int_equal(pyroscope_serve(h, "Diff", "", 0, &r), 0);
	assert_int_equal(r.status, 501);
	assert_string_equal(r.content_type, "application/json");
	assert_non_null(strstr(r.body, "\"code\":\"unimplemented\""));
	free(r.body);

	assert_int_equal(pyroscope_serve(h, "SelectSeries", "\x0a\x03" "abc", 5, &r), 0);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "\"code\":\"invalid_argument\",\"message\":\"unknown profile type \\\"abc\\\""));
	free(r.body);
}

/* An error that quotes client input with control characters (each escaped to six bytes) is whole,
 * valid JSON: a selector of 300 x 0x1c once wrote past the reply's buffer. */
static void test_error_quotes_control_characters(void **state)
{
	(void)state;
	Querier__V1__SelectMergeSpanProfileRequest req = QUERIER__V1__SELECT_MERGE_SPAN_PROFILE_REQUEST__INIT;
	char selector[303];
	uint8_t buf[512];
	struct http_reply r;

	selector[0] = '{';
	memset(selector + 1, 0x1c, 300);
	selector[301] = '}';
	selector[302] = '\0';
	req.profile_typeid = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
	req.label_selector = selector;
	size_t len = querier__v1__select_merge_span_profile_request__pack(&req, buf);
	assert_int_equal(pyroscope_serve(h, "SelectMergeSpanProfile", buf, len, &r), 0);
	assert_int_equal(r.status, 400);
	assert_string_equal(r.content_type, "application/json");

	json_object *o = json_tokener_parse(r.body), *code, *message;
	assert_non_null(o);
	assert_int_equal(strlen(r.body), r.len);
	assert_true(json_object_object_get_ex(o, "code", &code));
	assert_string_equal(json_object_get_string(code), "invalid_argument");
	assert_true(json_object_object_get_ex(o, "message", &message));
	assert_non_null(strstr(json_object_get_string(message), "\x1c\x1c\x1c"));
	assert_non_null(strstr(r.body, "\\u001c"));
	json_object_put(o);
	free(r.body);

	/* Bytes that are not UTF-8 leave the reply valid UTF-8, as JSON must be. */
	req.label_selector = "{\xff\xfe=\"\xc3\"}";
	len = querier__v1__select_merge_span_profile_request__pack(&req, buf);
	assert_int_equal(pyroscope_serve(h, "SelectMergeSpanProfile", buf, len, &r), 0);
	assert_int_equal(r.status, 400);
	assert_true(text_utf8_valid(r.body));
	free(r.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_tree_bytes),
		cmocka_unit_test(test_series_steps),
		cmocka_unit_test(test_series_bound),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_quotes_control_characters),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
