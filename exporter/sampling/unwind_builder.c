#include "exporter/sampling/unwind_builder.h"

#include <errno.h>

#include "common/metrics.h"
#include "exporter/proc/maps_snapshot.h"

void unwind_queue_init(struct unwind_queue *q, unwind_build_fn build, void *ctx)
{
	q->build = build;
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
}

/* Queue lock held. */
static void set_snapshot(struct unwind_queue *q, uint32_t slot, struct maps_snapshot *snap)
{
	maps_snapshot_put(q->snaps[slot]);
	q->snaps[slot] = snap ? maps_snapshot_get(snap) : NULL;
}

int unwind_queue_push(struct unwind_queue *q, uint32_t tgid, struct maps_snapshot *snap)
{
	uint32_t slot;
	int err = 0;

	pthread_mutex_lock(&q->lock);
	for (uint32_t i = 0; i < q->len; i++) {
		slot = (q->head + i) % QUEUE_MAX;
		if (q->tgids[slot] == tgid) {
			/* One build, from the latest request's mappings (none: read as they are then). */
			set_snapshot(q, slot, i < QUEUE_SNAPSHOTS ? snap : NULL);
			goto out;
		}
	}
	if (q->len == QUEUE_MAX) {
		q->full++;
		err = -ENOSPC;
		goto out;
	}
	slot = (q->head + q->len) % QUEUE_MAX;
	q->tgids[slot] = tgid;
	set_snapshot(q, slot, q->len++ < QUEUE_SNAPSHOTS ? snap : NULL);
	pthread_cond_signal(&q->wake);
out:
	pthread_mutex_unlock(&q->lock);
	return err;
}

static void *builder_main(void *arg)
{
	struct unwind_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->len && !q->stopping)
			pthread_cond_wait(&q->wake, &q->lock);
		if (q->stopping)
			break;
		uint32_t tgid = q->tgids[q->head];
		struct maps_snapshot *snap = q->snaps[q->head];

		q->snaps[q->head] = NULL;
		q->head = (q->head + 1) % QUEUE_MAX;
		q->len--;
		pthread_mutex_unlock(&q->lock);
		q->build(q->ctx, tgid, snap);
		maps_snapshot_put(snap);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int unwind_queue_start(struct unwind_queue *q)
{
	int err = -pthread_create(&q->builder, NULL, builder_main, q);

	if (!err)
		q->started = true;
	return err;
}

static void stop_builder(struct unwind_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->builder, NULL);
	q->started = false;
}

void unwind_queue_destroy(struct unwind_queue *q)
{
	stop_builder(q);
	for (uint32_t i = 0; i < QUEUE_MAX; i++) {
		maps_snapshot_put(q->snaps[i]);
		q->snaps[i] = NULL;
	}
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
}

void unwind_queue_write_metrics(struct metrics_buf *b, struct unwind_queue *q)
{
	pthread_mutex_lock(&q->lock);
	uint64_t queued = q->len, full = q->full;
	pthread_mutex_unlock(&q->lock);

	metrics_gauge(b, "anorak_unwind_processes_queued", "Processes waiting for their unwind tables.", queued);
	metrics_counter(b, "anorak_unwind_queue_full_total",
			"Requests for a process's unwind tables refused because 1024 were already "
			"waiting; a process refused at its first sample is walked by frame pointer only.",
			full);
}
