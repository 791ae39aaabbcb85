#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "exporter/symbols/symbolize.h"

#include "fixture_child.h"

struct child {
	struct fixture_child proc;
	uint64_t alpha, beta, lib_alpha;
};

/* Starts a fixture, which prints its function addresses and waits for stdin to close. */
static void spawn(const char *path, struct child *c)
{
	char line[256];

	fixture_spawn(path, &c->proc, line, sizeof(line));
	assert_int_equal(sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64, &c->alpha, &c->beta, &c->lib_alpha), 3);
}

static void reap(struct child *c)
{
	fixture_reap(&c->proc);
}

static struct symbolizer *new_symbolizer(uint64_t cache_bytes, uint32_t max_symbols, const char *kallsyms)
{
	struct symbolizer_opts o = {
		.cache_max_bytes = cache_bytes,
		.elf_max_bytes = 1ull << 30,
		.max_symbols_per_file = max_symbols,
		.proc_root = "/proc",
		.kallsyms_path = kallsyms,
	};
	struct symbolizer *s = symbolizer_new(&o);

	assert_non_null(s);
	return s;
}

/* The function at addr in m (the outermost frame), or "" (static buffer). */
static const char *sym(struct symbolizer *s, struct proc_maps *m, uint64_t addr)
{
	static struct sym_frames fr;
	const struct sym_mapping *map = proc_maps_find(m, addr);

	if (!map || !symbolizer_user_frames(s, m, map, addr, &fr))
		return "";
	return fr.frames[fr.n - 1].name;
}

static void test_live_process(const char *fixture)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 1 << 20, "/proc/kallsyms");
	const struct sym_mapping *map;
	struct proc_maps *m;
	struct child c;

	spawn(fixture, &c);
	assert_int_equal(symbolizer_load_maps(s, c.proc.pid, &m), 0);
	assert_string_equal(sym(s, m, c.alpha), "fixture_alpha");
	assert_string_equal(sym(s, m, c.alpha + 2), "fixture_alpha");
	assert_string_equal(sym(s, m, c.beta), "fixture_beta");
	assert_string_equal(sym(s, m, c.lib_alpha + 1), "fixture_lib_alpha");
	map = proc_maps_find(m, c.lib_alpha);
	assert_non_null(strstr(map->path, "libanorak_fixture.so"));
	assert_int_equal(strlen(map->build_id), 40);
	assert_false(map->jit);

	/* The process exits: its snapshot still symbolizes (files stay open). */
	reap(&c);
	assert_string_equal(sym(s, m, c.beta + 1), "fixture_beta");
	proc_maps_put(m);
	assert_int_equal(symbolizer_load_maps(s, c.proc.pid, &m), -ENOENT);
	symbolizer_free(s);
}

static void test_pie_and_shared_library(void **state)
{
	(void)state;
	test_live_process(FIXTURES_DIR "/fixture_pie");
}

static void test_stripped_with_debuglink(void **state)
{
	(void)state;
	/* fixture_stripped has no .symtab: fixture_alpha is only in fixture_stripped.debug. */
	test_live_process(FIXTURES_DIR "/fixture_stripped");
}

static int metric_has(struct symbolizer *s, const char *line)
{
	struct metrics_buf b = { 0 };
	int found;

	symbolizer_write_metrics(&b, s);
	assert_false(b.failed);
	found = b.data && strstr(b.data, line) != NULL;
	metrics_buf_free(&b);
	return found;
}

/* A stripped Go program (-ldflags='-s -w': neither .symtab nor DWARF): named from .gopclntab, with the
 * file:line of each frame and main.mix, inlined into main.middle, as a frame of its own. Addresses
 * come from the unstripped build, whose code is laid out the same. */
#define GOWORK_DIR FIXTURES_DIR "/../workload"

static void go_function(const char *name, uint64_t *addr, uint64_t *size)
{
	char cmd[512], out[128];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "GOTOOLCHAIN=local GOCACHE=" GOWORK_DIR "/gocache go tool nm -size "
		 GOWORK_DIR "/gowork | awk '$4 == \"%s\" { print $1, $2 }'", name);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	assert_int_equal(sscanf(out, "%" SCNx64 " %" SCNu64, addr, size), 2);
}

