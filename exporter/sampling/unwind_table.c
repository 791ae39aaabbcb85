#include "exporter/sampling/unwind_table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/types.h>

#include "exporter/sampling/ehframe.h"
#include "exporter/sampling/ehframe_stream.h"
#include "exporter/proc/gopclntab.h"
#include "exporter/proc/elf_file.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/proc/process_queue.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"
#include "bpf/unwind.h"
#include "exporter/sampling/unwind_alloc.h"
#include "exporter/sampling/unwind_go.h"

#define MAX_FILES (4 * UNWIND_MAX_TABLES) /* files remembered, with or without a table */
/* One build's temporary memory at most, for the daemon to stay near 20 MB: the section bytes copied
 * (a streamed build copies .eh_frame_hdr only: libLLVM's is 0.8 MB), or .eh_frame and the rows of a
 * table built whole (WHOLE_ROW_BYTES each: parsed, sorted, assembled). A binary above it gets no table,
 * counted (result="build_memory_limit"); its frames are walked by frame pointer. */
#define UNWIND_BUILD_MAX_BYTES (16u << 20)
#define WHOLE_ROW_BYTES 16
#define ROW_BATCH 4096 /* rows per mapped window (32 KB), a multiple of UNWIND_BLOCK_ROWS */

/* Why a file has no table; negative cache entries remember it. */
enum table_state { TABLE_LOADED = 0, TABLE_NONE, TABLE_FAILED, TABLE_TOO_BIG, TABLE_MEMORY_CAP, TABLE_STATES };

static const char *const state_labels[TABLE_STATES] = {
	[TABLE_LOADED] = "result=\"success\"",
	[TABLE_NONE] = "result=\"no_eh_frame\"",
	[TABLE_FAILED] = "result=\"error\"",
	[TABLE_TOO_BIG] = "result=\"too_large\"",
	[TABLE_MEMORY_CAP] = "result=\"build_memory_limit\"",
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
	struct elf_load *loads;        /* of a loaded table only: files without one are many */
	int nloads;
	uint64_t installed_ns;         /* last time a process was given it (CLOCK_MONOTONIC) */
	struct table *next;
};

struct unwinder {
	struct unwinder_opts opts;
	char *proc_root;
	struct unwinder_maps maps;
	pthread_mutex_t lock;

	struct table *tables;          /* all files seen, loaded or not */
	uint32_t ntables;
	struct unwind_alloc *alloc;    /* slots and row blocks of the loaded ones */
	struct table *by_slot[UNWIND_MAX_TABLES];
	uint32_t entries_written;

	const void *vdso_image;
	uint64_t vdso_size;

	struct unwind_process *entry;  /* scratch for the process being added */
	__u32 *keybuf;
	__u32 *indexbuf;

	uint64_t built[TABLE_STATES];
	struct unwind_go_stats go;
	uint64_t processes_added, processes_failed, processes_full, mappings_dropped, events;
	struct metrics_histogram build_seconds;

	struct process_queue queue;    /* processes to add, built on a thread of their own */
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
	/* Whole blocks of rows, each with its entry in the block index. */
	rows = (memory_bytes - procs * sizeof(struct unwind_process)) /
	       (sizeof(struct unwind_row) + sizeof(__u32) / (double)UNWIND_BLOCK_ROWS);
	if (rows > UINT32_MAX)
		rows = UINT32_MAX;
	rows -= rows % UNWIND_BLOCK_ROWS;
	*nrows = rows ? (uint32_t)rows : UNWIND_BLOCK_ROWS;
	*nprocs = (uint32_t)procs;
}

/* --- eviction ------------------------------------------------------------------------------------ */

/* When samples last used the table, or it was last installed, whichever is later. */
static uint64_t last_used(void *ctx, uint32_t slot)
{
	struct unwinder *u = ctx;
	const struct table *t = u->by_slot[slot];
	struct unwind_table_info info;

	if (!t)
		return 0;
	if (bpf_map_lookup_elem(u->maps.tables_fd, &slot, &info) == 0 && info.last_used_ns > t->installed_ns)
		return info.last_used_ns;
	return t->installed_ns;
}

