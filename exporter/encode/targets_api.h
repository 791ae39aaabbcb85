/*
 * GET /api/v1/targets: the targets in Prometheus' own JSON shape, so tools that read a Prometheus
 * server's target page read anorak's. Active targets with equal final labels are one target, as in a
 * Prometheus scrape pool; dropped targets are listed with their discovered labels.
 */
#ifndef ANORAK_TARGETS_API_H
#define ANORAK_TARGETS_API_H

#include <stddef.h>

#include "labels/targets.h"

/* Dropped targets listed at most (Prometheus' keep_dropped_targets); all are counted. */
#define TARGETS_API_MAX_DROPPED 1000

struct target_list {
	struct target **targets; /* referenced */
	unsigned *frequencies;   /* Hz each is sampled at */
	size_t n, cap;
};

/* Adds a reference to target. */
int target_list_add(struct target_list *l, const struct target *target, unsigned frequency);
void target_list_free(struct target_list *l);

/* Active targets (deduplicated) and dropped ones. */
void target_list_count(struct target_list *l, size_t *active, size_t *dropped);

/* Renders l (reordered) as {"status":"success","data":{"activeTargets":[...],"droppedTargets":[...],
 * "droppedTargetCounts":{...}}}; each active target has discoveredLabels, labels, scrapePool
 * (scrape_pool: the config's job_name), health "up" and samplingFrequency. */
int targets_api_render(struct target_list *l, const char *scrape_pool, char **json, size_t *len);

#endif
