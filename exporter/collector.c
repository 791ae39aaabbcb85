#include "exporter/collector.h"
#include "exporter/collector_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/encode/pprof_live.h"
#include "exporter/encode/targets_api.h"
#include "exporter/host_rates.h"
#include "exporter/malloc_bounds.h"
#include "exporter/pod_scan.h"
#include "exporter/sampling/cgroup_rates.h"
#include "exporter/sampling/sampler.h"
#include "exporter/store/history.h"
#include "exporter/store/slices.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/target_listing.h"
#include "exporter/trace_discovery.h"
#include "labels/pods.h"

#define EVENT_POLL_MS 200

struct drain_ctx {
	struct collector *c;
	struct slice *slice;
	uint64_t stored, target_dropped, no_stack, lost;
};

int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A process is in a pod when Kubernetes discovery runs and the kubelet's pod cgroup holds it: its
 * container's target applies, never its host target. */
static bool in_pod(const struct collector *c, const struct process *p)
{
	return c->pods && p->cgroup.pod_uid[0];
}

/* The target of a sample: its container's when it ran in a known pod's cgroup (also when the process
 * moved there after it was learnt), else its process's. */
static struct target *sample_target(struct collector *c, struct process *p, uint64_t cgroup_id)
{
	if (c->pods) {
		struct target *t = pod_store_target(c->pods, cgroup_id, in_pod(c, p) ? &p->cgroup : NULL);

		if (t)
			return t;
		/* A container started before its pod status named it: look for it in the cgroup tree. */
		if (in_pod(c, p))
			pod_scan_want(&c->pod_scan);
	}
	return process_target(c->processes, p);
}

/* The drain ledger accounts for CPU samples only: off-CPU counts are waits and nanoseconds. */
static void add_drained(const struct drained_sample *d, void *ctx)
{
	struct drain_ctx *dc = ctx;
	struct collector *c = dc->c;
	struct proc_maps *maps = NULL;
	uint64_t cpu = d->key->kind == SAMPLE_KIND_CPU ? d->count : 0;

	/* Both walks failed: nothing to show it under (the walks' failures are in anorak_stacks_dropped_total). */
	if (!d->nuser && !d->nkernel) {
		dc->no_stack += cpu;
		return;
	}
	/* Python frames are named now: their code objects may be gone by the time a profile is asked for. */
	uint64_t python_user[PROFILER_MAX_STACK_DEPTH];
	const uint64_t *user = d->user;

	if (d->nuser <= PROFILER_MAX_STACK_DEPTH &&
	    python_discovery_resolve(&c->python, d->key->tgid, d->user, d->nuser, python_user))
		user = python_user;
	struct process *p = process_table_resolve(c->processes, d->key->tgid, user, d->nuser, &maps);

	if (!p) {
		dc->lost += cpu;
		if (d->key->kind == SAMPLE_KIND_OFFCPU_WAITS)
			atomic_fetch_add(&c->offcpu_unattributed, d->count);
		return;
	}
	struct slice_sample sample = {
		.process = p,
		.target = sample_target(c, p, d->key->cgroup_id),
		.maps = maps,
		.tid = d->key->tid,
		.frequency = d->key->frequency,
		.cgroup_id = d->key->cgroup_id,
		.count = d->count,
		.kind = (uint8_t)d->key->kind,
	};
	/* Taken before the BPF filter knew the target was dropped: counted and let go here. */
	if (sample.target->dropped) {
		atomic_fetch_add(&c->dropped_target_samples, cpu);
		dc->target_dropped += cpu;
		process_put(p);
		target_put(sample.target);
		if (maps)
			proc_maps_put(maps);
		return;
	}
	atomic_fetch_add(d->key->frequency ? &c->samples_high : &c->samples_base, cpu);
	memcpy(sample.trace.trace_id, d->key->trace_id, sizeof(sample.trace.trace_id));
	memcpy(sample.trace.span_id, d->key->span_id, sizeof(sample.trace.span_id));
	if (slice_add(dc->slice, &sample, d->key->user_stack, user, d->nuser, d->key->kernel_stack,
		      d->kernel, d->nkernel))
		dc->lost += cpu;
	else
		dc->stored += cpu;
}

static void ledger_add(struct collector *c, const struct drain_ctx *dc)
{
	struct drain_ledger *l = &c->ledger;

	l->drains++;
	sampler_drained_totals(c->sampler, &l->counted, &l->drained);
	l->stored += dc->stored;
	l->target_dropped += dc->target_dropped;
	l->no_stack += dc->no_stack;
	l->out_of_memory += dc->lost;
}

