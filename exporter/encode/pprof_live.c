#include "exporter/encode/pprof_live.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/htab.h"
#include "exporter/encode/pprof.h"
#include "exporter/encode/pprof_samples.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/store/slices.h"

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
	bool leaf;
	uint32_t nlines; /* its Lines (0: unsymbolized) at line_off in the encoder's lines */
	size_t line_off;
	uint64_t location_id;
	size_t mapping; /* index + 1 in the encoder's mappings, 0: outside every mapping */
};

struct encoder {
	const struct profile_request *req;
	struct pprof_builder *builder;
	struct frame_entry *frames; /* by id in frame_index */
	size_t frames_cap, nframes;
	struct htab frame_index;
	struct mapping_entry *mappings; /* by id in mapping_index */
	size_t mappings_cap, nmappings;
	struct htab mapping_index;
	struct pprof_line *lines;
	size_t lines_cap, nlines;
	int err;
	struct pprof_frame_function *function; /* of the frame being symbolized */
};

struct frame_key {
	const void *mapping_key;
	uint64_t addr;
	bool leaf;
};

static bool frame_eq(const void *ctx, uint32_t id, const void *key)
{
	const struct frame_entry *f = &((const struct encoder *)ctx)->frames[id];
	const struct frame_key *k = key;

	return f->mapping_key == k->mapping_key && f->addr == k->addr && f->leaf == k->leaf;
}

static bool mapping_eq(const void *ctx, uint32_t id, const void *key)
{
	return ((const struct encoder *)ctx)->mappings[id].key == key;
}

/* Room for one more entry of size bytes in *array of *cap, starting at first; -ENOMEM. */
static int array_reserve(void **array, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t grown_cap = *cap ? *cap * 2 : first;
	void *grown;

	if (n < *cap)
		return 0;
	grown = realloc(*array, grown_cap * size);
	if (!grown)
		return -ENOMEM;
	*array = grown;
	*cap = grown_cap;
	return 0;
}

/* Index + 1 of the mapping entry for key, 0 when memory ran out. */
static size_t mapping_for(struct encoder *e, const void *key, const struct sym_mapping *map)
{
	uint32_t hash = htab_hash32(htab_mix(0, (uint64_t)(uintptr_t)key));
	struct htab_slot *slot;

	if (htab_reserve(&e->mapping_index) ||
	    array_reserve((void **)&e->mappings, &e->mappings_cap, e->nmappings, sizeof(*e->mappings), 64))
		return 0;
	slot = htab_find(&e->mapping_index, hash, mapping_eq, e, key);
	if (htab_used(slot))
		return htab_id(slot) + 1;
	e->mappings[e->nmappings] = (struct mapping_entry){ .key = key, .map = map };
	htab_set(&e->mapping_index, slot, hash, (uint32_t)e->nmappings);
	return ++e->nmappings;
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

/* Appends the Lines of the frame to e->lines; their count, or -ENOMEM. */
static int symbolize(struct encoder *e, const struct slice_sample *s, const void *key,
		     const struct sym_mapping *map, uint64_t addr, bool leaf)
{
	size_t n = pprof_frame_symbolize(e->req->symbolizer, s->maps, map, key == &kernel_mapping_key, addr, leaf,
					 e->function);

	if (lines_reserve(e, n) || pprof_frame_lines(e->builder, e->function->lines, n, e->lines + e->nlines))
		return -ENOMEM;
	return (int)n;
}

/* Finds or adds the frame; its Lines are resolved the first time it is seen. */
static struct frame_entry *frame_for(struct encoder *e, const struct slice_sample *s, uint64_t addr,
				     bool leaf, bool kernel)
{
	const struct sym_mapping *map = NULL;
	const void *key = &kernel_mapping_key;

	if (!kernel) {
		map = s->maps ? proc_maps_find(s->maps, addr) : NULL;
		key = map;
	}
	const struct frame_key k = { .mapping_key = key, .addr = addr, .leaf = leaf };
	uint32_t hash = htab_hash32(htab_mix(htab_mix(htab_mix(0, (uint64_t)(uintptr_t)key), addr), leaf));
	struct htab_slot *slot;

	if (htab_reserve(&e->frame_index) ||
	    array_reserve((void **)&e->frames, &e->frames_cap, e->nframes, sizeof(*e->frames), 1024))
		return NULL;
	slot = htab_find(&e->frame_index, hash, frame_eq, e, &k);
	if (htab_used(slot))
		return &e->frames[htab_id(slot)];

	struct frame_entry *f = &e->frames[e->nframes];
	*f = (struct frame_entry){ .mapping_key = key, .addr = addr, .leaf = leaf };
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
	htab_set(&e->frame_index, slot, hash, (uint32_t)e->nframes++);
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
		uint32_t total = pprof_samples_kind_in(s->kind, e->req->offcpu) ? s->nkernel + s->nuser : 0;

		for (uint32_t k = 0; k < total && !e->err; k++)
			if (!frame_for(e, s, frames[k], k == 0, k < s->nkernel))
				e->err = -ENOMEM;
	}
}

