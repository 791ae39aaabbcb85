/*
 * Every target this node samples, as /api/v1/targets and anorak_targets list them: the host targets of
 * processes outside pods, then the containers of this node's pods, each with the rate it is sampled at.
 */
#ifndef ANORAK_TARGET_LISTING_H
#define ANORAK_TARGET_LISTING_H

#include "exporter/encode/targets_api.h"
#include "exporter/sampling/cgroup_rates.h"
#include "exporter/symbols/process.h"
#include "labels/pods.h"

struct target_sources {
	struct process_table *processes;
	struct pod_store *pods;     /* NULL without Kubernetes discovery */
	struct cgroup_rates *rates; /* NULL without cgroup2 */
	unsigned base_frequency;    /* Hz of targets without their own rate */
};

/* Appends every target to list (freed by the caller either way); negative errno. */
int target_listing_collect(const struct target_sources *src, struct target_list *list);

#endif
