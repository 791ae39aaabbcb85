/*
 * Trace-context and Python discovery of newly sampled processes, on a process queue of their own
 * (exporter/proc/process_queue.h): reading the symbol tables of every mapped file takes milliseconds
 * per process. A process that exec'd or exited while it waited is let go (its new program is queued
 * at its own first sample). The queue's thread also runs both discoveries' retries.
 */
#ifndef ANORAK_DISCOVERY_H
#define ANORAK_DISCOVERY_H

#include "exporter/proc/process_queue.h"

struct process;
struct python_discovery;
struct trace_discovery;

struct discovery {
	struct trace_discovery *traces;
	struct python_discovery *python;
	struct process_queue queue; /* started, stopped and measured by the collector */
};

void discovery_init(struct discovery *d, struct trace_discovery *traces, struct python_discovery *python);
/* Queues p (learnt from its first sample; snap: its mappings then, or NULL). Event thread; -ENOSPC when
 * the queue is full (counted). */
int discovery_request(struct discovery *d, struct process *p, const struct maps_snapshot *snap);

#endif