/* Waits until no BPF program can still be reading rows of a released table. */
static int wait_for_readers(struct unwinder *u)
{
	__u32 zero = 0;
	int inner = u->maps.sync_inner_fd;

	return bpf_map_update_elem(u->maps.sync_fd, &zero, &inner, BPF_ANY) ? -errno : 0;
}

static void table_free(struct table *t)
{
	free(t->loads);
	free(t);
}

static void table_unlink(struct unwinder *u, struct table *victim)
{
	for (struct table **pp = &u->tables; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			u->ntables--;
			table_free(victim);
			return;
		}
	}
}

/* Evicted tables: their slots are marked free for BPF (the new gen makes process entries naming
 * them stale), rows cached per CPU are made stale, and the wait makes every program see it. The
 * files are forgotten: the next process mapping one gets it parsed again. */
static int evicted(void *ctx, const uint32_t *slots, int n)
{
	struct unwinder *u = ctx;

	for (int i = 0; i < n; i++) {
		struct unwind_table_info info = { .gen = u->alloc->slots[slots[i]].gen };

		bpf_map_update_elem(u->maps.tables_fd, &slots[i], &info, BPF_ANY);
	}
	__atomic_add_fetch(u->maps.epoch, 1, __ATOMIC_SEQ_CST);
	int err = wait_for_readers(u);
	for (int i = 0; i < n; i++) {
		table_unlink(u, u->by_slot[slots[i]]);
		u->by_slot[slots[i]] = NULL;
	}
	if (err)
		log_warn("cannot wait for BPF programs before reusing unwind table rows", "err=\"%s\"",
			 strerror(-err));
	return err;
}

/* --- building tables ----------------------------------------------------------------------------- */

/* The rows from row first on (a block's first, a page's), copied through a short-lived mapping of their
 * pages (a batch update checks each 8-byte row on its own: most of a build's CPU); then the block index
 * entry of each of their blocks: the pc of its first row. */
static int write_rows(struct unwinder *u, uint32_t first, const struct unwind_row *rows, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		__u32 batch = n - done > ROW_BATCH ? ROW_BATCH : n - done, nblocks = unwind_blocks(batch);
		size_t len = batch * sizeof(*rows);
		void *window = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, u->maps.rows_fd,
				    (off_t)(first + done) * (off_t)sizeof(*rows));

		if (window == MAP_FAILED)
			return -errno;
		memcpy(window, rows + done, len);
		munmap(window, len);
		for (__u32 b = 0; b < nblocks; b++) {
			u->keybuf[b] = (first + done) / UNWIND_BLOCK_ROWS + b;
			u->indexbuf[b] = rows[done + b * UNWIND_BLOCK_ROWS].pc;
		}
		if (bpf_map_update_batch(u->maps.index_fd, u->keybuf, u->indexbuf, &nblocks, NULL))
			return -errno;
		done += batch;
	}
	return 0;
}

/* A slot and rows for a table of nrows rows, filled by fill, then the table's entry. */
static int place_table(struct unwinder *u, struct table *t, uint32_t nrows,
		       int (*fill)(struct unwinder *u, uint32_t first, void *arg), void *arg)
{
	struct unwind_alloc_ops ops = { .last_used = last_used, .evicted = evicted, .ctx = u };
	int err = unwind_alloc_table(u->alloc, nrows, &ops, &t->slot);

	if (err)
		return err;
	t->first = u->alloc->slots[t->slot].first_block * UNWIND_BLOCK_ROWS;
	struct unwind_table_info info = {
		.first = t->first, .count = nrows, .gen = u->alloc->slots[t->slot].gen, .last_used_ns = mono_ns(),
	};
	err = fill(u, t->first, arg);
	if (!err && bpf_map_update_elem(u->maps.tables_fd, &t->slot, &info, BPF_ANY))
		err = -errno;
	if (err) {
		unwind_alloc_release(u->alloc, t->slot);
		return err;
	}
	t->count = nrows;
	t->gen = u->alloc->slots[t->slot].gen;
	return 0;
}

