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

void dict_free(struct dict *d)
{
	while (d->chunks) {
		struct chunk *next = d->chunks->next;

		free(d->chunks);
		d->chunks = next;
	}
	stable_free(&d->data);
	stable_free(&d->lens);
	htab_free(&d->index);
	memset(d, 0, sizeof(*d));
}

void dict_drop_index(struct dict *d)
{
	d->bytes -= htab_bytes(&d->index);
	htab_free(&d->index);
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

static bool blob_eq(const void *ctx, uint32_t id, const void *key)
{
	const struct blob b = dict_blob(ctx, id), *k = key;

	return b.len == k->len && !memcmp(b.data, k->data, k->len);
}

/* Room in the index for one more id, its growth counted in d->bytes. */
static int dict_reserve(struct dict *d)
{
	size_t before = htab_bytes(&d->index);
	int err = htab_reserve(&d->index);

	d->bytes += htab_bytes(&d->index) - before;
	return err;
}

int dict_intern(struct dict *d, const void *blob, size_t len, uint32_t *id, bool *added)
{
	const struct blob key = { blob, (uint32_t)len };
	uint32_t hash = htab_hash_bytes(blob, len);
	struct htab_slot *slot;

	if (dict_reserve(d))
		return -ENOMEM;
	slot = htab_find(&d->index, hash, blob_eq, d, &key);
	if (htab_used(slot)) {
		*id = htab_id(slot);
		if (added)
			*added = false;
		return 0;
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
	htab_set(&d->index, slot, hash, d->n);
	*id = d->n++;
	if (added)
		*added = true;
	return 0;
}