static bool go_inlined_frames(struct symbolizer *s, struct proc_maps *m, uint64_t addr, uint64_t size)
{
	struct sym_frames *fr = malloc(sizeof(*fr));
	bool seen = false;

	assert_non_null(fr);
	for (uint64_t pc = addr; pc < addr + size && !seen; pc++) {
		const struct sym_mapping *map = proc_maps_find(m, pc);

		assert_non_null(map);
		if (symbolizer_user_frames(s, m, map, pc, fr) != 2 || strcmp(fr->frames[0].name, "main.mix") != 0)
			continue;
		assert_string_equal(fr->frames[1].name, "main.middle");
		assert_non_null(strstr(fr->frames[0].file, "gowork/main.go"));
		assert_true(fr->frames[0].line > 0 && fr->frames[1].line > fr->frames[0].line);
		seen = true;
	}
	free(fr);
	return seen;
}

static void test_go_stripped(void **state)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 1 << 20, "/proc/kallsyms");
	struct fixture_child c;
	struct proc_maps *m;
	uint64_t leaf, leaf_size, middle, middle_size;
	char line[256];

	(void)state;
	go_function("main.leaf", &leaf, &leaf_size);
	go_function("main.middle", &middle, &middle_size);
	fixture_spawn(GOWORK_DIR "/gowork_stripped", &c, line, sizeof(line));
	assert_int_equal(symbolizer_load_maps(s, c.pid, &m), 0);
	kill(c.pid, SIGKILL); /* an exited process still symbolizes */
	fixture_reap(&c);
	assert_string_equal(sym(s, m, leaf + 4), "main.leaf");
	assert_true(go_inlined_frames(s, m, middle, middle_size));
	assert_true(metric_has(s, "anorak_symbol_go_binaries_total 1\n"));
	assert_true(metric_has(s, "anorak_symbol_go_pclntab_loads_total 1\n"));
	assert_false(metric_has(s, "anorak_symbol_go_frames_total 0\n"));
	proc_maps_put(m);
	symbolizer_free(s);
}

static void test_cache_eviction_and_reload(void **state)
{
	/* A cache smaller than any table: every lookup evicts the other file's table and reloads. */
	struct symbolizer *s = new_symbolizer(1, 1 << 20, "/proc/kallsyms");
	struct proc_maps *m;
	struct child c;

	(void)state;
	spawn(FIXTURES_DIR "/fixture_pie", &c);
	assert_int_equal(symbolizer_load_maps(s, c.proc.pid, &m), 0);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(sym(s, m, c.alpha), "fixture_alpha");
		assert_string_equal(sym(s, m, c.lib_alpha), "fixture_lib_alpha");
	}
	reap(&c);
	assert_string_equal(sym(s, m, c.alpha), "fixture_alpha");
	assert_true(metric_has(s, "anorak_symbol_cache_evictions_total 6"));
	assert_true(metric_has(s, "anorak_symbol_lookups_total{result=\"miss\"} 7"));
	assert_true(metric_has(s, "anorak_symbol_cache_max_bytes 1"));
	/* Over the limit only by the one table just loaded. */
	assert_true(metric_has(s, "anorak_symbol_cache_tables 1\n"));
	proc_maps_put(m);
	symbolizer_free(s);
}

static void test_idle_files_expire(void **state)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 1 << 20, "/proc/kallsyms");
	struct proc_maps *m;
	struct child c;

	(void)state;
	spawn(FIXTURES_DIR "/fixture_pie", &c);
	assert_int_equal(symbolizer_load_maps(s, c.proc.pid, &m), 0);
	assert_string_equal(sym(s, m, c.alpha), "fixture_alpha");
	assert_string_equal(sym(s, m, c.lib_alpha), "fixture_lib_alpha");
	reap(&c);
	/* Unused (the time to live is 0 here): the tables go, the files a snapshot maps stay, and
	 * their tables are read again on the next lookup. */
	symbolizer_expire_idle(s);
	assert_true(metric_has(s, "anorak_symbol_cache_expired_total 2"));
	assert_true(metric_has(s, "anorak_symbol_cache_bytes 0"));
	assert_string_equal(sym(s, m, c.beta), "fixture_beta");
	assert_false(metric_has(s, "anorak_symbol_cache_bytes 0"));
	/* The last snapshot is gone: the executable goes with its table. */
	proc_maps_put(m);
	symbolizer_expire_idle(s);
	assert_true(metric_has(s, "anorak_symbol_cache_expired_total 3"));
	assert_true(metric_has(s, "anorak_symbol_cache_bytes 0"));
	assert_true(metric_has(s, "anorak_symbol_cache_files 0"));
	symbolizer_free(s);
}

