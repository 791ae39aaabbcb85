/*
 * Where unwind tables go in BPF: a slot of unwind_tables and a run of whole blocks of the shared row
 * array (bpf/unwind.h: UNWIND_BLOCK_ROWS rows each, so a table starts on a block and the row index
 * names its blocks). When a table does not fit, the least recently used tables are evicted, in
 * batches, oldest first; tables pinned by the install in progress (the process being added) are never
 * chosen. No BPF here: the caller says when a table was last used and waits out the readers of
 * evicted rows through callbacks.
 */
#ifndef ANORAK_UNWIND_ALLOC_H
#define ANORAK_UNWIND_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/unwind.h"

/* Tables evicted per batch: one wait for readers covers them all. */
#define UNWIND_EVICT_BATCH 16

struct unwind_alloc_ops {
	/* When the table in slot was last used (samples, installs), on any clock that only grows. */
	uint64_t (*last_used)(void *ctx, uint32_t slot);
	/* The tables in slots[0..n) were evicted (their slots are free, gens bumped): return 0 once no
	 * reader can still use their rows, which are then reused; an error leaks the rows instead. */
	int (*evicted)(void *ctx, const uint32_t *slots, int n);
	void *ctx;
};

struct unwind_slot {
	uint32_t first_block, nblocks;
	uint32_t gen;       /* changes whenever the slot is freed */
	bool used;
	uint64_t pin;       /* the install that uses it */
};

struct unwind_extent {
	uint32_t first, count; /* in blocks */
};

struct unwind_alloc {
	uint32_t nblocks, blocks_used;
	struct unwind_extent *free; /* free runs sorted by first; at most one per table plus one */
	size_t nfree;
	uint32_t tables;            /* slots used */
	uint64_t evicted;           /* tables evicted so far */
	uint64_t install;           /* the install in progress */
	struct unwind_slot slots[UNWIND_MAX_TABLES];
};

/* Blocks for nrows rows. */
static inline uint32_t unwind_blocks(uint32_t nrows)
{
	return (uint32_t)(((uint64_t)nrows + UNWIND_BLOCK_ROWS - 1) / UNWIND_BLOCK_ROWS);
}

/* An allocator for nblocks blocks (calloc'd: struct unwind_alloc is large). */
int unwind_alloc_new(uint32_t nblocks, struct unwind_alloc **out);
void unwind_alloc_free(struct unwind_alloc *a);

/* Starts an install: tables pinned before are evictable again. */
void unwind_alloc_begin_install(struct unwind_alloc *a);
/* The install in progress uses the table in slot: it is not evicted until the next install. */
void unwind_alloc_pin(struct unwind_alloc *a, uint32_t slot);

/* A slot and a run of blocks for nrows rows, pinned; evicts least recently used tables until they
 * fit. -ENOSPC when they cannot fit even then (or nrows is 0), or the error of ops->evicted. */
int unwind_alloc_table(struct unwind_alloc *a, uint32_t nrows, const struct unwind_alloc_ops *ops,
		       uint32_t *slot);
/* Frees a slot (its gen changes) and its blocks at once: for a table no reader has seen yet. */
void unwind_alloc_release(struct unwind_alloc *a, uint32_t slot);

#endif
