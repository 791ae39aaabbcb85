/*
 * User-space cost of Python code objects (exporter/symbols/python_code.c): a live interpreter defines
 * N functions and prints their code objects' addresses; each is resolved cold (read from /proc/PID/mem:
 * names, file, line table) and then again from the cache.
 *
 *     build/tests/python_resolve_bench [python] [N]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exporter/symbols/python_code.h"
#include "exporter/symbols/python_functions.h"
#include "exporter/symbols/python_proc.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char script[] =
	"import sys\n"
	"n = int(sys.argv[1])\n"
	"src = ''.join('def f%d(a):\\n    x = a\\n    for i in range(3):\\n        x += i\\n    return x\\n' % i"
	" for i in range(n))\n"
	"g = {}\n"
	"exec(compile(src, '/srv/app/generated_module.py', 'exec'), g)\n"
	"print(' '.join(str(id(g['f%d' % i].__code__)) for i in range(n)), flush=True)\n"
	"sys.stdin.read()\n";

int main(int argc, char **argv)
{
	const char *python = argc > 1 ? argv[1] : "/usr/bin/python3.11";
	int n = argc > 2 ? atoi(argv[2]) : 2000, in[2], out[2];
	char count[16], *line = NULL;
	size_t cap = 0;
	uint64_t *codes = calloc((size_t)n, sizeof(*codes));
	struct python_target t;
	struct python_code *c;
	uint32_t fn, ln;
	pid_t pid;
	FILE *f;

	if (!codes || n <= 0 || pipe(in) || pipe(out) || python_functions_init(1u << 20))
		return 1;
	snprintf(count, sizeof(count), "%d", n);
	pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(python, python, "-c", script, count, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	f = fdopen(out[0], "r");
	if (!f || getline(&line, &cap, f) <= 0)
		return 1;
	char *p = line;
	for (int i = 0; i < n; i++)
		codes[i] = strtoull(p, &p, 10);
	if (python_discover("/proc", pid, 1ull << 30, NULL, &t) || t.failure) {
		fprintf(stderr, "%s: not recognized (failure %d)\n", python, t.failure);
		return 1;
	}
	c = python_code_new("/proc", (uint32_t)n * 2, 64u << 20, 16);
	python_code_add_process(c, (uint32_t)pid, &t.layout);
	for (int pass = 0; pass < 2; pass++) {
		double w0 = now_s(), c0 = cpu_s();
		int ok = 0;

		for (int i = 0; i < n; i++)
			ok += python_code_lookup(c, (uint32_t)pid, codes[i], 3, &fn, &ln) == 0 && ln > 0;
		printf("%s %s: %d code objects (%d with a line): %.2f us wall, %.2f us CPU each\n", python,
		       pass ? "cached" : "cold", n, ok, (now_s() - w0) * 1e6 / n, (cpu_s() - c0) * 1e6 / n);
	}
	python_code_free(c);
	close(in[1]);
	waitpid(pid, NULL, 0);
	return 0;
}
