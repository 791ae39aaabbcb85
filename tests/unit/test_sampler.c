#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "exporter/sampling/sampler.h"

static void test_cpu_lists(void **state)
{
	(void)state;
	int cpus[16];

	assert_int_equal(sampler_parse_cpu_list("0-1\n", cpus, 16), 2);
	assert_int_equal(cpus[0], 0);
	assert_int_equal(cpus[1], 1);
	assert_int_equal(sampler_parse_cpu_list("0,2-4,7", cpus, 16), 5);
	assert_int_equal(cpus[1], 2);
	assert_int_equal(cpus[3], 4);
	assert_int_equal(cpus[4], 7);
	assert_int_equal(sampler_parse_cpu_list("5", cpus, 16), 1);
	assert_int_equal(cpus[0], 5);
}

static void test_bad_cpu_lists(void **state)
{
	(void)state;
	int cpus[4];

	assert_int_equal(sampler_parse_cpu_list("", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("a", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("3-1", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("0-", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("0;1", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("-1", cpus, 4), -EINVAL);
	assert_int_equal(sampler_parse_cpu_list("0-9", cpus, 4), -E2BIG);
	assert_int_equal(sampler_parse_cpu_list("99999999", cpus, 4), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_lists),
		cmocka_unit_test(test_bad_cpu_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
