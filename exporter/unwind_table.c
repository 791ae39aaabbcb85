#include "unwind_table.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/types.h>

#include "ehframe.h"
#include "elf_file.h"
#include "log.h"
#include "metrics.h"
#include "procfile.h"
#include "procmaps.h"
#include "unwind.h"

/* Files remembered (with or without a table). */
#define MAX_FILES (4 * UNWIND_MAX_TABLES)
/* Rows written to the array map per syscall. */
#define ROW_BATCH 4096

/* Why a file has no table; negative cache entries remember it. */
enum table_state { TABLE_LOADED = 0, TABLE_NONE, TABLE_FAILED, TABLE_TOO_BIG, TABLE_STATES };

static const char *const state_labels[TABLE_STATES] = {
	[TABLE_LOADED] = "result=\"success\"",
	[TABLE_NONE] = "result=\"no_eh_frame\"",
	[TABLE_FAILED] = "result=\"error\"",
	[TABLE_TOO_BIG] = "result=\"too_large\"",
};

/* One file's table: in BPF (slot, rows [first, first + count)) or a negative entry. */
struct table {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	bool vdso;
	enum table_state state;
	uint32_t slot, gen, first, count;
	uint64_t base;                 /* file virtual address of row pc 0 */
	struct elf_load loads[ELF_MAX_LOADS];
	int nloads;
	uint64_t installed_ns;         /* last time a process was given it (CLOCK_MONOTONIC) */
	uint64_t pin;                  /* the install that uses it: not evicted by that install */
	struct table *next;
};

/* A free run of rows, in an array sorted by first. */
struct extent {
	uint32_t first, count;
};

struct unwinder {
	struct unwinder_opts opts;
	char *proc_root;
	struct unwinder_maps maps;
	pthread_mutex_t lock;

	struct table *tables;          /* all files seen, loaded or not */
	uint32_t ntables, ntables_loaded;
	uint32_t slot_gen[UNWIND_MAX_TABLES];
	bool slot_used[UNWIND_MAX_TABLES];
	struct extent *free;
	size_t nfree;
	uint64_t rows_used;
	uint64_t install_seq;
	uint32_t entries_written;

	const void *vdso_image;
	uint64_t vdso_size;

	struct unwind_process *entry;  /* scratch for the process being added */
	struct unwind_row *rowbuf;
	__u32 *keybuf;

	uint64_t built[TABLE_STATES];
	uint64_t evicted;
	uint64_t processes_added, processes_failed, processes_full, mappings_dropped, events;
	struct metrics_histogram build_seconds;
};

static const double build_buckets[] = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1 };

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void unwinder_plan(uint64_t memory_bytes, uint32_t max_processes, uint32_t *nrows, uint32_t *nprocs)
{
	uint64_t procs = memory_bytes / 4 / sizeof(struct unwind_process);
	uint64_t rows;

	if (procs > max_processes)
		procs = max_processes;
	if (procs < 1)
		procs = 1;
	rows = (memory_bytes - procs * sizeof(struct unwind_process)) / sizeof(struct unwind_row);
	if (rows > UINT32_MAX)
		rows = UINT32_MAX;
	*nrows = rows ? (uint32_t)rows : 1;
	*nprocs = (uint32_t)procs;
}

/* --- row allocation ------------------------------------------------------------------------------ */

static int extent_alloc(struct unwinder *u, uint32_t count, uint32_t *first)
{
	for (size_t i = 0; i < u->nfree; i++) {
		if (u->free[i].count < count)
			continue;
		*first = u->free[i].first;
		u->free[i].first += count;
		u->free[i].count -= count;
		if (u->free[i].count == 0) {
			memmove(&u->free[i], &u->free[i + 1], (u->nfree - i - 1) * sizeof(*u->free));
			u->nfree--;
		}
		u->rows_used += count;
		return 0;
	}
	return -ENOSPC;
}

/* Gives rows back, merging with free neighbours. The array has room: it holds at most one extent
 * per table plus one. */
