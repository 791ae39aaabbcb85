#include "exporter/sampling/exec_queue.h"

static struct process_event *slot(struct exec_queue *q, uint32_t i)
{
	return &q->events[(q->head + i) % EXEC_QUEUE_CAP];
}

/* Drops taken entries at the head so the head is the oldest waiting one. */
static void trim(struct exec_queue *q)
{
	while (q->n && q->events[q->head].tgid == 0) {
		q->head = (q->head + 1) % EXEC_QUEUE_CAP;
		q->n--;
	}
}

bool exec_queue_push(struct exec_queue *q, const struct process_event *e)
{
	trim(q);
	if (q->n == EXEC_QUEUE_CAP || e->tgid == 0) {
		atomic_fetch_add(&q->full, 1);
		return false;
	}
	*slot(q, q->n++) = *e;
	return true;
}

bool exec_queue_take(struct exec_queue *q, uint32_t tgid, bool exited)
{
	bool found = false;

	/* A few entries: execs of the last grace time. A pid re-execs without exiting: take them all. */
	for (uint32_t i = 0; i < q->n; i++) {
		if (slot(q, i)->tgid == tgid) {
			slot(q, i)->tgid = 0;
			found = true;
		}
	}
	if (found && exited)
		atomic_fetch_add(&q->skipped, 1);
	trim(q);
	return found;
}

bool exec_queue_pop_due(struct exec_queue *q, int64_t now_ns, struct process_event *e)
{
	trim(q);
	if (!q->n || (int64_t)q->events[q->head].ktime_ns + EXEC_GRACE_NS > now_ns)
		return false;
	*e = q->events[q->head];
	q->events[q->head].tgid = 0;
	trim(q);
	return true;
}

int exec_queue_wait_ms(struct exec_queue *q, int64_t now_ns, int max_ms)
{
	trim(q);
	if (!q->n)
		return max_ms;
	int64_t left = (int64_t)q->events[q->head].ktime_ns + EXEC_GRACE_NS - now_ns;

	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left < max_ms ? (int)left : max_ms;
}

void exec_queue_write_metrics(struct metrics_buf *b, struct exec_queue *q)
{
	metrics_counter(b, "anorak_process_execs_skipped_total",
			"Processes that exited within the grace time after exec without being sampled: never "
			"read (maps, unwind tables, labels).",
			atomic_load(&q->skipped));
	metrics_counter(b, "anorak_process_exec_queue_full_total",
			"Exec events handled at once because the queue of those waiting for their grace time "
			"was full.",
			atomic_load(&q->full));
}
