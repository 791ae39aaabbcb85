/*
 * The unwind table allocator (exporter/sampling/unwind_alloc.c): whole blocks per table, first fit, freed runs
 * merged, the counts the metrics report (blocks used, tables, evictions), least recently used
 * eviction in batches with one wait each, tables of the install in progress kept, and a failed wait
 * leaking rows rather than reusing them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/sampling/unwind_alloc.h"

/* Callback state: a last-use time per slot, and every eviction seen in order. */
struct fake {
	uint64_t used[UNWIND_MAX_TABLES];
	uint32_t evicted[64];
	int nevicted, waits, fail_wait;
	struct unwind_alloc *a;
};

static uint64_t fake_last_used(void *ctx, uint32_t slot)
{
	return ((struct fake *)ctx)->used[slot];
}

static int fake_evicted(void *ctx, const uint32_t *slots, int n)
{
	struct fake *f = ctx;

	f->waits++;
	for (int i = 0; i < n; i++) {
		/* Released before the callback: the slot is free and its gen moved on. */
		assert_false(f->a->slots[slots[i]].used);
		if (f->nevicted < 64)
			f->evicted[f->nevicted++] = slots[i];
	}
	return f->fail_wait;
}

static struct unwind_alloc_ops ops_for(struct fake *f)
{
	return (struct unwind_alloc_ops){ .last_used = fake_last_used, .evicted = fake_evicted, .ctx = f };
}

static struct unwind_alloc *new_alloc(uint32_t nblocks, struct fake *f)
{
	struct unwind_alloc *a;

	assert_int_equal(unwind_alloc_new(nblocks, &a), 0);
	memset(f, 0, sizeof(*f));
	f->a = a;
	return a;
}

static void test_blocks(void **state)
{
	(void)state;
	assert_int_equal(unwind_blocks(0), 0);
	assert_int_equal(unwind_blocks(1), 1);
	assert_int_equal(unwind_blocks(UNWIND_BLOCK_ROWS), 1);
	assert_int_equal(unwind_blocks(UNWIND_BLOCK_ROWS + 1), 2);
	assert_int_equal(unwind_blocks(UINT32_MAX), (UINT32_MAX / UNWIND_BLOCK_ROWS) + 1);
}

static void test_alloc_and_release(void **state)
{
	struct fake f;
	struct unwind_alloc *a = new_alloc(10, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t s1, s2, s3;

	(void)state;
	assert_int_equal(unwind_alloc_table(a, 100, &ops, &s1), 0);                     /* 1 block */
	assert_int_equal(unwind_alloc_table(a, 3 * UNWIND_BLOCK_ROWS, &ops, &s2), 0);  /* 3 */
	assert_int_equal(unwind_alloc_table(a, 2 * UNWIND_BLOCK_ROWS - 1, &ops, &s3), 0); /* 2 */
	assert_int_not_equal(s1, s2);
	assert_int_not_equal(s2, s3);
	assert_int_equal(a->slots[s1].first_block, 0);
	assert_int_equal(a->slots[s1].nblocks, 1);
	assert_int_equal(a->slots[s2].first_block, 1);
	assert_int_equal(a->slots[s2].nblocks, 3);
	assert_int_equal(a->slots[s3].first_block, 4);
	assert_int_equal(a->blocks_used, 6);
	assert_int_equal(a->tables, 3);

	/* Freeing the middle then its neighbours merges everything back into one run. */
	uint32_t gen = a->slots[s2].gen;
	unwind_alloc_release(a, s2);
	assert_int_equal(a->slots[s2].gen, gen + 1);
	assert_false(a->slots[s2].used);
	assert_int_equal(a->blocks_used, 3);
	assert_int_equal(a->nfree, 2);
	/* First fit: a 2-block table goes into the hole. */
	uint32_t s4;
	assert_int_equal(unwind_alloc_table(a, 2 * UNWIND_BLOCK_ROWS, &ops, &s4), 0);
	assert_int_equal(a->slots[s4].first_block, 1);
	unwind_alloc_release(a, s4);
	unwind_alloc_release(a, s1);
	unwind_alloc_release(a, s3);
	unwind_alloc_release(a, s3); /* twice: ignored */
	assert_int_equal(a->blocks_used, 0);
	assert_int_equal(a->tables, 0);
	assert_int_equal(a->nfree, 1);
	assert_int_equal(a->free[0].first, 0);
	assert_int_equal(a->free[0].count, 10);
	assert_int_equal(f.waits, 0);
	assert_int_equal(a->evicted, 0);
	unwind_alloc_free(a);
}

static void test_too_big(void **state)
{
	struct fake f;
	struct unwind_alloc *a = new_alloc(4, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t s;

	(void)state;
	assert_int_equal(unwind_alloc_table(a, 0, &ops, &s), -ENOSPC);
	assert_int_equal(unwind_alloc_table(a, 4 * UNWIND_BLOCK_ROWS + 1, &ops, &s), -ENOSPC);
	assert_int_equal(unwind_alloc_table(a, 4 * UNWIND_BLOCK_ROWS, &ops, &s), 0);
	assert_int_equal(a->blocks_used, 4);
	unwind_alloc_free(a);
}

/* Fills 8 blocks with 8 one-block tables, slot i last used at time used[i]. */
static void fill(struct unwind_alloc *a, struct fake *f, const uint64_t *used, uint32_t *slots)
{
	struct unwind_alloc_ops ops = ops_for(f);

	for (int i = 0; i < 8; i++) {
		assert_int_equal(unwind_alloc_table(a, 1, &ops, &slots[i]), 0);
		f->used[slots[i]] = used[i];
	}
	assert_int_equal(a->blocks_used, 8);
}

static void test_lru_order(void **state)
{
	static const uint64_t used[8] = { 50, 10, 30, 20, 70, 80, 60, 40 };
	struct fake f;
	struct unwind_alloc *a = new_alloc(8, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t slots[8], s;

	(void)state;
	fill(a, &f, used, slots);
	unwind_alloc_begin_install(a); /* the tables above are no longer pinned */

	/* Three blocks: the three least recently used (blocks 1-3) go, oldest first, in one wait. */
	assert_int_equal(unwind_alloc_table(a, 3 * UNWIND_BLOCK_ROWS, &ops, &s), 0);
	assert_int_equal(f.waits, 1);
	assert_int_equal(f.nevicted, 3);
	assert_int_equal(f.evicted[0], slots[1]); /* 10 */
	assert_int_equal(f.evicted[1], slots[3]); /* 20 */
	assert_int_equal(f.evicted[2], slots[2]); /* 30 */
	assert_int_equal(a->evicted, 3);
	assert_int_equal(a->tables, 6);
	assert_int_equal(a->blocks_used, 8);
	assert_true(a->slots[s].used);
	assert_int_equal(a->slots[s].nblocks, 3);
	assert_int_equal(a->slots[s].first_block, 1);

	/* The new table is pinned by this install; the next one to go is slot 7's (40). */
	f.used[s] = 0;
	assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), 0);
	assert_int_equal(f.nevicted, 4);
	assert_int_equal(f.evicted[3], slots[7]);
	unwind_alloc_free(a);
}

static void test_pinned_kept(void **state)
{
	static const uint64_t used[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct fake f;
	struct unwind_alloc *a = new_alloc(8, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t slots[8], s;

	(void)state;
	fill(a, &f, used, slots);
	/* All eight belong to the install in progress: nothing can go. */
	assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), -ENOSPC);
	assert_int_equal(f.waits, 0);

	/* A new install that uses the two oldest: the third oldest goes. */
	unwind_alloc_begin_install(a);
	unwind_alloc_pin(a, slots[0]);
	unwind_alloc_pin(a, slots[1]);
	assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), 0);
	assert_int_equal(f.nevicted, 1);
	assert_int_equal(f.evicted[0], slots[2]);
	unwind_alloc_free(a);
}

