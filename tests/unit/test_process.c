/* The process table with real processes (children of this test), the real /proc and real ELF files.
 * Once --processes.max is reached, processes it cannot track are read once and cached, so a full table
 * reads no /proc maps and no ELF file per sample; an exit drops the cached one. A caller frame outside
 * the mappings read first makes one more read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
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

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A sample of pid with the given stack; whether its mappings then hold addr. */
static bool resolve_holds(struct process_table *t, pid_t pid, const uint64_t *user, uint32_t n, uint64_t addr)
{
	struct proc_maps *maps = NULL;
	struct process *p = process_table_resolve(t, (uint32_t)pid, user, n, &maps);
	bool held;

	assert_non_null(p);
	assert_non_null(maps);
	held = proc_maps_find(maps, addr) != NULL;
	proc_maps_put(maps);
	process_put(p);
	return held;
}

/* A process read before its loader mapped a library (here: before it maps /bin/true) has its callers'
 * frames there; its leaf is in its own code, so only the callers tell: the mappings are read again,
 * once, and a frame no read explains does not cost another read. */
static void test_caller_outside_mappings_reread_once(void **state)
{
	struct fixture *f = *state;
	struct process_table_opts po = { .symbolizer = f->symbolizer, .proc_root = "/proc",
					 .labeler = &f->labeler, .address = "node-1:9760", .max_processes = 16 };
	struct process_table *t;
	int go[2], back[2];
	uint64_t mapped = 0, user[2];
	char b = 0;
	pid_t child;

	assert_int_equal(process_table_new(&po, &t), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(back), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fd = open("/bin/true", O_RDONLY);
		void *m;

		if (read(go[0], &b, 1) != 1 || fd < 0)
			_exit(1);
		m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
		mapped = m == MAP_FAILED ? 0 : (uint64_t)m + 16;
		if (write(back[1], &mapped, sizeof(mapped)) != sizeof(mapped))
			_exit(1);
		pause();
		_exit(0);
	}
	user[0] = (uint64_t)(uintptr_t)&resolve; /* the leaf, in this program's code (the child's too) */
	user[1] = user[0];
	assert_true(resolve_holds(t, child, user, 2, user[0]));
	assert_int_equal(write(go[1], &b, 1), 1);
	assert_int_equal(read(back[0], &mapped, sizeof(mapped)), sizeof(mapped));
	assert_true(mapped != 0);
	user[1] = mapped;
	assert_false(resolve_holds(t, child, user, 2, mapped)); /* too soon after the first read */
	sleep_ms(150);
	double loads = series(process_table_write_metrics, t, "anorak_process_maps_loads_total{result=\"success\"}");
	assert_true(resolve_holds(t, child, user, 2, mapped));
	assert_true(series(process_table_write_metrics, t, "anorak_process_maps_loads_total{result=\"success\"}") ==
		    loads + 1);
	/* A caller frame no mapping holds: no second read, however long it waits. */
	user[1] = 0x10000;
	sleep_ms(150);
	assert_false(resolve_holds(t, child, user, 2, user[1]));
	assert_true(series(process_table_write_metrics, t, "anorak_process_maps_loads_total{result=\"success\"}") ==
		    loads + 1);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
	process_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_table_reads_nothing_per_sample, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caller_outside_mappings_reread_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