static int fill_whole(struct unwinder *u, uint32_t first, void *arg)
{
	const struct ehframe_table *et = arg;

	return write_rows(u, first, et->rows, et->nrows);
}

/* The table built whole: Go binaries (rows from .gopclntab merged in), the vdso, and .eh_frame the
 * header does not list in order. Its rows are bounded to keep within UNWIND_BUILD_MAX_BYTES. */
static int load_whole(struct unwinder *u, struct table *t, struct elf_file *ef, uint32_t max_rows)
{
	struct ehframe_table et = { 0 };
	uint64_t vaddr, eh_bytes = 0;
	int err, go;

	elf_file_section_addr(ef, ".eh_frame", &vaddr, &eh_bytes);
	if (eh_bytes >= UNWIND_BUILD_MAX_BYTES)
		return -EFBIG;
	uint64_t cap_rows = (UNWIND_BUILD_MAX_BYTES - eh_bytes) / WHOLE_ROW_BYTES;
	bool capped = cap_rows < max_rows;
	if (capped)
		max_rows = (uint32_t)cap_rows;
	err = ehframe_table_from_elf(ef, max_rows, &et);
	/* Go code has no .eh_frame (cgo binaries have it for their C code only): rows from .gopclntab */
	go = err == 0 || err == -ENOENT ? unwind_go_from_elf(ef, u->opts.elf_max_bytes, max_rows, &et, &u->go) : 0;
	if (go > 0 || (go < 0 && et.nrows))
		err = 0;
	else if (go < 0)
		err = go;
	if (!err)
		err = et.nrows > u->maps.nrows ? -E2BIG : place_table(u, t, et.nrows, fill_whole, &et);
	if (!err)
		t->base = et.base;
	ehframe_table_free(&et);
	return err == -E2BIG && capped ? -EFBIG : err;
}

struct stream_fill {
	struct unwinder *u;
	struct ehframe_stream *s;
	uint32_t first;
};

static int sink_rows(void *ctx, uint32_t at, const struct unwind_row *rows, uint32_t n)
{
	struct stream_fill *f = ctx;

	return write_rows(f->u, f->first + at, rows, n);
}

static int fill_streamed(struct unwinder *u, uint32_t first, void *arg)
{
	struct stream_fill f = { .u = u, .s = arg, .first = first };

	return ehframe_stream_write(f.s, sink_rows, &f);
}

/* The table counted, then written to BPF a batch at a time: a large library's rows (several MB) are
 * never all in the daemon. -EOPNOTSUPP when it must be built whole. */
static int load_streamed(struct unwinder *u, struct table *t, struct elf_file *ef, int fd, uint32_t max_rows)
{
	struct ehframe_stream *s;
	uint32_t nrows;
	uint64_t base;
	int err = ehframe_stream_open(ef, fd, UNWIND_BUILD_MAX_BYTES, &s);

	if (err)
		return err;
	err = ehframe_stream_count(s, max_rows, &nrows, &base);
	if (!err)
		err = place_table(u, t, nrows, fill_streamed, s);
	if (!err)
		t->base = base;
	ehframe_stream_free(s);
	return err;
}

static enum table_state state_of(int err)
{
	switch (err) {
	case 0: return TABLE_LOADED;
	case -ENOENT: return TABLE_NONE;
	case -E2BIG:
	case -ENOSPC: return TABLE_TOO_BIG;
	case -EFBIG: return TABLE_MEMORY_CAP;
	default: return TABLE_FAILED;
	}
}

