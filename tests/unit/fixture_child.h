/* A fixture program run as a child: it prints one line (addresses it wants checked) once it has
 * started, then waits until its stdin closes, so the test can inspect it alive. Include after
 * cmocka.h. */
#ifndef ANORAK_TEST_FIXTURE_CHILD_H
#define ANORAK_TEST_FIXTURE_CHILD_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture_child {
	pid_t pid;
	int stdin_fd;
};

/* Starts argv[0] with argv and reads its first output line into line. */
static inline void fixture_spawn_argv(char *const argv[], struct fixture_child *c, char *line, int len)
{
	int in[2], out[2];
	FILE *f;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->stdin_fd = in[1];
	f = fdopen(out[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(line, len, f));
	fclose(f);
}

/* Starts path and reads its first output line into line. */
static inline void fixture_spawn(const char *path, struct fixture_child *c, char *line, int len)
{
	char *const argv[] = { (char *)path, NULL };

	fixture_spawn_argv(argv, c, line, len);
}

/* Closes its stdin, which ends it, and waits for it. */
static inline void fixture_reap(struct fixture_child *c)
{
	int status;

	close(c->stdin_fd);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
}

#endif
