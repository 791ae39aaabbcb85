/*
 * The unwinder's queue of processes to add and the thread that builds them (internal to
 * exporter/sampling/unwind_table.c): one large library's table takes 100 ms or more, and the event
 * thread must read a new process's mappings before it exits, which a short process does sooner
 * (tests/integration/test_shortlived.py).
 */
#ifndef ANORAK_UNWIND_BUILDER_H
#define ANORAK_UNWIND_BUILDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct maps_snapshot;
struct metrics_buf;

/* Processes waiting for the builder thread; the first of them keep the mappings read at their
 * request (tens of KiB each), the others read them again when built. */
#define QUEUE_MAX 1024
#define QUEUE_SNAPSHOTS 64

/* Builds one process: snap is the mappings read at its request, or NULL. */
typedef void (*unwind_build_fn)(void *ctx, uint32_t tgid, const struct maps_snapshot *snap);

struct unwind_queue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t builder;
	bool started, stopping;
	uint32_t tgids[QUEUE_MAX];
	struct maps_snapshot *snaps[QUEUE_MAX]; /* mappings read at the request, or NULL */
	uint32_t head, len;
	uint64_t full;
	unwind_build_fn build;
	void *ctx;
};

void unwind_queue_init(struct unwind_queue *q, unwind_build_fn build, void *ctx);
/* Starts the builder thread. Negative errno when it cannot. */
int unwind_queue_start(struct unwind_queue *q);
/* Stops the thread (when started), drops the queued requests. */
void unwind_queue_destroy(struct unwind_queue *q);
/* See unwinder_request. */
int unwind_queue_push(struct unwind_queue *q, uint32_t tgid, struct maps_snapshot *snap);
/* anorak_unwind_processes_queued, anorak_unwind_queue_full_total. */
void unwind_queue_write_metrics(struct metrics_buf *b, struct unwind_queue *q);

#endif
