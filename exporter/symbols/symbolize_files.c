#include "exporter/symbols/symbolize_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/symbols/debuginfod.h"
#include "common/log.h"
#include "exporter/symbols/symbolize_go.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"

#define MAX_IDLE_FILES 512 /* unreferenced files kept open for their cached symbols */

/* --- file cache ---------------------------------------------------------------------------------- */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

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

void file_destroy(struct sym_file *f)
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

void file_unref(struct symbolizer *s, struct sym_file *f)
{
	if (f->pinned || --f->refs > 0)
		return;
	/* Unreferenced files live on only for their cached symbols, until evicted or expired. */
	s->idle_files++;
	f->used_ns = mono_ns();
	if (!f->symtab && !f->pcln)
		file_remove(s, f);
}

void symbolizer_expire_idle(struct symbolizer *s)
{
	int64_t now = mono_ns();

	pthread_mutex_lock(&s->lock);
	for (struct sym_file *f = s->lru.lru_prev, *prev; f != &s->lru; f = prev) {
		prev = f->lru_prev;
		if (now - f->used_ns < (int64_t)s->opts.idle_ttl_ns)
			continue;
		s->expired++;
		if (f->refs == 0)
			file_remove(s, f);
		else
			drop_symtab(s, f); /* still mapped: loaded again if it shows up in a stack */
	}
	pthread_mutex_unlock(&s->lock);
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
struct sym_file *file_get(struct symbolizer *s, int pid, int rootfd, const struct procmaps_entry *e)
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
bool file_tables(struct symbolizer *s, struct sym_file *f)
{
	int err;

	if (f->pinned)
		return f->symtab != NULL;
	if (f->debuginfod_wait)
		take_fetched_debug_file(s, f);
	if (f->symtab || f->pcln) {
		s->hits++;
		f->used_ns = mono_ns();
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
	f->used_ns = mono_ns();
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
void load_vdso(struct symbolizer *s)
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