static void extent_free(struct unwinder *u, uint32_t first, uint32_t count)
{
	size_t i = 0;

	while (i < u->nfree && u->free[i].first < first)
		i++;
	u->rows_used -= count;
	bool merge_prev = i > 0 && u->free[i - 1].first + u->free[i - 1].count == first;
	bool merge_next = i < u->nfree && first + count == u->free[i].first;
	if (merge_prev && merge_next) {
		u->free[i - 1].count += count + u->free[i].count;
		memmove(&u->free[i], &u->free[i + 1], (u->nfree - i - 1) * sizeof(*u->free));
		u->nfree--;
	} else if (merge_prev) {
		u->free[i - 1].count += count;
	} else if (merge_next) {
		u->free[i].first = first;
		u->free[i].count += count;
	} else {
		memmove(&u->free[i + 1], &u->free[i], (u->nfree - i) * sizeof(*u->free));
		u->free[i] = (struct extent){ first, count };
		u->nfree++;
	}
}

static int free_slot(struct unwinder *u, uint32_t *slot)
{
	for (uint32_t i = 0; i < UNWIND_MAX_TABLES; i++) {
		if (!u->slot_used[i]) {
			*slot = i;
			return 0;
		}
	}
	return -ENOSPC;
}

/* --- eviction ------------------------------------------------------------------------------------ */

/* When samples last used the table, or it was last installed, whichever is later. */
static uint64_t last_used(struct unwinder *u, const struct table *t)
{
	struct unwind_table_info info;

	if (bpf_map_lookup_elem(u->maps.tables_fd, &t->slot, &info) == 0 && info.last_used_ns > t->installed_ns)
		return info.last_used_ns;
	return t->installed_ns;
}

/* Marks the slot free for BPF: its gen changes, so process entries naming it are stale. */
static void release_slot(struct unwinder *u, struct table *t)
{
	struct unwind_table_info info = { .gen = ++u->slot_gen[t->slot] };

	bpf_map_update_elem(u->maps.tables_fd, &t->slot, &info, BPF_ANY);
	u->slot_used[t->slot] = false;
}

/* Waits until no BPF program can still be reading rows of a released table. */
static int wait_for_readers(struct unwinder *u)
{
	__u32 zero = 0;
	int inner = u->maps.sync_inner_fd;

	return bpf_map_update_elem(u->maps.sync_fd, &zero, &inner, BPF_ANY) ? -errno : 0;
}

static void table_unlink(struct unwinder *u, struct table *victim)
{
	for (struct table **pp = &u->tables; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			u->ntables--;
			free(victim);
			return;
		}
	}
}

static struct table *least_recently_used(struct unwinder *u)
{
	struct table *oldest = NULL;
	uint64_t oldest_used = UINT64_MAX;

	for (struct table *t = u->tables; t; t = t->next) {
		if (t->state != TABLE_LOADED || t->pin == u->install_seq)
			continue;
		uint64_t used = last_used(u, t);
		if (used < oldest_used) {
			oldest = t;
			oldest_used = used;
		}
	}
	return oldest;
}

/* A slot and count rows in one run for a new table; evicts least recently used tables (not those of
 * the process being added) until they fit, or fails with -ENOSPC. */
static int make_room(struct unwinder *u, uint32_t count, uint32_t *slot, uint32_t *first)
{
	for (;;) {
		bool have_slot = free_slot(u, slot) == 0;

		if (have_slot && extent_alloc(u, count, first) == 0)
			return 0;
		/* A batch of the oldest, so one wait covers several evictions. */
		struct table *victims[16];
		int nv = 0;
		uint64_t freed = 0;
		while (nv < 16 && (freed < count || (!have_slot && nv == 0))) {
			struct table *oldest = least_recently_used(u);
			if (!oldest)
				break;
			release_slot(u, oldest);
			oldest->state = TABLE_NONE;
			oldest->pin = u->install_seq;
			victims[nv++] = oldest;
			freed += oldest->count;
		}
		if (nv == 0)
			return -ENOSPC;
		/* Rows cached per CPU before now are stale; the wait makes every program see it. */
		__atomic_add_fetch(u->maps.epoch, 1, __ATOMIC_SEQ_CST);
		int err = wait_for_readers(u);
		for (int i = 0; i < nv; i++) {
			/* Without the wait the rows may still be read: leak them rather than reuse them. */
			if (!err)
				extent_free(u, victims[i]->first, victims[i]->count);
			u->ntables_loaded--;
			u->evicted++;
			/* Forgotten: the next process mapping the file gets it parsed again. */
			table_unlink(u, victims[i]);
		}
		if (err) {
			log_warn("cannot wait for BPF programs before reusing unwind table rows", "err=\"%s\"",
				 strerror(-err));
			return err;
		}
	}
}