/* Parses the file (read from fd, or an image in memory: -1) and puts its table into BPF. Sets t->state. */
static void load_table(struct unwinder *u, struct table *t, struct elf_file *ef, int fd)
{
	struct elf_load loads[ELF_MAX_LOADS];
	uint64_t start = mono_ns();
	/* A table larger than the whole map can never load: stop building it there. */
	uint32_t max_rows = u->maps.nrows < UNWIND_MAX_TABLE_ROWS ? u->maps.nrows : UNWIND_MAX_TABLE_ROWS;
	int err = -ENOEXEC, nloads = elf_file_loads(ef, loads, ELF_MAX_LOADS);

	if (nloads > 0) {
		err = gopclntab_elf_is_go(ef) ? -EOPNOTSUPP : load_streamed(u, t, ef, fd, max_rows);
		if (err == -EOPNOTSUPP)
			err = load_whole(u, t, ef, max_rows);
	}
	t->state = state_of(err);
	if (err && err != -ENOENT && err != -ENOEXEC)
		log_debug("cannot load an unwind table into BPF", "err=\"%s\"", strerror(-err));
	if (!err) {
		t->installed_ns = mono_ns();
		u->by_slot[t->slot] = t;
		t->loads = malloc((size_t)nloads * sizeof(*t->loads));
		if (t->loads) {
			memcpy(t->loads, loads, (size_t)nloads * sizeof(*t->loads));
			t->nloads = nloads;
		}
	}
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
				table_free(o);
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
	struct elf_file *ef = NULL;
	struct table *t;
	struct stat st;
	/* Opened for reading only when new: most mappings are of files seen before. */
	int pathfd = procfile_path_mapped(u->proc_root, pid, rootfd, e, &st), fd;

	if (pathfd < 0)
		return NULL;
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
			fd = procfile_reopen(pathfd);
			if (fd >= 0 && elf_file_open(fd, u->opts.elf_max_bytes, &ef) == 0)
				load_table(u, t, ef, fd);
			else
				u->built[t->state = TABLE_FAILED]++;
			elf_file_close(ef);
			if (fd >= 0)
				close(fd);
		}
	}
	close(pathfd);
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
	if (elf_file_open_mem(u->vdso_image, u->vdso_size, &ef) == 0) {
		load_table(u, t, ef, -1);
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
	if (!t || !t->nloads)
		return 0;
	unwind_alloc_pin(u->alloc, t->slot);
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
		if (u->alloc->slots[p->mappings[i].table].used &&
		    u->alloc->slots[p->mappings[i].table].gen == p->mappings[i].gen)
			p->mappings[kept++] = p->mappings[i];
	p->count = kept;
}

/* From snap when not NULL and still the process's; -ESTALE when it exec'd during the build (the entry
 * written is taken back). */
static int add_locked(struct unwinder *u, uint32_t tgid, const struct maps_snapshot *snap)
{
	struct add_ctx c = { .u = u, .pid = (int)tgid, .p = u->entry };
	FILE *f;
	int err;

	/* Exec'd while the request waited: its entry must not show the old program's mappings at all. */
	if (snap && !maps_snapshot_current(snap, u->proc_root))
		snap = NULL;
	f = maps_snapshot_open(snap, u->proc_root, (int)tgid);
	if (!f)
		return -ESRCH;
	unwind_alloc_begin_install(u->alloc);
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
	/* BPF drops the entry at exit and exec; one written after them would outlive the program. */
	if (kill((pid_t)tgid, 0) && errno == ESRCH)
		err = -ESRCH;
	else if (snap && !maps_snapshot_current(snap, u->proc_root))
		err = -ESTALE;
	if (err)
		bpf_map_delete_elem(u->maps.procs_fd, &tgid);
	/* After the write: CPUs that remembered the process's entry (or its absence) look again. */
	__atomic_add_fetch(u->maps.announce_epoch, 1, __ATOMIC_SEQ_CST);
	return err;
}

