/* Pyroscope's flame graph layout on a known tree, exactly (names in pop order, levels of
 * [x delta, total, self, name], self before children, children by name, "other" under max_nodes), and
 * Connect errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "history.h"
#include "process.h"
#include "pyroscope.h"
#include "querier/v1/querier.pb-c.h"
#include "window.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
