#include "exporter/encode/targets_api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "labels/relabel.h"

int target_list_add(struct target_list *l, const struct target *target, unsigned frequency)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct target **targets = realloc(l->targets, cap * sizeof(*targets));

		if (!targets)
			return -ENOMEM;
		l->targets = targets;
		unsigned *frequencies = realloc(l->frequencies, cap * sizeof(*frequencies));
		if (!frequencies)
			return -ENOMEM;
		l->frequencies = frequencies;
		l->cap = cap;
	}
	l->targets[l->n] = target_get((struct target *)target);
	l->frequencies[l->n++] = frequency;
	return 0;
}

void target_list_free(struct target_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		target_put(l->targets[i]);
	free(l->targets);
	free(l->frequencies);
	*l = (struct target_list){ 0 };
}

static uint64_t labels_hash(const struct labelset *ls)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < ls->n; i++) {
		for (const char *p = ls->labels[i].name; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		h = (h ^ 0xff) * 0x100000001b3ULL;
		for (const char *p = ls->labels[i].value; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		h = (h ^ 0xfe) * 0x100000001b3ULL;
	}
	return h;
}

struct entry {
	struct target *target;
	unsigned frequency;
	uint64_t hash;
};

/* Dropped targets last; active ones grouped by labels, so duplicates are neighbours. */
static int by_state_then_labels(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->target->dropped != y->target->dropped)
		return x->target->dropped ? 1 : -1;
	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Sorts l and returns the entries; NULL when out of memory. */
static struct entry *sorted(struct target_list *l)
{
	struct entry *e = calloc(l->n ? l->n : 1, sizeof(*e));

	if (!e)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		e[i] = (struct entry){ l->targets[i], l->frequencies[i],
				       l->targets[i]->dropped ? 0 : labels_hash(&l->targets[i]->labels) };
	qsort(e, l->n, sizeof(*e), by_state_then_labels);
	return e;
}

/* An active target whose labels an earlier one of the same hash already has. */
static bool duplicate(const struct entry *e, size_t i)
{
	for (size_t j = i; j-- > 0 && !e[j].target->dropped && e[j].hash == e[i].hash;)
		if (labelset_equal(&e[j].target->labels, &e[i].target->labels))
			return true;
	return false;
}

void target_list_count(struct target_list *l, size_t *active, size_t *dropped)
{
	struct entry *e = sorted(l);

	*active = *dropped = 0;
	for (size_t i = 0; e && i < l->n; i++) {
		if (e[i].target->dropped)
			(*dropped)++;
		else if (!duplicate(e, i))
			(*active)++;
	}
	free(e);
}

static json_object *labels_object(const struct labelset *ls)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; o && i < ls->n; i++)
		json_object_object_add(o, ls->labels[i].name, json_object_new_string(ls->labels[i].value));
	return o;
}

/* Prometheus shows the labels relabeling started from: discovery's and the scrape config's (job,
 * __scheme__, __metrics_path__, ...). */
static json_object *discovered_object(const struct target *t, const char *scrape_pool)
{
	struct labelset ls = { 0 };
	json_object *o = NULL;

	if (!labelset_copy(&ls, &t->discovered) && !relabel_prepare(&ls, scrape_pool))
		o = labels_object(&ls);
	labelset_free(&ls);
	return o;
}

static json_object *active_target(const struct entry *e, const char *scrape_pool)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "discoveredLabels", discovered_object(e->target, scrape_pool));
	json_object_object_add(t, "labels", labels_object(&e->target->labels));
	json_object_object_add(t, "scrapePool", json_object_new_string(scrape_pool));
	json_object_object_add(t, "health", json_object_new_string("up"));
	json_object_object_add(t, "lastError", json_object_new_string(""));
	json_object_object_add(t, "samplingFrequency", json_object_new_int64(e->frequency));
	return t;
}

static json_object *dropped_target(const struct entry *e, const char *scrape_pool)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "discoveredLabels", discovered_object(e->target, scrape_pool));
	return t;
}

int targets_api_render(struct target_list *l, const char *scrape_pool, char **json, size_t *len)
{
	struct entry *e = sorted(l);
	json_object *root = json_object_new_object(), *data = json_object_new_object();
	json_object *active = json_object_new_array(), *dropped = json_object_new_array();
	json_object *counts = json_object_new_object();
	size_t ndropped = 0;
	int err = 0;

	if (!e || !root || !data || !active || !dropped || !counts) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (e[i].target->dropped) {
			if (ndropped++ < TARGETS_API_MAX_DROPPED)
				json_object_array_add(dropped, dropped_target(&e[i], scrape_pool));
		} else if (!duplicate(e, i)) {
			json_object_array_add(active, active_target(&e[i], scrape_pool));
		}
	}
	json_object_object_add(counts, scrape_pool, json_object_new_int64((int64_t)ndropped));
	json_object_object_add(data, "activeTargets", active);
	json_object_object_add(data, "droppedTargets", dropped);
	json_object_object_add(data, "droppedTargetCounts", counts);
	active = dropped = counts = NULL;
	json_object_object_add(root, "status", json_object_new_string("success"));
	json_object_object_add(root, "data", data);
	data = NULL;
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*json = text ? strdup(text) : NULL;
	if (!*json)
		err = -ENOMEM;
	else
		*len = strlen(*json);
out:
	json_object_put(active);
	json_object_put(dropped);
	json_object_put(counts);
	json_object_put(data);
	json_object_put(root);
	free(e);
	return err;
}
