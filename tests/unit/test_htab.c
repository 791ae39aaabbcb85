#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/htab.h"

/* Entries are integers; the hash is whatever the test says, so collisions are chosen, not hoped for. */
struct ints {
	struct htab index;
	uint64_t *keys;
	uint32_t n, cap;
	unsigned eq_calls;
};

static bool int_eq(const void *ctx, uint32_t id, const void *key)
{
	struct ints *t = (struct ints *)ctx;

	t->eq_calls++;
	return t->keys[id] == *(const uint64_t *)key;
}

/* The id of key under hash, added when new. */
static uint32_t ints_add(struct ints *t, uint64_t key, uint32_t hash)
{
	struct htab_slot *slot;

	assert_int_equal(htab_reserve(&t->index), 0);
	slot = htab_find(&t->index, hash, int_eq, t, &key);
	if (htab_used(slot))
		return htab_id(slot);
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->keys = realloc(t->keys, t->cap * sizeof(*t->keys));
		assert_non_null(t->keys);
	}
	t->keys[t->n] = key;
	htab_set(&t->index, slot, hash, t->n);
	return t->n++;
}

static bool ints_has(struct ints *t, uint64_t key, uint32_t hash)
{
	return htab_used(htab_find(&t->index, hash, int_eq, t, &key));
}

static void ints_free(struct ints *t)
{
	htab_free(&t->index);
	free(t->keys);
}

static void test_dense_ids_in_insertion_order(void **state)
{
	struct ints t = { 0 };
	(void)state;

	for (uint64_t k = 0; k < 100; k++)
		assert_int_equal(ints_add(&t, k * 7919, htab_hash32(htab_mix(0, k * 7919))), k);
	for (uint64_t k = 0; k < 100; k++)
		assert_int_equal(ints_add(&t, k * 7919, htab_hash32(htab_mix(0, k * 7919))), k);
	assert_int_equal(t.n, 100);
	assert_int_equal(t.index.count, 100);
	ints_free(&t);
}

/* Growth keeps every entry findable and the index at most half full. */
static void test_growth_keeps_load_at_most_half(void **state)
{
	struct ints t = { 0 };
	uint32_t grows = 0, cap = 0;
	(void)state;

	assert_int_equal(htab_bytes(&t.index), 0);
	for (uint64_t k = 0; k < 100000; k++) {
		ints_add(&t, k, htab_hash32(htab_mix(0, k)));
		if (t.index.mask + 1 != cap) {
			cap = t.index.mask + 1;
			grows++;
		}
		assert_true((uint64_t)t.index.count * 2 <= (uint64_t)t.index.mask + 1);
	}
	assert_int_equal(t.index.mask + 1, 262144); /* 100000 needs 2^18 slots at half load */
	assert_int_equal(grows, 11);                /* 256 .. 2^18 */
	assert_int_equal(htab_bytes(&t.index), 262144 * sizeof(struct htab_slot));
	for (uint64_t k = 0; k < 100000; k++)
		assert_true(ints_has(&t, k, htab_hash32(htab_mix(0, k))));
	assert_false(ints_has(&t, 100000, htab_hash32(htab_mix(0, 100000))));
	ints_free(&t);
}

/* Keys sharing one hash all land, each found by eq, across growth and past the table's end. */
static void test_full_collisions(void **state)
{
	struct ints t = { 0 };
	(void)state;

	for (uint64_t k = 0; k < 1000; k++)
		assert_int_equal(ints_add(&t, k, 0xffffffffu), k);
	for (uint64_t k = 0; k < 1000; k++)
		assert_int_equal(ints_add(&t, k, 0xffffffffu), k);
	assert_false(ints_has(&t, 5000, 0xffffffffu));
	/* The same key under another hash is another entry: equality is only asked on equal hashes. */
	t.eq_calls = 0;
	assert_int_equal(ints_add(&t, 7, 12345), 1000);
	assert_int_equal(t.eq_calls, 0);
	ints_free(&t);
}

/* Clearing keeps the slots; the ids start again from 0. */
static void test_clear_and_reuse(void **state)
{
	struct ints t = { 0 };
	uint32_t mask;
	(void)state;

	for (uint64_t k = 0; k < 1000; k++)
		ints_add(&t, k, (uint32_t)k);
	mask = t.index.mask;
	htab_clear(&t.index);
	t.n = 0;
	assert_int_equal(t.index.count, 0);
	assert_int_equal(t.index.mask, mask);
	assert_false(ints_has(&t, 3, 3));
	assert_int_equal(ints_add(&t, 3, 3), 0);
	assert_true(ints_has(&t, 3, 3));
	ints_free(&t);
	assert_null(t.index.slots);
}

static void test_hash_bytes(void **state)
{
	(void)state;

	assert_int_equal(htab_hash_bytes("abc", 3), htab_hash_bytes("abcd", 3));
	assert_int_not_equal(htab_hash_bytes("abc", 3), htab_hash_bytes("abd", 3));
	/* The length is folded in, so "" and "\0" differ. */
	assert_int_not_equal(htab_hash_bytes("", 0), htab_hash_bytes("", 1));
}

static void test_strset(void **state)
{
	struct strset s = { 0 };
	char buf[32];
	(void)state;

	assert_int_equal(strset_add(&s, "total"), 0);
	assert_int_equal(strset_add(&s, ""), 1);
	assert_int_equal(strset_add(&s, "total"), 0);
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "fn_%d", i);
		assert_int_equal(strset_add(&s, buf), i + 2);
	}
	snprintf(buf, sizeof(buf), "fn_%d", 4321);
	assert_int_equal(strset_add(&s, buf), 4323);
	assert_string_equal(s.strs[4323], "fn_4321");
	assert_ptr_not_equal(s.strs[4323], buf); /* a copy */
	assert_int_equal(s.n, 5002);
	strset_free(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.strs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense_ids_in_insertion_order),
		cmocka_unit_test(test_growth_keeps_load_at_most_half),
		cmocka_unit_test(test_full_collisions),
		cmocka_unit_test(test_clear_and_reuse),
		cmocka_unit_test(test_hash_bytes),
		cmocka_unit_test(test_strset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
