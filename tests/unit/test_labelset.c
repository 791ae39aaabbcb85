#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "labels/labelset.h"

static void test_sorted_unique_and_empty_removes(void **state)
{
	(void)state;
	struct labelset ls = { 0 };

	assert_int_equal(labelset_set(&ls, "job", "anorak"), 0);
	assert_int_equal(labelset_set(&ls, "comm", "bash"), 0);
	assert_int_equal(labelset_set(&ls, "instance", "node-1"), 0);
	assert_int_equal(labelset_set(&ls, "comm", "zsh"), 0);
	assert_int_equal(ls.n, 3);
	assert_string_equal(ls.labels[0].name, "comm");
	assert_string_equal(ls.labels[0].value, "zsh");
	assert_string_equal(ls.labels[1].name, "instance");
	assert_string_equal(ls.labels[2].name, "job");
	assert_string_equal(labelset_get(&ls, "job"), "anorak");
	assert_null(labelset_get(&ls, "pod"));

	assert_int_equal(labelset_set(&ls, "instance", ""), 0);
	assert_int_equal(ls.n, 2);
	assert_null(labelset_get(&ls, "instance"));
	assert_int_equal(labelset_set(&ls, "absent", NULL), 0);
	assert_int_equal(ls.n, 2);
	labelset_free(&ls);
	assert_int_equal(ls.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_unique_and_empty_removes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
