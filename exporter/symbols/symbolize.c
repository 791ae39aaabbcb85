#include "exporter/symbols/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/symbols/debuginfod.h"
#include "exporter/symbols/kallsyms.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/symbols/perfmap.h"
#include "exporter/symbols/symbolize_go.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"

#define FILE_BUCKETS 1024
#define MAX_MAPPINGS 16384               /* executable mappings kept per process */
#define MAX_IDLE_FILES 512               /* unreferenced files kept open for their cached symbols */
#define KALLSYMS_MAX_SYMBOLS (4u << 20)  /* a kernel has ~300k; modules and BPF programs add a few */

enum refusal {
	REFUSED_TOO_LARGE,
	REFUSED_TOO_MANY_SYMBOLS,
	REFUSED_BAD_ELF,
	REFUSED_OPEN_FAILED,
	REFUSED_NR
};
static const char *const refusal_names[REFUSED_NR] = { "too_large", "too_many_symbols", "bad_elf",
							"open_failed" };

/* One mapped ELF file, shared by every snapshot that maps it. Guarded by symbolizer.lock. */
struct sym_file {
	struct sym_file *hnext;
	struct sym_file *lru_prev, *lru_next; /* linked while symtab or pcln is loaded */
	dev_t dev;
	uint64_t ino;
	int fd;              /* kept open: pins the inode (so the key stays valid) and allows reloading */
	int debug_fd;        /* separate debug file, -1 when none */
	bool debug_checked;  /* debuglink CRC verified (or found by build id: nothing to verify) */
	uint32_t debug_crc;
	bool debuginfod_wait;     /* no symbols on the local disk: asking debuginfod */
	uint64_t debuginfod_stamp;/* debuginfod_poll's */
	bool pinned;         /* the vdso: owned by the symbolizer, never in the hash or the LRU */
	unsigned refs;       /* snapshots mapping it */
	int load_err;        /* symbols could not be loaded: do not retry */
	struct elf_symtab *symtab;
	struct gopclntab *pcln; /* Go binaries: names, lines and inlined calls of Go code */
	size_t symtab_bytes;    /* of both tables */
	bool go;                /* a Go binary (pclntab section or Go build-id note) */
	char *go_path;          /* its path, for the one log line when its pclntab is refused */
	struct elf_load loads[ELF_MAX_LOADS];
	size_t nloads;
	char build_id[ELF_BUILD_ID_HEX];
};

struct pm_map {
	struct sym_mapping m; /* what proc_maps_find hands out */
	char *path;
	struct sym_file *file; /* NULL: anonymous, or the file could not be opened */
};

struct proc_maps {
	atomic_int refs;
	struct symbolizer *s;
	struct pm_map *maps; /* sorted by start, disjoint */
	size_t n, cap;
	struct perfmap *perfmap;
};

struct symbolizer {
	struct symbolizer_opts opts;
	char *proc_root, *kallsyms_path;
	pthread_mutex_t lock;
	struct sym_file *buckets[FILE_BUCKETS];
	struct sym_file lru; /* sentinel: lru.lru_next is the most recently used */
	size_t nfiles, idle_files;
	uint64_t cache_bytes;
	struct sym_file *vdso;
	uint64_t vdso_size;
	struct kallsyms *kallsyms;
	bool kallsyms_tried;
	uint64_t hits, misses, evictions, unresolved, refused[REFUSED_NR];
	struct go_stats go;
	uint64_t mappings_dropped; /* atomic: counted while reading maps, outside the lock */
	uint64_t files_read;       /* atomic: ELF files opened and inspected, outside the lock */
};

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

/* --- file cache ---------------------------------------------------------------------------------- */

static size_t file_bucket(dev_t dev, uint64_t ino)
{
	uint64_t h = (ino ^ ((uint64_t)dev << 32 | (uint64_t)dev >> 32)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) % FILE_BUCKETS;
}

static struct sym_file *file_find(struct symbolizer *s, dev_t dev, uint64_t ino)
{
	for (struct sym_file *f = s->buckets[file_bucket(dev, ino)]; f; f = f->hnext) {
		if (f->dev == dev && f->ino == ino)
			return f;
	}
	return NULL;
}

