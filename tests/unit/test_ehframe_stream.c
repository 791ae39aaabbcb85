/*
 * Streamed unwind tables (exporter/sampling/ehframe_stream.c) against the tables built whole: the
 * same rows, byte for byte, and the same base, on real binaries (Debian's libc and libstdc++, LLVM's
 * library that clang is built on, the python3 interpreter, the cgo workload, the test fixtures), in
 * batches of whole blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/proc/elf_file.h"
#include "exporter/sampling/ehframe.h"
#include "exporter/sampling/ehframe_stream.h"

#define MAX_ROWS (1u << 23)

struct collected {
	struct unwind_row *rows;
	uint32_t n, cap, batches;
};

static int collect(void *ctx, uint32_t at, const struct unwind_row *rows, uint32_t n)
{
	struct collected *c = ctx;

	assert_int_equal(at, c->n);
	assert_true(n > 0 && n <= EHFRAME_STREAM_BATCH);
	assert_true(at % UNWIND_BLOCK_ROWS == 0);
	assert_true(c->n + n <= c->cap);
	memcpy(c->rows + c->n, rows, n * sizeof(*rows));
	c->n += n;
	c->batches++;
	return 0;
}

/* Streams path's table and compares it with the whole one; the stream's open error otherwise. */
static int compare_streamed(const char *path, uint32_t *nrows)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *f;
	struct ehframe_table whole;
	struct ehframe_stream *s;
	struct collected c = { 0 };
	uint64_t base;
	int err;

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(elf_file_open(fd, 1ull << 31, &f), 0);
	assert_int_equal(ehframe_table_from_elf(f, MAX_ROWS, &whole), 0);
	err = ehframe_stream_open(f, fd, 64u << 20, &s);
	if (!err) {
		assert_int_equal(ehframe_stream_count(s, MAX_ROWS, nrows, &base), 0);
		assert_int_equal(*nrows, whole.nrows);
		assert_true(base == whole.base);
		c.cap = *nrows;
		c.rows = malloc((size_t)c.cap * sizeof(*c.rows));
		assert_non_null(c.rows);
		assert_int_equal(ehframe_stream_write(s, collect, &c), 0);
		assert_int_equal(c.n, whole.nrows);
		assert_int_equal(c.batches, (whole.nrows + EHFRAME_STREAM_BATCH - 1) / EHFRAME_STREAM_BATCH);
		assert_memory_equal(c.rows, whole.rows, (size_t)whole.nrows * sizeof(*whole.rows));
		free(c.rows);
		ehframe_stream_free(s);
	}
	ehframe_table_free(&whole);
	elf_file_close(f);
	close(fd);
	return err;
}

static void expect_streamed(const char *path, uint32_t min_rows)
{
	uint32_t nrows = 0;
	int err = compare_streamed(path, &nrows);

	if (err)
		fail_msg("%s: not streamed: %s", path, strerror(-err));
	if (nrows < min_rows)
		fail_msg("%s: %u rows, expected at least %u", path, nrows, min_rows);
}

static void test_libc(void **state)
{
	(void)state;
	expect_streamed("/lib/x86_64-linux-gnu/libc.so.6", 10000);
}

static void test_libstdcxx(void **state)
{
	(void)state;
	expect_streamed("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 10000);
}

/* clang (a build dependency) runs on this library: a million rows, more than 200 batches. */
static void test_libllvm(void **state)
{
	(void)state;
	expect_streamed("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", 500000);
}

static void test_python(void **state)
{
	char path[PATH_MAX];

	(void)state;
	if (!realpath("/usr/bin/python3", path))
		fail_msg("/usr/bin/python3: %s", strerror(errno));
	expect_streamed(path, 5000);
}

static void test_fixtures(void **state)
{
	(void)state;
	expect_streamed(FIXTURES_DIR "/fixture_pie", 10);
	expect_streamed(FIXTURES_DIR "/libanorak_fixture.so", 10);
	expect_streamed(FIXTURES_DIR "/../workload/weights_nofp", 10);
}

/* The daemon builds Go binaries' tables whole (their .gopclntab rows are merged in); a cgo binary's
 * .eh_frame streams the same rows when it can be streamed at all. */
static void test_cgo(void **state)
{
	uint32_t nrows;
	int err;

	(void)state;
	err = compare_streamed(FIXTURES_DIR "/../workload/gocgo", &nrows);
	if (err && err != -EOPNOTSUPP)
		fail_msg("gocgo: %s", strerror(-err));
}

/* Refusals: no file to read (an image in memory) and a header above the memory allowed. */
static void test_refused(void **state)
{
	int fd = open("/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY | O_CLOEXEC);
	struct ehframe_stream *s = NULL;
	struct elf_file *f;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, 1ull << 31, &f), 0);
	assert_int_equal(ehframe_stream_open(f, -1, 64u << 20, &s), -EOPNOTSUPP);
	assert_int_equal(ehframe_stream_open(f, fd, 1024, &s), -EFBIG);
	assert_null(s);
	elf_file_close(f);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libc),
		cmocka_unit_test(test_libstdcxx),
		cmocka_unit_test(test_libllvm),
		cmocka_unit_test(test_python),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_cgo),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
