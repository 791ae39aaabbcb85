/*
 * Trace-context and Python discovery of newly sampled processes, on a thread of its own: reading the
 * symbol tables of every mapped file takes milliseconds per process, and the event thread must read
 * each new process's mappings before it exits, which a short process does sooner
 * (tests/integration/test_shortlived.py). Requests are queued by pid (a later request for a queued pid
 * replaces it: its program is the newer one) and bounded; a request whose process exec'd or exited
 * while it waited is let go (its new program is queued at its own first sample). The thread also
 * runs both discoveries' retries.
 */
#ifndef ANORAK_DISCOVERY_QUEUE_H
#define ANORAK_DISCOVERY_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "exporter/proc/maps_snapshot.h"

struct metrics_buf;
struct process;
struct python_discovery;
struct trace_discovery;

/* Processes waiting; the first of them keep the mappings read at their first sample (tens of KiB each),
 * the others read them again when looked at. */
#define DISCOVERY_QUEUE_MAX 1024
#define DISCOVERY_QUEUE_SNAPSHOTS 64

struct discovery_job {
	struct process *process;    /* referenced */
	struct maps_snapshot *snap; /* referenced, or NULL */
	struct proc_identity id;    /* the program it ran at its first sample */
	bool has_id;                /* false: its mappings were not read then (read when looked at) */
};

struct discovery_queue {
	struct trace_discovery *traces;
	struct python_discovery *python;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stopping;
	struct discovery_job jobs[DISCOVERY_QUEUE_MAX];
	uint32_t head, len;
	uint64_t full;
};

void discovery_queue_init(struct discovery_queue *q, struct trace_discovery *traces,
			  struct python_discovery *python);
/* Starts the thread; negative errno. */
int discovery_queue_start(struct discovery_queue *q);
/* Queues p (learnt from its first sample; snap: its mappings then, or NULL). Event thread; -ENOSPC when
 * the queue is full (counted). */
int discovery_queue_request(struct discovery_queue *q, struct process *p, const struct maps_snapshot *snap);
/* Joins the thread and lets the waiting requests go (later ones are refused); idempotent. Metrics
 * may still be written until destroy. */
void discovery_queue_stop(struct discovery_queue *q);
void discovery_queue_destroy(struct discovery_queue *q);
/* anorak_discovery_processes_queued, anorak_discovery_queue_full_total. */
void discovery_queue_write_metrics(struct metrics_buf *b, void *queue);

#endif