static void add_process(void *ctx, const struct process_queue_job *job)
{
	struct unwinder *u = ctx;

	pthread_mutex_lock(&u->lock);
	/* What parsing frees is given back by the trim after the next drain (exporter/malloc_bounds.c). */
	int err = add_locked(u, job->tgid, job->snap);
	if (err == -ESTALE)
		err = add_locked(u, job->tgid, NULL);
	if (!err)
		u->processes_added++;
	else if (err == -ENOSPC)
		u->processes_full++;
	else if (err != -ESRCH && err != -ENOENT)
		u->processes_failed++;
	pthread_mutex_unlock(&u->lock);
	if (err && err != -ESRCH && err != -ENOENT)
		log_debug("cannot give a process unwind tables", "pid=%u err=\"%s\"", job->tgid, strerror(-err));
}

static const struct process_queue_ops builder_ops = {
	.run = add_process,
	.queued_name = "anorak_unwind_processes_queued",
	.queued_help = "Processes waiting for their unwind tables.",
	.full_name = "anorak_unwind_queue_full_total",
	.full_help = "Requests for a process's unwind tables refused because 1024 were already waiting; a "
		     "process refused at its first sample is walked by frame pointer only.",
};

int unwinder_request(struct unwinder *u, uint32_t tgid, struct maps_snapshot *snap)
{
	return process_queue_request(&u->queue, tgid, NULL, snap);
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
	unwinder_request(u, e->tgid, NULL); /* its mappings changed: read them afresh */
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
	u->keybuf = calloc(ROW_BATCH / UNWIND_BLOCK_ROWS, sizeof(*u->keybuf));
	u->indexbuf = calloc(ROW_BATCH / UNWIND_BLOCK_ROWS, sizeof(*u->indexbuf));
	if (!u->proc_root || !u->entry || !u->keybuf || !u->indexbuf ||
	    unwind_alloc_new(maps->nrows / UNWIND_BLOCK_ROWS, &u->alloc) ||
	    metrics_histogram_init(&u->build_seconds, build_buckets, sizeof(build_buckets) / sizeof(build_buckets[0]))) {
		free(u->proc_root);
		free(u->entry);
		free(u->keybuf);
		free(u->indexbuf);
		unwind_alloc_free(u->alloc);
		free(u);
		return -ENOMEM;
	}
	pthread_mutex_init(&u->lock, NULL);
	process_queue_init(&u->queue, &builder_ops, u);
	find_vdso(u);
	int err = process_queue_start(&u->queue);
	if (err) {
		unwinder_free(u);
		return err;
	}
	*out = u;
	return 0;
}

