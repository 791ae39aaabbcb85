/*
 * The recent past, always on: closed windows (10 s by default) of symbolized samples kept in memory so
 * that a profile of any range within --storage.retention can be answered at once.
 *
 * Windows share dictionaries (strings, mappings, locations and their Lines, stacks, label sets) within
 * an epoch (a run of consecutive windows); each window holds only its records (stack, label set, pid,
 * tid, trace ids, count), varint-encoded and snappy-compressed. The ring is bounded by the retention
 * and by max_bytes (windows and dictionaries together); the oldest windows go first, an epoch's
 * dictionaries with its last window.
 */
#ifndef ANORAK_HISTORY_H
#define ANORAK_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/symbols/frames.h"
#include "labels/labelset.h"
#include "labels/selector.h"

struct metrics_buf;
struct slice;
struct symbolizer;

/* Windows close after this long: the resolution of past ranges. */
#define HISTORY_WINDOW_NS (10 * 1000000000LL)

struct history_opts {
	int64_t retention_ns;
	uint64_t max_bytes;
	int64_t window_ns;
	struct symbolizer *symbolizer;
};

struct history;
struct history_epoch; /* dictionaries shared by a run of windows */

int history_new(const struct history_opts *opts, struct history **out);
void history_free(struct history *h);

/* Adds a sealed slice's samples to the open window (frames are symbolized now, while the processes'
 * mappings are still referenced); closes the window when it is window_ns long and evicts. Called by the
 * drain thread. */
int history_add_slice(struct history *h, const struct slice *s);

struct history_record {
	uint32_t stack, labels;  /* dictionary ids in the window's epoch */
	uint32_t pid, tid;
	uint32_t frequency;      /* Hz the samples were taken at */
	uint64_t count;
	bool traced;
	uint8_t kind;            /* enum sample_kind */
	uint8_t trace_id[16], span_id[8];
};

struct history_dict_sizes {
	uint32_t locations, mappings, stacks, labelsets;
};

struct history_window {
	int64_t start_ns, end_ns;
	const struct history_epoch *epoch;
	/* Its epoch's dictionary sizes when the query began (the same for every window of an epoch
	 * within a query): the ids of the records are below them. */
	struct history_dict_sizes sizes;
	const struct history_record *records;
	size_t n;
};

/* Returns nonzero to stop the query with that value. */
typedef int (*history_visit_fn)(void *ctx, const struct history_window *w);

/* A past range of profiles asked for (?start=&end=&match[]=, parsed by web/query.h): here, before
 * the encoders that answer it and the server that parses it. */
#define HISTORY_MAX_MATCHES 8

struct history_range_query {
	int64_t start_ns, end_ns;
	struct selector selectors[HISTORY_MAX_MATCHES]; /* any of them; none: everything */
	size_t nselectors;
	bool offcpu;          /* the off-CPU profile, not the CPU one */
};

/* Calls fn, in time order, for each window (the open one as it was when the query began) that
 * overlaps [start_ns, end_ns). -ENOENT when none does. first_ns and last_ns (may be NULL) get the range
 * the ring covers now (0, 0 when empty). The ring's lock is held only to take references to the
 * windows and copy the open one: fn runs without it, so a long query does not hold up the drain
 * thread; windows evicted meanwhile are freed when the query lets go of them. */
int history_query(struct history *h, int64_t start_ns, int64_t end_ns, history_visit_fn fn, void *ctx,
		  int64_t *first_ns, int64_t *last_ns);

/* Dictionary access for ids below the window's sizes, valid while a query runs. */
struct history_location {
	uint32_t mapping;        /* mapping id + 1, 0 when the address is outside every mapping */
	uint64_t address;
	size_t nlines;           /* 0 when unsymbolized */
	/* As pprof_frame_symbolize gave them, innermost inlined call first; the strings live in the epoch. */
	struct pprof_frame_line lines[PPROF_FRAME_LINES_MAX];
};

struct history_mapping {
	struct pprof_frame_mapping where;
	bool has_functions;
};

uint64_t history_epoch_id(const struct history_epoch *e);
/* Location ids of a stack, leaf first. */
size_t history_stack(const struct history_epoch *e, uint32_t id, const uint32_t **locations);
void history_location(const struct history_epoch *e, uint32_t id, struct history_location *out);
void history_mapping(const struct history_epoch *e, uint32_t id, struct history_mapping *out);
/* A target's labels, sorted by name. */
size_t history_labels(const struct history_epoch *e, uint32_t id, const struct label **labels);

/* Selects samples by their target labels: any of the selectors (all samples when there are none).
 * Caches each label set's answer for the current epoch. __name__ is HISTORY_PROFILE_NAME. */
#define HISTORY_PROFILE_NAME "process_cpu"
struct selector;
struct history_filter {
	const struct selector *selectors;
	size_t n;
	uint64_t epoch;
	int8_t *cache; /* per label set: 0 unknown, 1 match, -1 not */
	uint32_t cap;
};
bool history_filter_match(struct history_filter *f, const struct history_window *w, uint32_t labels);
void history_filter_free(struct history_filter *f);

/* anorak_history_bytes, _query_held_bytes, _max_bytes, _windows, _samples, _oldest_timestamp_seconds,
 * _evictions_total{reason}, _samples_lost_total, _add_duration_seconds. */
void history_write_metrics(struct metrics_buf *b, void *history);

/* Snapshot of the ring's size, for tests and the benchmark. */
struct history_stats {
	uint64_t bytes, window_bytes, windows, epochs, records, samples, evictions_retention, evictions_size;
	uint64_t samples_lost;
	uint64_t held_bytes; /* evicted, still read by queries */
};
void history_stats(struct history *h, struct history_stats *out);

#endif
