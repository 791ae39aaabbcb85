#include "exporter/store/history.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/htab.h"
#include "common/metrics.h"
#include "exporter/store/history_codec.h"
#include "exporter/store/history_dict.h"
#include "exporter/store/slices.h"
#include "exporter/symbols/frames.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "labels/selector.h"

/* Windows per epoch (15 min): dictionaries start afresh this often, so what only old windows used goes
 * away with them; longer epochs store the recurring stacks fewer times. */
#define EPOCH_WINDOWS 90

/* --- epochs, windows, the ring ----------------------------------------------------------------- */

struct loc_key {
	uint32_t mapping; /* id + 1 */
	uint32_t leaf;
	uint64_t address;
};

/* A Line of a location in the lines dictionary: ids in the strings dictionary. */
struct line_key {
	uint32_t function, filename, line;
};

/* Append-only while it is the current epoch; what a query took under the lock stays as it was. Freed
 * when the ring, its sealed windows and the queries holding it have all let go. */
struct history_epoch {
	uint64_t id;
	int refs;                  /* atomic: the ring's, one per sealed window, one per query's open copy */
	struct dict strings, mappings, locations, stacks, labelsets;
	struct dict lines;         /* runs of struct line_key, innermost inlined call first */
	struct stable loc_lines;   /* uint32_t per location: its run's id + 1, 0 unsymbolized */
	struct stable map_functions; /* uint8_t per mapping, atomic: some location in it is symbolized */
	size_t extra_bytes;
	uint32_t nwindows;         /* sealed windows in the ring that use it */
	uint32_t nsealed;          /* windows sealed in it, evicted or not */
	struct history *held_by;   /* set when the ring let go of it while queries still held it */
	struct history_epoch *next;
};

/* Immutable once sealed (next aside, which only the lock holder follows); freed when the ring and the
 * queries holding it have let go. */
struct sealed {
	int refs;                    /* atomic: the ring's, one per query */
	int64_t start_ns, end_ns;
	struct history_epoch *epoch; /* referenced */
	char *data; /* snappy */
	size_t len;
	uint32_t nrecords;
	uint64_t samples;
	struct history *held_by;     /* as for epochs */
	struct sealed *next;
};

struct open_window {
	bool started; /* covers time since start_ns, samples or not */
	int64_t start_ns, end_ns;
	struct dict records;     /* rec_key blobs */
	uint64_t *counts;
	uint32_t counts_cap;
	uint64_t samples;
};

struct history {
	struct history_opts opts;
	pthread_rwlock_t lock;
	struct history_epoch *epochs, *current; /* oldest first; current is the last */
	uint64_t next_epoch_id;
	struct sealed *oldest, *newest;
	struct open_window open;
	uint64_t windows, window_bytes, records, samples;
	uint64_t evictions_retention, evictions_size;
	uint64_t samples_lost; /* not stored: out of memory */
	uint64_t held_bytes;                    /* atomic: evicted, still read by queries */
	struct metrics_histogram add_seconds;   /* history_add_slice, lock wait included */
	struct pprof_frame_function function; /* of the frame being symbolized */
};

static size_t epoch_bytes(const struct history_epoch *e)
{
	return sizeof(*e) + e->strings.bytes + e->mappings.bytes + e->locations.bytes + e->stacks.bytes +
	       e->labelsets.bytes + e->lines.bytes + e->extra_bytes;
}

static void epoch_free(struct history_epoch *e)
{
	if (!e)
		return;
	dict_free(&e->strings);
	dict_free(&e->mappings);
	dict_free(&e->locations);
	dict_free(&e->stacks);
	dict_free(&e->labelsets);
	dict_free(&e->lines);
	stable_free(&e->loc_lines);
	stable_free(&e->map_functions);
	free(e);
}

/* Once no longer current, an epoch is only read: its dictionaries' indexes, the writer's, can go. */
static void epoch_drop_indexes(struct history_epoch *e)
{
	dict_drop_index(&e->strings);
	dict_drop_index(&e->mappings);
	dict_drop_index(&e->locations);
	dict_drop_index(&e->stacks);
	dict_drop_index(&e->labelsets);
}