/* --- building tables ----------------------------------------------------------------------------- */

static int write_rows(struct unwinder *u, uint32_t first, const struct unwind_row *rows, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		__u32 batch = n - done > ROW_BATCH ? ROW_BATCH : n - done;

		for (__u32 i = 0; i < batch; i++)
			u->keybuf[i] = first + done + i;
		memcpy(u->rowbuf, rows + done, batch * sizeof(*rows));
		__u32 count = batch;
		if (bpf_map_update_batch(u->maps.rows_fd, u->keybuf, u->rowbuf, &count, NULL))
			return -errno;
		done += batch;
	}
	return 0;
}

/* Parses the file and puts its table into BPF. Sets t->state. */
static void load_table(struct unwinder *u, struct table *t, struct elf_file *ef)
{
	struct ehframe_table et;
	uint64_t start = mono_ns();
	int err;

	t->nloads = elf_file_loads(ef, t->loads, ELF_MAX_LOADS);
	if (t->nloads <= 0) {
		t->state = TABLE_FAILED;
		goto out;
	}
	/* A table larger than the whole map can never load: stop building it there, which also bounds the
	 * builder's temporary memory by --unwind.table-memory. */
	err = ehframe_table_from_elf(ef, u->maps.nrows < UNWIND_MAX_TABLE_ROWS ? u->maps.nrows : UNWIND_MAX_TABLE_ROWS,
				     &et);
	if (err) {
		t->state = err == -ENOENT ? TABLE_NONE : err == -E2BIG ? TABLE_TOO_BIG : TABLE_FAILED;
		goto out;
	}
	if (et.nrows > u->maps.nrows) {
		t->state = TABLE_TOO_BIG;
		ehframe_table_free(&et);
		goto out;
	}
	err = make_room(u, et.nrows, &t->slot, &t->first);
	if (!err) {
		err = write_rows(u, t->first, et.rows, et.nrows);
		if (err)
			extent_free(u, t->first, et.nrows);
	}
	if (!err) {
		struct unwind_table_info info = {
			.first = t->first, .count = et.nrows, .gen = u->slot_gen[t->slot], .last_used_ns = mono_ns(),
		};
		if (bpf_map_update_elem(u->maps.tables_fd, &t->slot, &info, BPF_ANY)) {
			err = -errno;
			extent_free(u, t->first, et.nrows);
		}
	}
	if (err) {
		t->state = err == -ENOSPC ? TABLE_TOO_BIG : TABLE_FAILED;
		log_debug("cannot load an unwind table into BPF", "rows=%u err=\"%s\"", et.nrows, strerror(-err));
	} else {
		t->state = TABLE_LOADED;
		t->count = et.nrows;
		t->gen = u->slot_gen[t->slot];
		t->base = et.base;
		u->slot_used[t->slot] = true;
		u->ntables_loaded++;
	}
	ehframe_table_free(&et);
out:
	u->built[t->state]++;
	metrics_histogram_observe(&u->build_seconds, (mono_ns() - start) / 1e9);
}

static struct table *table_new(struct unwinder *u)
{
	struct table *t;

