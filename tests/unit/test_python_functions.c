/* The Python function table: ids stay the same while its slots grow, and the capacity is the bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/symbols/python_functions.h"

#define CAPACITY 5000

static void test_ids_survive_growth_and_the_bound_holds(void **state)
{
	static uint32_t ids[CAPACITY];
	char name[32];
	const char *qualname, *filename;
	uint32_t id;

	(void)state;
	assert_int_equal(python_functions_init(CAPACITY), 0);
	/* id 0 is the unresolved frame's: CAPACITY - 1 more fit, through several doublings. */
	for (uint32_t i = 1; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		assert_int_equal(python_functions_intern(name, i % 2 ? "a.py" : "b.py", &ids[i]), 0);
		assert_int_equal(ids[i], i);
	}
	assert_int_equal(python_functions_count(), CAPACITY);
	for (uint32_t i = 1; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		assert_int_equal(python_functions_intern(name, i % 2 ? "a.py" : "b.py", &id), 0);
		assert_int_equal(id, ids[i]);
		assert_true(python_frame_function(python_frame_resolved(id, 7), &qualname, &filename));
		assert_string_equal(qualname, name);
	}
	assert_int_equal(python_functions_intern("f1", "b.py", &id), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_survive_growth_and_the_bound_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
