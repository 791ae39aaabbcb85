#include "exporter/discovery_queue.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"
#include "exporter/python_discovery.h"
#include "exporter/symbols/process.h"
#include "exporter/trace_discovery.h"

/* While retries wait, the thread wakes this often to run those whose time came. */
#define RETRY_TICK_NS 100000000L

static void job_release(struct discovery_job *job)
{
	process_put(job->process);
	maps_snapshot_put(job->snap);
	memset(job, 0, sizeof(*job));
}

/* Queue lock held. The snapshot's reference is taken only by the first DISCOVERY_QUEUE_SNAPSHOTS. */
static void job_set(struct discovery_job *job, struct process *p, const struct maps_snapshot *snap, bool keep_snap)
{
	job_release(job);
	job->process = process_get(p);
	if (!snap)
		return;
	job->id = *maps_snapshot_identity(snap);
	job->has_id = true;
	/* Immutable and refcounted: the reference is the queue's. */
	if (keep_snap)
		job->snap = maps_snapshot_get((struct maps_snapshot *)snap);
}

int discovery_queue_request(struct discovery_queue *q, struct process *p, const struct maps_snapshot *snap)
{
	int err = 0;

	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		err = -ESHUTDOWN;
		goto out;
	}
	for (uint32_t i = 0; i < q->len; i++) {
		struct discovery_job *job = &q->jobs[(q->head + i) % DISCOVERY_QUEUE_MAX];

		if (job->process->tgid == p->tgid) {
			/* Learnt again (an exec): one look, at the newer program. */
			job_set(job, p, snap, i < DISCOVERY_QUEUE_SNAPSHOTS);
			goto out;
		}
	}
	if (q->len == DISCOVERY_QUEUE_MAX) {
		q->full++;
		err = -ENOSPC;
		goto out;
	}
	job_set(&q->jobs[(q->head + q->len) % DISCOVERY_QUEUE_MAX], p, snap, q->len < DISCOVERY_QUEUE_SNAPSHOTS);
	q->len++;
	pthread_cond_signal(&q->wake);
out:
	pthread_mutex_unlock(&q->lock);
	return err;
}

static void run_job(struct discovery_queue *q, struct discovery_job *job)
{
	int pid = (int)job->process->tgid;

	/* Exec'd or exited while it waited: BPF forgot it, and its new program, if any, is queued at its
	 * own first sample. */
	if (job->has_id ? !proc_identity_current(&job->id, "/proc", pid) : proc_identity_read("/proc", pid, &job->id))
		return;
	trace_discovery_learnt(q->traces, job->process, &job->id);
	python_discovery_learnt(q->python, job->process, job->snap, &job->id);
}

/* Queue lock held: waits for a request, or until the next retry tick while retries wait. */
static void wait_for_work(struct discovery_queue *q, bool retrying)
{
	struct timespec tick;

	if (!retrying) {
		while (!q->len && !q->stopping)
			pthread_cond_wait(&q->wake, &q->lock);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &tick);
	tick.tv_nsec += RETRY_TICK_NS;
	if (tick.tv_nsec >= 1000000000L) {
		tick.tv_sec++;
		tick.tv_nsec -= 1000000000L;
	}
	while (!q->len && !q->stopping && pthread_cond_timedwait(&q->wake, &q->lock, &tick) != ETIMEDOUT)
		;
}

static void *discovery_main(void *arg)
{
	struct discovery_queue *q = arg;
	bool retrying = false;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		wait_for_work(q, retrying);
		if (q->stopping)
			break;
		struct discovery_job job = { 0 };

		if (q->len) {
			job = q->jobs[q->head];
			memset(&q->jobs[q->head], 0, sizeof(job));
			q->head = (q->head + 1) % DISCOVERY_QUEUE_MAX;
			q->len--;
		}
		pthread_mutex_unlock(&q->lock);
		if (job.process)
			run_job(q, &job);
		job_release(&job);
		bool traces = trace_discovery_retry(q->traces);
		retrying = python_discovery_retry(q->python) || traces;
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

void discovery_queue_init(struct discovery_queue *q, struct trace_discovery *traces,
			  struct python_discovery *python)
{
	pthread_condattr_t monotonic;

	q->traces = traces;
	q->python = python;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&q->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
}

int discovery_queue_start(struct discovery_queue *q)
{
	int err = -pthread_create(&q->thread, NULL, discovery_main, q);

	if (!err)
		q->started = true;
	return err;
}

void discovery_queue_stop(struct discovery_queue *q)
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
		job_release(&q->jobs[(q->head + i) % DISCOVERY_QUEUE_MAX]);
	q->len = 0;
	pthread_mutex_unlock(&q->lock);
}

void discovery_queue_destroy(struct discovery_queue *q)
{
	discovery_queue_stop(q);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
}

void discovery_queue_write_metrics(struct metrics_buf *b, void *queue)
{
	struct discovery_queue *q = queue;

	pthread_mutex_lock(&q->lock);
	uint64_t queued = q->len, full = q->full;
	pthread_mutex_unlock(&q->lock);
	metrics_gauge(b, "anorak_discovery_processes_queued",
		      "Processes waiting to be looked at for trace contexts and Python interpreters.", queued);
	metrics_counter(b, "anorak_discovery_queue_full_total",
			"New processes not looked at for trace contexts and Python interpreters because 1024 "
			"were already waiting.",
			full);
}