void unwinder_free(struct unwinder *u)
{
	if (!u)
		return;
	process_queue_destroy(&u->queue);
	while (u->tables) {
		struct table *t = u->tables;
		u->tables = t->next;
		table_free(t);
	}
	metrics_histogram_destroy(&u->build_seconds);
	pthread_mutex_destroy(&u->lock);
	free(u->proc_root);
	free(u->entry);
	free(u->keybuf);
	free(u->indexbuf);
	unwind_alloc_free(u->alloc);
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
	struct metrics_series series;

	sum_counters(u, c);
	series = metrics_series_begin(b, "anorak_unwind_frames_total", "counter",
				      "User stack frames found, by method: unwind table row or frame pointer.");
	metrics_series_value(series, "method=\"table\"", c[UNWIND_FRAMES_TABLE]);
	metrics_series_value(series, "method=\"frame_pointer\"", c[UNWIND_FRAMES_FP]);
	series = metrics_series_begin(b, "anorak_unwind_stacks_total", "counter",
				      "User stacks of processes with unwind tables that reached their "
				      "outermost frame (result=\"complete\"), and stacks of processes "
				      "without tables yet, walked by frame pointer only "
				      "(result=\"frame_pointer_only\").");
	metrics_series_value(series, "result=\"complete\"", c[UNWIND_STACKS_COMPLETE]);
	metrics_series_value(series, "result=\"frame_pointer_only\"", c[UNWIND_STACKS_FP_ONLY]);
	series = metrics_series_begin(b, "anorak_unwind_stacks_truncated_total", "counter",
				      "User stacks of processes with unwind tables cut short, by reason.");
	metrics_series_value(series, "reason=\"no_table\"", c[UNWIND_TRUNC_NO_TABLE]);
	metrics_series_value(series, "reason=\"bad_rule\"", c[UNWIND_TRUNC_BAD_RULE]);
	metrics_series_value(series, "reason=\"read_fault\"", c[UNWIND_TRUNC_READ_FAULT]);
	metrics_series_value(series, "reason=\"depth\"", c[UNWIND_TRUNC_DEPTH]);
	series = metrics_series_begin(b, "anorak_unwind_stacks_stopped_total", "counter",
				      "User stacks stopped cleanly before their outermost frame, by reason: a Go "
				      "stack switch (systemstack, mcall, morestack), a cgo call on the g0 stack, "
				      "another Go SP write.");
	metrics_series_value(series, "reason=\"go_stack_switch\"", c[UNWIND_STACKS_GO_STACK_SWITCH]);
	metrics_series_value(series, "reason=\"go_cgo\"", c[UNWIND_STACKS_GO_CGO]);
	metrics_series_value(series, "reason=\"go_spwrite\"", c[UNWIND_STACKS_GO_SPWRITE]);
	metrics_counter(b, "anorak_unwind_events_lost_total",
			"Requests from BPF to re-read a process's mappings lost to a full ring buffer.",
			c[UNWIND_EVENTS_LOST]);

	pthread_mutex_lock(&u->lock);
	uint64_t rows_used = (uint64_t)u->alloc->blocks_used * UNWIND_BLOCK_ROWS, loaded = u->alloc->tables;
	uint64_t evicted = u->alloc->evicted;
	uint64_t built[TABLE_STATES];
	memcpy(built, u->built, sizeof(built));
	struct unwind_go_stats go = u->go;
	uint64_t added = u->processes_added, failed = u->processes_failed, full = u->processes_full;
	uint64_t dropped = u->mappings_dropped, events = u->events;
	pthread_mutex_unlock(&u->lock);

	metrics_gauge(b, "anorak_unwind_table_bytes", "BPF map memory held by unwind table rows.",
		      (double)rows_used * sizeof(struct unwind_row));
	metrics_gauge(b, "anorak_unwind_table_capacity_bytes",
		      "BPF map memory for unwind table rows (--unwind.table-memory less the process ranges).",
		      (double)u->maps.nrows * sizeof(struct unwind_row));
	metrics_gauge(b, "anorak_unwind_process_map_capacity_bytes",
		      "BPF map memory the per-process address ranges may take at most.",
		      (double)u->maps.nprocs * sizeof(struct unwind_process));
	metrics_gauge(b, "anorak_unwind_tables", "Binaries whose unwind tables are in BPF.", loaded);
	series = metrics_series_begin(b, "anorak_unwind_tables_built_total", "counter",
				      "Unwind tables built from .eh_frame and, for Go binaries, .gopclntab, by result.");
	for (int s = 0; s < TABLE_STATES; s++)
		metrics_series_value(series, state_labels[s], built[s]);
	unwind_go_write_metrics(b, &go);
	metrics_counter(b, "anorak_unwind_tables_evicted_total",
			"Unwind tables evicted (least recently used first) to make room for new ones.",
			evicted);
	metrics_histogram_write(b, "anorak_unwind_table_build_duration_seconds",
				"Time to parse a binary's .eh_frame and load its table into BPF.", &u->build_seconds);
	series = metrics_series_begin(b, "anorak_unwind_processes_total", "counter",
				      "Processes given unwind tables, by result (process_map_full: no room "
				      "in the BPF map).");
	metrics_series_value(series, "result=\"success\"", added);
	metrics_series_value(series, "result=\"error\"", failed);
	metrics_series_value(series, "result=\"process_map_full\"", full);
	metrics_counter(b, "anorak_unwind_mappings_dropped_total",
			"Executable mappings with a table left out of a process's ranges (more than 128).",
			dropped);
	metrics_counter(b, "anorak_unwind_refresh_events_total",
			"Requests from BPF to re-read a process's mappings (new code mapped, table evicted).",
			events);
	process_queue_write_metrics(b, &u->queue);
}