static void file_destroy(struct sym_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->debug_fd >= 0)
		close(f->debug_fd);
	elf_symtab_free(f->symtab);
	gopclntab_free(f->pcln);
	free(f->go_path);
	free(f);
}

static void lru_unlink(struct sym_file *f)
{
	f->lru_prev->lru_next = f->lru_next;
	f->lru_next->lru_prev = f->lru_prev;
	f->lru_prev = f->lru_next = NULL;
}

static void lru_push_front(struct symbolizer *s, struct sym_file *f)
{
	f->lru_next = s->lru.lru_next;
	f->lru_prev = &s->lru;
	s->lru.lru_next->lru_prev = f;
	s->lru.lru_next = f;
}

static void drop_symtab(struct symbolizer *s, struct sym_file *f)
{
	lru_unlink(f);
	s->cache_bytes -= f->symtab_bytes;
	elf_symtab_free(f->symtab);
	gopclntab_free(f->pcln);
	f->symtab = NULL;
	f->pcln = NULL;
	f->symtab_bytes = 0;
}

static void file_remove(struct symbolizer *s, struct sym_file *f)
{
	struct sym_file **p = &s->buckets[file_bucket(f->dev, f->ino)];

	while (*p != f)
		p = &(*p)->hnext;
	*p = f->hnext;
	if (f->symtab || f->pcln)
		drop_symtab(s, f);
	if (f->refs == 0)
		s->idle_files--;
	s->nfiles--;
	file_destroy(f);
}

static void file_unref(struct symbolizer *s, struct sym_file *f)
{
	if (f->pinned || --f->refs > 0)
		return;
	/* Unreferenced files live on only for their cached symbols. */
	s->idle_files++;
	if (!f->symtab && !f->pcln)
		file_remove(s, f);
}

static void count_refused(struct symbolizer *s, int err)
{
	enum refusal r = err == -EFBIG ? REFUSED_TOO_LARGE : err == -E2BIG ? REFUSED_TOO_MANY_SYMBOLS
										: REFUSED_BAD_ELF;

	s->refused[r]++;
}

/* Separate debug file: by build id, then by .gnu_debuglink name in the places gdb looks. Only opened
 * here (the process may be gone when symbols are first needed); its CRC is checked when it is read. */
static void find_debug_file(int rootfd, const char *path, struct elf_file *ef, struct sym_file *f)
{
	char cand[PATH_MAX], link[ELF_DEBUGLINK_MAX], dir[PATH_MAX];
	const char *slash;
	uint32_t crc;
	int fd;

	if (strlen(f->build_id) > 2) {
		snprintf(cand, sizeof(cand), "/usr/lib/debug/.build-id/%.2s/%s.debug", f->build_id,
			 f->build_id + 2);
		fd = procfile_open_in_root(rootfd, cand);
		if (fd >= 0) {
			f->debug_fd = fd;
			f->debug_checked = true; /* the build id in the path is the check */
			return;
		}
	}
	if (elf_file_debuglink(ef, link, sizeof(link), &crc) || strchr(link, '/') ||
	    strcmp(link, ".") == 0 || strcmp(link, "..") == 0)
		return;
	slash = strrchr(path, '/');
	if (!slash)
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	const char *const formats[] = { "%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s" };
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (snprintf(cand, sizeof(cand), formats[i], dir, link) >= (int)sizeof(cand))
			continue;
		fd = procfile_open_in_root(rootfd, cand);
		if (fd >= 0) {
			f->debug_fd = fd;
			f->debug_crc = crc;
			return;
		}
	}
}