	/* Files without a table are remembered so they are not parsed again, but not without bound. */
	if (u->ntables >= MAX_FILES) {
		for (struct table **pp = &u->tables; *pp;) {
			struct table *o = *pp;
			if (o->state != TABLE_LOADED) {
				*pp = o->next;
				u->ntables--;
				free(o);
			} else {
				pp = &o->next;
			}
		}
		if (u->ntables >= MAX_FILES)
			return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->next = u->tables;
	u->tables = t;
	u->ntables++;
	return t;
}

/* The table of the file behind a mapping of pid, built if it is new. NULL when it has none. */
static struct table *file_table(struct unwinder *u, int pid, int rootfd, const struct procmaps_entry *e)
{
	int fd = procfile_open_mapped(u->proc_root, pid, rootfd, e);
	struct elf_file *ef = NULL;
	struct table *t;
	struct stat st;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		close(fd);
		return NULL;
	}
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	for (t = u->tables; t; t = t->next) {
		if (!t->vdso && t->dev == st.st_dev && t->ino == st.st_ino && t->size == st.st_size &&
		    t->mtime_ns == mtime)
			break;
	}
	if (!t) {
		t = table_new(u);
		if (t) {
			t->dev = st.st_dev;
			t->ino = st.st_ino;
			t->size = st.st_size;
			t->mtime_ns = mtime;
			t->pin = u->install_seq;
			if (elf_file_open(fd, u->opts.elf_max_bytes, &ef) == 0)
				load_table(u, t, ef);
			else
				u->built[t->state = TABLE_FAILED]++;
			elf_file_close(ef);
		}
	}
	close(fd);
	return t && t->state == TABLE_LOADED ? t : NULL;
}

/* The vdso is the same image in every process on this kernel: its table comes from ours. */
static struct table *vdso_table(struct unwinder *u, const struct procmaps_entry *e)
{
	struct elf_file *ef;
	struct table *t;

	if (!u->vdso_image || e->end - e->start != u->vdso_size)
		return NULL;
	for (t = u->tables; t; t = t->next)
		if (t->vdso)
			return t->state == TABLE_LOADED ? t : NULL;
	t = table_new(u);
	if (!t)
		return NULL;
	t->vdso = true;
	t->pin = u->install_seq;
	if (elf_file_open_mem(u->vdso_image, u->vdso_size, &ef) == 0) {
		load_table(u, t, ef);
		elf_file_close(ef);
	} else {
		u->built[t->state = TABLE_FAILED]++;
	}
	return t->state == TABLE_LOADED ? t : NULL;
}

/* Virtual address of the mapping's first byte: its file offset is page-aligned, the segment's may
 * not be. */
static int mapping_vaddr(const struct table *t, uint64_t offset, uint64_t *vaddr)
{
	for (int i = 0; i < t->nloads; i++) {
		const struct elf_load *l = &t->loads[i];
		uint64_t page_off = l->offset & ~0xfffULL;

		if (offset >= page_off && offset < l->offset + l->filesz) {
			*vaddr = l->vaddr - (l->offset - offset);
			return 0;
		}
	}
	return -ENOENT;
}

/* --- processes ----------------------------------------------------------------------------------- */

struct add_ctx {
	struct unwinder *u;
	int pid, rootfd;
	struct unwind_process *p;
};

static int add_mapping(const struct procmaps_entry *e, void *arg)
{
	struct add_ctx *c = arg;
	struct unwinder *u = c->u;
	struct table *t = NULL;
	uint64_t vaddr;

	if (!e->executable)
		return 0;
	if (e->inode != 0 && e->path[0] == '/')
		t = file_table(u, c->pid, c->rootfd, e);
	else if (strcmp(e->path, "[vdso]") == 0)
		t = vdso_table(u, e);
	if (!t)
		return 0;
	t->pin = u->install_seq;
	t->installed_ns = mono_ns();
	if (t->vdso)
		vaddr = t->loads[0].vaddr; /* the image is mapped whole from its start */
	else if (mapping_vaddr(t, e->offset, &vaddr))
		return 0;
	if (c->p->count == UNWIND_MAX_MAPPINGS) {
		u->mappings_dropped++;
		return 0;
	}
	c->p->mappings[c->p->count++] = (struct unwind_mapping){
		.start = e->start,
		.end = e->end,
		.base = e->start - vaddr + t->base,
		.table = t->slot,
		.gen = t->gen,
	};
	return 0;
}

