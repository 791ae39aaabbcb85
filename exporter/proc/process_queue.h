/*
 * Work on newly learnt processes, on a thread of its own: the unwinder's table builds (100 ms or more
 * for one large library) and trace-context and Python discovery (milliseconds per process) would
 * otherwise hold the event thread, which must read each new process's mappings before the process
 * exits, as a short process does soon (tests/integration/test_shortlived.py).
 *
 * Processes are taken in the order they were learnt, one entry per pid: a later request for a waiting
 * pid replaces it (its program is the newer one). At most PROCESS_QUEUE_MAX wait; the first
 * PROCESS_QUEUE_SNAPSHOTS keep the mappings read at their request (tens of KiB each), the others
 * only their identity, and read their mappings again when run.
 */
#ifndef ANORAK_PROCESS_QUEUE_H
#define ANORAK_PROCESS_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "exporter/proc/maps_snapshot.h"

struct metrics_buf;

#define PROCESS_QUEUE_MAX 1024
#define PROCESS_QUEUE_SNAPSHOTS 64

struct process_queue_job {
	uint32_t tgid;
	void *item;                 /* the requester's, given back to drop_item */
	struct maps_snapshot *snap; /* the mappings read at the request, or NULL */
	struct proc_identity id;    /* the program it ran at the request */
	bool has_id;                /* false: its mappings were not read then */
};

struct process_queue_ops {
	/* Runs one job on the queue's thread. */
	void (*run)(void *ctx, const struct process_queue_job *job);
	/* Optional: called after each job, and again at the time it returns (CLOCK_MONOTONIC ns; 0: nothing
	 * waits), for work that waits on time, as retries do. */
	int64_t (*tick)(void *ctx);
	/* Optional: releases a job's item (run, replaced, refused or dropped at stop). */
	void (*drop_item)(void *item);
	/* The two metrics: a gauge of the jobs waiting and a counter of the requests refused when full. */
	const char *queued_name, *queued_help, *full_name, *full_help;
};

struct process_queue {
	const struct process_queue_ops *ops;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stopping;
	struct process_queue_job jobs[PROCESS_QUEUE_MAX];
	uint32_t head, len;
	uint64_t full;
};

void process_queue_init(struct process_queue *q, const struct process_queue_ops *ops, void *ctx);
/* Starts the thread; negative errno. */
int process_queue_start(struct process_queue *q);
/* Queues tgid with item (always given up: dropped when refused) and snap, its mappings when it was
 * learnt, or NULL. -ENOSPC when PROCESS_QUEUE_MAX wait (counted), -ESHUTDOWN once stopped. */
int process_queue_request(struct process_queue *q, uint32_t tgid, void *item, const struct maps_snapshot *snap);
/* Joins the thread and drops the waiting jobs; later requests are refused. Idempotent. Metrics may
 * still be written until destroy. */
void process_queue_stop(struct process_queue *q);
void process_queue_destroy(struct process_queue *q);
/* For metrics_register: queue is a struct process_queue. */
void process_queue_write_metrics(struct metrics_buf *b, void *queue);

#endif
