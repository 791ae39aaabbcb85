#include "exporter/sampling/unwind_alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int unwind_alloc_new(uint32_t nblocks, struct unwind_alloc **out)
{
	struct unwind_alloc *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->free = calloc(UNWIND_MAX_TABLES + 2, sizeof(*a->free));
	if (!a->free) {
		free(a);
		return -ENOMEM;
	}
	a->nblocks = nblocks;
	if (nblocks) {
		a->free[0] = (struct unwind_extent){ 0, nblocks };
		a->nfree = 1;
	}
	*out = a;
	return 0;
}

void unwind_alloc_free(struct unwind_alloc *a)
{
	if (!a)
		return;
	free(a->free);
	free(a);
}

void unwind_alloc_begin_install(struct unwind_alloc *a)
{
	a->install++;
}

void unwind_alloc_pin(struct unwind_alloc *a, uint32_t slot)
{
	if (slot < UNWIND_MAX_TABLES)
		a->slots[slot].pin = a->install;
}

/* First fit. */
static int extent_take(struct unwind_alloc *a, uint32_t count, uint32_t *first)
{
	for (size_t i = 0; i < a->nfree; i++) {
		struct unwind_extent *e = &a->free[i];

		if (e->count < count)
			continue;
		*first = e->first;
		e->first += count;
		e->count -= count;
		if (e->count == 0) {
			memmove(e, e + 1, (a->nfree - i - 1) * sizeof(*e));
			a->nfree--;
		}
		a->blocks_used += count;
		return 0;
	}
	return -ENOSPC;
}

/* Gives blocks back, merging with free neighbours. The array has room: one free run lies between two
 * tables (or at an end), and there are at most UNWIND_MAX_TABLES tables. */
static void extent_give(struct unwind_alloc *a, uint32_t first, uint32_t count)
{
	size_t i = 0;

	while (i < a->nfree && a->free[i].first < first)
		i++;
	a->blocks_used -= count;
	bool merge_prev = i > 0 && a->free[i - 1].first + a->free[i - 1].count == first;
	bool merge_next = i < a->nfree && first + count == a->free[i].first;
	if (merge_prev && merge_next) {
		a->free[i - 1].count += count + a->free[i].count;
		memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof(*a->free));
		a->nfree--;
	} else if (merge_prev) {
		a->free[i - 1].count += count;
	} else if (merge_next) {
		a->free[i].first = first;
		a->free[i].count += count;
	} else {
		memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof(*a->free));
		a->free[i] = (struct unwind_extent){ first, count };
		a->nfree++;
	}
}

static uint32_t largest_free_run(const struct unwind_alloc *a)
{
	uint32_t max = 0;

	for (size_t i = 0; i < a->nfree; i++)
		max = a->free[i].count > max ? a->free[i].count : max;
	return max;
}

static int free_slot(const struct unwind_alloc *a, uint32_t *slot)
{
	for (uint32_t i = 0; i < UNWIND_MAX_TABLES; i++) {
		if (!a->slots[i].used) {
			*slot = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static void slot_release(struct unwind_alloc *a, uint32_t slot)
{
	a->slots[slot].used = false;
	a->slots[slot].gen++;
	a->tables--;
}

struct candidate {
	uint64_t used;
	uint32_t slot;
};

static int cmp_candidate(const void *x, const void *y)
{
	const struct candidate *a = x, *b = y;

	if (a->used != b->used)
		return a->used < b->used ? -1 : 1;
	return a->slot < b->slot ? -1 : a->slot > b->slot;
}

/* Up to UNWIND_EVICT_BATCH of the least recently used unpinned tables, oldest first, with need_blocks
 * blocks between them (at least one table when need_slot): their slots are released, and victims[]
 * holds them with their blocks still taken. */
static int choose_victims(struct unwind_alloc *a, const struct unwind_alloc_ops *ops, uint32_t need_blocks,
			  bool need_slot, struct unwind_slot *victims, uint32_t *slots)
{
	struct candidate *c = malloc((a->tables ? a->tables : 1) * sizeof(*c));
	uint32_t n = 0, freed = 0;
	int nv = 0;

	if (!c)
		return -ENOMEM;
	for (uint32_t i = 0; i < UNWIND_MAX_TABLES && n < a->tables; i++)
		if (a->slots[i].used && a->slots[i].pin != a->install)
			c[n++] = (struct candidate){ ops->last_used(ops->ctx, i), i };
	qsort(c, n, sizeof(*c), cmp_candidate);
	for (uint32_t i = 0; i < n && nv < UNWIND_EVICT_BATCH && (freed < need_blocks || (need_slot && nv == 0)); i++) {
		victims[nv] = a->slots[c[i].slot];
		slots[nv++] = c[i].slot;
		freed += a->slots[c[i].slot].nblocks;
		slot_release(a, c[i].slot);
	}
	free(c);
	return nv;
}

int unwind_alloc_table(struct unwind_alloc *a, uint32_t nrows, const struct unwind_alloc_ops *ops,
		       uint32_t *slot)
{
	uint32_t need = unwind_blocks(nrows), first;

	if (need == 0 || need > a->nblocks)
		return -ENOSPC;
	for (;;) {
		bool have_slot = free_slot(a, slot) == 0;

		if (have_slot && extent_take(a, need, &first) == 0) {
			a->slots[*slot] = (struct unwind_slot){
				.first_block = first, .nblocks = need, .gen = a->slots[*slot].gen,
				.used = true, .pin = a->install,
			};
			a->tables++;
			return 0;
		}
		/* As many blocks as the largest free run lacks; more rounds when the freed ones are apart. */
		uint32_t run = largest_free_run(a), lack = run < need ? need - run : 0;
		struct unwind_slot victims[UNWIND_EVICT_BATCH];
		uint32_t slots[UNWIND_EVICT_BATCH];
		int nv = choose_victims(a, ops, lack, !have_slot, victims, slots);
		if (nv < 0)
			return nv;
		if (nv == 0)
			return -ENOSPC;
		a->evicted += (uint64_t)nv;
		int err = ops->evicted(ops->ctx, slots, nv);
		if (err)
			return err; /* the rows may still be read: leaked rather than reused */
		for (int i = 0; i < nv; i++)
			extent_give(a, victims[i].first_block, victims[i].nblocks);
	}
}

void unwind_alloc_release(struct unwind_alloc *a, uint32_t slot)
{
	if (slot >= UNWIND_MAX_TABLES || !a->slots[slot].used)
		return;
	extent_give(a, a->slots[slot].first_block, a->slots[slot].nblocks);
	slot_release(a, slot);
}
