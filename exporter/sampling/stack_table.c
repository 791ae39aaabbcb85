#include "exporter/sampling/stack_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t stack_hash32(uint64_t hash)
{
	return htab_hash32(hash * 0x9e3779b97f4a7c15ULL);
}

static bool stack_eq(const void *ctx, uint32_t id, const void *key)
{
	return ((const struct stack_table *)ctx)->entries[id].hash == *(const uint64_t *)key;
}

/* Room for depth more frames and one more entry. */
static int stack_table_reserve(struct stack_table *t, uint32_t depth)
{
	if (t->nframes + depth > t->frames_cap) {
		size_t cap = t->frames_cap ? t->frames_cap : 4096;
		while (cap < t->nframes + depth)
			cap *= 2;
		uint64_t *grown = realloc(t->frames, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->frames = grown;
		t->frames_cap = cap;
	}
	if (t->n == t->entries_cap) {
		size_t cap = t->entries_cap ? t->entries_cap * 2 : 1024;
		struct stack_entry *grown = realloc(t->entries, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->entries = grown;
		t->entries_cap = cap;
	}
	return htab_reserve(&t->index);
}

int stack_table_add(struct stack_table *t, uint64_t hash, const struct stack_trace *trace)
{
	uint32_t depth = 0, h = stack_hash32(hash);
	struct htab_slot *slot;

	while (depth < PROFILER_MAX_STACK_DEPTH && trace->frames[depth])
		depth++;
	if (stack_table_reserve(t, depth))
		return -ENOMEM;
	slot = htab_find(&t->index, h, stack_eq, t, &hash);
	if (htab_used(slot))
		return 0;
	memcpy(t->frames + t->nframes, trace->frames, depth * sizeof(uint64_t));
	t->entries[t->n] = (struct stack_entry){ .hash = hash, .first = (uint32_t)t->nframes, .depth = depth };
	htab_set(&t->index, slot, h, (uint32_t)t->n);
	t->nframes += depth;
	t->n++;
	return 0;
}

void stack_table_reset(struct stack_table *t)
{
	htab_clear(&t->index);
	t->n = 0;
	t->nframes = 0;
}

const uint64_t *stack_table_frames(struct stack_table *t, uint64_t hash, uint32_t *depth)
{
	struct htab_slot *slot = hash && t->index.slots ?
		htab_find(&t->index, stack_hash32(hash), stack_eq, t, &hash) : NULL;
	const struct stack_entry *e = slot && htab_used(slot) ? &t->entries[htab_id(slot)] : NULL;

	*depth = e ? e->depth : 0;
	return *depth ? t->frames + e->first : NULL;
}

void stack_table_free(struct stack_table *t)
{
	htab_free(&t->index);
	free(t->entries);
	free(t->frames);
	memset(t, 0, sizeof(*t));
}