/* Reads what every lookup needs (build id, segments) and locates a debug file; symbols come later. */
static int file_inspect(const struct symbolizer *s, int rootfd, const char *path, struct sym_file *f)
{
	struct elf_file *ef;
	int err, n;

	err = elf_file_open(f->fd, s->opts.elf_max_bytes, &ef);
	if (err)
		return err;
	if (elf_file_build_id(ef, f->build_id, sizeof(f->build_id)) < 0)
		f->build_id[0] = '\0';
	n = elf_file_loads(ef, f->loads, ELF_MAX_LOADS);
	if (n < 0) {
		elf_file_close(ef);
		return n;
	}
	f->nloads = (size_t)n;
	f->go = gopclntab_elf_is_go(ef);
	if (f->go)
		f->go_path = strdup(path);
	if (rootfd >= 0 && !elf_file_has_symtab(ef))
		find_debug_file(rootfd, path, ef, f);
	f->debuginfod_wait = s->opts.debuginfod && f->debug_fd < 0 && f->build_id[0] &&
			     !elf_file_has_symtab(ef);
	elf_file_close(ef);
	return 0;
}

/* A new, unshared entry for the file of e. Files that are not usable ELF still get an entry (with
 * load_err) so they are refused once, not on every snapshot; NULL when the file cannot be opened. */
static struct sym_file *file_create(struct symbolizer *s, int pid, int rootfd, const struct procmaps_entry *e)
{
	struct sym_file *f;
	int err;

	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->dev = makedev(e->dev_major, e->dev_minor);
	f->ino = e->inode;
	f->debug_fd = -1;
	f->refs = 1;
	f->fd = procfile_open_mapped(s->proc_root, pid, rootfd, e);
	if (f->fd < 0) {
		log_debug("cannot open mapped file", "pid=%d path=\"%s\" err=%d", pid, e->path, f->fd);
		free(f);
		return NULL;
	}
	__atomic_fetch_add(&s->files_read, 1, __ATOMIC_RELAXED);
	err = file_inspect(s, rootfd, e->path, f);
	if (err) {
		log_debug("cannot read ELF file", "pid=%d path=\"%s\" err=%d", pid, e->path, err);
		close(f->fd);
		f->fd = -1;
		f->load_err = err;
	}
	return f;
}

/* The cached entry for e's file, referenced; created (outside the lock: it does I/O) when missing. */
static struct sym_file *file_get(struct symbolizer *s, int pid, int rootfd, const struct procmaps_entry *e)
{
	dev_t dev = makedev(e->dev_major, e->dev_minor);
	struct sym_file *f, *fresh;

	pthread_mutex_lock(&s->lock);
	f = file_find(s, dev, e->inode);
	if (f && f->refs++ == 0)
		s->idle_files--;
	pthread_mutex_unlock(&s->lock);
	if (f)
		return f;

	fresh = file_create(s, pid, rootfd, e);
	pthread_mutex_lock(&s->lock);
	if (!fresh) {
		s->refused[REFUSED_OPEN_FAILED]++;
	} else if ((f = file_find(s, dev, e->inode))) {
		/* Another thread added it meanwhile. */
		if (f->refs++ == 0)
			s->idle_files--;
	} else {
		f = fresh;
		fresh = NULL;
		if (f->load_err)
			count_refused(s, f->load_err);
		s->go.binaries += f->go;
		f->hnext = s->buckets[file_bucket(dev, e->inode)];
		s->buckets[file_bucket(dev, e->inode)] = f;
		s->nfiles++;
	}
	pthread_mutex_unlock(&s->lock);
	if (fresh)
		file_destroy(fresh);
	return f;
}

/* --- symbol tables ------------------------------------------------------------------------------ */

static int load_debug_symbols(struct symbolizer *s, struct sym_file *f, struct elf_symtab **out)
{
	struct elf_file *ef;
	uint32_t crc;
	int err;

	if (!f->debug_checked) {
		err = elf_fd_crc32(f->debug_fd, s->opts.elf_max_bytes, &crc);
		if (err)
			return err;
		if (crc != f->debug_crc)
			return -ESTALE;
		f->debug_checked = true;
	}
	err = elf_file_open(f->debug_fd, s->opts.elf_max_bytes, &ef);
	if (err)
		return err;
	err = elf_symtab_load(ef, SHT_SYMTAB, s->opts.max_symbols_per_file, out);
	elf_file_close(ef);
	return err;
}

