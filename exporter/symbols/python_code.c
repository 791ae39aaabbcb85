#include "exporter/symbols/python_code.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/metrics.h"
#include "exporter/symbols/python_functions.h"
#include "exporter/symbols/python_linetable.h"

#define STR_HEADER_MAX 128   /* bytes of a str object's header read, at most */
#define CODE_HEADER_MAX 4096 /* python_offsets.c caps every offset at 4096 */

struct py_process {
	uint32_t tgid, gen;
	int memfd;            /* -1: not open yet */
	bool used;
	struct python_layout layout;
};

struct code_entry {
	uint64_t code;
	uint32_t tgid, gen;
	uint32_t function;
	int32_t firstline;
	uint8_t *table;       /* the line table; NULL: none read */
	uint32_t table_len;
	bool used;
};

/* The slots start small and double as code objects come, up to twice the bound: a table sized
 * for the bound at once would put each object on a page of its own, every page touched resident. */
#define MIN_SLOTS 256

struct python_code {
	pthread_mutex_t lock; /* the event thread adds processes while the drain resolves */
	char proc_root[PATH_MAX];
	struct py_process *procs;
	uint32_t max_procs, next_gen;
	struct code_entry *entries;
	uint32_t nslots, max_slots, max_objects, nobjects; /* slots: at most half full */
	size_t max_bytes, bytes;
	atomic_uint_fast64_t resolved, hits, evictions, frames, failures[PYTHON_CODE_FAILURES];
	atomic_uint_fast64_t cached, cached_bytes;
};

struct python_code *python_code_new(const char *proc_root, uint32_t max_objects, size_t max_bytes,
				    uint32_t max_processes)
{
	struct python_code *c = calloc(1, sizeof(*c));

	if (!c || max_objects == 0 || max_processes == 0 || strlen(proc_root) >= sizeof(c->proc_root)) {
		free(c);
		return NULL;
	}
	strcpy(c->proc_root, proc_root);
	pthread_mutex_init(&c->lock, NULL);
	c->max_slots = 1;
	while (c->max_slots < 2 * max_objects)
		c->max_slots <<= 1;
	c->nslots = c->max_slots < MIN_SLOTS ? c->max_slots : MIN_SLOTS;
	c->max_objects = max_objects;
	c->max_bytes = max_bytes;
	c->max_procs = max_processes;
	c->entries = calloc(c->nslots, sizeof(*c->entries));
	c->procs = calloc(max_processes, sizeof(*c->procs));
	if (!c->entries || !c->procs) {
		python_code_free(c);
		return NULL;
	}
	return c;
}

static void cache_clear(struct python_code *c)
{
	struct code_entry *fresh = calloc(MIN_SLOTS, sizeof(*fresh));

	for (uint32_t i = 0; i < c->nslots; i++)
		free(c->entries[i].table);
	/* Back to a small table; short of memory, the large one is emptied in place. */
	if (fresh && c->nslots > MIN_SLOTS) {
		free(c->entries);
		c->entries = fresh;
		c->nslots = MIN_SLOTS;
	} else {
		memset(c->entries, 0, c->nslots * sizeof(*c->entries));
		free(fresh);
	}
	c->nobjects = 0;
	c->bytes = 0;
	atomic_store(&c->cached, 0);
	atomic_store(&c->cached_bytes, 0);
}

