#include "exporter/symbols/python_functions.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct function {
	char *qualname, *filename;
	uint64_t hash;
};

/* Entries below count are complete and never change: readers need no lock. */
static struct function *functions;
static uint32_t *slots; /* open addressing, id + 1; at most half full, up to twice the capacity */
static uint32_t capacity, nslots, max_slots;
static atomic_uint count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The slots start small and double as functions come: slots sized for the capacity at once would
 * put each function on a page of its own, every page touched resident (8 MiB for 2^20 functions). */
#define MIN_SLOTS 1024

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL;
}

int python_functions_init(uint32_t cap)
{
	if (cap < 2 || cap > (1u << PYTHON_FUNCTION_ID_BITS))
		return -EINVAL;
	if (functions)
		return 0; /* the table outlives collectors: the history ring's ids stay good */
	max_slots = 1;
	while (max_slots < 2 * cap)
		max_slots <<= 1;
	nslots = max_slots < MIN_SLOTS ? max_slots : MIN_SLOTS;
	functions = calloc(cap, sizeof(*functions));
	slots = calloc(nslots, sizeof(*slots));
	if (!functions || !slots) {
		free(functions);
		free(slots);
		functions = NULL;
		slots = NULL;
		return -ENOMEM;
	}
	capacity = cap;
	functions[0] = (struct function){ .qualname = (char *)PYTHON_UNRESOLVED_NAME, .filename = (char *)"" };
	atomic_store(&count, 1);
	return 0;
}

static int add(const char *qualname, const char *filename, uint64_t h, uint32_t slot, uint32_t *id)
{
	uint32_t n = atomic_load_explicit(&count, memory_order_relaxed);
	struct function *f = &functions[n];

	if (n == capacity)
		return -ENOSPC;
	f->qualname = strdup(qualname);
	f->filename = strdup(filename);
	if (!f->qualname || !f->filename) {
		free(f->qualname);
		free(f->filename);
		return -ENOMEM;
	}
	f->hash = h;
	slots[slot] = n + 1;
	*id = n;
	atomic_store_explicit(&count, n + 1, memory_order_release);
	return 0;
}

/* Doubles the slots when they are half full. Lock held. */
static int grow_slots(void)
{
	uint32_t n = atomic_load_explicit(&count, memory_order_relaxed), *fresh, ns = nslots * 2;

	if (2 * (uint64_t)n < nslots || nslots >= max_slots)
		return 0;
	fresh = calloc(ns, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	for (uint32_t id = 1; id < n; id++) {
		uint32_t j = (uint32_t)functions[id].hash & (ns - 1);

		while (fresh[j])
			j = (j + 1) & (ns - 1);
		fresh[j] = id + 1;
	}
	free(slots);
	slots = fresh;
	nslots = ns;
	return 0;
}

int python_functions_intern(const char *qualname, const char *filename, uint32_t *id)
{
	uint64_t h = hash_str(hash_str(0xcbf29ce484222325ULL, qualname), filename);
	uint32_t j;
	int err;

	if (!functions)
		return -ENOSPC;
	pthread_mutex_lock(&lock);
	/* Short of memory, a table still below three quarters full serves. */
	if (grow_slots() && 4 * (uint64_t)atomic_load(&count) >= 3 * (uint64_t)nslots) {
		pthread_mutex_unlock(&lock);
		return -ENOMEM;
	}
	for (j = (uint32_t)h & (nslots - 1); slots[j]; j = (j + 1) & (nslots - 1)) {
		const struct function *f = &functions[slots[j] - 1];

		if (f->hash == h && strcmp(f->qualname, qualname) == 0 && strcmp(f->filename, filename) == 0) {
			*id = slots[j] - 1;
			pthread_mutex_unlock(&lock);
			return 0;
		}
	}
	err = add(qualname, filename, h, j, id);
	pthread_mutex_unlock(&lock);
	return err;
}

uint32_t python_functions_count(void)
{
	return atomic_load(&count);
}

bool python_frame_function(uint64_t frame, const char **qualname, const char **filename)
{
	uint32_t id = (uint32_t)(frame >> 32) & ((1u << PYTHON_FUNCTION_ID_BITS) - 1);

	if (!python_frame_is(frame))
		return false;
	if (id >= atomic_load_explicit(&count, memory_order_acquire))
		id = 0;
	*qualname = functions ? functions[id].qualname : PYTHON_UNRESOLVED_NAME;
	*filename = functions ? functions[id].filename : "";
	return true;
}