static int cmp_mapping(const void *a, const void *b)
{
	const struct unwind_mapping *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* A table loaded for an earlier mapping of this process may have been evicted for a later one:
 * entries naming a slot whose gen moved on are dropped (BPF would ignore them anyway). */
static void drop_stale(struct unwinder *u, struct unwind_process *p)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < p->count; i++)
		if (u->slot_used[p->mappings[i].table] && u->slot_gen[p->mappings[i].table] == p->mappings[i].gen)
			p->mappings[kept++] = p->mappings[i];
	p->count = kept;
}

static int add_locked(struct unwinder *u, uint32_t tgid)
{
	char path[64];
	struct add_ctx c = { .u = u, .pid = (int)tgid, .p = u->entry };
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/%u/maps", u->proc_root, tgid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	u->install_seq++;
	memset(c.p, 0, sizeof(*c.p));
	c.rootfd = procfile_open_root(u->proc_root, (int)tgid);
	err = procmaps_foreach(f, add_mapping, &c);
	fclose(f);
	if (c.rootfd >= 0)
		close(c.rootfd);
	if (err)
		return kill((pid_t)tgid, 0) && errno == ESRCH ? -ESRCH : err; /* it exited while being read */
	drop_stale(u, c.p);
	if (c.p->count == 0)
		return -ENOENT;
	qsort(c.p->mappings, c.p->count, sizeof(c.p->mappings[0]), cmp_mapping);
	c.p->gen = ++u->entries_written;
	if (bpf_map_update_elem(u->maps.procs_fd, &tgid, c.p, BPF_ANY))
		return errno == E2BIG ? -ENOSPC : -errno;
	/* BPF drops the entry at exit; one written after the exit would outlive the process. */
	if (kill((pid_t)tgid, 0) && errno == ESRCH) {
		bpf_map_delete_elem(u->maps.procs_fd, &tgid);
		return -ESRCH;
	}
	return 0;
}

static uint64_t tables_built(const struct unwinder *u)
{
	uint64_t n = 0;

	for (int s = 0; s < TABLE_STATES; s++)
		n += u->built[s];
	return n;
}

int unwinder_add_process(struct unwinder *u, uint32_t tgid)
{
	pthread_mutex_lock(&u->lock);
	uint64_t built = tables_built(u);
	int err = add_locked(u, tgid);
	/* Parsing leaves freed holes between the few blocks that stay (libelf's, the file list): give
	 * their pages back, or every burst of new binaries would grow the daemon's RSS for good. */
	if (tables_built(u) != built)
		malloc_trim(0);
	if (!err)
		u->processes_added++;
	else if (err == -ENOSPC)
		u->processes_full++;
	else if (err != -ESRCH && err != -ENOENT)
		u->processes_failed++;
	pthread_mutex_unlock(&u->lock);
	if (err && err != -ESRCH && err != -ENOENT)
		log_debug("cannot give a process unwind tables", "pid=%u err=\"%s\"", tgid, strerror(-err));
	return err;
}

int unwinder_handle_event(void *unwinder, void *data, size_t size)
{
	struct unwinder *u = unwinder;
	const struct unwind_event *e = data;

	if (size < sizeof(*e))
		return 0;
	pthread_mutex_lock(&u->lock);
	u->events++;
	pthread_mutex_unlock(&u->lock);
	unwinder_add_process(u, e->tgid);
	return 0;
}

/* --- life cycle ---------------------------------------------------------------------------------- */

static int find_vdso_size(const struct procmaps_entry *e, void *ctx)
{
	if (strcmp(e->path, "[vdso]") != 0)
		return 0;
	*(uint64_t *)ctx = e->end - e->start;
	return 1;
}

static void find_vdso(struct unwinder *u)
{
	FILE *f = fopen("/proc/self/maps", "re");
	uint64_t size = 0;

	u->vdso_image = (const void *)getauxval(AT_SYSINFO_EHDR);
	if (!f || !u->vdso_image) {
		u->vdso_image = NULL;
		if (f)
			fclose(f);
		return;
	}
	procmaps_foreach(f, find_vdso_size, &size);
	fclose(f);
	u->vdso_size = size;
	if (!size)
		u->vdso_image = NULL;
}