void python_code_free(struct python_code *c)
{
	if (!c)
		return;
	if (c->entries)
		cache_clear(c);
	for (uint32_t i = 0; c->procs && i < c->max_procs; i++) {
		if (c->procs[i].used && c->procs[i].memfd >= 0)
			close(c->procs[i].memfd);
	}
	free(c->entries);
	free(c->procs);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct py_process *find_process(struct python_code *c, uint32_t tgid)
{
	for (uint32_t i = 0; i < c->max_procs; i++) {
		if (c->procs[i].used && c->procs[i].tgid == tgid)
			return &c->procs[i];
	}
	return NULL;
}

static void drop_process(struct py_process *p)
{
	if (p->memfd >= 0)
		close(p->memfd);
	p->used = false;
}

void python_code_forget(struct python_code *c, uint32_t tgid)
{
	struct py_process *p;

	pthread_mutex_lock(&c->lock);
	p = find_process(c, tgid);
	if (p)
		drop_process(p);
	pthread_mutex_unlock(&c->lock);
}

/* A free slot, making room by dropping the processes that exited; NULL when all still run. */
static struct py_process *free_slot(struct python_code *c)
{
	for (int sweep = 0; sweep < 2; sweep++) {
		for (uint32_t i = 0; i < c->max_procs; i++) {
			struct py_process *p = &c->procs[i];

			if (p->used && sweep && kill((pid_t)p->tgid, 0) && errno == ESRCH)
				drop_process(p);
			if (!p->used)
				return p;
		}
	}
	return NULL;
}

int python_code_add_process(struct python_code *c, uint32_t tgid, const struct python_layout *l)
{
	struct py_process *p;
	int err = 0;

	pthread_mutex_lock(&c->lock);
	p = find_process(c, tgid);
	if (p)
		drop_process(p);
	p = free_slot(c);
	if (p) {
		/* A new generation: code objects cached for an earlier program of this pid are never hit. */
		*p = (struct py_process){ .tgid = tgid, .gen = ++c->next_gen, .memfd = -1, .used = true,
					  .layout = *l };
	} else {
		err = -ENOSPC;
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

static int read_mem(struct python_code *c, struct py_process *p, uint64_t addr, void *buf, size_t len)
{
	char path[PATH_MAX + 32];
	ssize_t n;

	if (p->memfd < 0) {
		snprintf(path, sizeof(path), "%s/%u/mem", c->proc_root, p->tgid);
		p->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (p->memfd < 0)
			return -errno;
	}
	if (addr > INT64_MAX || len > INT64_MAX - addr)
		return -EIO;
	n = pread(p->memfd, buf, len, (off_t)addr);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static uint64_t u64_at(const uint8_t *b, uint16_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

/* Appends code point cp as UTF-8 (at most 4 bytes; out has room). */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 63));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 63));
		out[2] = (char)(0x80 | (cp & 63));
		return 3;
	}
	if (cp > 0x10ffff)
		cp = 0xfffd;
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 63));
	out[2] = (char)(0x80 | ((cp >> 6) & 63));
	out[3] = (char)(0x80 | (cp & 63));
	return 4;
}

/* A compact str object at addr as UTF-8 into out (PYTHON_NAME_MAX bytes), cut at a character. */
static int read_str(struct python_code *c, struct py_process *p, uint64_t addr, char *out)
{
	const struct python_layout *l = &p->layout;
	uint8_t head[STR_HEADER_MAX], data[PYTHON_NAME_MAX];
	uint32_t state, kind, units;
	size_t o = 0;
	int64_t length;
	int err;

	if (l->str_compact_data > STR_HEADER_MAX || l->str_state + 4 > STR_HEADER_MAX ||
	    l->str_length + 8 > STR_HEADER_MAX)
		return -EPROTO;
	err = read_mem(c, p, addr, head, l->str_compact_data);
	if (err)
		return err;
	memcpy(&state, head + l->str_state, 4);
	memcpy(&length, head + l->str_length, 8);
	kind = (state >> 2) & 7;
	/* Names and file names of code objects are compact (their data follows the header). An ASCII
	 * string has one byte a character: a state saying otherwise is not a live str header (a freed or reused object), and
	 * would overrun data and out. */
	if (!((state >> 5) & 1) || (kind != 1 && kind != 2 && kind != 4) || ((state >> 6) & 1 && kind != 1) ||
	    length < 0)
		return -EPROTO;
	/* As many characters as fit in out as UTF-8. */
	uint32_t widest = (state >> 6) & 1 ? 1 : kind + 1, cap = (PYTHON_NAME_MAX - 1) / widest;
	units = (uint32_t)(length < cap ? length : cap);
	err = read_mem(c, p, addr + ((state >> 6) & 1 ? l->str_ascii_data : l->str_compact_data), data,
		       units * kind);
	if (err)
		return err;
	for (uint32_t i = 0; i < units; i++) {
		uint32_t cp = kind == 1 ? data[i] : kind == 2 ? (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) :
			(uint32_t)(data[4 * i] | data[4 * i + 1] << 8 | data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24);

		/* out has room for widest bytes a character, one for ASCII. */
		if (widest == 1 && cp >= 0x80)
			return -EPROTO;
		o += put_utf8(out + o, cp);
	}
	out[o] = '\0';
	return 0;
}

