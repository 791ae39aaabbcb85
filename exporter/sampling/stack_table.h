/*
 * The stacks of one drained generation by their BPF hash, their frames in an arena: the count map's
 * entries name their stacks by hash, so a drain reads the stack maps first and looks each up here.
 * Reused across drains (reset keeps the memory).
 */
#ifndef ANORAK_STACK_TABLE_H
#define ANORAK_STACK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/profiler.h"
#include "common/htab.h"

struct stack_table {
	struct htab index; /* hash -> entries */
	struct stack_entry {
		uint64_t hash;
		uint32_t first, depth;
	} *entries;
	size_t n, entries_cap;
	uint64_t *frames;
	size_t nframes, frames_cap;
};

/* Adds the stack named hash (its frames up to the first 0), once; -ENOMEM. */
int stack_table_add(struct stack_table *t, uint64_t hash, const struct stack_trace *trace);
/* Frames of the stack named hash; none when hash is 0 or the stack was lost. */
const uint64_t *stack_table_frames(struct stack_table *t, uint64_t hash, uint32_t *depth);
/* Empties the table, keeping its memory for the next drain. */
void stack_table_reset(struct stack_table *t);
void stack_table_free(struct stack_table *t);

#endif
