#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/proc/maps_snapshot.h"
#include "exporter/proc/procmaps.h"

/* A child of this test that waits for a byte on its stdin, then becomes cat (which waits for EOF). */
struct child {
	pid_t pid;
	int stdin_fd;
};

static void spawn(struct child *c)
{
	int in[2];
	char b;

	assert_int_equal(pipe(in), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(in[0], 0);
		close(in[1]);
		if (read(0, &b, 1) == 1)
			execl("/bin/cat", "cat", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	c->stdin_fd = in[1];
}

static void reap(struct child *c)
{
	int status;

	close(c->stdin_fd);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
}

static int count_entry(const struct procmaps_entry *e, void *ctx)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

static int count_maps(const struct maps_snapshot *m, int pid)
{
	FILE *f = maps_snapshot_open(m, "/proc", pid);
	int n = 0;

	assert_non_null(f);
	assert_int_equal(procmaps_foreach(f, count_entry, &n), 0);
	fclose(f);
	return n;
}

/* The snapshot parses as the file does, while the process stays as it was. */
static void test_same_as_file(void **state)
{
	struct maps_snapshot *m = NULL;
	struct child c;

	(void)state;
	spawn(&c);
	assert_int_equal(maps_snapshot_read("/proc", c.pid, &m), 0);
	assert_true(count_maps(m, c.pid) > 3);
	assert_int_equal(count_maps(m, c.pid), count_maps(NULL, c.pid));
	assert_true(maps_snapshot_current(m, "/proc"));
	maps_snapshot_put(maps_snapshot_get(m));
	maps_snapshot_put(m);
	reap(&c);
}

static bool runs_cat(pid_t pid)
{
	char path[64], exe[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	return n > 4 && strcmp(exe + n - 4, "/cat") == 0;
}

/* After an exec the snapshot is no longer the process's: it is told, and opening it for the new
 * program's pid still works (from its own snapshot of another pid: read afresh). */
static void test_exec_is_told(void **state)
{
	struct maps_snapshot *m = NULL;
	struct child c;

	(void)state;
	spawn(&c);
	assert_int_equal(maps_snapshot_read("/proc", c.pid, &m), 0);
	assert_true(maps_snapshot_current(m, "/proc"));
	assert_int_equal(write(c.stdin_fd, "x", 1), 1);
	while (!runs_cat(c.pid))
		usleep(1000);
	assert_false(maps_snapshot_current(m, "/proc"));
	assert_true(count_maps(m, getpid()) > 3);
	maps_snapshot_put(m);
	reap(&c);
}

/* An identity kept without the text tells an exec and an exit alike; a fresh child is young, pid 1 is
 * as old as the machine's boot. */
static void test_identity(void **state)
{
	struct maps_snapshot *m = NULL;
	struct proc_identity id, init;
	struct child c;

	(void)state;
	spawn(&c);
	assert_int_equal(maps_snapshot_read("/proc", c.pid, &m), 0);
	assert_int_equal(proc_identity_read("/proc", c.pid, &id), 0);
	assert_memory_equal(&id, maps_snapshot_identity(m), sizeof(id));
	assert_true(proc_identity_current(&id, "/proc", c.pid));
	assert_true(proc_identity_age_seconds(&id) >= 0);
	assert_int_equal(proc_identity_read("/proc", 1, &init), 0);
	assert_true(proc_identity_age_seconds(&init) > proc_identity_age_seconds(&id));
	assert_int_equal(write(c.stdin_fd, "x", 1), 1);
	while (!runs_cat(c.pid))
		usleep(1000);
	assert_false(proc_identity_current(&id, "/proc", c.pid));
	assert_int_equal(proc_identity_read("/proc", c.pid, &id), 0);
	reap(&c);
	assert_false(proc_identity_current(&id, "/proc", c.pid));
	maps_snapshot_put(m);
}

/* A kernel thread maps nothing: an empty text, which parses to nothing. */
static void test_empty(void **state)
{
	struct maps_snapshot *m = NULL;

	(void)state;
	assert_int_equal(maps_snapshot_read("/proc", 2, &m), 0);
	assert_int_equal(count_maps(m, 2), 0);
	maps_snapshot_put(m);
}

static void test_gone(void **state)
{
	struct maps_snapshot *m = NULL;

	(void)state;
	assert_int_equal(maps_snapshot_read("/proc", INT_MAX, &m), -ENOENT);
	assert_null(m);
	assert_int_equal(maps_snapshot_read("/nonexistent", 1, &m), -ENOENT);
	maps_snapshot_put(NULL);
}

/* A command name holding blanks and parentheses does not shift the fields; a cut-off text is refused. */
static void test_identity_fields(void **state)
{
	static const char stat[] =
		"23851 (a b) (c) S 23839 23832 18377 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 4769343 2990080 407 "
		"18446744073709551615 94868060434432 94868060452361 140734419906240 0 0 0 0 0 0 1 0 0 17 1 0 0 0 "
		"0 0 94868060466448 94868060467712 94868783185920 140734419913351 140734419913366 "
		"140734419913366 140734419914731 0\n";
	static const uint64_t want[MAPS_SNAPSHOT_IDENTITY_FIELDS] = {
		94868060434432,  94868060452361,  140734419906240, 94868060466448,  94868060467712,
		94868783185920, 140734419913351, 140734419913366, 140734419913366, 140734419914731,
	};
	uint64_t id[MAPS_SNAPSHOT_IDENTITY_FIELDS];
	char cut[sizeof(stat)];

	(void)state;
	assert_int_equal(maps_snapshot_parse_identity(stat, id), 0);
	assert_memory_equal(id, want, sizeof(want));
	memcpy(cut, stat, sizeof(stat));
	cut[strlen(cut) - 20] = '\0';
	assert_int_equal(maps_snapshot_parse_identity(cut, id), -EINVAL);
	assert_int_equal(maps_snapshot_parse_identity("no name here", id), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_file),
		cmocka_unit_test(test_exec_is_told),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_gone),
		cmocka_unit_test(test_identity_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
