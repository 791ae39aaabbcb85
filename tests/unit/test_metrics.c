#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"

static void test_printf_grows(void **state)
{
	struct metrics_buf b = { 0 };
	char big[10000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	metrics_printf(&b, "a%d", 1);
	metrics_printf(&b, "%s", big);
	metrics_printf(&b, "z");
	assert_false(b.failed);
	assert_int_equal(b.len, 2 + sizeof(big) - 1 + 1);
	assert_memory_equal(b.data, "a1xx", 4);
	assert_int_equal(b.data[b.len - 1], 'z');
	assert_int_equal(b.data[b.len], '\0');
	metrics_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

/* A series handle without HELP and TYPE: what a series writes, alone. */
static struct metrics_series bare(struct metrics_buf *b, const char *name)
{
	return (struct metrics_series){ .b = b, .name = name };
}

static void test_family(void **state)
{
	struct metrics_buf b = { 0 };

	(void)state;
	metrics_series_begin(&b, "anorak_x_total", "counter", "Things \"counted\", C:\\path\nsecond line.");
	assert_string_equal(b.data, "# HELP anorak_x_total Things \"counted\", C:\\\\path\\nsecond line.\n"
				    "# TYPE anorak_x_total counter\n");
	metrics_buf_free(&b);
}

static void test_values(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0, "0" },
		{ -0.0, "0" },
		{ 1, "1" },
		{ -1, "-1" },
		{ 42, "42" },
		{ 1048576, "1048576" },
		{ 1e15, "1000000000000000" },
		{ 9007199254740992.0, "9007199254740992" },
		{ 1e20, "1e+20" },
		{ 0.1, "0.1" },
		{ 1.5, "1.5" },
		{ 0.005, "0.005" },
		{ 1.0 / 3, "0.3333333333333333" },
		{ 123456.789, "123456.789" },
		{ 1e-7, "1e-07" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
		{ NAN, "NaN" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct metrics_buf b = { 0 };
		char want[64];

		snprintf(want, sizeof(want), "m %s\n", cases[i].text);
		metrics_series_value(bare(&b, "m"), NULL, cases[i].v);
		assert_string_equal(b.data, want);
		metrics_buf_free(&b);
	}
}

static void test_value_labels(void **state)
{
	struct metrics_buf b = { 0 };

	(void)state;
	metrics_series_value(bare(&b, "anorak_up"), "job=\"a\",instance=\"b\"", 1);
	metrics_series_value(bare(&b, "anorak_up"), "", 2);
	assert_string_equal(b.data, "anorak_up{job=\"a\",instance=\"b\"} 1\nanorak_up 2\n");
	metrics_buf_free(&b);
}

/* The helpers write HELP, TYPE and the value, naming the family once. */
static void test_single_value_families(void **state)
{
	struct metrics_buf b = { 0 };

	(void)state;
	metrics_counter(&b, "anorak_c_total", "Counted\nthings.", 3);
	metrics_gauge(&b, "anorak_g_bytes", "Bytes now.", 1048576);
	assert_false(b.failed);
	assert_string_equal(b.data, "# HELP anorak_c_total Counted\\nthings.\n"
				    "# TYPE anorak_c_total counter\n"
				    "anorak_c_total 3\n"
				    "# HELP anorak_g_bytes Bytes now.\n"
				    "# TYPE anorak_g_bytes gauge\n"
				    "anorak_g_bytes 1048576\n");
	metrics_buf_free(&b);
}

static void test_labelled_series(void **state)
{
	struct metrics_buf b = { 0 };
	char escaped[32];

	(void)state;
	struct metrics_series s = metrics_series_begin(&b, "anorak_r_total", "counter", "Requests.");
	metrics_series_value(s, "result=\"ok\"", 2);
	metrics_series_value(s, NULL, 0.5);
	metrics_series_valuef(s, 7, "handler=\"%s\",code=\"%d\"",
			      metrics_escape_label("/a\"b", escaped, sizeof(escaped)), 404);
	assert_false(b.failed);
	assert_string_equal(b.data, "# HELP anorak_r_total Requests.\n"
				    "# TYPE anorak_r_total counter\n"
				    "anorak_r_total{result=\"ok\"} 2\n"
				    "anorak_r_total 0.5\n"
				    "anorak_r_total{handler=\"/a\\\"b\",code=\"404\"} 7\n");
	metrics_buf_free(&b);
}

/* Labels longer than the buffer's first allocation still come out whole. */
static void test_labelled_series_grows(void **state)
{
	struct metrics_buf b = { 0 };
	char big[9000];

	(void)state;
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct metrics_series s = metrics_series_begin(&b, "m", "gauge", "M.");
	metrics_series_valuef(s, 1, "k=\"%s\"", big);
	assert_false(b.failed);
	assert_int_equal(b.len, strlen("# HELP m M.\n# TYPE m gauge\n") + strlen("m{k=\"\"} 1\n") + sizeof(big) - 1);
	assert_memory_equal(b.data + b.len - 5, "\"} 1\n", 5);
	metrics_buf_free(&b);
}

static void test_escape_label(void **state)
{
	char out[64], small[6];

	(void)state;
	assert_string_equal(metrics_escape_label("plain", out, sizeof(out)), "plain");
	assert_string_equal(metrics_escape_label("a\\b\"c\nd", out, sizeof(out)), "a\\\\b\\\"c\\nd");
	assert_string_equal(metrics_escape_label("", out, sizeof(out)), "");
	/* UTF-8 passes through untouched. */
	assert_string_equal(metrics_escape_label("h\xc3\xa9", out, sizeof(out)), "h\xc3\xa9");
	/* Truncation never leaves half an escape sequence. */
	assert_string_equal(metrics_escape_label("abcd\"e", small, sizeof(small)), "abcd");
	assert_string_equal(metrics_escape_label("abc\"e", small, sizeof(small)), "abc\\\"");
}

static const double bounds[] = { 0.25, 1, 10 };

static void test_histogram(void **state)
{
	struct metrics_histogram h;
	struct metrics_buf b = { 0 };

	(void)state;
	assert_int_equal(metrics_histogram_init(&h, bounds, 3), 0);
	metrics_histogram_observe(&h, 0.125);
	metrics_histogram_observe(&h, 0.25); /* le is inclusive */
	metrics_histogram_observe(&h, 5);
	metrics_histogram_observe(&h, 100);
	metrics_histogram_write(&b, "anorak_d_seconds", "Durations.", &h);
	assert_string_equal(b.data, "# HELP anorak_d_seconds Durations.\n"
				    "# TYPE anorak_d_seconds histogram\n"
				    "anorak_d_seconds_bucket{le=\"0.25\"} 2\n"
				    "anorak_d_seconds_bucket{le=\"1\"} 2\n"
				    "anorak_d_seconds_bucket{le=\"10\"} 3\n"
				    "anorak_d_seconds_bucket{le=\"+Inf\"} 4\n"
				    "anorak_d_seconds_sum 105.375\n"
				    "anorak_d_seconds_count 4\n");
	metrics_buf_free(&b);
	metrics_histogram_destroy(&h);
}

static void test_histogram_series_labels(void **state)
{
	struct metrics_histogram h;
	struct metrics_buf b = { 0 };

	(void)state;
	assert_int_equal(metrics_histogram_init(&h, bounds, 1), 0);
	metrics_series_histogram(bare(&b, "d"), "handler=\"/x\"", &h);
	assert_string_equal(b.data, "d_bucket{handler=\"/x\",le=\"0.25\"} 0\n"
				    "d_bucket{handler=\"/x\",le=\"+Inf\"} 0\n"
				    "d_sum{handler=\"/x\"} 0\n"
				    "d_count{handler=\"/x\"} 0\n");
	metrics_buf_free(&b);
	metrics_histogram_destroy(&h);
}

static void test_series_histograms(void **state)
{
	struct metrics_histogram h;
	struct metrics_buf b = { 0 };

	(void)state;
	assert_int_equal(metrics_histogram_init(&h, bounds, 1), 0);
	metrics_histogram_observe(&h, 2);
	struct metrics_series s = metrics_series_begin(&b, "d", "histogram", "D.");
	metrics_series_histogram(s, "handler=\"/x\"", &h);
	assert_string_equal(b.data, "# HELP d D.\n"
				    "# TYPE d histogram\n"
				    "d_bucket{handler=\"/x\",le=\"0.25\"} 0\n"
				    "d_bucket{handler=\"/x\",le=\"+Inf\"} 1\n"
				    "d_sum{handler=\"/x\"} 2\n"
				    "d_count{handler=\"/x\"} 1\n");
	metrics_buf_free(&b);
	metrics_histogram_destroy(&h);
}

static void *observe_many(void *arg)
{
	for (int i = 0; i < 10000; i++)
		metrics_histogram_observe(arg, i % 2 ? 0.5 : 50);
	return NULL;
}

static void test_histogram_threads(void **state)
{
	struct metrics_histogram h;
	pthread_t t[4];

	(void)state;
	assert_int_equal(metrics_histogram_init(&h, bounds, 3), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, observe_many, &h), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(h.count, 40000);
	assert_int_equal(h.buckets[1], 20000);
	assert_int_equal(h.buckets[3], 20000);
	metrics_histogram_destroy(&h);
}

static void write_a(struct metrics_buf *b, void *ctx)
{
	metrics_series_value(bare(b, "a"), NULL, *(int *)ctx);
}

static void write_b(struct metrics_buf *b, void *ctx)
{
	(void)ctx;
	metrics_series_value(bare(b, "b"), NULL, 2);
}

static void test_registry(void **state)
{
	struct metrics_buf b = { 0 };
	int one = 1, three = 3;

	(void)state;
	metrics_unregister_all();
	assert_int_equal(metrics_render(&b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	metrics_buf_free(&b);

	assert_int_equal(metrics_register(write_a, &one), 0);
	assert_int_equal(metrics_register(write_b, NULL), 0);
	assert_int_equal(metrics_register(write_a, &three), 0);
	assert_int_equal(metrics_render(&b), 0);
	assert_string_equal(b.data, "a 1\nb 2\na 3\n");
	metrics_buf_free(&b);

	assert_int_equal(metrics_unregister(write_a, &one), 0);
	assert_int_equal(metrics_unregister(write_a, &one), -ENOENT);
	assert_int_equal(metrics_render(&b), 0);
	assert_string_equal(b.data, "b 2\na 3\n");
	metrics_buf_free(&b);

	metrics_unregister_all();
	assert_int_equal(metrics_render(&b), 0);
	assert_string_equal(b.data, "");
	metrics_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_value_labels),
		cmocka_unit_test(test_single_value_families),
		cmocka_unit_test(test_labelled_series),
		cmocka_unit_test(test_labelled_series_grows),
		cmocka_unit_test(test_escape_label),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_histogram_series_labels),
		cmocka_unit_test(test_series_histograms),
		cmocka_unit_test(test_histogram_threads),
		cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
