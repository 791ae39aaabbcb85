/* The history ring's dictionaries (interned byte blobs with dense ids, per epoch) and the stable arrays
 * under them: what was written never moves while they grow. */
#ifndef ANORAK_HISTORY_DICT_H
#define ANORAK_HISTORY_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/htab.h"

/* Segment k holds STABLE_BASE << k elements, so a fixed table of segments covers every uint32 index
 * and growing never moves what was written: a query reads ids it saw under the lock after releasing
 * it while the drain thread keeps appending. */
#define STABLE_BASE_SHIFT 6
#define STABLE_BASE (1u << STABLE_BASE_SHIFT)
#define STABLE_SEGS (32 - STABLE_BASE_SHIFT)

struct stable {
	void *segs[STABLE_SEGS];
	uint32_t nsegs;
	uint64_t cap; /* elements in the segments */
};

static inline void *stable_at(const struct stable *a, size_t elem, uint32_t i)
{
	uint64_t p = (uint64_t)i + STABLE_BASE;
	unsigned k = 63 - __builtin_clzll(p) - STABLE_BASE_SHIFT;

	return (char *)a->segs[k] + (size_t)(p - ((uint64_t)STABLE_BASE << k)) * elem;
}

/* Room for ids below need, zeroed; bytes grows by what is allocated. */
int stable_reserve(struct stable *a, size_t elem, uint64_t need, size_t *bytes);
void stable_free(struct stable *a);

struct chunk;

struct blob {
	const void *data;
	uint32_t len;
};

/* Append-only: ids, blobs and chunks stay where they are until the dictionary is freed. */
struct dict {
	struct chunk *chunks;   /* where the blobs are */
	struct stable data, lens; /* per id: const void *, uint32_t */
	uint32_t n;
	struct htab index;        /* only the writer reads it; gone once the epoch is not current */
	size_t bytes;
};

static inline struct blob dict_blob(const struct dict *d, uint32_t id)
{
	return (struct blob){ *(const void **)stable_at(&d->data, sizeof(void *), id),
			      *(const uint32_t *)stable_at(&d->lens, sizeof(uint32_t), id) };
}

void dict_free(struct dict *d);
/* Frees the index of a dictionary nothing will be added to any more; its blobs stay readable. */
void dict_drop_index(struct dict *d);
/* The id of the blob, added when new (*added set, when added is not NULL); negative errno. */
int dict_intern(struct dict *d, const void *blob, size_t len, uint32_t *id, bool *added);

#endif