static struct history_epoch *epoch_get(struct history_epoch *e)
{
	__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
	return e;
}

static void epoch_put(struct history_epoch *e)
{
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (e->held_by)
			__atomic_sub_fetch(&e->held_by->held_bytes, epoch_bytes(e), __ATOMIC_RELAXED);
		epoch_free(e);
	}
}

static size_t sealed_bytes(const struct sealed *w)
{
	return sizeof(*w) + w->len;
}

static void sealed_put(struct sealed *w)
{
	if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (w->held_by)
			__atomic_sub_fetch(&w->held_by->held_bytes, sealed_bytes(w), __ATOMIC_RELAXED);
		epoch_put(w->epoch);
		free(w->data);
		free(w);
	}
}

/* The ring lets go of an evicted window or epoch: until the queries still reading it let go too, it
 * counts in held_bytes (set before the reference goes, so whoever frees it takes it out again). */
static void release_sealed(struct history *h, struct sealed *w)
{
	w->held_by = h;
	__atomic_add_fetch(&h->held_bytes, sealed_bytes(w), __ATOMIC_RELAXED);
	sealed_put(w);
}

static void release_epoch(struct history *h, struct history_epoch *e)
{
	e->held_by = h;
	__atomic_add_fetch(&h->held_bytes, epoch_bytes(e), __ATOMIC_RELAXED);
	epoch_put(e);
}

static struct history_epoch *epoch_new(struct history *h)
{
	struct history_epoch *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->id = ++h->next_epoch_id;
	e->refs = 1; /* the ring's */
	return e;
}

static size_t open_bytes(const struct open_window *o)
{
	return o->records.bytes + (size_t)o->counts_cap * sizeof(*o->counts);
}

static uint64_t total_bytes(const struct history *h)
{
	uint64_t bytes = h->window_bytes + open_bytes(&h->open);

	for (const struct history_epoch *e = h->epochs; e; e = e->next)
		bytes += epoch_bytes(e);
	return bytes;
}

static const double add_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

