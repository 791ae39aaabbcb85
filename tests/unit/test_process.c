/* The process table once --processes.max is reached: real processes (children of this test), the
 * real /proc and real ELF files. Processes it cannot track are read once and cached, so a full table
 * reads no /proc maps and no ELF file per sample; an exit drops the cached one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/metrics.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "labels/targets.h"

#define CHILDREN 3
#define ROUNDS 100

struct fixture {
	struct symbolizer *symbolizer;
	struct target_labeler labeler;
	struct process_table *table;
	pid_t children[CHILDREN];
};

/* The value of one series in the text of writer, or -1. */
static double series(void (*writer)(struct metrics_buf *b, void *ctx), void *ctx, const char *name)
{
	struct metrics_buf b = { 0 };
	double v = -1;
	size_t len = strlen(name);

	writer(&b, ctx);
	assert_false(b.failed);
	for (const char *p = b.data; p && (p = strstr(p, name)); p += len) {
		if ((p == b.data || p[-1] == '\n') && p[len] == ' ') {
			v = strtod(p + len + 1, NULL);
			break;
		}
	}
	metrics_buf_free(&b);
	return v;
}

static double maps_loads(struct fixture *f)
{
	return series(process_table_write_metrics, f->table, "anorak_process_maps_loads_total{result=\"success\"}");
}

static double elf_reads(struct fixture *f)
{
	return series(symbolizer_write_metrics, f->symbolizer, "anorak_symbol_files_read_total");
}

static double cache_hits(struct fixture *f)
{
	return series(process_table_write_metrics, f->table, "anorak_processes_untracked_cache_hits_total");
}

/* A sample of pid: its process and mappings, released at once as the drain would. */
static void resolve(struct fixture *f, pid_t pid)
{
	struct proc_maps *maps = NULL;
	struct process *p = process_table_resolve(f->table, (uint32_t)pid, NULL, 0, &maps);

	assert_non_null(p);
	assert_non_null(maps);
	proc_maps_put(maps);
	process_put(p);
}

static int setup(void **state)
{
	struct symbolizer_opts so = { .cache_max_bytes = 16 << 20, .elf_max_bytes = 1ull << 30,
				      .max_symbols_per_file = 1 << 20, .proc_root = "/proc",
				      .kallsyms_path = "/proc/kallsyms" };
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->symbolizer = symbolizer_new(&so);
	assert_non_null(f->symbolizer);
	assert_int_equal(target_labeler_init(&f->labeler, NULL), 0);
	struct process_table_opts po = { .symbolizer = f->symbolizer, .proc_root = "/proc",
					 .labeler = &f->labeler, .address = "node-1:9760", .max_processes = 1 };
	assert_int_equal(process_table_new(&po, &f->table), 0);
	for (int i = 0; i < CHILDREN; i++) {
		f->children[i] = fork();
		assert_true(f->children[i] >= 0);
		if (f->children[i] == 0) {
			pause();
			_exit(0);
		}
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < CHILDREN; i++) {
		kill(f->children[i], SIGKILL);
		waitpid(f->children[i], NULL, 0);
	}
	process_table_free(f->table);
	target_labeler_destroy(&f->labeler);
	symbolizer_free(f->symbolizer);
	free(f);
	return 0;
}

static void test_full_table_reads_nothing_per_sample(void **state)
{
	struct fixture *f = *state;

	resolve(f, getpid()); /* takes the table's only place */
	for (int i = 0; i < CHILDREN; i++)
		resolve(f, f->children[i]);
	double loads = maps_loads(f), reads = elf_reads(f), hits = cache_hits(f);

	assert_true(loads >= 1 + CHILDREN);
	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < CHILDREN; i++)
			resolve(f, f->children[i]);
	assert_true(maps_loads(f) == loads);
	assert_true(elf_reads(f) == reads);
	assert_true(cache_hits(f) == hits + ROUNDS * CHILDREN);

	/* An exit drops the cached process: the pid's next sample is read again. */
	struct process_event exit_event = { .type = PROCESS_EVENT_EXIT, .tgid = (uint32_t)f->children[0] };

	process_table_on_event(&exit_event, f->table, NULL);
	resolve(f, f->children[0]);
	assert_true(maps_loads(f) == loads + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_table_reads_nothing_per_sample, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