/* Drains one generation into a new slice and serves the requests taken before it began. */
static void drain_once(struct collector *c)
{
	pthread_mutex_lock(&c->lock);
	struct drain_request *requests = c->pending;
	c->pending = NULL;
	uint64_t seq = ++c->drain_seq;
	int64_t start_ns = c->last_drain_ns;
	pthread_mutex_unlock(&c->lock);

	struct drain_ctx dc = { .c = c, .slice = slice_new(seq, start_ns, c->cfg->sampling_frequency) };
	int err = dc.slice ? 0 : -ENOMEM;

	process_table_drain_begin(c->processes);
	if (!err)
		err = sampler_drain(c->sampler, add_drained, &dc);
	int64_t end_ns = realtime_ns();
	if (dc.lost)
		log_warn("samples lost while storing a drain: out of memory", "samples=%llu",
			 (unsigned long long)dc.lost);

	for (struct drain_request *r = requests; r; r = r->next) {
		r->seq = seq;
		r->at_ns = end_ns;
		r->err = r->pin ? slice_store_pin(&c->windows, seq) : 0;
	}
	pthread_mutex_lock(&c->ledger_lock);
	if (dc.slice) {
		slice_seal(dc.slice, end_ns);
		/* Before the store may free it: nobody may have pinned it. */
		if (history_add_slice(c->history, dc.slice))
			log_warn("samples lost while keeping a drain in the history: out of memory", NULL);
	}
	ledger_add(c, &dc);
	pthread_mutex_unlock(&c->ledger_lock);
	if (dc.slice)
		slice_store_append(&c->windows, dc.slice);
	/* After the slice is stored: the processes it references stay alive through it. */
	process_table_drain_end(c->processes);
	/* Purged processes and dropped slices leave holes between live blocks: give them back. */
	symbolizer_expire_idle(c->symbolizer);
	malloc_bounds_trim();

	pthread_mutex_lock(&c->lock);
	c->last_drain_ns = end_ns;
	for (struct drain_request *r = requests; r; r = r->next)
		r->done = true;
	pthread_cond_broadcast(&c->served);
	pthread_mutex_unlock(&c->lock);
}

void *drain_main(void *arg)
{
	struct collector *c = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_sec += 1;
		pthread_mutex_lock(&c->lock);
		while (!c->stopping && !c->pending &&
		       pthread_cond_timedwait(&c->wake, &c->lock, &next) != ETIMEDOUT)
			;
		bool stopping = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stopping)
			break;
		drain_once(c);
		clock_gettime(CLOCK_MONOTONIC, &next);
	}
	return NULL;
}

/* process_table on_target hook: a dropped host target is stopped in BPF by its pid; a pod's process is
 * filtered by its container's cgroup instead. A target asking for its own rate has it checked here, once
 * per target, and applied to its cgroup by the event thread. */
void on_host_target(void *ctx, const struct process *p, const struct target *target, bool relabeled)
{
	struct collector *c = ctx;

	if (in_pod(c, p))
		return;
	if (target->dropped || relabeled) {
		int err = sampler_set_process_dropped(c->sampler, p->tgid, target->dropped);

		if (err)
			log_warn("cannot update the BPF process filter", "pid=%u err=\"%s\"", p->tgid, strerror(-err));
	}
	host_rates_target_changed(&c->host_rates, p, target, relabeled);
}

/* pod_store policy hook: dropped containers are filtered in BPF by cgroup id; containers with their
 * own rate get their own events. */
unsigned on_pod_policy(void *ctx, uint64_t cgroup_id, const char *path, const struct pod_policy *policy)
{
	struct collector *c = ctx;

	if (!c->rates)
		return 0;
	return cgroup_rates_set(c->rates, cgroup_id, path, policy && policy->dropped, policy ? policy->frequency : 0,
				!policy);
}

/* process_table on_learnt hook (event thread): discovery reads the symbol tables of every mapped file, so
 * it is queued for the discovery thread, and the event thread goes on to the next new process while
 * it still runs. */
void on_process_learnt(void *ctx, struct process *p, const struct maps_snapshot *maps)
{
	struct collector *c = ctx;

	discovery_request(&c->discovery, p, maps);
}

static int collect_targets(struct collector *c, struct target_list *list)
{
	struct target_sources src = {
		.processes = c->processes,
		.pods = c->pods,
		.rates = c->rates,
		.base_frequency = c->cfg->sampling_frequency,
	};

	return target_listing_collect(&src, list);
}

