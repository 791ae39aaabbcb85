/*
 * The scan of the cgroup2 tree that links the containers of this node's pods to their cgroups, so
 * their policies (dropped, own rate) apply before their first sample. Asked for by a pod change that
 * left a container unlinked, or by a sample from an unknown pod cgroup; run by the event thread at
 * most once a second.
 */
#ifndef ANORAK_POD_SCAN_H
#define ANORAK_POD_SCAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/metrics.h"
#include "labels/pods.h"

struct pod_scan {
	struct pod_store *pods;
	const char *cgroup2_mount; /* "" without a cgroup2 hierarchy: never scans */
	atomic_bool wanted;
	int64_t last_ns;           /* event thread only */
	atomic_uint_fast64_t scans, errors;
};

/* cgroup2_mount is read on each scan, so it may be filled in later. */
void pod_scan_init(struct pod_scan *s, struct pod_store *pods, const char *cgroup2_mount);
/* A sample came from a pod cgroup no container is linked to. Any thread. */
void pod_scan_want(struct pod_scan *s);
/* Event thread: scans when asked and the last scan is old enough (now_ns: CLOCK_REALTIME). */
void pod_scan_run(struct pod_scan *s, int64_t now_ns);
void pod_scan_write_metrics(struct metrics_buf *b, struct pod_scan *s);

#endif