int history_new(const struct history_opts *opts, struct history **out)
{
	struct history *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->opts = *opts;
	pthread_rwlock_init(&h->lock, NULL);
	h->current = h->epochs = epoch_new(h);
	if (!h->current || metrics_histogram_init(&h->add_seconds, add_buckets, sizeof(add_buckets) / sizeof(add_buckets[0]))) {
		history_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

static void open_reset(struct open_window *o)
{
	dict_free(&o->records);
	free(o->counts);
	memset(o, 0, sizeof(*o));
}

void history_free(struct history *h)
{
	if (!h)
		return;
	while (h->oldest) {
		struct sealed *next = h->oldest->next;

		sealed_put(h->oldest);
		h->oldest = next;
	}
	while (h->epochs) {
		struct history_epoch *next = h->epochs->next;

		epoch_put(h->epochs);
		h->epochs = next;
	}
	open_reset(&h->open);
	pthread_rwlock_destroy(&h->lock);
	if (h->add_seconds.buckets)
		metrics_histogram_destroy(&h->add_seconds);
	free(h);
}

/* --- ingest ------------------------------------------------------------------------------------ */

static int intern_string_id(struct history_epoch *e, const char *s, uint32_t *id)
{
	return dict_intern(&e->strings, s, strlen(s) + 1, id, NULL);
}

static int intern_string(struct history_epoch *e, const char *s, const char **out)
{
	uint32_t id;
	int err = intern_string_id(e, s, &id);

	if (!err)
		*out = dict_blob(&e->strings, id).data;
	return err;
}

static int grow_array(void **array, uint32_t *cap, uint32_t need, size_t size, size_t *bytes)
{
	uint32_t c = *cap ? *cap : 64;
	void *grown;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	grown = realloc(*array, (size_t)c * size);
	if (!grown)
		return -ENOMEM;
	memset((char *)grown + (size_t)*cap * size, 0, (size_t)(c - *cap) * size);
	*bytes += (size_t)(c - *cap) * size;
	*array = grown;
	*cap = c;
	return 0;
}

static int mapping_id(struct history_epoch *e, const struct sym_mapping *m, uint32_t *id)
{
	struct pprof_frame_mapping key;
	int err;

	pprof_frame_mapping_of(m, &key);
	err = intern_string(e, key.path ? key.path : "", &key.path) ?:
	      intern_string(e, key.build_id ? key.build_id : "", &key.build_id);
	if (err)
		return err;
	/* Room first: an id a query can see always has its flag. */
	return stable_reserve(&e->map_functions, 1, (uint64_t)e->mappings.n + 1, &e->extra_bytes) ?:
	       dict_intern(&e->mappings, &key, sizeof(key), id, NULL);
}

/* Resolves the Lines of a location seen for the first time and keeps them: *run is their id + 1 in the
 * lines dictionary, 0 when unsymbolized. */
static int symbolize(struct history *h, struct history_epoch *e, const struct slice_sample *s,
		     const struct sym_mapping *map, bool kernel, uint64_t addr, bool leaf, uint32_t *run)
{
	struct pprof_frame_function *fn = &h->function;
	size_t n = pprof_frame_symbolize(h->opts.symbolizer, s->maps, map, kernel, addr, leaf, fn);
	struct line_key lines[PPROF_FRAME_LINES_MAX];
	uint32_t id;
	int err = 0;

	for (size_t i = 0; i < n && !err; i++) {
		lines[i].line = fn->lines[i].line;
		err = intern_string_id(e, fn->lines[i].name, &lines[i].function) ?:
		      intern_string_id(e, fn->lines[i].filename, &lines[i].filename);
	}
	if (!n || err)
		return err;
	err = dict_intern(&e->lines, lines, n * sizeof(lines[0]), &id, NULL);
	if (!err)
		*run = id + 1;
	return err;
}

struct ingest {
	const struct sym_mapping *last_map; /* one-entry cache: frames of a stack share mappings */
	uint32_t last_map_id;
	bool have_last;
};

static int location_id(struct history *h, struct history_epoch *e, struct ingest *in,
		       const struct slice_sample *s, uint64_t addr, bool leaf, bool kernel, uint32_t *id)
{
	const struct sym_mapping *map = NULL;
	struct loc_key key = { .leaf = leaf, .address = addr };
	bool added;
	int err;

	if (!kernel)
		map = s->maps ? proc_maps_find(s->maps, addr) : NULL;
	if (kernel || map) {
		if (!in->have_last || in->last_map != map) {
			err = mapping_id(e, map, &in->last_map_id);
			if (err)
				return err;
			in->last_map = map;
			in->have_last = true;
		}
		key.mapping = in->last_map_id + 1;
	}
	/* Room first: an id a query can see always has its Lines (zeroed until symbolized: none). */
	err = stable_reserve(&e->loc_lines, sizeof(uint32_t), (uint64_t)e->locations.n + 1, &e->extra_bytes) ?:
	      dict_intern(&e->locations, &key, sizeof(key), id, &added);
	if (err || !added)
		return err;
	uint32_t *run = stable_at(&e->loc_lines, sizeof(*run), *id);
	err = symbolize(h, e, s, map, kernel, addr, leaf, run);
	/* Queries may read the flag without the lock: it only ever turns on. */
	if (!err && *run && key.mapping)
		__atomic_store_n((uint8_t *)stable_at(&e->map_functions, 1, key.mapping - 1), 1, __ATOMIC_RELAXED);
	return err;
}

static int labels_id(struct history_epoch *e, const struct labelset *ls, uint32_t *id)
{
	struct label pairs[64];
	size_t n = 0;
	int err = 0;

	for (size_t i = 0; i < ls->n && n < sizeof(pairs) / sizeof(pairs[0]) && !err; i++, n++)
		err = intern_string(e, ls->labels[i].name, (const char **)&pairs[n].name) ?:
		      intern_string(e, ls->labels[i].value, (const char **)&pairs[n].value);
	return err ?: dict_intern(&e->labelsets, pairs, n * sizeof(pairs[0]), id, NULL);
}

static int add_sample(struct history *h, struct ingest *in, const struct slice *sl,
		      const struct slice_sample *s)
{
	struct history_epoch *e = h->current;
	struct open_window *o = &h->open;
	uint32_t total = s->nkernel + s->nuser, locs[PPROF_MAX_FRAMES], id;
	const uint64_t *frames = sl->frames + s->frames;
	struct rec_key key = { .pid = s->process->tgid, .tid = s->tid,
				.frequency = s->frequency ? s->frequency : sl->frequency, .kind = s->kind };
	bool added;
	int err = 0;

	if (total == 0 || total > PPROF_MAX_FRAMES)
		return 0; /* both walks failed: counted in anorak_stacks_dropped_total */
	in->have_last = false;
	for (uint32_t k = 0; k < total && !err; k++)
		err = location_id(h, e, in, s, frames[k], k == 0, k < s->nkernel, &locs[k]);
	if (err)
		return err;
	err = dict_intern(&e->stacks, locs, total * sizeof(locs[0]), &key.stack, NULL) ?:
	      labels_id(e, slice_sample_labels(s), &key.labels);
	if (err)
		return err;
	for (size_t i = 0; i < sizeof(s->trace.trace_id); i++)
		key.traced |= s->trace.trace_id[i];
	if (key.traced) {
		key.traced = 1;
		memcpy(key.trace_id, s->trace.trace_id, sizeof(key.trace_id));
		memcpy(key.span_id, s->trace.span_id, sizeof(key.span_id));
	}
	err = dict_intern(&o->records, &key, sizeof(key), &id, &added);
	if (!err && added)
		err = grow_array((void **)&o->counts, &o->counts_cap, id + 1, sizeof(*o->counts),
				 &(size_t){ 0 });
	if (err)
		return err;
	o->counts[id] += s->count;
	if (s->kind == SAMPLE_KIND_CPU)
		o->samples += s->count;
	return 0;
}

static void drop_oldest(struct history *h)
{
	struct sealed *w = h->oldest;

	h->oldest = w->next;
	if (!h->oldest)
		h->newest = NULL;
	h->windows--;
	h->window_bytes -= sealed_bytes(w);
	h->records -= w->nrecords;
	h->samples -= w->samples;
	w->epoch->nwindows--;
	release_sealed(h, w);
	/* Epochs are in time order: the ones before the oldest window's are unused by the ring. */
	while (h->epochs != h->current && !h->epochs->nwindows) {
		struct history_epoch *next = h->epochs->next;

		release_epoch(h, h->epochs);
		h->epochs = next;
	}
}

static void evict(struct history *h, int64_t now_ns)
{
	while (h->oldest && h->oldest->end_ns < now_ns - h->opts.retention_ns) {
		drop_oldest(h);
		h->evictions_retention++;
	}
	while (h->oldest && total_bytes(h) > h->opts.max_bytes) {
		drop_oldest(h);
		h->evictions_size++;
	}
}

static int seal_open(struct history *h)
{
	struct open_window *o = &h->open;
	struct sealed *w;
	int err;

	/* Windows without samples are kept too (a few bytes): the ring then covers time without gaps
	 * and a range on an idle node is an empty profile, not a miss. */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM; /* the window stays open, and is sealed by a later slice */
	err = history_window_encode(&o->records, o->counts, &w->data, &w->len);
	if (err) {
		free(w);
		h->samples_lost += o->samples;
		open_reset(o);
		return err;
	}
	w->refs = 1; /* the ring's */
	w->start_ns = o->start_ns;
	w->end_ns = o->end_ns;
	w->epoch = epoch_get(h->current);
	w->nrecords = o->records.n;
	w->samples = o->samples;
	h->current->nwindows++;
	h->current->nsealed++;
	if (h->newest)
		h->newest->next = w;
	else
		h->oldest = w;
	h->newest = w;
	h->windows++;
	h->window_bytes += sealed_bytes(w);
	h->records += w->nrecords;
	h->samples += w->samples;
	open_reset(o);

	/* A new epoch now and then, or sooner when its dictionaries grow large, so that dictionaries
	 * only old windows used can be freed with them. */
	if (h->current->nsealed >= EPOCH_WINDOWS || epoch_bytes(h->current) > h->opts.max_bytes / 8) {
		struct history_epoch *e = epoch_new(h);

		if (!e)
			return -ENOMEM;
		h->current->next = e;
		epoch_drop_indexes(h->current);
		h->current = e;
	}
	return 0;
}

int history_add_slice(struct history *h, const struct slice *s)
{
	struct ingest in = { 0 };
	struct timespec start, end;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_rwlock_wrlock(&h->lock);
	if (!h->open.started) {
		h->open.started = true;
		h->open.start_ns = s->start_ns;
	}
	for (size_t i = 0; i < s->nsamples; i++) {
		if (!err)
			err = add_sample(h, &in, s, &s->samples[i]);
		/* add_sample adds the count last: a failed sample and the rest of the slice are lost. */
		if (err && s->samples[i].kind == SAMPLE_KIND_CPU)
			h->samples_lost += s->samples[i].count;
	}
	h->open.end_ns = s->end_ns;
	/* Close the window at its length, or early when it alone would take a large share of the
	 * bound. */
	if (h->open.end_ns - h->open.start_ns >= h->opts.window_ns ||
	    open_bytes(&h->open) + epoch_bytes(h->current) > h->opts.max_bytes / 4) {
		int serr = seal_open(h);

		err = err ?: serr;
	}
	evict(h, s->end_ns);
	pthread_rwlock_unlock(&h->lock);
	clock_gettime(CLOCK_MONOTONIC, &end);
	metrics_histogram_observe(&h->add_seconds, (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
	return err;
}

/* --- queries ---------------------------------------------------------------------------------- */

/* What a query visits, taken under the read lock and then read without it, so that a long query never
 * holds up the drain thread: references to the sealed windows (immutable) and a copy of the open
 * window's records, with the sizes of their epochs' dictionaries at that moment (append-only, so the
 * ids below them stay valid while the drain thread goes on adding). */
struct snapshot {
	struct sealed **windows;
	struct history_dict_sizes *sizes; /* per window */
	size_t n;
	struct history_window open;
	struct history_record *open_records;
	bool has_open;
};

static void epoch_sizes(const struct history_epoch *e, struct history_dict_sizes *out)
{
	*out = (struct history_dict_sizes){ .locations = e->locations.n, .mappings = e->mappings.n,
					    .stacks = e->stacks.n, .labelsets = e->labelsets.n };
}

static int copy_open(struct history *h, struct snapshot *snap)
{
	const struct open_window *o = &h->open;
	struct history_record *recs = calloc(o->records.n ? o->records.n : 1, sizeof(*recs));

	if (!recs)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->records.n; i++) {
		const struct rec_key *k = dict_blob(&o->records, i).data;

		recs[i] = (struct history_record){ .stack = k->stack, .labels = k->labels, .pid = k->pid,
						   .tid = k->tid, .frequency = k->frequency,
						   .count = o->counts[i], .traced = k->traced,
						   .kind = (uint8_t)k->kind };
		memcpy(recs[i].trace_id, k->trace_id, sizeof(k->trace_id));
		memcpy(recs[i].span_id, k->span_id, sizeof(k->span_id));
	}
	snap->open = (struct history_window){ .start_ns = o->start_ns, .end_ns = o->end_ns,
					      .epoch = epoch_get(h->current), .records = recs,
					      .n = o->records.n };
	epoch_sizes(h->current, &snap->open.sizes);
	snap->open_records = recs;
	snap->has_open = true;
	return 0;
}

static void snapshot_release(struct snapshot *snap)
{
	for (size_t i = 0; i < snap->n; i++)
		sealed_put(snap->windows[i]);
	if (snap->has_open)
		epoch_put((struct history_epoch *)snap->open.epoch);
	free(snap->windows);
	free(snap->sizes);
	free(snap->open_records);
}

/* Lock held. */
static int take_snapshot(struct history *h, int64_t start_ns, int64_t end_ns, struct snapshot *snap)
{
	size_t n = 0;

	for (struct sealed *w = h->oldest; w; w = w->next)
		n += w->start_ns < end_ns && w->end_ns > start_ns;
	snap->windows = calloc(n ? n : 1, sizeof(*snap->windows));
	snap->sizes = calloc(n ? n : 1, sizeof(*snap->sizes));
	if (!snap->windows || !snap->sizes)
		return -ENOMEM;
	for (struct sealed *w = h->oldest; w; w = w->next) {
		if (w->start_ns >= end_ns || w->end_ns <= start_ns)
			continue;
		__atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
		epoch_sizes(w->epoch, &snap->sizes[snap->n]);
		snap->windows[snap->n++] = w;
	}
	if (h->open.started && h->open.start_ns < end_ns && h->open.end_ns > start_ns)
		return copy_open(h, snap);
	return 0;
}

int history_query(struct history *h, int64_t start_ns, int64_t end_ns, history_visit_fn fn, void *ctx,
		  int64_t *first_ns, int64_t *last_ns)
{
	struct snapshot snap = { 0 };
	bool open_has;
	int ret;

	pthread_rwlock_rdlock(&h->lock);
	open_has = h->open.started;
	if (first_ns)
		*first_ns = h->oldest ? h->oldest->start_ns : open_has ? h->open.start_ns : 0;
	if (last_ns)
		*last_ns = open_has ? h->open.end_ns : h->newest ? h->newest->end_ns : 0;
	ret = take_snapshot(h, start_ns, end_ns, &snap);
	pthread_rwlock_unlock(&h->lock);

	for (size_t i = 0; i < snap.n && !ret; i++) {
		const struct sealed *w = snap.windows[i];
		struct history_record *recs;

		ret = history_window_decode(w->data, w->len, w->nrecords, &recs);
		if (ret)
			break;
		struct history_window view = { .start_ns = w->start_ns, .end_ns = w->end_ns, .epoch = w->epoch,
					       .sizes = snap.sizes[i], .records = recs, .n = w->nrecords };
		ret = fn(ctx, &view);
		free(recs);
	}
	if (!ret && snap.has_open)
		ret = fn(ctx, &snap.open);
	if (!ret && !snap.n && !snap.has_open)
		ret = -ENOENT;
	snapshot_release(&snap);
	return ret;
}

uint64_t history_epoch_id(const struct history_epoch *e)
{
	return e->id;
}

size_t history_stack(const struct history_epoch *e, uint32_t id, const uint32_t **locations)
{
	const struct blob b = dict_blob(&e->stacks, id);

	*locations = b.data;
	return b.len / sizeof(uint32_t);
}

void history_location(const struct history_epoch *e, uint32_t id, struct history_location *out)
{
	const struct loc_key *k = dict_blob(&e->locations, id).data;
	uint32_t run = *(const uint32_t *)stable_at(&e->loc_lines, sizeof(uint32_t), id);
	const struct blob b = run ? dict_blob(&e->lines, run - 1) : (struct blob){ NULL, 0 };
	const struct line_key *lines = b.data;

	out->mapping = k->mapping;
	out->address = k->address;
	out->nlines = b.len / sizeof(*lines);
	for (size_t i = 0; i < out->nlines; i++)
		out->lines[i] = (struct pprof_frame_line){ .name = dict_blob(&e->strings, lines[i].function).data,
							   .filename = dict_blob(&e->strings, lines[i].filename).data,
							   .line = lines[i].line };
}

void history_mapping(const struct history_epoch *e, uint32_t id, struct history_mapping *out)
{
	const struct pprof_frame_mapping *k = dict_blob(&e->mappings, id).data;
	const uint8_t *functions = stable_at(&e->map_functions, 1, id);

	*out = (struct history_mapping){ .where = *k,
					 .has_functions = __atomic_load_n(functions, __ATOMIC_RELAXED) };
}

size_t history_labels(const struct history_epoch *e, uint32_t id, const struct label **labels)
{
	const struct blob b = dict_blob(&e->labelsets, id);

	*labels = b.data;
	return b.len / sizeof(struct label);
}

void history_stats(struct history *h, struct history_stats *out)
{
	pthread_rwlock_rdlock(&h->lock);
	*out = (struct history_stats){
		.bytes = total_bytes(h),
		.window_bytes = h->window_bytes,
		.windows = h->windows,
		.records = h->records,
		.samples = h->samples,
		.evictions_retention = h->evictions_retention,
		.evictions_size = h->evictions_size,
		.samples_lost = h->samples_lost,
		.held_bytes = __atomic_load_n(&h->held_bytes, __ATOMIC_RELAXED),
	};
	for (const struct history_epoch *e = h->epochs; e; e = e->next)
		out->epochs++;
	pthread_rwlock_unlock(&h->lock);
}

void history_write_metrics(struct metrics_buf *b, void *history)
{
	struct history *h = history;
	struct history_stats st;
	int64_t oldest;
	struct metrics_series series;

	history_stats(h, &st);
	pthread_rwlock_rdlock(&h->lock);
	oldest = h->oldest ? h->oldest->start_ns : 0;
	pthread_rwlock_unlock(&h->lock);
	metrics_gauge(b, "anorak_history_bytes",
		      "Memory the history ring takes: compressed windows and their dictionaries.",
		      (double)st.bytes);
	metrics_gauge(b, "anorak_history_query_held_bytes",
		      "Evicted windows and dictionaries that running queries still read, not in "
		      "anorak_history_bytes; freed when the queries end.", (double)st.held_bytes);
	metrics_gauge(b, "anorak_history_max_bytes", "The ring's bound (--storage.max-bytes).",
		      (double)h->opts.max_bytes);
	metrics_gauge(b, "anorak_history_windows", "Closed windows kept in the ring.", (double)st.windows);
	metrics_gauge(b, "anorak_history_samples", "Samples kept in the ring's closed windows.",
		      (double)st.samples);
	metrics_gauge(b, "anorak_history_oldest_timestamp_seconds",
		      "Start of the oldest window kept (0 when none).", oldest / 1e9);
	series = metrics_series_begin(b, "anorak_history_evictions_total", "counter",
				      "Windows dropped from the ring, by reason: older than "
				      "--storage.retention, or to stay under --storage.max-bytes.");
	metrics_series_value(series, "reason=\"retention\"", (double)st.evictions_retention);
	metrics_series_value(series, "reason=\"size\"", (double)st.evictions_size);
	metrics_counter(b, "anorak_history_samples_lost_total",
			"Samples of drains the history could not keep: out of memory.",
			(double)st.samples_lost);
	metrics_histogram_write(b, "anorak_history_add_duration_seconds",
				"Time a drain takes to add its samples to the history, waiting for the ring's lock "
				"included (queries hold it only to take their windows).", &h->add_seconds);
}

bool history_filter_match(struct history_filter *f, const struct history_window *w, uint32_t labels)
{
	const struct history_epoch *e = w->epoch;

	if (!f->n)
		return true;
	if (f->epoch != e->id || f->cap < w->sizes.labelsets) {
		free(f->cache);
		f->cap = w->sizes.labelsets;
		f->cache = calloc(f->cap ? f->cap : 1, 1);
		f->epoch = e->id;
		if (!f->cache) {
			f->cap = 0;
			f->epoch = 0;
		}
	}
	if (f->cache && f->cache[labels])
		return f->cache[labels] > 0;

	const struct label *ls;
	size_t n = history_labels(e, labels, &ls);
	bool hit = false;

	for (size_t i = 0; i < f->n && !hit; i++)
		hit = selector_matches(&f->selectors[i], ls, n, "__name__", HISTORY_PROFILE_NAME);
	if (f->cache)
		f->cache[labels] = hit ? 1 : -1;
	return hit;
}

void history_filter_free(struct history_filter *f)
{
	free(f->cache);
	f->cache = NULL;
	f->cap = 0;
	f->epoch = 0;
}
