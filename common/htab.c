#include "common/htab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Moves every used slot of t into slots (ncap of them, empty). */
static void rehash_into(const struct htab *t, struct htab_slot *slots, uint32_t ncap)
{
	for (uint32_t i = 0; t->slots && i <= t->mask; i++) {
		const struct htab_slot *s = &t->slots[i];
		uint32_t j = s->hash & (ncap - 1);

		if (!s->id1)
			continue;
		while (slots[j].id1)
			j = (j + 1) & (ncap - 1);
		slots[j] = *s;
	}
}

int htab_reserve(struct htab *t)
{
	uint32_t cap = t->slots ? t->mask + 1 : 0, ncap;
	struct htab_slot *slots;

	if (t->slots && (uint64_t)(t->count + 1) * 2 <= cap)
		return 0;
	if (cap > UINT32_MAX / 2)
		return -E2BIG;
	ncap = cap ? cap * 2 : HTAB_MIN_SLOTS;
	slots = calloc(ncap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	rehash_into(t, slots, ncap);
	free(t->slots);
	t->slots = slots;
	t->mask = ncap - 1;
	return 0;
}

void htab_clear(struct htab *t)
{
	if (t->slots)
		memset(t->slots, 0, ((size_t)t->mask + 1) * sizeof(*t->slots));
	t->count = 0;
}

void htab_free(struct htab *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

size_t htab_bytes(const struct htab *t)
{
	return t->slots ? ((size_t)t->mask + 1) * sizeof(*t->slots) : 0;
}

uint32_t htab_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return htab_hash32(htab_mix(h, n));
}

/* --- strset ----------------------------------------------------------------------------------------- */

static bool str_eq(const void *ctx, uint32_t id, const void *key)
{
	const struct strset *s = ctx;

	return !strcmp(s->strs[id], key);
}

int64_t strset_add(struct strset *s, const char *str)
{
	uint32_t hash = htab_hash_bytes(str, strlen(str));
	struct htab_slot *slot;

	if (htab_reserve(&s->index))
		return -ENOMEM;
	slot = htab_find(&s->index, hash, str_eq, s, str);
	if (htab_used(slot))
		return htab_id(slot);
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		char **strs = realloc(s->strs, cap * sizeof(*strs));

		if (!strs)
			return -ENOMEM;
		s->strs = strs;
		s->cap = cap;
	}
	s->strs[s->n] = strdup(str);
	if (!s->strs[s->n])
		return -ENOMEM;
	htab_set(&s->index, slot, hash, s->n);
	return s->n++;
}

void strset_free(struct strset *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		free(s->strs[i]);
	free(s->strs);
	htab_free(&s->index);
	memset(s, 0, sizeof(*s));
}
