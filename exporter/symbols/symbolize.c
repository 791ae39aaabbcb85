#include "exporter/symbols/symbolize.h"
#include "exporter/symbols/symbolize_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/symbols/kallsyms.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/symbols/perfmap.h"
#include "exporter/symbols/symbolize_go.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"

#define MAX_MAPPINGS 16384               /* executable mappings kept per process */
#define KALLSYMS_MAX_SYMBOLS (4u << 20)  /* a kernel has ~300k; modules and BPF programs add a few */

static const char *const refusal_names[REFUSED_NR] = { "too_large", "too_many_symbols", "bad_elf",
							"open_failed" };

static const char *const no_build_id = "";

static size_t copy_name(char *dst, size_t len, const char *src)
{
	size_t n;

	if (!src || len == 0)
		return 0;
	n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

/* --- symbolizer ----------------------------------------------------------------------------------- */

struct symbolizer *symbolizer_new(const struct symbolizer_opts *opts)
{
	struct symbolizer *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->opts = *opts;
	s->proc_root = strdup(opts->proc_root ? opts->proc_root : "/proc");
	s->kallsyms_path = strdup(opts->kallsyms_path ? opts->kallsyms_path : "/proc/kallsyms");
	if (!s->proc_root || !s->kallsyms_path || pthread_mutex_init(&s->lock, NULL)) {
		free(s->proc_root);
		free(s->kallsyms_path);
		free(s);
		return NULL;
	}
	s->opts.proc_root = s->proc_root;
	s->opts.kallsyms_path = s->kallsyms_path;
	s->lru.lru_next = s->lru.lru_prev = &s->lru;
	load_vdso(s);
	return s;
}

void symbolizer_free(struct symbolizer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < FILE_BUCKETS; i++) {
		while (s->buckets[i]) {
			struct sym_file *f = s->buckets[i];

			s->buckets[i] = f->hnext;
			file_destroy(f);
		}
	}
	if (s->vdso)
		file_destroy(s->vdso);
	kallsyms_free(s->kallsyms);
	pthread_mutex_destroy(&s->lock);
	free(s->proc_root);
	free(s->kallsyms_path);
	free(s);
}

/* --- snapshots ------------------------------------------------------------------------------------ */

struct maps_ctx {
	struct symbolizer *s;
	struct proc_maps *m;
	int pid, rootfd;
	bool has_jit;
};

static struct sym_file *vdso_ref(struct symbolizer *s, const struct procmaps_entry *e)
{
	/* A different size means another image (a 32-bit process): better nothing than wrong names. */
	if (!s->vdso || e->end - e->start != s->vdso_size)
		return NULL;
	return s->vdso;
}

static int add_mapping(const struct procmaps_entry *e, void *arg)
{
	struct maps_ctx *c = arg;
	struct proc_maps *m = c->m;
	struct pm_map *pm;

	if (!e->executable)
		return 0;
	if (m->n == MAX_MAPPINGS) {
		__atomic_fetch_add(&c->s->mappings_dropped, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct pm_map *maps = realloc(m->maps, cap * sizeof(*maps));

		if (!maps)
			return -ENOMEM;
		m->maps = maps;
		m->cap = cap;
	}
	pm = &m->maps[m->n];
	memset(pm, 0, sizeof(*pm));
	pm->path = strdup(e->path);
	if (!pm->path)
		return -ENOMEM;
	m->n++;
	pm->m.start = e->start;
	pm->m.end = e->end;
	pm->m.offset = e->offset;
	pm->m.path = pm->path;
	pm->m.build_id = no_build_id;
	/* Anonymous executable memory is JIT code; "[anon:name]" is anonymous memory named by prctl. */
	pm->m.jit = e->inode == 0 && (e->path[0] == '\0' || strncmp(e->path, "[anon:", 6) == 0);
	c->has_jit |= pm->m.jit;
	if (e->inode != 0 && e->path[0] == '/')
		pm->file = file_get(c->s, c->pid, c->rootfd, e);
	else if (strcmp(e->path, "[vdso]") == 0)
		pm->file = vdso_ref(c->s, e);
	if (pm->file && pm->file->build_id[0])
		pm->m.build_id = pm->file->build_id;
	return 0;
}

static int cmp_pm_map(const void *a, const void *b)
{
	const struct pm_map *x = a, *y = b;

	return x->m.start < y->m.start ? -1 : x->m.start > y->m.start;
}

/* The pid that names /tmp/perf-PID.map: the one the process knows itself by, in its own namespace. */
static int ns_pid(const struct symbolizer *s, int pid)
{
	char path[64], line[256];
	int nspid = pid;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/status", s->proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f)) {
		char *last;

		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		last = strrchr(line, '\t');
		if (last && atoi(last + 1) > 0)
			nspid = atoi(last + 1);
		break;
	}
	fclose(f);
	return nspid;
}

