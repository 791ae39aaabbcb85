/*
 * Drained samples in time order. Each drain appends one slice; a profile request pins the slices that
 * come after its start and encodes them when its window ends. Slices nobody can still ask for are
 * freed.
 */
#ifndef ANORAK_WINDOW_H
#define ANORAK_WINDOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labelset.h"
#include "exporter/symbols/process.h"

struct process;
struct proc_maps;
struct target;

/* A trace context a sample was taken in; all zero for none. */
struct trace_ids {
	uint8_t trace_id[16];
	uint8_t span_id[8];
};

struct slice_sample {
	struct process *process;  /* referenced */
	struct target *target;    /* referenced: the labels it was taken under */
	struct proc_maps *maps;   /* referenced; NULL when unreadable */
	struct trace_ids trace;
	uint32_t tid;
	uint32_t frequency;       /* Hz it was taken at */
	uint64_t cgroup_id;
	uint64_t count;
	uint32_t frames;          /* index of the stack's first frame in the slice's frames */
	uint16_t nuser, nkernel;  /* kernel frames first (leaf first), then user frames (leaf first) */
	uint8_t kind;             /* enum sample_kind: CPU samples, or off-CPU waits or nanoseconds */
};

struct slice {
	uint64_t seq;
	int64_t start_ns, end_ns; /* CLOCK_REALTIME of the drains that bound it */
	unsigned frequency;       /* Hz the samples were taken at */
	struct slice_sample *samples;
	size_t nsamples, samples_cap;
	uint64_t *frames;
	size_t nframes, frames_cap;
	struct stack_index *stacks; /* dedups stacks within the slice while it is built */
	struct slice *next;
};

struct slice *slice_new(uint64_t seq, int64_t start_ns, unsigned frequency);
/* The target labels of a sample. */
const struct labelset *slice_sample_labels(const struct slice_sample *s);

/* Adds sample (its frames fields are filled here), taking over its references to process, target
 * and maps, also on failure. user_id/kernel_id identify the stacks within the drained generation, so
 * equal stacks are stored once. */
int slice_add(struct slice *s, const struct slice_sample *sample, uint64_t user_id, const uint64_t *user,
	      uint32_t nuser, uint64_t kernel_id, const uint64_t *kernel, uint32_t nkernel);
/* Ends building: drops the stack index. */
void slice_seal(struct slice *s, int64_t end_ns);
void slice_free(struct slice *s);

struct slice_store {
	pthread_mutex_t lock;
	pthread_cond_t appended;
	struct slice *head, *tail;
	uint64_t last_seq;        /* seq of the newest slice */
	int64_t last_end_ns;
	uint64_t *pins;           /* start seqs of requests in flight */
	size_t npins, pins_cap;
	bool stopping;
};

int slice_store_init(struct slice_store *w);
void slice_store_destroy(struct slice_store *w);
/* Appends a sealed slice and frees what no pin needs. */
void slice_store_append(struct slice_store *w, struct slice *s);
/* Waits until a slice with seq >= seq is appended; -ESHUTDOWN when stopping. */
int slice_store_wait(struct slice_store *w, uint64_t seq);
void slice_store_stop(struct slice_store *w);

/* A pin keeps every slice after seq. */
int slice_store_pin(struct slice_store *w, uint64_t seq);
void slice_store_unpin(struct slice_store *w, uint64_t seq);

/* Calls fn for each slice with from < seq <= to, with the lock released (pinned slices stay). */
void slice_store_each(struct slice_store *w, uint64_t from, uint64_t to,
		       void (*fn)(const struct slice *s, void *ctx), void *ctx);

#endif