static int load_symbols(struct symbolizer *s, struct sym_file *f, struct elf_symtab **out)
{
	struct elf_file *ef;
	int err;

	if (f->debug_fd >= 0) {
		err = load_debug_symbols(s, f, out);
		if (err != -E2BIG && err != -ENOMEM && err != 0) {
			/* Not the right file (CRC, no .symtab, bad ELF): the main file's .dynsym will do. */
			log_debug("ignoring separate debug file", "build_id=%s err=%d", f->build_id, err);
			close(f->debug_fd);
			f->debug_fd = -1;
		} else {
			return err;
		}
	}
	err = elf_file_open(f->fd, s->opts.elf_max_bytes, &ef);
	if (err)
		return err;
	err = elf_symtab_load(ef, SHT_SYMTAB, s->opts.max_symbols_per_file, out);
	if (err == -ENOENT)
		err = elf_symtab_load(ef, SHT_DYNSYM, s->opts.max_symbols_per_file, out);
	elf_file_close(ef);
	return err;
}

/* Drops least recently used tables until the cache fits (the table just loaded, keep, always stays)
 * and unreferenced files are few enough. */
static void evict(struct symbolizer *s, const struct sym_file *keep)
{
	struct sym_file *f = s->lru.lru_prev;

	while (f != &s->lru && f != keep &&
	       (s->cache_bytes > s->opts.cache_max_bytes || s->idle_files > MAX_IDLE_FILES)) {
		struct sym_file *prev = f->lru_prev;

		if (s->cache_bytes > s->opts.cache_max_bytes || f->refs == 0) {
			drop_symtab(s, f);
			s->evictions++;
			if (f->refs == 0)
				file_remove(s, f);
		}
		f = prev;
	}
}

/* A debug file that arrived from debuginfod replaces the symbols loaded without it: both tables go,
 * so the next lookup loads them again with it. */
static void take_fetched_debug_file(struct symbolizer *s, struct sym_file *f)
{
	int fd = debuginfod_poll(s->opts.debuginfod, f->build_id, &f->debuginfod_stamp);

	if (fd == -EAGAIN)
		return;
	f->debuginfod_wait = false;
	if (fd < 0)
		return;
	if (f->symtab || f->pcln)
		drop_symtab(s, f);
	f->debug_fd = fd;
	f->debug_checked = true; /* its build id was checked when it was fetched */
	f->load_err = 0;
}

/* The symbol tables of f (ELF symbols, and pclntab for Go binaries), loading them on first use.
 * Called with the lock held; false when f has neither. */
static bool file_tables(struct symbolizer *s, struct sym_file *f)
{
	int err;

	if (f->pinned)
		return f->symtab != NULL;
	if (f->debuginfod_wait)
		take_fetched_debug_file(s, f);
	if (f->symtab || f->pcln) {
		s->hits++;
		lru_unlink(f);
		lru_push_front(s, f);
		return true;
	}
	if (f->load_err)
		return false;
	s->misses++;
	if (f->go) {
		f->pcln = go_symbols_load(&s->go, f->fd, s->opts.elf_max_bytes, s->opts.max_symbols_per_file,
					  f->go_path ? f->go_path : "", f->build_id);
		f->go = f->pcln != NULL; /* a refused table is not tried again when the tables are reloaded */
	}
	err = load_symbols(s, f, &f->symtab);
	if (err) {
		if (err != -ENOENT)
			count_refused(s, err);
		log_debug("cannot load symbols", "build_id=%s err=%d", f->build_id, err);
		f->symtab = NULL;
	}
	if (!f->symtab && !f->pcln) {
		f->load_err = err ? err : -ENOENT;
		return false;
	}
	f->symtab_bytes = (f->symtab ? elf_symtab_bytes(f->symtab) : 0) + (f->pcln ? gopclntab_bytes(f->pcln) : 0);
	s->cache_bytes += f->symtab_bytes;
	lru_push_front(s, f);
	evict(s, f);
	return true;
}

/* --- vdso ----------------------------------------------------------------------------------------- */