/* The line table (a bytes object) into a new buffer. */
static int read_linetable(struct python_code *c, struct py_process *p, uint64_t addr, struct code_entry *e)
{
	const struct python_layout *l = &p->layout;
	uint8_t head[STR_HEADER_MAX];
	int64_t size;
	int err;

	if (l->bytes_data > STR_HEADER_MAX || l->bytes_size + 8 > STR_HEADER_MAX)
		return -EPROTO;
	err = read_mem(c, p, addr, head, l->bytes_data);
	if (err)
		return err;
	memcpy(&size, head + l->bytes_size, 8);
	if (size < 0 || size > PYTHON_LINETABLE_MAX)
		return -EFBIG;
	e->table = malloc(size ? (size_t)size : 1);
	if (!e->table)
		return -ENOMEM;
	err = read_mem(c, p, addr + l->bytes_data, e->table, (size_t)size);
	if (err) {
		free(e->table);
		e->table = NULL;
		return err;
	}
	e->table_len = (uint32_t)size;
	return 0;
}

static void count_failure(struct python_code *c, int err)
{
	enum python_code_failure why = PYTHON_CODE_READ;

	if (err == -EPROTO || err == -EFBIG)
		why = PYTHON_CODE_LAYOUT;
	else if (err == -ENOSPC)
		why = PYTHON_CODE_FULL;
	atomic_fetch_add(&c->failures[why], 1);
}

/* Reads the code object at e->code: names, first line, line table. */
static int read_code(struct python_code *c, struct py_process *p, struct code_entry *e)
{
	const struct python_layout *l = &p->layout;
	static char qualname[PYTHON_NAME_MAX], filename[PYTHON_NAME_MAX];
	uint8_t head[CODE_HEADER_MAX];
	int32_t first;
	int err;

	if (l->code_size > CODE_HEADER_MAX || l->code_firstlineno + 4 > l->code_size)
		return -EPROTO;
	err = read_mem(c, p, e->code, head, l->code_size);
	if (err)
		return err;
	memcpy(&first, head + l->code_firstlineno, 4);
	e->firstline = first;
	err = read_str(c, p, u64_at(head, l->code_qualname), qualname) ?:
	      read_str(c, p, u64_at(head, l->code_filename), filename) ?:
	      python_functions_intern(qualname, filename, &e->function);
	if (err)
		return err;
	/* Without its line table the frame still names its function. */
	if (read_linetable(c, p, u64_at(head, l->code_linetable), e))
		e->table_len = 0;
	return 0;
}

static uint64_t entry_hash(uint64_t code, uint32_t tgid, uint32_t gen)
{
	uint64_t h = (code ^ ((uint64_t)tgid << 32 | gen)) * 0x9e3779b97f4a7c15ULL;

	return h ^ (h >> 29);
}

/* Doubles the slots. false when memory ran out: the table stays as it is. */
static bool grow_entries(struct python_code *c)
{
	uint32_t ns = c->nslots * 2;
	struct code_entry *fresh = calloc(ns, sizeof(*fresh));

	if (!fresh)
		return false;
	for (uint32_t i = 0; i < c->nslots; i++) {
		const struct code_entry *e = &c->entries[i];
		uint32_t j;

		if (!e->used)
			continue;
		j = (uint32_t)entry_hash(e->code, e->tgid, e->gen) & (ns - 1);
		while (fresh[j].used)
			j = (j + 1) & (ns - 1);
		fresh[j] = *e;
	}
	free(c->entries);
	c->entries = fresh;
	c->nslots = ns;
	return true;
}

/* The cached entry of a code object, read when new; NULL only when memory ran out. */
static struct code_entry *entry_for(struct python_code *c, struct py_process *p, uint64_t code)
{
	uint32_t j = (uint32_t)entry_hash(code, p->tgid, p->gen) & (c->nslots - 1);
	struct code_entry *e;
	int err;

	for (e = &c->entries[j]; e->used; j = (j + 1) & (c->nslots - 1), e = &c->entries[j]) {
		if (e->code == code && e->tgid == p->tgid && e->gen == p->gen) {
			atomic_fetch_add(&c->hits, 1);
			return e;
		}
	}
	if (c->nobjects >= c->max_objects || c->bytes >= c->max_bytes) {
		atomic_fetch_add(&c->evictions, c->nobjects);
		cache_clear(c);
		return entry_for(c, p, code);
	}
	if (2 * (c->nobjects + 1) > c->nslots && c->nslots < c->max_slots) {
		if (!grow_entries(c)) { /* short of memory: start again, small */
			atomic_fetch_add(&c->evictions, c->nobjects);
			cache_clear(c);
		}
		return entry_for(c, p, code);
	}
	*e = (struct code_entry){ .code = code, .tgid = p->tgid, .gen = p->gen, .used = true };
	err = read_code(c, p, e);
	if (err) {
		/* Kept as unresolved: a code object that cannot be read is not read again and again. */
		count_failure(c, err);
		e->function = 0;
	} else {
		atomic_fetch_add(&c->resolved, 1);
	}
	c->nobjects++;
	c->bytes += sizeof(*e) + e->table_len;
	atomic_store(&c->cached, c->nobjects);
	atomic_store(&c->cached_bytes, c->bytes);
	return e;
}

