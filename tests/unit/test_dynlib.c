#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "common/dynlib.h"

/* zlib: the daemon links it, so it is always there, and its header names its version. */
#define LIBZ "libz.so.1"

static void test_loads_and_resolves(void **state)
{
	const char *(*version)(void) = NULL;
	const struct dynlib_fn fns[] = { { "zlibVersion", (void **)&version } };
	(void)state;

	assert_int_equal(dynlib_load(LIBZ, fns, 1), 0);
	assert_non_null(version);
	assert_string_equal(version(), ZLIB_VERSION);
}

/* Every name is tried, so the log names each missing one; the ones found are still set. */
static void test_missing_function(void **state)
{
	void *found = NULL, *missing = &found;
	const struct dynlib_fn fns[] = {
		{ "anorak_no_such_function", &missing },
		{ "zlibVersion", &found },
	};
	(void)state;

	assert_int_equal(dynlib_load(LIBZ, fns, 2), -ENOSYS);
	assert_null(missing);
	assert_non_null(found);
}

static void test_missing_library(void **state)
{
	void *fn = NULL;
	const struct dynlib_fn fns[] = { { "zlibVersion", &fn } };
	(void)state;

	assert_int_equal(dynlib_load("libanorak-no-such-library.so.0", fns, 1), -ENOENT);
	assert_null(fn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loads_and_resolves),
		cmocka_unit_test(test_missing_function),
		cmocka_unit_test(test_missing_library),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