int unwinder_new(const struct unwinder_opts *opts, const struct unwinder_maps *maps, struct unwinder **out)
{
	struct unwinder *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->opts = *opts;
	u->maps = *maps;
	u->proc_root = strdup(opts->proc_root ? opts->proc_root : "/proc");
	u->entry = calloc(1, sizeof(*u->entry));
	u->rowbuf = calloc(ROW_BATCH, sizeof(*u->rowbuf));
	u->keybuf = calloc(ROW_BATCH, sizeof(*u->keybuf));
	u->free = calloc(UNWIND_MAX_TABLES + 2, sizeof(*u->free));
	if (!u->proc_root || !u->entry || !u->rowbuf || !u->keybuf || !u->free ||
	    metrics_histogram_init(&u->build_seconds, build_buckets, sizeof(build_buckets) / sizeof(build_buckets[0]))) {
		free(u->proc_root);
		free(u->entry);
		free(u->rowbuf);
		free(u->keybuf);
		free(u->free);
		free(u);
		return -ENOMEM;
	}
	u->free[0] = (struct extent){ 0, maps->nrows };
	u->nfree = 1;
	pthread_mutex_init(&u->lock, NULL);
	find_vdso(u);
	*out = u;
	return 0;
}

void unwinder_free(struct unwinder *u)
{
	if (!u)
		return;
	while (u->tables) {
		struct table *t = u->tables;
		u->tables = t->next;
		free(t);
	}
	metrics_histogram_destroy(&u->build_seconds);
	pthread_mutex_destroy(&u->lock);
	free(u->proc_root);
	free(u->entry);
	free(u->rowbuf);
	free(u->keybuf);
	free(u->free);
	free(u);
}

/* --- metrics ------------------------------------------------------------------------------------- */

static void sum_counters(struct unwinder *u, uint64_t *totals)
{
	struct unwind_counter_values *percpu = calloc(u->maps.ncpus, sizeof(*percpu));
	__u32 zero = 0;

	memset(totals, 0, UNWIND_COUNTERS * sizeof(*totals));
	if (percpu && bpf_map_lookup_elem(u->maps.counters_fd, &zero, percpu) == 0)
		for (int c = 0; c < u->maps.ncpus; c++)
			for (int i = 0; i < UNWIND_COUNTERS; i++)
				totals[i] += percpu[c].n[i];
	free(percpu);
}

