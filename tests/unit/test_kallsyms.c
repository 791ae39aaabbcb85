#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/symbols/kallsyms.h"

static const char sample[] =
	"ffffffffc0a02000 t mod_helper\t[nf_tables]\n"
	"ffffffff81000000 T _stext\n"
	"ffffffff81000000 t startup_64\n"
	"ffffffff81001000 T do_syscall_64\n"
	"ffffffff81001000 d some_data\n"
	"ffffffff81002000 W weak_fn\n"
	"ffffffff81003000 D data_sym\n"
	"this is not a line\n"
	"ffffffff81004000 t\n"
	"ffffffff81005000 T end_of_text\n"
	"ffffffffc0a01000 T mod_init\t[nf_tables]\n"
	"ffffffffc0b00000 t other_fn\t[xfs]\n"
	"ffffffffc0b00100 t bad_module\t[xfs\n";

static struct kallsyms *parse(const char *text, size_t max, int *err)
{
	struct kallsyms *k = NULL;
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	assert_non_null(f);
	*err = kallsyms_parse(f, max, &k);
	fclose(f);
	return k;
}

static void test_lookup(void **state)
{
	const char *mod = NULL;
	int err;
	struct kallsyms *k = parse(sample, 100, &err);

	(void)state;
	assert_int_equal(err, 0);
	/* _stext/startup_64 share an address (one kept), data symbols and bad lines are dropped. */
	assert_int_equal(kallsyms_count(k), 7);
	assert_string_equal(kallsyms_lookup(k, 0xffffffff81000010ull, &mod), "_stext");
	assert_string_equal(mod, "");
	assert_string_equal(kallsyms_lookup(k, 0xffffffff81001fffull, &mod), "do_syscall_64");
	assert_string_equal(kallsyms_lookup(k, 0xffffffff81003800ull, &mod), "weak_fn");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0a01004ull, &mod), "mod_init");
	assert_string_equal(mod, "nf_tables");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0a02004ull, &mod), "mod_helper");
	assert_string_equal(mod, "nf_tables");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0b00200ull, &mod), "other_fn");
	assert_string_equal(mod, "xfs");
	assert_null(kallsyms_lookup(k, 0xffffffff80000000ull, &mod));
	/* Far past the last symbol of the core kernel: nothing, not end_of_text. */
	assert_null(kallsyms_lookup(k, 0xffffffffa0000000ull, &mod));
	kallsyms_free(k);
}

/* A name that ends the previous one shares its bytes; modules whose addresses interleave keep theirs. */
static void test_shared_names(void **state)
{
	static const char text[] = "ffffffffc0000000 t __pfx_f\t[a]\n"
				   "ffffffffc0000010 t f\t[a]\n"
				   "ffffffffc0000020 t __pfx_g\n"
				   "ffffffffc0000030 t g\t[b]\n"
				   "ffffffffc0000040 t f\t[a]\n"
				   "ffffffffc0000050 t x_f\n";
	const char *mod = NULL;
	int err;
	struct kallsyms *k = parse(text, 100, &err);

	(void)state;
	assert_int_equal(err, 0);
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000000ull, &mod), "__pfx_f");
	assert_string_equal(mod, "a");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000010ull, &mod), "f");
	assert_string_equal(mod, "a");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000020ull, &mod), "__pfx_g");
	assert_string_equal(mod, "");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000030ull, &mod), "g");
	assert_string_equal(mod, "b");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000040ull, &mod), "f");
	assert_string_equal(mod, "a");
	assert_string_equal(kallsyms_lookup(k, 0xffffffffc0000058ull, &mod), "x_f");
	assert_string_equal(mod, "");
	kallsyms_free(k);
}

static void test_hidden_addresses(void **state)
{
	int err;

	(void)state;
	assert_null(parse("0000000000000000 T _stext\n0000000000000000 t foo\t[m]\n", 10, &err));
	assert_int_equal(err, -EPERM);
	assert_null(parse("ffffffff81003000 D data_sym\n", 10, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(parse("", 10, &err));
	assert_int_equal(err, -ENOENT);
}

static void test_limit(void **state)
{
	int err;

	(void)state;
	assert_null(parse(sample, 3, &err));
	assert_int_equal(err, -E2BIG);
}

static void test_real_kallsyms(void **state)
{
	struct kallsyms *k = NULL;
	int err = kallsyms_load("/proc/kallsyms", 4u << 20, &k);

	(void)state;
	/* Without CAP_SYSLOG the kernel hides addresses: that is -EPERM, not a table of zeros, and this
	 * test needs root to read the real file. */
	if (err == -EPERM)
		fail_msg("/proc/kallsyms hides addresses from this user: run the unit tests as root");
	assert_int_equal(err, 0);
	assert_true(kallsyms_count(k) > 1000);
	kallsyms_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_shared_names),
		cmocka_unit_test(test_hidden_addresses),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_real_kallsyms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