static uint32_t line_of(const struct py_process *p, const struct code_entry *e, uint32_t lasti)
{
	int line;

	if (!e->table)
		return 0;
	if (p->layout.minor == 10)
		line = python_line_310(e->table, e->table_len, e->firstline, lasti);
	else
		line = python_line_311(e->table, e->table_len, e->firstline, lasti);
	return line > 0 ? (uint32_t)line : 0;
}

static int lookup_locked(struct python_code *c, uint32_t tgid, uint64_t code, uint32_t lasti,
			 uint32_t *function, uint32_t *line)
{
	struct py_process *p = find_process(c, tgid);
	struct code_entry *e;

	if (!p) {
		atomic_fetch_add(&c->failures[PYTHON_CODE_NO_PROCESS], 1);
		return -ESRCH;
	}
	e = entry_for(c, p, code);
	*function = e->function;
	*line = line_of(p, e, lasti);
	return e->function ? 0 : -ENOENT;
}

int python_code_lookup(struct python_code *c, uint32_t tgid, uint64_t code, uint32_t lasti,
		       uint32_t *function, uint32_t *line)
{
	int err;

	pthread_mutex_lock(&c->lock);
	err = lookup_locked(c, tgid, code, lasti, function, line);
	pthread_mutex_unlock(&c->lock);
	return err;
}

bool python_code_has_raw(const uint64_t *frames, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((frames[i] >> PYTHON_FRAME_TAG_SHIFT) == PYTHON_FRAME_RAW)
			return true;
	}
	return false;
}

void python_code_resolve(struct python_code *c, uint32_t tgid, const uint64_t *frames, size_t n, uint64_t *out)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t f = frames[i];
		uint32_t function = 0, line = 0;

		out[i] = f;
		if ((f >> PYTHON_FRAME_TAG_SHIFT) != PYTHON_FRAME_RAW)
			continue;
		lookup_locked(c, tgid, ((f >> 16) & ((1ULL << 44) - 1)) << 3, (uint32_t)(f & PYTHON_LASTI_MAX),
			      &function, &line);
		out[i] = python_frame_resolved(function, line);
		atomic_fetch_add(&c->frames, 1);
	}
	pthread_mutex_unlock(&c->lock);
}

void python_code_write_metrics(struct metrics_buf *b, void *ctx)
{
	static const char *const reasons[PYTHON_CODE_FAILURES] = { "read", "layout", "function_table_full",
								    "unknown_process" };
	struct python_code *c = ctx;

	metrics_counter(b, "anorak_python_frames_resolved_total",
			"Python frames of drained stacks given a function and line.", (double)atomic_load(&c->frames));
	metrics_counter(b, "anorak_python_code_objects_resolved_total",
			"Python code objects read from processes' memory.", (double)atomic_load(&c->resolved));
	metrics_counter(b, "anorak_python_code_cache_hits_total",
			"Python frames whose code object was cached.", (double)atomic_load(&c->hits));
	metrics_counter(b, "anorak_python_code_cache_evictions_total",
			"Python code objects dropped from the full cache.", (double)atomic_load(&c->evictions));
	metrics_gauge(b, "anorak_python_code_objects_cached", "Python code objects cached.",
		      (double)atomic_load(&c->cached));
	metrics_gauge(b, "anorak_python_functions", "Python functions named so far (bounded table).",
		      (double)python_functions_count());
	struct metrics_series failed = metrics_series_begin(b, "anorak_python_code_failed_total", "counter",
							     "Python code objects that could not be resolved, by reason.");

	for (int i = 0; i < PYTHON_CODE_FAILURES; i++)
		metrics_series_valuef(failed, (double)atomic_load(&c->failures[i]), "reason=\"%s\"", reasons[i]);
}
