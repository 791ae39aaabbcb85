#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/proc/procmaps.h"

static struct procmaps_entry e;

static void test_file_line(void **state)
{
	(void)state;
	assert_int_equal(procmaps_parse_line("55d0c8a00000-55d0c8a21000 r-xp 00002000 fd:01 1234567   "
					     "/usr/bin/my prog\n", &e), 0);
	assert_true(e.start == 0x55d0c8a00000ull && e.end == 0x55d0c8a21000ull && e.offset == 0x2000);
	assert_int_equal(e.dev_major, 0xfd);
	assert_int_equal(e.dev_minor, 1);
	assert_true(e.inode == 1234567);
	assert_true(e.readable && !e.writable && e.executable && !e.shared && !e.deleted);
	assert_string_equal(e.path, "/usr/bin/my prog");
}

static void test_deleted_and_anon(void **state)
{
	(void)state;
	assert_int_equal(procmaps_parse_line("7f0000000000-7f0000001000 --xp 00000000 08:02 42 "
					     "/tmp/lib x.so (deleted)", &e), 0);
	assert_true(e.deleted && !e.readable && e.executable);
	assert_string_equal(e.path, "/tmp/lib x.so");

	assert_int_equal(procmaps_parse_line("7f0000000000-7f0000001000 rwxp 00000000 00:00 0\n", &e), 0);
	assert_string_equal(e.path, "");
	assert_true(e.inode == 0 && e.writable);

	assert_int_equal(procmaps_parse_line("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
					     "                  [vsyscall]", &e), 0);
	assert_string_equal(e.path, "[vsyscall]");
}

static void test_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"garbage",
		"7f00-",
		"7f00-7f10",
		"7f00-7f10 r-xp",
		"7f00-7f10 r-xq 0 00:00 0",
		"7f00-7f10 rzxp 0 00:00 0",
		"7f10-7f00 r-xp 0 00:00 0",               /* end before start */
		"7f00-7f10 r-xp 0 00:00",
		"7f00-7f10 r-xp 0 0000 0",
		"7f00-7f10 r-xp 0 00:00 x",
		"7f00-7f10 r-xp 0 00:00 12x /a",
		"7f00-7f10 r-xp 00000000000000000 00:00 0", /* 17 hex digits */
		"g7f00-7f10 r-xp 0 00:00 0",
		"7f00-7f10 r-xp 0 00:00 99999999999999999999999 /a",
		"7f00-7f10 r-xp 0 00:00 0 /a\nb",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (procmaps_parse_line(bad[i], &e) != -EINVAL)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
}

static void test_long_path(void **state)
{
	size_t n = PATH_MAX + 100;
	char *line = malloc(n + 64);

	(void)state;
	assert_non_null(line);
	strcpy(line, "1000-2000 r-xp 0 00:00 5 /");
	memset(line + strlen(line), 'a', n);
	line[26 + n] = '\0';
	assert_int_equal(procmaps_parse_line(line, &e), -ENAMETOOLONG);
	free(line);
}

struct find_ctx {
	uint64_t addr;
	int found_exec, found_stack, total;
};

static int find_cb(const struct procmaps_entry *pe, void *arg)
{
	struct find_ctx *c = arg;

	c->total++;
	if (pe->executable && c->addr >= pe->start && c->addr < pe->end && pe->path[0] == '/')
		c->found_exec++;
	if (strcmp(pe->path, "[stack]") == 0)
		c->found_stack++;
	return 0;
}

static void test_self_maps(void **state)
{
	struct find_ctx c = { .addr = (uintptr_t)test_self_maps };
	FILE *f = fopen("/proc/self/maps", "r");

	(void)state;
	assert_non_null(f);
	assert_int_equal(procmaps_foreach(f, find_cb, &c), 0);
	fclose(f);
	assert_int_equal(c.found_exec, 1);
	assert_int_equal(c.found_stack, 1);
	assert_true(c.total > 5);
}

static int count_cb(const struct procmaps_entry *pe, void *arg)
{
	(void)pe;
	(*(int *)arg)++;
	return 0;
}

static void test_foreach_skips_bad_lines(void **state)
{
	size_t len = PATH_MAX * 2;
	char *text = malloc(len + 256);
	int n = 0;
	FILE *f;

	(void)state;
	assert_non_null(text);
	strcpy(text, "1000-2000 r-xp 0 00:00 0\nnonsense line\n");
	memset(text + strlen(text), 'z', len); /* an overlong line */
	strcpy(text + strlen(text) - 0, "\n3000-4000 r--p 0 00:00 0 /x\n\x01\x02\n5000-6000 r-xp 0 00:00 0");
	f = fmemopen(text, strlen(text), "r");
	assert_non_null(f);
	assert_int_equal(procmaps_foreach(f, count_cb, &n), 0);
	fclose(f);
	free(text);
	assert_int_equal(n, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_line),
		cmocka_unit_test(test_deleted_and_anon),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_self_maps),
		cmocka_unit_test(test_foreach_skips_bad_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