int collector_targets(void *collector, char **json, size_t *len)
{
	struct collector *c = collector;
	struct target_list targets = { 0 };
	char job[256];

	target_labeler_job_name(&c->labeler, job, sizeof(job));
	int err = collect_targets(c, &targets);
	if (!err)
		err = targets_api_render(&targets, job, json, len);
	target_list_free(&targets);
	return err;
}

/* The ledger: drains and what became of their samples, all from the same drain. */
static void write_drain_metrics(struct metrics_buf *b, struct collector *c)
{
	struct metrics_series series;

	pthread_mutex_lock(&c->ledger_lock);
	struct drain_ledger l = c->ledger;
	pthread_mutex_unlock(&c->ledger_lock);
	metrics_counter(b, "anorak_drains_completed_total",
			"Drains whose samples are in anorak_drained_samples_total and the history (all three "
			"change together).",
			l.drains);
	metrics_counter(b, "anorak_bpf_counted_drained_samples_total",
			"Samples the BPF program counted into the generations drained so far, by its own count.",
			l.counted);
	series = metrics_series_begin(b, "anorak_drained_samples_total", "counter",
				      "Samples read from the BPF maps by what became of them: stored (served "
				      "by profiles and the history), or dropped because their target is "
				      "dropped, they have no stack, or memory ran out.");
	metrics_series_value(series, "outcome=\"stored\"", l.stored);
	metrics_series_value(series, "outcome=\"target_dropped\"", l.target_dropped);
	metrics_series_value(series, "outcome=\"no_stack\"", l.no_stack);
	metrics_series_value(series, "outcome=\"out_of_memory\"", l.out_of_memory);
}

/* Raised rates (pods' containers and host cgroups), and the pods' containers. */
static void write_rate_metrics(struct metrics_buf *b, struct collector *c)
{
	struct pod_store_stats ps = { 0 };
	struct cgroup_rates_stats rs = { 0 };

	if (c->pods)
		pod_store_stats(c->pods, &ps);
	if (c->rates)
		cgroup_rates_stats(c->rates, &rs);
	metrics_gauge(b, "anorak_high_frequency_cgroups",
		      "Cgroups sampled at a raised frequency now: pods' containers (annotation or "
		      "__sampling_frequency__) and host targets' cgroups (__sampling_frequency__).", rs.cgroups);
	metrics_gauge(b, "anorak_high_frequency_cgroups_max",
		      "Limit of cgroups at a raised frequency (--sampling.max-high-frequency-containers).",
		      c->cfg->sampling_max_hf_cgroups);
	struct metrics_series series = metrics_series_begin(b, "anorak_high_frequency_refused_total", "counter",
							    "Raised frequencies not applied, by reason: invalid value, "
							    "the cgroup limit, perf events refused.");
	metrics_series_value(series, "reason=\"invalid\"",
			     ps.invalid_frequencies + host_rates_invalid(&c->host_rates));
	metrics_series_value(series, "reason=\"limit\"", rs.refused_limit);
	metrics_series_value(series, "reason=\"perf_event\"", rs.open_errors);
	if (!c->pods)
		return;
	metrics_gauge(b, "anorak_kubernetes_containers", "Containers of this node's pods known now.",
		      ps.containers);
	pod_scan_write_metrics(b, &c->pod_scan);
}

void write_collector_metrics(struct metrics_buf *b, void *ctx)
{
	struct collector *c = ctx;
	struct metrics_series series;

	metrics_counter(b, "anorak_target_dropped_samples_total",
			"Samples of processes whose target relabeling dropped.",
			atomic_load(&c->dropped_target_samples));
	metrics_counter(b, "anorak_offcpu_waits_unattributed_total",
			"Off-CPU waits (scaled) of processes not learnt by the time they were drained, not shown.",
			atomic_load(&c->offcpu_unattributed));
	metrics_counter(b, "anorak_trace_context_discovery_errors_total",
			"Processes whose trace context variables could not be located (unreadable, still "
			"relocating after retries, or too many waiting).",
			trace_discovery_errors(&c->traces));
	trace_discovery_write_metrics(b, &c->traces);

	struct target_list targets = { 0 };
	size_t active = 0, dropped = 0;
	if (!collect_targets(c, &targets))
		target_list_count(&targets, &active, &dropped);
	target_list_free(&targets);
	series = metrics_series_begin(b, "anorak_targets", "gauge",
				      "Targets by state: active (sampled) or dropped by relabeling, as "
				      "/api/v1/targets lists them.");
	metrics_series_value(series, "state=\"active\"", active);
	metrics_series_value(series, "state=\"dropped\"", dropped);
	series = metrics_series_begin(b, "anorak_samples_by_rate_total", "counter",
				      "Samples drained by the rate they were taken at: the base rate, or a "
				      "container's raised one.");
	metrics_series_value(series, "rate=\"base\"", atomic_load(&c->samples_base));
	metrics_series_value(series, "rate=\"high\"", atomic_load(&c->samples_high));
	write_drain_metrics(b, c);
	write_rate_metrics(b, c);
}