static void load_perfmap(struct symbolizer *s, int pid, int rootfd, struct proc_maps *m)
{
	char path[64];
	FILE *f;
	int fd, err;

	snprintf(path, sizeof(path), "/tmp/perf-%d.map", ns_pid(s, pid));
	fd = procfile_open_in_root(rootfd, path);
	if (fd < 0)
		return;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	err = perfmap_parse(f, s->opts.max_symbols_per_file, &m->perfmap);
	fclose(f);
	if (err)
		log_debug("cannot read perf map", "pid=%d err=%d", pid, err);
}

static void proc_maps_free(struct proc_maps *m)
{
	struct symbolizer *s = m->s;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < m->n; i++) {
		if (m->maps[i].file)
			file_unref(s, m->maps[i].file);
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < m->n; i++)
		free(m->maps[i].path);
	free(m->maps);
	perfmap_free(m->perfmap);
	free(m);
}

int symbolizer_load_maps(struct symbolizer *s, int pid, struct proc_maps **out)
{
	return symbolizer_load_snapshot(s, pid, NULL, out);
}

int symbolizer_load_snapshot(struct symbolizer *s, int pid, const struct maps_snapshot *snap,
			     struct proc_maps **out)
{
	struct maps_ctx c = { .s = s, .pid = pid };
	FILE *f;
	int err;

	f = maps_snapshot_open(snap, s->proc_root, pid);
	if (!f)
		return -errno;
	c.m = calloc(1, sizeof(*c.m));
	if (!c.m) {
		fclose(f);
		return -ENOMEM;
	}
	atomic_init(&c.m->refs, 1);
	c.m->s = s;
	c.rootfd = procfile_open_root(s->proc_root, pid);
	err = procmaps_foreach(f, add_mapping, &c);
	fclose(f);
	if (!err && c.has_jit && c.rootfd >= 0)
		load_perfmap(s, pid, c.rootfd, c.m);
	if (c.rootfd >= 0)
		close(c.rootfd);
	if (err) {
		proc_maps_free(c.m);
		return err;
	}
	if (c.m->n > 1)
		qsort(c.m->maps, c.m->n, sizeof(*c.m->maps), cmp_pm_map);
	*out = c.m;
	return 0;
}

struct proc_maps *proc_maps_get(struct proc_maps *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void proc_maps_put(struct proc_maps *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		proc_maps_free(m);
}

const struct sym_mapping *proc_maps_find(const struct proc_maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->maps[mid].m.start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || addr >= m->maps[lo - 1].m.end)
		return NULL;
	return &m->maps[lo - 1].m;
}

/* --- lookups -------------------------------------------------------------------------------------- */

/* Frames at addr of a file: from pclntab for Go code (inlined calls first), else one from the ELF
 * symbols. Called with the lock held; the strings live until it is released. */
static int file_frames(struct symbolizer *s, struct sym_file *f, const struct sym_mapping *map, uint64_t addr,
		       struct gopclntab_frame *fr, size_t max)
{
	uint64_t vaddr;
	int n;

	/* Runtime address -> file offset -> the vaddr the segment holding that offset was linked at. */
	if (elf_loads_vaddr(f->loads, f->nloads, addr - map->start + map->offset, &vaddr) || !file_tables(s, f))
		return 0;
	if (f->pcln) {
		n = gopclntab_lookup(f->pcln, vaddr, fr, max);
		if (n > 0) {
			s->go.frames++;
			return n;
		}
		s->go.lookup_errors += n < 0;
	}
	fr[0] = (struct gopclntab_frame){
		.name = f->symtab ? elf_symtab_lookup(f->symtab, vaddr, s->elf_name, sizeof(s->elf_name)) : NULL,
		.file = "",
	};
	return fr[0].name ? 1 : 0;
}

static int lookup_frames(struct symbolizer *s, const struct proc_maps *m, const struct sym_mapping *map,
			 uint64_t addr, struct gopclntab_frame *fr, size_t max)
{
	const struct pm_map *pm = (const struct pm_map *)((const char *)map - offsetof(struct pm_map, m));
	int n = 0;

	if (addr >= map->start && addr < map->end) {
		if (map->jit && m->perfmap) {
			fr[0] = (struct gopclntab_frame){ .name = perfmap_lookup(m->perfmap, addr), .file = "" };
			n = fr[0].name ? 1 : 0;
		} else if (pm->file) {
			n = file_frames(s, pm->file, map, addr, fr, max);
		}
	}
	if (n == 0)
		s->unresolved++;
	return n;
}

/* Appends src to the frames' buffer; NULL when it is full. */
static const char *frames_copy(struct sym_frames *out, size_t *used, const char *src)
{
	size_t n = strlen(src);
	char *dst = out->buf + *used;

	if (n >= sizeof(out->buf) - *used)
		return NULL;
	memcpy(dst, src, n + 1);
	*used += n + 1;
	return dst;
}

