#include "exporter/encode/pprof_live.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/encode/pprof.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/store/slices.h"

#define KERNEL_START 0xffff800000000000ULL
#define MAX_FRAMES (2 * PROFILER_MAX_STACK_DEPTH)
#define NAME_MAX_LEN 1024

/* The kernel has one mapping; its key stands apart from every sym_mapping pointer. */
static const char kernel_mapping_key;

/* One pprof mapping per sym_mapping (or the kernel). */
struct mapping_entry {
	const void *key;
	const struct sym_mapping *map;
	bool symbolized;
	uint64_t id;
};

/* One location per (mapping, address, leaf or not): a return address is looked up one byte back. */
struct frame_entry {
	const void *mapping_key;
	uint64_t addr;
	bool leaf, used;
	uint32_t nlines;   /* its Lines (0: unsymbolized) at line_off in the encoder's lines */
	size_t line_off;
	uint64_t location_id;
	size_t mapping; /* index + 1 in the encoder's mappings, 0: outside every mapping */
};

struct encoder {
	const struct profile_request *req;
	struct pprof_builder *builder;
	struct frame_entry *frames;
	size_t frames_cap, nframes;
	struct mapping_entry *mappings;
	size_t mappings_cap, nmappings;
	size_t *mapping_index; /* open addressing by key: index + 1 into mappings, 0 free */
	size_t mapping_index_cap;
	struct pprof_line *lines;
	size_t lines_cap, nlines;
	int err;
	char name[NAME_MAX_LEN];
	char module[64];
	struct sym_frames *sym; /* user frames of the address being symbolized */
};

