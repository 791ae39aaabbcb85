/* An open-addressing hash index (linear probing, power-of-two size) from keys to dense ids. The caller
 * keeps the entries, usually in an array indexed by id, and compares a key with an entry through eq;
 * the index keeps each entry's 32-bit hash, so most mismatches and every regrowth skip eq.
 *
 *   if (htab_reserve(&t)) return -ENOMEM;          before each lookup that may insert
 *   slot = htab_find(&t, hash, eq, ctx, &key);
 *   if (htab_used(slot)) return htab_id(slot);
 *   ...append the entry as id n...; htab_set(&t, slot, hash, n);
 *
 * The index is at most half full: linear probing's expected probes for a miss are 2.5 there and 5 at
 * 2/3, and the lookups that miss (first sightings) are the hot ones. A zeroed struct htab is empty. */
#ifndef ANORAK_HTAB_H
#define ANORAK_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Slots of a first allocation. */
#define HTAB_MIN_SLOTS 256u

struct htab_slot {
	uint32_t hash;
	uint32_t id1; /* id + 1, 0 when the slot is free */
};

struct htab {
	struct htab_slot *slots;
	uint32_t mask; /* slots - 1 */
	uint32_t count;
};

/* Whether entry id equals key. */
typedef bool (*htab_eq_fn)(const void *ctx, uint32_t id, const void *key);

/* Makes room for one more id (allocating or doubling): slots htab_find returns stay valid until the
 * next reserve. 0 or -ENOMEM, -E2BIG past 2^31 slots. */
int htab_reserve(struct htab *t);

/* Empties the index, keeping its slots. */
void htab_clear(struct htab *t);

void htab_free(struct htab *t);

/* Bytes the slots take. */
size_t htab_bytes(const struct htab *t);

/* The slot of the entry equal to key, or the free slot where it belongs. Inline: it is the hot path
 * of every user, and eq is a direct call once inlined. Needs a reserved index (never full). */
static inline struct htab_slot *htab_find(const struct htab *t, uint32_t hash, htab_eq_fn eq,
					  const void *ctx, const void *key)
{
	for (uint32_t i = hash & t->mask;; i = (i + 1) & t->mask) {
		struct htab_slot *s = &t->slots[i];

		if (!s->id1 || (s->hash == hash && eq(ctx, s->id1 - 1, key)))
			return s;
	}
}

static inline bool htab_used(const struct htab_slot *s)
{
	return s->id1 != 0;
}

static inline uint32_t htab_id(const struct htab_slot *s)
{
	return s->id1 - 1;
}

/* Fills the free slot htab_find returned with id. */
static inline void htab_set(struct htab *t, struct htab_slot *s, uint32_t hash, uint32_t id)
{
	s->hash = hash;
	s->id1 = id + 1;
	t->count++;
}

/* FNV-1a of n bytes, finalized so that its low bits (the slot) depend on all of them. */
uint32_t htab_hash_bytes(const void *p, size_t n);

/* Folds v into the running hash h (splitmix64's finalizer): for keys of several integers. */
static inline uint64_t htab_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

/* The 32 bits of a mixed 64-bit hash the index keeps. */
static inline uint32_t htab_hash32(uint64_t h)
{
	return (uint32_t)(h >> 32);
}

/* --- a set of strings with dense ids, each a copy ----------------------------------------------- */

struct strset {
	char **strs; /* by id */
	uint32_t n, cap;
	struct htab index;
};

/* The id of str, added (copied) when new; -ENOMEM. */
int64_t strset_add(struct strset *s, const char *str);

void strset_free(struct strset *s);

#endif