static void test_batches(void **state)
{
	struct fake f;
	struct unwind_alloc *a = new_alloc(40, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t s;

	(void)state;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), 0);
		f.used[s] = 1000 + (uint64_t)i;
	}
	unwind_alloc_begin_install(a);
	/* 20 blocks: one batch of UNWIND_EVICT_BATCH, then another for the rest. */
	assert_int_equal(unwind_alloc_table(a, 20 * UNWIND_BLOCK_ROWS, &ops, &s), 0);
	assert_int_equal(f.waits, 2);
	assert_int_equal(a->evicted, 20);
	assert_int_equal(a->tables, 21);
	assert_int_equal(a->blocks_used, 40);
	for (int i = 1; i < f.nevicted; i++)
		assert_true(f.used[f.evicted[i - 1]] < f.used[f.evicted[i]]);
	unwind_alloc_free(a);
}

static void test_fragmented(void **state)
{
	static const uint64_t used[8] = { 1, 9, 2, 9, 3, 9, 4, 9 };
	struct fake f;
	struct unwind_alloc *a = new_alloc(8, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t slots[8], s;

	(void)state;
	fill(a, &f, used, slots);
	unwind_alloc_begin_install(a);
	/* The four oldest are every other block: freeing them leaves no two adjacent, so eviction goes
	 * on (to the newer ones) until a run of two exists. */
	assert_int_equal(unwind_alloc_table(a, 2 * UNWIND_BLOCK_ROWS, &ops, &s), 0);
	assert_true(f.nevicted >= 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f.evicted[i], slots[2 * i]);
	assert_int_equal(a->blocks_used, 8 - (uint32_t)f.nevicted + 2);
	unwind_alloc_free(a);
}

static void test_slots_run_out(void **state)
{
	struct fake f;
	struct unwind_alloc *a = new_alloc(UNWIND_MAX_TABLES + 10, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t s, first = 0;

	(void)state;
	for (uint32_t i = 0; i < UNWIND_MAX_TABLES; i++) {
		assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), 0);
		f.used[s] = 5000 - (i % 5000);
		if (i == 4999)
			first = s; /* the least recently used */
	}
	unwind_alloc_begin_install(a);
	/* Blocks are left but no slot: exactly one table, the oldest, is evicted. */
	assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), 0);
	assert_int_equal(f.nevicted, 1);
	assert_int_equal(f.evicted[0], first);
	assert_int_equal(s, first);
	assert_int_equal(a->tables, UNWIND_MAX_TABLES);
	unwind_alloc_free(a);
}

static void test_failed_wait_leaks(void **state)
{
	static const uint64_t used[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct fake f;
	struct unwind_alloc *a = new_alloc(8, &f);
	struct unwind_alloc_ops ops = ops_for(&f);
	uint32_t slots[8], s;

	(void)state;
	fill(a, &f, used, slots);
	unwind_alloc_begin_install(a);
	f.fail_wait = -EINTR;
	assert_int_equal(unwind_alloc_table(a, 1, &ops, &s), -EINTR);
	/* The victim is gone (its slot free) but its block is not reused. */
	assert_int_equal(a->tables, 7);
	assert_int_equal(a->evicted, 1);
	assert_int_equal(a->blocks_used, 8);
	unwind_alloc_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_alloc_and_release),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_pinned_kept),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_fragmented),
		cmocka_unit_test(test_slots_run_out),
		cmocka_unit_test(test_failed_wait_leaks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
