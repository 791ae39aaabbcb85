#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/symbols/debug_cache.h"

#define A "aa01"
#define B "bb02"
#define C "cc03"

struct fixture {
	char root[64];  /* sources of put live here, on the cache's file system */
	char dir[128];  /* the cache */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/anorak-debug-cache-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/var/cache", f->root); /* parents are created too */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* A file of size bytes at dir/name with the given mtime (0: now). */
static void make_file(const char *dir, const char *name, size_t size, time_t mtime, char *path, size_t len)
{
	char buf[4096];
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(buf, 'x', sizeof(buf));
	for (size_t left = size; left > 0;) {
		size_t n = left < sizeof(buf) ? left : sizeof(buf);

		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		left -= n;
	}
	if (mtime) {
		struct timespec t[2] = { { mtime, 0 }, { mtime, 0 } };

		assert_int_equal(futimens(fd, t), 0);
	}
	close(fd);
}

static void put(struct fixture *f, struct debug_cache *c, const char *id, size_t size, int want)
{
	char src[256];

	make_file(f->root, "incoming", size, 0, src, sizeof(src));
	assert_int_equal(debug_cache_put(c, id, src, size), want);
	assert_int_equal(access(src, F_OK), -1); /* moved in, or removed when refused */
}

static bool cached(struct debug_cache *c, const char *id)
{
	int fd = debug_cache_get(c, id);

	if (fd < 0) {
		assert_int_equal(fd, -ENOENT);
		return false;
	}
	close(fd);
	return true;
}

static bool on_disk(const struct fixture *f, const char *id)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s.debug", f->dir, id);
	return access(path, F_OK) == 0;
}

static void test_evicts_least_recently_used(void **state)
{
	struct fixture *f = *state;
	struct debug_cache_stats st;
	struct debug_cache *c;

	assert_int_equal(debug_cache_open(f->dir, 1000, &c), 0);
	put(f, c, A, 400, 0);
	put(f, c, B, 400, 0);
	assert_true(cached(c, A)); /* A is now more recent than B */
	put(f, c, C, 400, 0);      /* 1200 > 1000: B goes */
	assert_false(cached(c, B));
	assert_false(on_disk(f, B));
	assert_true(cached(c, A));
	assert_true(cached(c, C));
	debug_cache_stats(c, &st);
	assert_int_equal(st.bytes, 800);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 1);
	debug_cache_free(c);
}

static void test_refuses_file_larger_than_bound(void **state)
{
	struct fixture *f = *state;
	struct debug_cache_stats st;
	struct debug_cache *c;

	assert_int_equal(debug_cache_open(f->dir, 1000, &c), 0);
	put(f, c, A, 600, 0);
	put(f, c, B, 1001, -EFBIG);
	assert_true(cached(c, A)); /* nothing evicted for a file that cannot fit */
	assert_false(on_disk(f, B));
	debug_cache_stats(c, &st);
	assert_int_equal(st.refused_too_large, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.bytes, 600);
	debug_cache_free(c);
}

static void test_replacing_counts_once(void **state)
{
	struct fixture *f = *state;
	struct debug_cache_stats st;
	struct debug_cache *c;

	assert_int_equal(debug_cache_open(f->dir, 1000, &c), 0);
	put(f, c, A, 300, 0);
	put(f, c, A, 500, 0);
	debug_cache_stats(c, &st);
	assert_int_equal(st.bytes, 500);
	assert_int_equal(st.files, 1);
	debug_cache_free(c);
}

/* A restart takes in what is on disk in the order of last use and applies the (new) bound. */
static void test_reopen_keeps_order_and_bound(void **state)
{
	struct fixture *f = *state;
	struct debug_cache_stats st;
	struct debug_cache *c;
	char path[256];

	assert_int_equal(debug_cache_open(f->dir, 900, &c), 0); /* creates the directories */
	debug_cache_free(c);
	make_file(f->dir, A ".debug", 400, 1000, path, sizeof(path));  /* least recently used */
	make_file(f->dir, B ".debug", 400, 3000, path, sizeof(path));
	make_file(f->dir, C ".debug", 400, 2000, path, sizeof(path));
	make_file(f->dir, "notes.txt", 5000, 0, path, sizeof(path)); /* not ours: left alone */
	make_file(f->dir, "AB.debug", 5000, 0, path, sizeof(path));  /* not a build id as we write them */
	assert_int_equal(debug_cache_open(f->dir, 900, &c), 0);
	debug_cache_stats(c, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 800);
	assert_int_equal(st.evictions, 1);
	assert_false(on_disk(f, A));
	assert_true(on_disk(f, B) && on_disk(f, C));
	snprintf(path, sizeof(path), "%s/notes.txt", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	put(f, c, "dd04", 400, 0); /* C was used before B: C goes */
	assert_false(on_disk(f, C));
	assert_true(on_disk(f, B));
	debug_cache_free(c);

	/* B's use a moment ago is its mtime: the next run keeps it over dd04. */
	assert_int_equal(debug_cache_open(f->dir, 900, &c), 0);
	assert_true(cached(c, B));
	debug_cache_free(c);
	assert_int_equal(debug_cache_open(f->dir, 400, &c), 0);
	assert_true(on_disk(f, B));
	assert_false(on_disk(f, "dd04"));
	debug_cache_free(c);
}

static void test_file_removed_behind_its_back(void **state)
{
	struct fixture *f = *state;
	struct debug_cache_stats st;
	struct debug_cache *c;
	char path[256];

	assert_int_equal(debug_cache_open(f->dir, 1000, &c), 0);
	put(f, c, A, 100, 0);
	snprintf(path, sizeof(path), "%s/%s.debug", f->dir, A);
	assert_int_equal(unlink(path), 0);
	assert_false(cached(c, A));
	debug_cache_stats(c, &st);
	assert_int_equal(st.files, 0);
	assert_int_equal(st.bytes, 0);
	debug_cache_free(c);
}

static void test_build_id_names(void **state)
{
	char long_id[200];

	(void)state;
	assert_true(debug_cache_valid_build_id("ab"));
	assert_true(debug_cache_valid_build_id("0123456789abcdef"));
	assert_false(debug_cache_valid_build_id("a"));
	assert_false(debug_cache_valid_build_id("AB"));
	assert_false(debug_cache_valid_build_id("../etc/passwd"));
	assert_false(debug_cache_valid_build_id("ab/cd"));
	memset(long_id, 'a', sizeof(long_id));
	long_id[128] = '\0';
	assert_true(debug_cache_valid_build_id(long_id));
	long_id[128] = 'a';
	long_id[129] = '\0';
	assert_false(debug_cache_valid_build_id(long_id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_evicts_least_recently_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_file_larger_than_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replacing_counts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_order_and_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_removed_behind_its_back, setup, teardown),
		cmocka_unit_test(test_build_id_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