static uint64_t hash_frame(const void *key, uint64_t addr, bool leaf)
{
	uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ULL;

	h ^= addr + 0x7f4a7c159e3779b9ULL + (h << 6) + (h >> 2);
	return (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL + leaf;
}

static int frames_grow(struct encoder *e)
{
	size_t cap = e->frames_cap ? e->frames_cap * 2 : 1024;
	struct frame_entry *table = calloc(cap, sizeof(*table));

	if (!table)
		return -ENOMEM;
	for (size_t i = 0; i < e->frames_cap; i++) {
		struct frame_entry *f = &e->frames[i];
		size_t j;

		if (!f->used)
			continue;
		for (j = hash_frame(f->mapping_key, f->addr, f->leaf) & (cap - 1); table[j].used;
		     j = (j + 1) & (cap - 1))
			;
		table[j] = *f;
	}
	free(e->frames);
	e->frames = table;
	e->frames_cap = cap;
	return 0;
}

static size_t mapping_slot(const struct encoder *e, const void *key)
{
	size_t j = (size_t)(hash_frame(key, 0, false) & (e->mapping_index_cap - 1));

	while (e->mapping_index[j] && e->mappings[e->mapping_index[j] - 1].key != key)
		j = (j + 1) & (e->mapping_index_cap - 1);
	return j;
}

/* Keeps the index at most half full; entries are rehashed from the mappings array. */
static int mapping_index_grow(struct encoder *e)
{
	size_t cap = e->mapping_index_cap ? e->mapping_index_cap * 2 : 128;
	size_t *index = calloc(cap, sizeof(*index));

	if (!index)
		return -ENOMEM;
	free(e->mapping_index);
	e->mapping_index = index;
	e->mapping_index_cap = cap;
	for (size_t i = 0; i < e->nmappings; i++)
		e->mapping_index[mapping_slot(e, e->mappings[i].key)] = i + 1;
	return 0;
}

/* Index + 1 of the mapping entry for key, 0 when memory ran out. */
static size_t mapping_for(struct encoder *e, const void *key, const struct sym_mapping *map)
{
	if ((e->nmappings + 1) * 2 > e->mapping_index_cap && mapping_index_grow(e))
		return 0;

	size_t slot = mapping_slot(e, key);
	if (e->mapping_index[slot])
		return e->mapping_index[slot];
	if (e->nmappings == e->mappings_cap) {
		size_t cap = e->mappings_cap ? e->mappings_cap * 2 : 64;
		struct mapping_entry *grown = realloc(e->mappings, cap * sizeof(*grown));

		if (!grown)
			return 0;
		e->mappings = grown;
		e->mappings_cap = cap;
	}
	e->mappings[e->nmappings] = (struct mapping_entry){ .key = key, .map = map };
	e->mapping_index[slot] = ++e->nmappings;
	return e->nmappings;
}

static int lines_reserve(struct encoder *e, size_t n)
{
	size_t cap = e->lines_cap ? e->lines_cap : 1024;
	struct pprof_line *grown;

	if (e->nlines + n <= e->lines_cap)
		return 0;
	while (cap < e->nlines + n)
		cap *= 2;
	grown = realloc(e->lines, cap * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	e->lines = grown;
	e->lines_cap = cap;
	return 0;
}

/* A kernel symbol: one Line, its module as the file name. */
static int kernel_lines(struct encoder *e, uint64_t lookup)
{
	char filename[sizeof(e->module) + 2] = "";

	e->module[0] = '\0';
	if (!symbolizer_kernel(e->req->symbolizer, lookup, e->name, sizeof(e->name), e->module, sizeof(e->module)))
		return 0;
	if (e->module[0])
		snprintf(filename, sizeof(filename), "[%s]", e->module);
	e->lines[e->nlines] = (struct pprof_line){ .function_id = pprof_function(e->builder, e->name, e->name, filename) };
	return e->lines[e->nlines].function_id ? 1 : -ENOMEM;
}

/* User frames: one Line per source frame, innermost inlined call first, with file and line when the
 * binary says (Go's pclntab). */
static int user_lines(struct encoder *e, const struct slice_sample *s, const struct sym_mapping *map, uint64_t lookup)
{
	size_t n = symbolizer_user_frames(e->req->symbolizer, s->maps, map, lookup, e->sym);

	for (size_t i = 0; i < n; i++) {
		const struct sym_frame *f = &e->sym->frames[i];
		struct pprof_line *l = &e->lines[e->nlines + i];

		l->function_id = pprof_function(e->builder, f->name, f->name, f->file);
		l->line = f->line;
		if (!l->function_id)
			return -ENOMEM;
	}
	return (int)n;
}

/* Appends the Lines of the frame to e->lines; their count, or -ENOMEM. */
static int symbolize(struct encoder *e, const struct slice_sample *s, const void *key,
		     const struct sym_mapping *map, uint64_t addr, bool leaf)
{
	uint64_t lookup = leaf ? addr : addr - 1;

	if (lines_reserve(e, SYM_MAX_FRAMES))
		return -ENOMEM;
	if (key == &kernel_mapping_key)
		return kernel_lines(e, lookup);
	return map ? user_lines(e, s, map, lookup) : 0;
}

/* Finds or adds the frame; its function is resolved the first time it is seen. */
static struct frame_entry *frame_for(struct encoder *e, const struct slice_sample *s, uint64_t addr,
				     bool leaf, bool kernel)
{
	const struct sym_mapping *map = NULL;
	const void *key = &kernel_mapping_key;

	if (!kernel) {
		map = s->maps ? proc_maps_find(s->maps, addr) : NULL;
		key = map;
	}
	if (e->nframes * 2 >= e->frames_cap && frames_grow(e))
		return NULL;

	size_t j = hash_frame(key, addr, leaf) & (e->frames_cap - 1);
	while (e->frames[j].used && (e->frames[j].mapping_key != key || e->frames[j].addr != addr ||
				     e->frames[j].leaf != leaf))
		j = (j + 1) & (e->frames_cap - 1);
	struct frame_entry *f = &e->frames[j];
	if (f->used)
		return f;

	*f = (struct frame_entry){ .mapping_key = key, .addr = addr, .leaf = leaf, .used = true };
	if (key) {
		f->mapping = mapping_for(e, key, map);
		if (!f->mapping)
			return NULL;
	}
	int n = symbolize(e, s, key, map, addr, leaf);
	if (n < 0)
		return NULL;
	f->line_off = e->nlines;
	f->nlines = (uint32_t)n;
	e->nlines += (size_t)n;
	if (n && f->mapping)
		e->mappings[f->mapping - 1].symbolized = true;
	e->nframes++;
	return f;
}

static const uint64_t *sample_frames(const struct slice *sl, const struct slice_sample *s)
{
	return sl->frames + s->frames;
}

/* First pass: every distinct frame is symbolized once, so each mapping knows whether it has functions
 * before the builder numbers it. */
static void symbolize_slice(const struct slice *sl, void *ctx)
{
	struct encoder *e = ctx;

	for (size_t i = 0; i < sl->nsamples && !e->err; i++) {
		const struct slice_sample *s = &sl->samples[i];
		const uint64_t *frames = sample_frames(sl, s);
		uint32_t total = s->nkernel + s->nuser;

		for (uint32_t k = 0; k < total && !e->err; k++)
			if (!frame_for(e, s, frames[k], k == 0, k < s->nkernel))
				e->err = -ENOMEM;
	}
}

static uint64_t mapping_id(struct encoder *e, struct mapping_entry *m)
{
	if (m->id)
		return m->id;
	if (m->key == &kernel_mapping_key)
		m->id = pprof_mapping(e->builder, KERNEL_START, UINT64_MAX, 0, "[kernel.kallsyms]", "",
				      m->symbolized);
	else
		m->id = pprof_mapping(e->builder, m->map->start, m->map->end, m->map->offset, m->map->path,
				      m->map->build_id, m->symbolized);
	return m->id;
}

static uint64_t location_id(struct encoder *e, struct frame_entry *f)
{
	if (!f->location_id)
		f->location_id = pprof_location_lines(e->builder,
						      f->mapping ? mapping_id(e, &e->mappings[f->mapping - 1]) : 0,
						      f->addr, e->lines + f->line_off, f->nlines);
	return f->location_id;
}

/* Lowercase hex of the bytes in order, as Pyroscope expects; false when they are all zero. */
static bool hex_if_set(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	bool set = false;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
		set |= bytes[i] != 0;
	}
	out[2 * n] = '\0';
	return set;
}

static int add_sample(struct encoder *e, const struct slice *sl, const struct slice_sample *s)
{
	const uint64_t *frames = sample_frames(sl, s);
	uint32_t total = s->nkernel + s->nuser;
	uint64_t locations[MAX_FRAMES];
	struct pprof_label labels[34];
	size_t nlabels = 0;
	const struct labelset *ls = slice_sample_labels(s);

	if (total == 0)
		return 0; /* both walks failed: counted in anorak_stacks_dropped_total */
	for (uint32_t k = 0; k < total; k++) {
		struct frame_entry *f = frame_for(e, s, frames[k], k == 0, k < s->nkernel);

		locations[k] = f ? location_id(e, f) : 0;
		if (!locations[k])
			return -ENOMEM;
	}
	for (size_t i = 0; i < ls->n && nlabels < 30; i++)
		labels[nlabels++] = (struct pprof_label){ .key = ls->labels[i].name, .str = ls->labels[i].value };
	char trace_hex[2 * sizeof(s->trace.trace_id) + 1], span_hex[2 * sizeof(s->trace.span_id) + 1];
	if (hex_if_set(s->trace.trace_id, sizeof(s->trace.trace_id), trace_hex)) {
		labels[nlabels++] = (struct pprof_label){ .key = "trace_id", .str = trace_hex };
		if (hex_if_set(s->trace.span_id, sizeof(s->trace.span_id), span_hex))
			labels[nlabels++] = (struct pprof_label){ .key = "span_id", .str = span_hex };
	}
	labels[nlabels++] = (struct pprof_label){ .key = "pid", .num = s->process->tgid };
	labels[nlabels++] = (struct pprof_label){ .key = "tid", .num = s->tid };

	/* A sample stands for 1/Hz seconds of CPU at the rate it was taken at. */
	unsigned hz = s->frequency ? s->frequency : sl->frequency;
	int64_t values[2] = { (int64_t)s->count, (int64_t)s->count * (1000000000LL / hz) };
	return pprof_add_sample(e->builder, locations, total, values, labels, nlabels);
}

static void build_slice(const struct slice *sl, void *ctx)
{
	struct encoder *e = ctx;

	for (size_t i = 0; i < sl->nsamples && !e->err; i++)
		e->err = add_sample(e, sl, &sl->samples[i]);
}

int profile_encode(const struct profile_request *req, void **out, size_t *outlen)
{
	static const struct pprof_value_type types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };
	struct encoder e = { .req = req };

	e.builder = pprof_builder_new(types, 2, (struct pprof_value_type){ "cpu", "nanoseconds" },
				      1000000000LL / req->base_frequency);
	e.sym = malloc(sizeof(*e.sym));
	if (!e.builder || !e.sym) {
		pprof_builder_free(e.builder);
		free(e.sym);
		return -ENOMEM;
	}
	slice_store_each(req->windows, req->after_seq, req->through_seq, symbolize_slice, &e);
	if (!e.err)
		slice_store_each(req->windows, req->after_seq, req->through_seq, build_slice, &e);
	if (!e.err)
		e.err = pprof_encode_gzip(e.builder, req->time_ns, req->duration_ns, out, outlen);
	pprof_builder_free(e.builder);
	free(e.frames);
	free(e.mappings);
	free(e.mapping_index);
	free(e.lines);
	free(e.sym);
	return e.err;
}