void *event_main(void *arg)
{
	struct collector *c = arg;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		bool stopping = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stopping)
			break;
		int n = sampler_poll_events(c->sampler, EVENT_POLL_MS);
		if (n < 0) {
			log_error("polling process events failed", "err=\"%s\"", strerror(-n));
			break;
		}
		sampler_sync_cpus(c->sampler);
		if (c->pods)
			pod_scan_run(&c->pod_scan, realtime_ns());
		host_rates_update(&c->host_rates, realtime_ns());
	}
	return NULL;
}

/* Asks for a drain now and waits for it. */
static int drain_edge(struct collector *c, struct drain_request *r)
{
	int err = 0;

	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return -ESHUTDOWN;
	}
	r->next = c->pending;
	c->pending = r;
	pthread_cond_signal(&c->wake);
	while (!r->done && !c->stopping)
		pthread_cond_wait(&c->served, &c->lock);
	if (!r->done) {
		/* Stopping before the drain thread took it: unlink it so nobody writes it later. */
		for (struct drain_request **p = &c->pending; *p; p = &(*p)->next) {
			if (*p == r) {
				*p = r->next;
				break;
			}
		}
		err = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&c->lock);
	if (!err && r->done)
		err = r->err;
	return err;
}

#define CLIENT_CHECK_NS 250000000L /* how often a waiting profile looks for its client hanging up */

/* Sleeps until deadline (CLOCK_MONOTONIC) unless the collector stops (-ESHUTDOWN) or the client
 * hangs up (-ECANCELED). */
static int wait_until(struct collector *c, const struct timespec *deadline,
		      bool (*client_gone)(void *arg), void *arg)
{
	struct timespec step;

	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &step);
		step.tv_nsec += CLIENT_CHECK_NS;
		if (step.tv_nsec >= 1000000000L) {
			step.tv_sec++;
			step.tv_nsec -= 1000000000L;
		}
		bool last = step.tv_sec > deadline->tv_sec ||
			    (step.tv_sec == deadline->tv_sec && step.tv_nsec >= deadline->tv_nsec);

		pthread_mutex_lock(&c->lock);
		while (!c->stopping &&
		       pthread_cond_timedwait(&c->served, &c->lock, last ? deadline : &step) != ETIMEDOUT)
			;
		bool stopping = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stopping)
			return -ESHUTDOWN;
		if (client_gone && client_gone(arg))
			return -ECANCELED;
		if (last)
			return 0;
	}
}

int collector_profile(void *collector, unsigned seconds, bool offcpu, bool (*client_gone)(void *arg),
		      void *arg, void **out, size_t *outlen)
{
	struct collector *c = collector;
	struct drain_request start = { .pin = true }, end = { 0 };
	struct timespec deadline;
	int err = drain_edge(c, &start);

	if (err)
		return err;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	err = wait_until(c, &deadline, client_gone, arg);
	if (!err)
		err = drain_edge(c, &end);
	if (!err) {
		struct profile_request req = {
			.windows = &c->windows,
			.after_seq = start.seq,
			.through_seq = end.seq,
			.time_ns = start.at_ns,
			.duration_ns = end.at_ns - start.at_ns,
			.base_frequency = c->cfg->sampling_frequency,
			.symbolizer = c->symbolizer,
			.offcpu = offcpu,
		};
		err = profile_encode(&req, out, outlen);
	}
	slice_store_unpin(&c->windows, start.seq);
	return err;
}

struct history *collector_history(struct collector *c)
{
	return c->history;
}

int collector_reload(struct collector *c)
{
	int err = target_labeler_reload(&c->labeler);

	if (err)
		return err;
	/* Samples from now on carry the new labels; those already drained keep theirs. */
	process_table_relabel(c->processes);
	if (c->pods)
		pod_store_relabel(c->pods);
	return 0;
}
