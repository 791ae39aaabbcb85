#include "exporter/store/history_dict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Dictionary blobs live in chunks that never move, so pointers into them stay valid. */
#define CHUNK_BYTES (64 * 1024)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
};

int stable_reserve(struct stable *a, size_t elem, uint64_t need, size_t *bytes)
{
	while (a->cap < need) {
		size_t n = (size_t)STABLE_BASE << a->nsegs;

		if (a->nsegs == STABLE_SEGS)
			return -E2BIG;
		a->segs[a->nsegs] = calloc(n, elem);
		if (!a->segs[a->nsegs])
			return -ENOMEM;
		a->nsegs++;
		a->cap += n;
		*bytes += n * elem;
	}
	return 0;
}

void stable_free(struct stable *a)
{
	for (uint32_t k = 0; k < a->nsegs; k++)
		free(a->segs[k]);
	memset(a, 0, sizeof(*a));
}

static uint64_t hash_blob(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	h ^= h >> 29;
	return h * 0xbf58476d1ce4e5b9ULL;
}

void dict_free(struct dict *d)
{
	while (d->chunks) {
		struct chunk *next = d->chunks->next;

		free(d->chunks);
		d->chunks = next;
	}
	stable_free(&d->data);
	stable_free(&d->lens);
	free(d->table);
	memset(d, 0, sizeof(*d));
}

static void *arena_alloc(struct dict *d, size_t len)
{
	struct chunk *c = d->chunks;

	len = (len + 7) & ~(size_t)7;
	if (!c || c->cap - c->used < len) {
		size_t cap = len > CHUNK_BYTES / 4 ? len : CHUNK_BYTES;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = d->chunks;
		d->chunks = c;
		d->bytes += sizeof(*c) + cap;
	}
	c->used += len;
	return c->data + c->used - len;
}

static int dict_rehash(struct dict *d)
{
	uint32_t cap = d->tcap ? d->tcap * 2 : 256;
	uint32_t *table = calloc(cap, sizeof(*table));

	if (!table)
		return -ENOMEM;
	for (uint32_t id = 0; id < d->n; id++) {
		const struct blob b = dict_blob(d, id);
		uint32_t j = (uint32_t)hash_blob(b.data, b.len) & (cap - 1);

		while (table[j])
			j = (j + 1) & (cap - 1);
		table[j] = id + 1;
	}
	d->bytes += (size_t)(cap - d->tcap) * sizeof(*table);
	free(d->table);
	d->table = table;
	d->tcap = cap;
	return 0;
}

int dict_intern(struct dict *d, const void *blob, size_t len, uint32_t *id, bool *added)
{
	if ((d->n + 1) * 2 > d->tcap && dict_rehash(d))
		return -ENOMEM;

	uint32_t j = (uint32_t)hash_blob(blob, len) & (d->tcap - 1);
	for (; d->table[j]; j = (j + 1) & (d->tcap - 1)) {
		uint32_t k = d->table[j] - 1;
		const struct blob b = dict_blob(d, k);

		if (b.len == len && !memcmp(b.data, blob, len)) {
			*id = k;
			if (added)
				*added = false;
			return 0;
		}
	}
	int err = stable_reserve(&d->data, sizeof(void *), (uint64_t)d->n + 1, &d->bytes) ?:
		  stable_reserve(&d->lens, sizeof(uint32_t), (uint64_t)d->n + 1, &d->bytes);
	if (err)
		return err;
	void *copy = arena_alloc(d, len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, blob, len);
	*(const void **)stable_at(&d->data, sizeof(void *), d->n) = copy;
	*(uint32_t *)stable_at(&d->lens, sizeof(uint32_t), d->n) = (uint32_t)len;
	d->table[j] = d->n + 1;
	*id = d->n++;
	if (added)
		*added = true;
	return 0;
}
