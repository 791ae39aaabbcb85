#include "exporter/store/slices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/htab.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"

/* From (user id, kernel id) to the frames already stored for that pair. */
struct stack_index {
	struct htab index;
	struct stack_key {
		uint64_t user_id, kernel_id;
		uint32_t frames;
	} *keys; /* by id */
	uint32_t n, cap;
};

struct slice *slice_new(uint64_t seq, int64_t start_ns, unsigned frequency)
{
	struct slice *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->seq = seq;
	s->start_ns = start_ns;
	s->frequency = frequency;
	return s;
}

static int grow(void **array, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t cap2 = *cap ? *cap : 64;
	while (cap2 < need)
		cap2 *= 2;
	void *grown = realloc(*array, cap2 * size);
	if (!grown)
		return -ENOMEM;
	*array = grown;
	*cap = cap2;
	return 0;
}

static uint32_t stack_hash(uint64_t user_id, uint64_t kernel_id)
{
	uint64_t h = (user_id ^ (kernel_id * 0xc2b2ae3d27d4eb4fULL)) * 0x9e3779b97f4a7c15ULL;

	return htab_hash32(h);
}

static bool stack_eq(const void *ctx, uint32_t id, const void *key)
{
	const struct stack_key *a = &((const struct stack_index *)ctx)->keys[id], *b = key;

	return a->user_id == b->user_id && a->kernel_id == b->kernel_id;
}

static void index_free(struct stack_index *idx)
{
	if (!idx)
		return;
	htab_free(&idx->index);
	free(idx->keys);
	free(idx);
}

/* Room for one more pair in the slice's index, made on first use. */
static int index_reserve(struct slice *s)
{
	struct stack_index *idx = s->stacks;

	if (!idx && !(idx = s->stacks = calloc(1, sizeof(*idx))))
		return -ENOMEM;
	if (idx->n == idx->cap) {
		uint32_t cap = idx->cap ? idx->cap * 2 : 256;
		struct stack_key *keys = realloc(idx->keys, cap * sizeof(*keys));

		if (!keys)
			return -ENOMEM;
		idx->keys = keys;
		idx->cap = cap;
	}
	return htab_reserve(&idx->index);
}

static int store_stack(struct slice *s, uint64_t user_id, const uint64_t *user, uint32_t nuser,
		       uint64_t kernel_id, const uint64_t *kernel, uint32_t nkernel, uint32_t *first)
{
	struct stack_key key = { .user_id = user_id, .kernel_id = kernel_id };
	uint32_t hash = stack_hash(user_id, kernel_id);
	struct htab_slot *slot;

	if (index_reserve(s))
		return -ENOMEM;
	slot = htab_find(&s->stacks->index, hash, stack_eq, s->stacks, &key);
	if (htab_used(slot)) {
		*first = s->stacks->keys[htab_id(slot)].frames;
		return 0;
	}
	if (grow((void **)&s->frames, &s->frames_cap, s->nframes + nuser + nkernel, sizeof(*s->frames)))
		return -ENOMEM;
	*first = (uint32_t)s->nframes;
	if (nkernel)
		memcpy(s->frames + s->nframes, kernel, nkernel * sizeof(*kernel));
	if (nuser)
		memcpy(s->frames + s->nframes + nkernel, user, nuser * sizeof(*user));
	s->nframes += nuser + nkernel;
	key.frames = *first;
	s->stacks->keys[s->stacks->n] = key;
	htab_set(&s->stacks->index, slot, hash, s->stacks->n++);
	return 0;
}

const struct labelset *slice_sample_labels(const struct slice_sample *s)
{
	return &s->target->labels;
}

static void release_sample(const struct slice_sample *sample)
{
	process_put(sample->process);
	target_put(sample->target);
	if (sample->maps)
		proc_maps_put(sample->maps);
}