static void test_too_many_symbols(void **state)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 2, "/proc/kallsyms");
	struct proc_maps *m;
	struct child c;

	(void)state;
	spawn(FIXTURES_DIR "/fixture_pie", &c);
	assert_int_equal(symbolizer_load_maps(s, c.proc.pid, &m), 0);
	assert_string_equal(sym(s, m, c.alpha), "");
	assert_string_equal(sym(s, m, c.alpha), "");
	reap(&c);
	assert_true(metric_has(s, "anorak_symbol_files_refused_total{reason=\"too_many_symbols\"} 1"));
	proc_maps_put(m);
	symbolizer_free(s);
}

static void test_jit_perf_map(void **state)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 1000, "/proc/kallsyms");
	const struct sym_mapping *map;
	char path[64];
	struct proc_maps *m;
	FILE *f;
	uint8_t *code = mmap(NULL, 8192, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(code != MAP_FAILED);
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%lx 100 jitted_one\n%lx 40 JS:jitted two\n", (unsigned long)code,
		(unsigned long)code + 0x1000);
	fclose(f);
	assert_int_equal(symbolizer_load_maps(s, getpid(), &m), 0);
	unlink(path);
	map = proc_maps_find(m, (uintptr_t)code);
	assert_non_null(map);
	assert_true(map->jit);
	assert_string_equal(sym(s, m, (uintptr_t)code + 0x10), "jitted_one");
	assert_string_equal(sym(s, m, (uintptr_t)code + 0x1004), "JS:jitted two");
	assert_string_equal(sym(s, m, (uintptr_t)code + 0x200), "");
	proc_maps_put(m);
	munmap(code, 8192);
	symbolizer_free(s);
}

static void test_vdso_and_self(void **state)
{
	struct symbolizer *s = new_symbolizer(16 << 20, 1 << 20, "/proc/kallsyms");
	uint64_t base = getauxval(AT_SYSINFO_EHDR);
	const struct sym_mapping *map;
	struct proc_maps *m;
	int found = 0;

	(void)state;
	assert_int_equal(symbolizer_load_maps(s, getpid(), &m), 0);
	/* This test's own code, through the same path as any other process. */
	assert_string_equal(sym(s, m, (uintptr_t)test_vdso_and_self + 1), "test_vdso_and_self");
	assert_null(proc_maps_find(m, 0));
	if (base) {
		map = proc_maps_find(m, base);
		assert_non_null(map);
		assert_string_equal(map->path, "[vdso]");
		for (uint64_t a = map->start; a < map->end; a += 16)
			found += strncmp(sym(s, m, a), "__vdso_", 7) == 0;
		assert_true(found > 0);
	}
	proc_maps_put(m);
	symbolizer_free(s);
}

static void test_kernel(void **state)
{
	char path[] = "/tmp/anorak-kallsyms-XXXXXX", name[64], mod[32];
	struct symbolizer *s;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	(void)state;
	assert_non_null(f);
	fputs("ffffffff81000000 T _stext\nffffffff81001000 T schedule\nffffffff81002000 D data\n"
	      "ffffffffc0001000 t nft_do_chain\t[nf_tables]\n",
	      f);
	fclose(f);
	s = new_symbolizer(16 << 20, 1000, path);
	assert_int_equal(symbolizer_kernel(s, 0xffffffff81001010ull, name, sizeof(name), mod, sizeof(mod)), 8);
	assert_string_equal(name, "schedule");
	assert_string_equal(mod, "");
	assert_true(symbolizer_kernel(s, 0xffffffffc0001004ull, name, sizeof(name), mod, sizeof(mod)) > 0);
	assert_string_equal(name, "nft_do_chain");
	assert_string_equal(mod, "nf_tables");
	assert_int_equal(symbolizer_kernel(s, 0x1000, name, sizeof(name), mod, sizeof(mod)), 0);
	symbolizer_free(s);
	unlink(path);

	/* Hidden addresses: no symbols, no crash. */
	s = new_symbolizer(16 << 20, 1000, "/nonexistent/kallsyms");
	assert_int_equal(symbolizer_kernel(s, 0xffffffff81001010ull, name, sizeof(name), mod, sizeof(mod)), 0);
	symbolizer_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pie_and_shared_library),
		cmocka_unit_test(test_stripped_with_debuglink),
		cmocka_unit_test(test_cache_eviction_and_reload),
		cmocka_unit_test(test_idle_files_expire),
		cmocka_unit_test(test_too_many_symbols),
		cmocka_unit_test(test_jit_perf_map),
		cmocka_unit_test(test_vdso_and_self),
		cmocka_unit_test(test_kernel),
		cmocka_unit_test(test_go_stripped),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
