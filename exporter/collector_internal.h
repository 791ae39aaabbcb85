/*
 * The collector's state, shared by its two files: collector.c runs it (the drain loop, the event
 * thread, profile windows, metrics) and collector_start.c wires it up and tears it down.
 */
#ifndef ANORAK_COLLECTOR_INTERNAL_H
#define ANORAK_COLLECTOR_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "exporter/collector.h"
#include "exporter/host_rates.h"
#include "exporter/pod_scan.h"
#include "exporter/store/slices.h"
#include "exporter/symbols/process.h"
#include "exporter/discovery.h"
#include "exporter/python_discovery.h"
#include "exporter/trace_discovery.h"

/* A profile window's edge: served by the first drain that starts after it was asked for. */
struct drain_request {
	bool pin;          /* keep the slices after this drain (a window's start) */
	bool done;
	int err;
	uint64_t seq;      /* the drain that served it */
	int64_t at_ns;     /* CLOCK_REALTIME at that drain */
	struct drain_request *next;
};

struct collector {
	const struct anorak_config *cfg;
	struct target_labeler labeler;
	bool labeler_ready;
	char address[320];          /* __address__ of host targets */
	atomic_uint_fast64_t dropped_target_samples;
	atomic_uint_fast64_t offcpu_unattributed; /* off-CPU waits of processes not learnt (yet) */
	/* Kubernetes discovery; NULL without a cluster. */
	struct pod_store *pods;
	struct k8s_client *k8s;
	struct pod_scan pod_scan;
	char cgroup2_mount[PATH_MAX]; /* "" when the host has no cgroup2 hierarchy */
	/* Cgroups at their own rate: pods' containers and host targets' cgroups. NULL without cgroup2. */
	struct cgroup_rates *rates;
	struct host_rates host_rates;
	atomic_uint_fast64_t samples_base, samples_high;
	struct trace_discovery traces;
	struct python_discovery python;
	struct discovery discovery;    /* runs both discoveries on a thread of its own */
	struct symbolizer *symbolizer;
	struct debuginfod *debuginfod; /* NULL: no debuginfod server configured */
	struct process_table *processes;
	struct sampler *sampler;
	struct slice_store windows;
	struct history *history;

	pthread_mutex_t lock;
	pthread_cond_t wake;       /* drain thread: a request came, or stopping */
	pthread_cond_t served;     /* requesters: their drain is done */
	struct drain_request *pending;
	bool stopping;
	uint64_t drain_seq;
	int64_t last_drain_ns;

	/* What became of the drained samples, updated with the history at the end of each drain, so a
	 * scrape that sees the same number of drains before and after a history query sees figures that
	 * match it exactly. */
	pthread_mutex_t ledger_lock;
	struct drain_ledger {
		uint64_t drains, counted, drained, stored, target_dropped, no_stack, out_of_memory;
	} ledger;

	pthread_t drain_thread, event_thread;
	bool drain_started, event_started;
	atomic_bool ready;
};

/* CLOCK_REALTIME in nanoseconds. */
int64_t realtime_ns(void);

/* The drain thread: a drain when a profile window asks for one, else every second. */
void *drain_main(void *arg);

/* The event thread: process events, CPUs coming online, trace discovery retries, pod scans and host
 * targets' rates. */
void *event_main(void *arg);

/* Hooks of the process table and the pod store (ctx: the collector). */
void on_host_target(void *ctx, const struct process *p, const struct target *target, bool relabeled);
unsigned on_pod_policy(void *ctx, uint64_t cgroup_id, const char *path, const struct pod_policy *policy);
void on_process_learnt(void *ctx, struct process *p, const struct maps_snapshot *maps);

/* The collector's own metrics family writer (ctx: the collector). */
void write_collector_metrics(struct metrics_buf *b, void *ctx);

#endif