int slice_add(struct slice *s, const struct slice_sample *sample, uint64_t user_id, const uint64_t *user,
	      uint32_t nuser, uint64_t kernel_id, const uint64_t *kernel, uint32_t nkernel)
{
	uint32_t first;

	if (grow((void **)&s->samples, &s->samples_cap, s->nsamples + 1, sizeof(*s->samples)) ||
	    store_stack(s, user_id, user, nuser, kernel_id, kernel, nkernel, &first)) {
		release_sample(sample);
		return -ENOMEM;
	}
	struct slice_sample *stored = &s->samples[s->nsamples++];
	*stored = *sample;
	stored->frames = first;
	stored->nuser = (uint16_t)nuser;
	stored->nkernel = (uint16_t)nkernel;
	return 0;
}

void slice_seal(struct slice *s, int64_t end_ns)
{
	s->end_ns = end_ns;
	index_free(s->stacks);
	s->stacks = NULL;
}

void slice_free(struct slice *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nsamples; i++)
		release_sample(&s->samples[i]);
	free(s->samples);
	free(s->frames);
	index_free(s->stacks);
	free(s);
}

int slice_store_init(struct slice_store *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->appended, NULL);
	return 0;
}

void slice_store_destroy(struct slice_store *w)
{
	while (w->head) {
		struct slice *next = w->head->next;

		slice_free(w->head);
		w->head = next;
	}
	free(w->pins);
	pthread_cond_destroy(&w->appended);
	pthread_mutex_destroy(&w->lock);
}

/* Slices at or before the oldest pin can no longer be asked for. Lock held. */
static void free_unpinned_locked(struct slice_store *w)
{
	uint64_t keep_after = w->last_seq;

	for (size_t i = 0; i < w->npins; i++)
		if (w->pins[i] < keep_after)
			keep_after = w->pins[i];
	while (w->head && w->head->seq <= keep_after) {
		struct slice *next = w->head->next;

		slice_free(w->head);
		w->head = next;
	}
	if (!w->head)
		w->tail = NULL;
}

void slice_store_append(struct slice_store *w, struct slice *s)
{
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = s;
	else
		w->head = s;
	w->tail = s;
	w->last_seq = s->seq;
	w->last_end_ns = s->end_ns;
	free_unpinned_locked(w);
	pthread_cond_broadcast(&w->appended);
	pthread_mutex_unlock(&w->lock);
}

int slice_store_wait(struct slice_store *w, uint64_t seq)
{
	int err = 0;

	pthread_mutex_lock(&w->lock);
	while (w->last_seq < seq && !w->stopping)
		pthread_cond_wait(&w->appended, &w->lock);
	if (w->last_seq < seq)
		err = -ESHUTDOWN;
	pthread_mutex_unlock(&w->lock);
	return err;
}

void slice_store_stop(struct slice_store *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->appended);
	pthread_mutex_unlock(&w->lock);
}

int slice_store_pin(struct slice_store *w, uint64_t seq)
{
	int err;

	pthread_mutex_lock(&w->lock);
	err = grow((void **)&w->pins, &w->pins_cap, w->npins + 1, sizeof(*w->pins));
	if (!err)
		w->pins[w->npins++] = seq;
	pthread_mutex_unlock(&w->lock);
	return err;
}

void slice_store_unpin(struct slice_store *w, uint64_t seq)
{
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < w->npins; i++) {
		if (w->pins[i] == seq) {
			w->pins[i] = w->pins[--w->npins];
			break;
		}
	}
	free_unpinned_locked(w);
	pthread_mutex_unlock(&w->lock);
}

void slice_store_each(struct slice_store *w, uint64_t from, uint64_t to,
		       void (*fn)(const struct slice *s, void *ctx), void *ctx)
{
	pthread_mutex_lock(&w->lock);
	struct slice *s = w->head;
	while (s && s->seq <= from)
		s = s->next;
	pthread_mutex_unlock(&w->lock);

	/* Slices after the caller's pin are never freed, and links up to `to` never change. */
	for (; s && s->seq <= to; s = s->next)
		fn(s, ctx);
}
