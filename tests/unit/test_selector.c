/* Prometheus selectors: syntax, escapes, errors naming the position, and =, !=, =~, !~ semantics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "labels/selector.h"

static struct label target[] = {
	{ "container", "api" }, { "instance", "node-1:9760" }, { "namespace", "shop" }, { "pod", "api-7f9c" },
};
#define NTARGET (sizeof(target) / sizeof(target[0]))

static bool matches(const char *text)
{
	struct selector sel;
	char err[256] = "";
	bool hit;

	if (selector_parse(text, &sel, err, sizeof(err)))
		fail_msg("selector %s: %s", text, err);
	hit = selector_matches(&sel, target, NTARGET, "__name__", "process_cpu");
	selector_free(&sel);
	return hit;
}

static void test_operators(void **state)
{
	(void)state;
	assert_true(matches(""));
	assert_true(matches("{}"));
	assert_true(matches(" { } "));
	assert_true(matches("{namespace=\"shop\"}"));
	assert_false(matches("{namespace=\"shop2\"}"));
	assert_true(matches("{namespace=\"shop\",pod=~\"api-.*\"}"));
	assert_true(matches("{namespace=\"shop\", pod=~\"api-.*\",}"));
	assert_false(matches("{pod=~\"api\"}")); /* anchored */
	assert_true(matches("{pod!~\"web-.*\"}"));
	assert_false(matches("{pod!~\"api-.*\"}"));
	assert_true(matches("{namespace!=\"kube-system\"}"));
	assert_false(matches("{namespace!=\"shop\"}"));
	/* A missing label is the empty string. */
	assert_true(matches("{missing=\"\"}"));
	assert_false(matches("{missing=~\".+\"}"));
	assert_true(matches("{missing!=\"x\"}"));
	/* The metric name is __name__. */
	assert_true(matches("process_cpu{namespace=\"shop\"}"));
	assert_true(matches("process_cpu"));
	assert_false(matches("memory{namespace=\"shop\"}"));
	assert_true(matches("{__name__=\"process_cpu\"}"));
	/* Quotes and escapes as in Go. */
	assert_true(matches("{namespace='shop'}"));
	assert_true(matches("{namespace=`shop`}"));
	assert_true(matches("{namespace=\"\\x73hop\"}"));
	assert_true(matches("{namespace=\"\\u0073hop\"}"));
	assert_true(matches("{pod=~`api-\\w+`}"));
	assert_true(matches("{instance=~\"node-1:\\\\d+\"}"));
}

static void expect_error(const char *text, const char *want)
{
	struct selector sel;
	char err[256] = "";

	assert_int_equal(selector_parse(text, &sel, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("selector %s: error \"%s\" does not say \"%s\"", text, err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("{namespace}", "char 11: expected one of =, !=, =~, !~");
	expect_error("{namespace=shop}", "char 12: expected a quoted string");
	expect_error("{namespace=\"shop}", "unterminated quoted string");
	expect_error("{namespace=\"shop\"", "expected ',' or '}'");
	expect_error("{namespace=\"shop\"} x", "unexpected text after '}'");
	expect_error("{pod=~\"a(\"}", "error parsing regexp: missing closing )");
	expect_error("{1a=\"x\"}", "char 2: expected a label name");
	expect_error("{a=\"\\q\"}", "unknown escape sequence");
	expect_error("namespace=\"shop\"", "expected '{'");
}

static void test_many_matchers(void **state)
{
	(void)state;
	char text[4096] = "{";
	struct selector sel;
	char err[256];

	for (int i = 0; i <= SELECTOR_MAX_MATCHERS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "l%d=\"v\",", i);
	strcat(text, "}");
	assert_int_equal(selector_parse(text, &sel, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_many_matchers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
