#include "exporter/discovery.h"

#include "exporter/python_discovery.h"
#include "exporter/symbols/process.h"
#include "exporter/trace_discovery.h"

static void look_at(void *ctx, const struct process_queue_job *job)
{
	struct discovery *d = ctx;
	struct process *p = job->item;
	struct proc_identity id = job->id;

	/* Exec'd or exited while it waited: BPF forgot it, and its new program, if any, is queued at its
	 * own first sample. */
	if (job->has_id ? !proc_identity_current(&id, "/proc", (int)job->tgid)
			: proc_identity_read("/proc", (int)job->tgid, &id))
		return;
	trace_discovery_learnt(d->traces, p, &id);
	python_discovery_learnt(d->python, p, job->snap, &id);
}

/* The thread sleeps until the first retry is due: a second look waits 1 s, not ten 100 ms ticks. */
static int64_t retry(void *ctx)
{
	struct discovery *d = ctx;
	int64_t traces = trace_discovery_retry(d->traces), python = python_discovery_retry(d->python);

	return !traces || (python && python < traces) ? python : traces;
}

static void put_process(void *item)
{
	process_put(item);
}

static const struct process_queue_ops discovery_ops = {
	.run = look_at,
	.tick = retry,
	.drop_item = put_process,
	.queued_name = "anorak_discovery_processes_queued",
	.queued_help = "Processes waiting to be looked at for trace contexts and Python interpreters.",
	.full_name = "anorak_discovery_queue_full_total",
	.full_help = "New processes not looked at for trace contexts and Python interpreters because 1024 "
		     "were already waiting.",
};

void discovery_init(struct discovery *d, struct trace_discovery *traces, struct python_discovery *python)
{
	d->traces = traces;
	d->python = python;
	process_queue_init(&d->queue, &discovery_ops, d);
}

int discovery_request(struct discovery *d, struct process *p, const struct maps_snapshot *snap)
{
	return process_queue_request(&d->queue, p->tgid, process_get(p), snap);
}