static uint64_t mapping_id(struct encoder *e, struct mapping_entry *m)
{
	struct pprof_frame_mapping where;

	pprof_frame_mapping_of(m->key == &kernel_mapping_key ? NULL : m->map, &where);
	return pprof_frame_mapping_id(e->builder, &where, m->symbolized, &m->id);
}

static uint64_t location_id(struct encoder *e, struct frame_entry *f)
{
	if (!f->location_id)
		f->location_id = pprof_location_lines(e->builder,
						      f->mapping ? mapping_id(e, &e->mappings[f->mapping - 1]) : 0,
						      f->addr, e->lines + f->line_off, f->nlines);
	return f->location_id;
}

static int add_sample(struct encoder *e, const struct slice *sl, const struct slice_sample *s)
{
	const uint64_t *frames = sample_frames(sl, s);
	uint32_t total = s->nkernel + s->nuser;
	uint64_t locations[PPROF_MAX_FRAMES];
	const struct labelset *ls = slice_sample_labels(s);
	const struct pprof_sample smp = { .locations = locations, .nlocations = total, .labels = ls->labels,
					  .nlabels = ls->n, .trace_id = s->trace.trace_id,
					  .span_id = s->trace.span_id, .pid = s->process->tgid, .tid = s->tid,
					  .count = s->count, .frequency = s->frequency ? s->frequency : sl->frequency,
					  .kind = s->kind };

	if (total == 0 || !pprof_samples_kind_in(s->kind, e->req->offcpu))
		return 0; /* both walks failed: counted in anorak_stacks_dropped_total */
	for (uint32_t k = 0; k < total; k++) {
		struct frame_entry *f = frame_for(e, s, frames[k], k == 0, k < s->nkernel);

		locations[k] = f ? location_id(e, f) : 0;
		if (!locations[k])
			return -ENOMEM;
	}
	return pprof_samples_add(e->builder, &smp);
}

static void build_slice(const struct slice *sl, void *ctx)
{
	struct encoder *e = ctx;

	for (size_t i = 0; i < sl->nsamples && !e->err; i++)
		e->err = add_sample(e, sl, &sl->samples[i]);
}

int profile_encode(const struct profile_request *req, void **out, size_t *outlen)
{
	struct encoder e = { .req = req };

	e.builder = pprof_samples_builder(req->base_frequency, req->offcpu);
	e.function = malloc(sizeof(*e.function));
	if (!e.builder || !e.function) {
		pprof_builder_free(e.builder);
		free(e.function);
		return -ENOMEM;
	}
	slice_store_each(req->windows, req->after_seq, req->through_seq, symbolize_slice, &e);
	if (!e.err)
		slice_store_each(req->windows, req->after_seq, req->through_seq, build_slice, &e);
	if (!e.err)
		e.err = pprof_encode_gzip(e.builder, req->time_ns, req->duration_ns, out, outlen);
	pprof_builder_free(e.builder);
	free(e.frames);
	htab_free(&e.frame_index);
	free(e.mappings);
	htab_free(&e.mapping_index);
	free(e.lines);
	free(e.function);
	return e.err;
}
