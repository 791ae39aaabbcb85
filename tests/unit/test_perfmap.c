#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/symbols/perfmap.h"

static struct perfmap *parse(const char *text, size_t max)
{
	struct perfmap *p = NULL;
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	assert_non_null(f);
	assert_int_equal(perfmap_parse(f, max, &p), 0);
	fclose(f);
	return p;
}

static void test_lookup(void **state)
{
	struct perfmap *p = parse("7f0000001000 100 LazyCompile:~foo app.js:1\n"
				  "0x7f0000002000 0x80 Interpreter\n"
				  "garbage\n"
				  "7f0000003000 zz bad size\n"
				  "7f0000004000 0 empty size\n"
				  "-7f0000005000 10 negative\n"
				  "7f0000006000 10\n"
				  "7f0000007000 40 last one",
				  100);

	(void)state;
	assert_int_equal(perfmap_count(p), 3);
	assert_string_equal(perfmap_lookup(p, 0x7f0000001000ull), "LazyCompile:~foo app.js:1");
	assert_string_equal(perfmap_lookup(p, 0x7f00000010ffull), "LazyCompile:~foo app.js:1");
	assert_null(perfmap_lookup(p, 0x7f0000001100ull));
	assert_string_equal(perfmap_lookup(p, 0x7f0000002010ull), "Interpreter");
	assert_string_equal(perfmap_lookup(p, 0x7f000000703full), "last one");
	assert_null(perfmap_lookup(p, 0x7f0000000fffull));
	assert_null(perfmap_lookup(p, 0x7f0000007040ull));
	perfmap_free(p);
}

static void test_overlap_later_wins(void **state)
{
	struct perfmap *p = parse("1000 1000 old_big\n"
				  "1400 100 old_small\n"
				  "1400 100 new_small\n"
				  "1000 80 new_head\n",
				  100);

	(void)state;
	assert_string_equal(perfmap_lookup(p, 0x1010), "new_head");
	assert_string_equal(perfmap_lookup(p, 0x1090), "old_big"); /* new_head ended */
	assert_string_equal(perfmap_lookup(p, 0x1450), "new_small");
	assert_string_equal(perfmap_lookup(p, 0x1800), "old_big");
	perfmap_free(p);
}

static void test_limits(void **state)
{
	size_t n = PERFMAP_LINE_MAX * 3;
	char *text = malloc(n + 128);
	struct perfmap *p;

	(void)state;
	assert_non_null(text);
	strcpy(text, "1000 10 a\n2000 10 ");
	memset(text + strlen(text), 'x', n); /* an overlong name: skipped whole */
	strcpy(text + strlen(text), "\n3000 10 c\n4000 10 d\n5000 10 e\n");
	p = parse(text, 3);
	assert_int_equal(perfmap_count(p), 3); /* a, c, d: the limit stops before e */
	assert_null(perfmap_lookup(p, 0x2000));
	assert_string_equal(perfmap_lookup(p, 0x3000), "c");
	assert_null(perfmap_lookup(p, 0x5000));
	perfmap_free(p);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_overlap_later_wins),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
