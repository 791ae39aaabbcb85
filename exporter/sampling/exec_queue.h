#ifndef ANORAK_EXEC_QUEUE_H
#define ANORAK_EXEC_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/profiler.h"
#include "common/metrics.h"

/* Exec events wait this long before the process is read (maps, ELF files, unwind tables, labels):
 * most processes started on a busy node exit sooner and are never read; one sampled sooner is read at
 * its first sample, as it would be without the exec event. */
#define EXEC_GRACE_NS (50 * 1000000LL)
/* Execs waiting at once; one more is handled at once (counted). */
#define EXEC_QUEUE_CAP 256

struct exec_queue {
	struct process_event events[EXEC_QUEUE_CAP]; /* in arrival order from head; tgid 0: taken */
	uint32_t head, n;
	atomic_uint_fast64_t skipped; /* exited within the grace time, never sampled */
	atomic_uint_fast64_t full;    /* handled at once: the queue was full */
};

/* Queues exec event e; false when the queue is full (counted): the caller handles it now. */
bool exec_queue_push(struct exec_queue *q, const struct process_event *e);
/* Takes tgid's waiting exec out of the queue; true when there was one. exited: the process is gone
 * without having been sampled (counted as skipped). */
bool exec_queue_take(struct exec_queue *q, uint32_t tgid, bool exited);
/* Moves the oldest exec whose grace time ended by now_ns (CLOCK_MONOTONIC) to *e; false when none. */
bool exec_queue_pop_due(struct exec_queue *q, int64_t now_ns, struct process_event *e);
/* Milliseconds until the oldest waiting exec is due, at most max_ms (max_ms when none waits). */
int exec_queue_wait_ms(struct exec_queue *q, int64_t now_ns, int max_ms);
void exec_queue_write_metrics(struct metrics_buf *b, struct exec_queue *q);

#endif
