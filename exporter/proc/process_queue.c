#include "exporter/proc/process_queue.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"

static void job_release(const struct process_queue *q, struct process_queue_job *job)
{
	if (job->item && q->ops->drop_item)
		q->ops->drop_item(job->item);
	maps_snapshot_put(job->snap);
	memset(job, 0, sizeof(*job));
}

/* Queue lock held. */
static void job_set(struct process_queue *q, struct process_queue_job *job, uint32_t tgid, void *item,
		    const struct maps_snapshot *snap, bool keep_snap)
{
	job_release(q, job);
	job->tgid = tgid;
	job->item = item;
	if (!snap)
		return;
	job->id = *maps_snapshot_identity(snap);
	job->has_id = true;
	/* Immutable and refcounted: the reference is the queue's. */
	if (keep_snap)
		job->snap = maps_snapshot_get((struct maps_snapshot *)snap);
}

/* Queue lock held: the waiting job of tgid's, and its place in the queue. */
static struct process_queue_job *find_job(struct process_queue *q, uint32_t tgid, uint32_t *place)
{
	for (uint32_t i = 0; i < q->len; i++) {
		struct process_queue_job *job = &q->jobs[(q->head + i) % PROCESS_QUEUE_MAX];

		if (job->tgid == tgid) {
			*place = i;
			return job;
		}
	}
	return NULL;
}

int process_queue_request(struct process_queue *q, uint32_t tgid, void *item, const struct maps_snapshot *snap)
{
	struct process_queue_job *job;
	uint32_t place;
	int err = 0;

	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		err = -ESHUTDOWN;
	} else if ((job = find_job(q, tgid, &place))) {
		/* Learnt again (an exec): one run, for the newer program. */
		job_set(q, job, tgid, item, snap, place < PROCESS_QUEUE_SNAPSHOTS);
		item = NULL;
	} else if (q->len == PROCESS_QUEUE_MAX) {
		q->full++;
		err = -ENOSPC;
	} else {
		job_set(q, &q->jobs[(q->head + q->len) % PROCESS_QUEUE_MAX], tgid, item, snap,
			q->len < PROCESS_QUEUE_SNAPSHOTS);
		item = NULL;
		q->len++;
		pthread_cond_signal(&q->wake);
	}
	pthread_mutex_unlock(&q->lock);
	if (item && q->ops->drop_item)
		q->ops->drop_item(item);
	return err;
}

/* Queue lock held: waits for a job, or until due_ns (CLOCK_MONOTONIC) when the tick has work waiting. */
static void wait_for_work(struct process_queue *q, int64_t due_ns)
{
	struct timespec due = { .tv_sec = due_ns / 1000000000LL, .tv_nsec = due_ns % 1000000000LL };

	if (!due_ns) {
		while (!q->len && !q->stopping)
			pthread_cond_wait(&q->wake, &q->lock);
		return;
	}
	while (!q->len && !q->stopping && pthread_cond_timedwait(&q->wake, &q->lock, &due) != ETIMEDOUT)
		;
}

static void *queue_main(void *arg)
{
	struct process_queue *q = arg;
	int64_t due_ns = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		wait_for_work(q, due_ns);
		if (q->stopping)
			break;
		struct process_queue_job job = { 0 };

		if (q->len) {
			job = q->jobs[q->head];
			memset(&q->jobs[q->head], 0, sizeof(job));
			q->head = (q->head + 1) % PROCESS_QUEUE_MAX;
			q->len--;
		}
		pthread_mutex_unlock(&q->lock);
		if (job.tgid)
			q->ops->run(q->ctx, &job);
		job_release(q, &job);
		due_ns = q->ops->tick ? q->ops->tick(q->ctx) : 0;
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

void process_queue_init(struct process_queue *q, const struct process_queue_ops *ops, void *ctx)
{
	pthread_condattr_t monotonic;

	q->ops = ops;
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&q->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
}

int process_queue_start(struct process_queue *q)
{
	int err = -pthread_create(&q->thread, NULL, queue_main, q);

	if (!err)
		q->started = true;
	return err;
}

void process_queue_stop(struct process_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	if (q->started)
		pthread_join(q->thread, NULL);
	q->started = false;
	pthread_mutex_lock(&q->lock);
	for (uint32_t i = 0; i < q->len; i++)
		job_release(q, &q->jobs[(q->head + i) % PROCESS_QUEUE_MAX]);
	q->len = 0;
	pthread_mutex_unlock(&q->lock);
}

void process_queue_destroy(struct process_queue *q)
{
	process_queue_stop(q);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
}

void process_queue_write_metrics(struct metrics_buf *b, void *queue)
{
	struct process_queue *q = queue;

	pthread_mutex_lock(&q->lock);
	uint64_t queued = q->len, full = q->full;
	pthread_mutex_unlock(&q->lock);
	metrics_gauge(b, q->ops->queued_name, q->ops->queued_help, queued);
	metrics_counter(b, q->ops->full_name, q->ops->full_help, full);
}