size_t symbolizer_user_frames(struct symbolizer *s, const struct proc_maps *m, const struct sym_mapping *map,
			      uint64_t addr, struct sym_frames *out)
{
	struct gopclntab_frame fr[SYM_MAX_FRAMES];
	size_t used = 0;
	int k;

	out->n = 0;
	pthread_mutex_lock(&s->lock);
	k = lookup_frames(s, m, map, addr, fr, SYM_MAX_FRAMES);
	for (int i = 0; i < k; i++) {
		struct sym_frame *f = &out->frames[out->n];

		f->name = frames_copy(out, &used, fr[i].name);
		f->file = frames_copy(out, &used, fr[i].file);
		f->line = fr[i].line;
		if (!f->name || !f->file)
			break; /* names beyond 8 KiB in all: the innermost ones are kept */
		out->n++;
	}
	pthread_mutex_unlock(&s->lock);
	return out->n;
}

size_t symbolizer_kernel(struct symbolizer *s, uint64_t addr, char *name, size_t len, char *module,
			 size_t modlen)
{
	const char *sym = NULL, *mod = "";
	size_t n;
	int err;

	pthread_mutex_lock(&s->lock);
	if (!s->kallsyms_tried) {
		s->kallsyms_tried = true;
		err = kallsyms_load(s->kallsyms_path, KALLSYMS_MAX_SYMBOLS, &s->kallsyms);
		if (err)
			log_warn("cannot load kernel symbols", "path=%s err=%d%s", s->kallsyms_path, err,
				 err == -EPERM ? " hint=\"addresses are hidden without CAP_SYSLOG\"" : "");
	}
	if (s->kallsyms)
		sym = kallsyms_lookup(s->kallsyms, addr, &mod);
	n = copy_name(name, len, sym);
	copy_name(module, modlen, sym ? mod : "");
	if (!sym)
		s->unresolved++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* --- metrics -------------------------------------------------------------------------------------- */

struct sym_stats {
	uint64_t files, tables, bytes, hits, misses, evictions, expired, unresolved, refused[REFUSED_NR];
	struct go_stats go;
};

static uint64_t loaded_tables(const struct symbolizer *s)
{
	uint64_t n = 0;

	for (const struct sym_file *f = s->lru.lru_next; f != &s->lru; f = f->lru_next)
		n++;
	return n;
}

void symbolizer_write_metrics(struct metrics_buf *b, void *symbolizer)
{
	struct symbolizer *s = symbolizer;
	struct sym_stats st;
	struct metrics_series series;

	pthread_mutex_lock(&s->lock);
	st = (struct sym_stats){ .files = s->nfiles, .bytes = s->cache_bytes, .hits = s->hits,
				 .misses = s->misses, .evictions = s->evictions, .expired = s->expired,
				 .unresolved = s->unresolved };
	st.tables = loaded_tables(s);
	memcpy(st.refused, s->refused, sizeof(st.refused));
	st.go = s->go;
	pthread_mutex_unlock(&s->lock);

	metrics_gauge(b, "anorak_symbol_cache_files", "ELF files open in the symbol cache.",
		      (double)st.files);
	metrics_gauge(b, "anorak_symbol_cache_tables", "Symbol tables loaded in memory.", (double)st.tables);
	metrics_gauge(b, "anorak_symbol_cache_bytes",
		      "Memory held by loaded symbol tables: at most the limit, or one table alone that is larger.",
		      (double)st.bytes);
	metrics_gauge(b, "anorak_symbol_cache_max_bytes", "Limit on memory for symbol tables.",
		      (double)s->opts.cache_max_bytes);
	series = metrics_series_begin(b, "anorak_symbol_lookups_total", "counter",
				      "User symbol lookups by whether the file's symbol table was in memory.");
	metrics_series_value(series, "result=\"hit\"", (double)st.hits);
	metrics_series_value(series, "result=\"miss\"", (double)st.misses);
	metrics_counter(b, "anorak_symbol_cache_evictions_total", "Symbol tables evicted from the cache.",
			(double)st.evictions);
	metrics_counter(b, "anorak_symbol_cache_expired_total",
			"Symbol tables unused for --symbols.cache-idle-time, let go (with their file when unmapped).",
			(double)st.expired);
	metrics_counter(b, "anorak_symbol_unresolved_total", "Addresses for which no symbol was found.",
			(double)st.unresolved);
	metrics_counter(b, "anorak_symbol_files_read_total",
			"ELF files opened and inspected for a process's mappings (cached files are not).",
			(double)__atomic_load_n(&s->files_read, __ATOMIC_RELAXED));
	metrics_counter(b, "anorak_symbol_mappings_dropped_total",
			"Executable mappings not kept because a process had more than 16384.",
			(double)__atomic_load_n(&s->mappings_dropped, __ATOMIC_RELAXED));
	series = metrics_series_begin(b, "anorak_symbol_files_refused_total", "counter",
				      "ELF files whose symbols were not read, by reason.");
	for (size_t i = 0; i < REFUSED_NR; i++)
		metrics_series_valuef(series, (double)st.refused[i], "reason=\"%s\"", refusal_names[i]);
	go_stats_write(b, &st.go);
}