void unwinder_write_metrics(struct metrics_buf *b, void *unwinder)
{
	struct unwinder *u = unwinder;
	uint64_t c[UNWIND_COUNTERS];

	sum_counters(u, c);
	metrics_family(b, "anorak_unwind_frames_total", "counter",
		       "User stack frames found, by method: unwind table row or frame pointer.");
	metrics_value(b, "anorak_unwind_frames_total", "method=\"table\"", c[UNWIND_FRAMES_TABLE]);
	metrics_value(b, "anorak_unwind_frames_total", "method=\"frame_pointer\"", c[UNWIND_FRAMES_FP]);
	metrics_family(b, "anorak_unwind_stacks_total", "counter",
		       "User stacks of processes with unwind tables that reached their outermost frame "
		       "(result=\"complete\"), and stacks of processes without tables yet, walked by frame "
		       "pointer only (result=\"frame_pointer_only\").");
	metrics_value(b, "anorak_unwind_stacks_total", "result=\"complete\"", c[UNWIND_STACKS_COMPLETE]);
	metrics_value(b, "anorak_unwind_stacks_total", "result=\"frame_pointer_only\"", c[UNWIND_STACKS_FP_ONLY]);
	metrics_family(b, "anorak_unwind_stacks_truncated_total", "counter",
		       "User stacks of processes with unwind tables cut short, by reason.");
	metrics_value(b, "anorak_unwind_stacks_truncated_total", "reason=\"no_table\"", c[UNWIND_TRUNC_NO_TABLE]);
	metrics_value(b, "anorak_unwind_stacks_truncated_total", "reason=\"bad_rule\"", c[UNWIND_TRUNC_BAD_RULE]);
	metrics_value(b, "anorak_unwind_stacks_truncated_total", "reason=\"read_fault\"", c[UNWIND_TRUNC_READ_FAULT]);
	metrics_value(b, "anorak_unwind_stacks_truncated_total", "reason=\"depth\"", c[UNWIND_TRUNC_DEPTH]);
	metrics_family(b, "anorak_unwind_events_lost_total", "counter",
		       "Requests from BPF to re-read a process's mappings lost to a full ring buffer.");
	metrics_value(b, "anorak_unwind_events_lost_total", NULL, c[UNWIND_EVENTS_LOST]);

	pthread_mutex_lock(&u->lock);
	uint64_t rows_used = u->rows_used, loaded = u->ntables_loaded, evicted = u->evicted;
	uint64_t built[TABLE_STATES];
	memcpy(built, u->built, sizeof(built));
	uint64_t added = u->processes_added, failed = u->processes_failed, full = u->processes_full;
	uint64_t dropped = u->mappings_dropped, events = u->events;
	pthread_mutex_unlock(&u->lock);

	metrics_family(b, "anorak_unwind_table_bytes", "gauge", "BPF map memory held by unwind table rows.");
	metrics_value(b, "anorak_unwind_table_bytes", NULL, (double)rows_used * sizeof(struct unwind_row));
	metrics_family(b, "anorak_unwind_table_capacity_bytes", "gauge",
		       "BPF map memory for unwind table rows (--unwind.table-memory less the process ranges).");
	metrics_value(b, "anorak_unwind_table_capacity_bytes", NULL,
		      (double)u->maps.nrows * sizeof(struct unwind_row));
	metrics_family(b, "anorak_unwind_process_map_capacity_bytes", "gauge",
		       "BPF map memory the per-process address ranges may take at most.");
	metrics_value(b, "anorak_unwind_process_map_capacity_bytes", NULL,
		      (double)u->maps.nprocs * sizeof(struct unwind_process));
	metrics_family(b, "anorak_unwind_tables", "gauge", "Binaries whose unwind tables are in BPF.");
	metrics_value(b, "anorak_unwind_tables", NULL, loaded);
	metrics_family(b, "anorak_unwind_tables_built_total", "counter",
		       "Unwind tables built from .eh_frame, by result.");
	for (int s = 0; s < TABLE_STATES; s++)
		metrics_value(b, "anorak_unwind_tables_built_total", state_labels[s], built[s]);
	metrics_family(b, "anorak_unwind_tables_evicted_total", "counter",
		       "Unwind tables evicted (least recently used first) to make room for new ones.");
	metrics_value(b, "anorak_unwind_tables_evicted_total", NULL, evicted);
	metrics_histogram_write(b, "anorak_unwind_table_build_duration_seconds",
				"Time to parse a binary's .eh_frame and load its table into BPF.", &u->build_seconds);
	metrics_family(b, "anorak_unwind_processes_total", "counter",
		       "Processes given unwind tables, by result (process_map_full: no room in the BPF map).");
	metrics_value(b, "anorak_unwind_processes_total", "result=\"success\"", added);
	metrics_value(b, "anorak_unwind_processes_total", "result=\"error\"", failed);
	metrics_value(b, "anorak_unwind_processes_total", "result=\"process_map_full\"", full);
	metrics_family(b, "anorak_unwind_mappings_dropped_total", "counter",
		       "Executable mappings with a table left out of a process's ranges (more than 128).");
	metrics_value(b, "anorak_unwind_mappings_dropped_total", NULL, dropped);
	metrics_family(b, "anorak_unwind_refresh_events_total", "counter",
		       "Requests from BPF to re-read a process's mappings (new code mapped, table evicted).");
	metrics_value(b, "anorak_unwind_refresh_events_total", NULL, events);
}