static int find_vdso_size(const struct procmaps_entry *e, void *ctx)
{
	if (strcmp(e->path, "[vdso]") != 0)
		return 0;
	*(uint64_t *)ctx = e->end - e->start;
	return 1;
}

static int vdso_read(struct sym_file *f, const void *image, uint64_t size, uint32_t max_symbols)
{
	struct elf_file *ef;
	int err, n;

	err = elf_file_open_mem(image, size, &ef);
	if (err)
		return err;
	n = elf_file_loads(ef, f->loads, ELF_MAX_LOADS);
	err = n < 0 ? n : elf_symtab_load(ef, SHT_DYNSYM, max_symbols, &f->symtab);
	if (!err) {
		f->nloads = (size_t)n;
		if (elf_file_build_id(ef, f->build_id, sizeof(f->build_id)) < 0)
			f->build_id[0] = '\0';
	}
	elf_file_close(ef);
	return err;
}

/* The vdso image is the same in every process on this kernel, so this process's own copy (from
 * AT_SYSINFO_EHDR) symbolizes everyone's. */
static void load_vdso(struct symbolizer *s)
{
	uintptr_t base = getauxval(AT_SYSINFO_EHDR);
	uint64_t size = 0;
	struct sym_file *f;
	void *image;
	FILE *maps;
	int err;

	maps = fopen("/proc/self/maps", "re");
	if (!base || !maps) {
		if (maps)
			fclose(maps);
		return;
	}
	procmaps_foreach(maps, find_vdso_size, &size);
	fclose(maps);
	f = calloc(1, sizeof(*f));
	image = size ? malloc(size) : NULL;
	if (!f || !image) {
		free(f);
		free(image);
		return;
	}
	memcpy(image, (const void *)base, size);
	f->fd = f->debug_fd = -1;
	f->pinned = true;
	err = vdso_read(f, image, size, s->opts.max_symbols_per_file);
	free(image);
	if (err) {
		log_warn("cannot read vdso symbols", "err=%d", err);
		file_destroy(f);
		return;
	}
	s->vdso = f;
	s->vdso_size = size;
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
	struct maps_ctx c = { .s = s, .pid = pid };
	char path[64];
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/%d/maps", s->proc_root, pid);
	f = fopen(path, "re");
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
	fr[0] = (struct gopclntab_frame){ .name = f->symtab ? elf_symtab_lookup(f->symtab, vaddr) : NULL, .file = "" };
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
	uint64_t files, bytes, hits, misses, evictions, unresolved, refused[REFUSED_NR];
	struct go_stats go;
};

void symbolizer_write_metrics(struct metrics_buf *b, void *symbolizer)
{
	struct symbolizer *s = symbolizer;
	struct sym_stats st;
	struct metrics_series series;

	pthread_mutex_lock(&s->lock);
	st = (struct sym_stats){ .files = s->nfiles, .bytes = s->cache_bytes, .hits = s->hits,
				 .misses = s->misses, .evictions = s->evictions, .unresolved = s->unresolved };
	memcpy(st.refused, s->refused, sizeof(st.refused));
	st.go = s->go;
	pthread_mutex_unlock(&s->lock);

	metrics_gauge(b, "anorak_symbol_cache_files", "ELF files open in the symbol cache.",
		      (double)st.files);
	metrics_gauge(b, "anorak_symbol_cache_bytes", "Memory held by loaded symbol tables.",
		      (double)st.bytes);
	metrics_gauge(b, "anorak_symbol_cache_max_bytes", "Limit on memory for symbol tables.",
		      (double)s->opts.cache_max_bytes);
	series = metrics_series_begin(b, "anorak_symbol_lookups_total", "counter",
				      "User symbol lookups by whether the file's symbol table was in memory.");
	metrics_series_value(series, "result=\"hit\"", (double)st.hits);
	metrics_series_value(series, "result=\"miss\"", (double)st.misses);
	metrics_counter(b, "anorak_symbol_cache_evictions_total", "Symbol tables evicted from the cache.",
			(double)st.evictions);
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
