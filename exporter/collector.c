#include "collector.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "profile.h"
#include "sampler.h"
#include "symbolize.h"
#include "tracectx.h"
#include "window.h"

#define DRAIN_INTERVAL_NS 1000000000LL
#define EVENT_POLL_MS 200
/* Processes sampled while still relocating (TLSDESC not resolved yet) are looked at again on each
 * event poll, a bounded number of times. */
#define TRACE_RETRIES_MAX 64
#define TRACE_RETRY_ATTEMPTS 10

/* A profile window's edge: served by the first drain that starts after it was asked for. */
struct drain_request {
	bool pin;          /* keep the slices after this drain (a window's start) */
	bool done;
	int err;
	uint64_t seq;      /* the drain that served it */
	int64_t at_ns;     /* CLOCK_REALTIME at that drain */
	struct drain_request *next;
};

struct trace_retry {
	struct process *process; /* referenced */
	int attempts;
};

struct collector {
	const struct anorak_config *cfg;
	struct target_labeler labeler;
	bool labeler_ready;
	char address[320];          /* __address__ of host targets */
	atomic_uint_fast64_t dropped_target_samples;
	/* Event thread only. */
	struct trace_retry trace_retries[TRACE_RETRIES_MAX];
	int ntrace_retries;
	atomic_uint_fast64_t trace_discovery_errors;
	struct symbolizer *symbolizer;
	struct process_table *processes;
	struct sampler *sampler;
	struct window_store windows;
	struct history *history;

	pthread_mutex_t lock;
	pthread_cond_t wake;       /* drain thread: a request came, or stopping */
	pthread_cond_t served;     /* requesters: their drain is done */
	struct drain_request *pending;
	bool stopping;
	uint64_t drain_seq;
	int64_t last_drain_ns;

	pthread_t drain_thread, event_thread;
	bool drain_started, event_started;
	atomic_bool ready;
};

struct drain_ctx {
	struct collector *c;
	struct slice *slice;
	uint64_t lost;
};

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void add_drained(const struct drained_sample *d, void *ctx)
{
	struct drain_ctx *dc = ctx;
	struct proc_maps *maps = NULL;
	struct process *p = process_table_resolve(dc->c->processes, d->key->tgid, d->user, d->nuser, &maps);
	struct trace_ids trace;

	/* A target relabeling dropped is not served; its samples are counted and let go here. */
	if (p && p->dropped) {
		atomic_fetch_add(&dc->c->dropped_target_samples, d->count);
		process_put(p);
		if (maps)
			proc_maps_put(maps);
		return;
	}
	memcpy(trace.trace_id, d->key->trace_id, sizeof(trace.trace_id));
	memcpy(trace.span_id, d->key->span_id, sizeof(trace.span_id));
	if (!p || slice_add(dc->slice, p, maps, &trace, d->key->tid, d->key->cgroup_id, d->count,
			    d->key->user_stack, d->user, d->nuser, d->key->kernel_stack, d->kernel,
			    d->nkernel))
		dc->lost += d->count;
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
		r->err = r->pin ? window_store_pin(&c->windows, seq) : 0;
	}
	if (dc.slice) {
		slice_seal(dc.slice, end_ns);
		/* Before the store may free it: nobody may have pinned it. */
		if (history_add_slice(c->history, dc.slice))
			log_warn("samples lost while keeping a drain in the history: out of memory", NULL);
		window_store_append(&c->windows, dc.slice);
	}
	/* After the slice is stored: the processes it references stay alive through it. */
	process_table_drain_end(c->processes);

	pthread_mutex_lock(&c->lock);
	c->last_drain_ns = end_ns;
	for (struct drain_request *r = requests; r; r = r->next)
		r->done = true;
	pthread_cond_broadcast(&c->served);
	pthread_mutex_unlock(&c->lock);
}

static void *drain_main(void *arg)
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

static enum process_trace_source trace_source(const struct tracectx_slot *slot, bool otel)
{
	if (slot->tls == TRACECTX_TLS_DYNAMIC)
		return PROCESS_TRACE_DYNAMIC_TLS;
	if (slot->tls == TRACECTX_TLS_STATIC_EXE)
		return otel ? PROCESS_TRACE_OTEL_STATIC : PROCESS_TRACE_CUSTOM_STATIC;
	return otel ? PROCESS_TRACE_OTEL_TLSDESC : PROCESS_TRACE_CUSTOM_TLSDESC;
}

static bool readable(const struct tracectx_slot *slot)
{
	return slot->kind != TRACECTX_NONE && slot->tls != TRACECTX_TLS_DYNAMIC;
}

/* Finds where the process publishes trace contexts and tells the BPF program. -EAGAIN: not yet. */
static int discover_trace_context(struct collector *c, struct process *p)
{
	struct tracectx_result r;
	struct trace_slot slot = { 0 };
	int err = tracectx_discover("/proc", (int)p->tgid, c->cfg->elf_max_bytes, &r);

	if (err)
		return err;
	/* OTel first: it is the standard; custom labels are read when it gives no ids. The source is
	 * read by the metrics writer while the process may already be in the table. */
	enum process_trace_source source = PROCESS_TRACE_NONE;
	if (r.custom.kind != TRACECTX_NONE)
		source = trace_source(&r.custom, false);
	if (r.otel.kind != TRACECTX_NONE && (readable(&r.otel) || !readable(&r.custom)))
		source = trace_source(&r.otel, true);
	__atomic_store_n(&p->trace_source, source, __ATOMIC_RELAXED);
	slot.has_otel = readable(&r.otel);
	slot.otel_tpoff = r.otel.tpoff;
	slot.has_custom = readable(&r.custom);
	slot.custom_tpoff = r.custom.tpoff;
	if (!slot.has_otel && !slot.has_custom)
		return 0;
	err = sampler_set_trace_slot(c->sampler, p->tgid, &slot);
	if (err)
		log_warn("cannot hand a trace context slot to BPF", "pid=%u err=\"%s\"", p->tgid, strerror(-err));
	return err;
}

static void queue_trace_retry(struct collector *c, struct process *p)
{
	if (c->ntrace_retries == TRACE_RETRIES_MAX) {
		atomic_fetch_add(&c->trace_discovery_errors, 1);
		return;
	}
	c->trace_retries[c->ntrace_retries++] = (struct trace_retry){ .process = process_get(p) };
}

/* process_table on_learnt hook: runs on the event thread, so the drain never waits for it. */
static void on_process_learnt(void *ctx, struct process *p)
{
	struct collector *c = ctx;
	int err = discover_trace_context(c, p);

	if (err == -EAGAIN)
		queue_trace_retry(c, p);
	else if (err && err != -ENOENT && err != -ESRCH)
		atomic_fetch_add(&c->trace_discovery_errors, 1);
}

static void retry_trace_discovery(struct collector *c)
{
	int kept = 0;

	for (int i = 0; i < c->ntrace_retries; i++) {
		struct trace_retry *r = &c->trace_retries[i];
		int err = discover_trace_context(c, r->process);

		if (err == -EAGAIN && ++r->attempts < TRACE_RETRY_ATTEMPTS) {
			c->trace_retries[kept++] = *r;
			continue;
		}
		if (err && err != -ESRCH)
			atomic_fetch_add(&c->trace_discovery_errors, 1);
		process_put(r->process);
	}
	c->ntrace_retries = kept;
}

static void write_collector_metrics(struct metrics_buf *b, void *ctx)
{
	struct collector *c = ctx;

	metrics_family(b, "anorak_target_dropped_samples_total", "counter",
		       "Samples of processes whose target relabeling dropped.");
	metrics_value(b, "anorak_target_dropped_samples_total", NULL, atomic_load(&c->dropped_target_samples));
	metrics_family(b, "anorak_trace_context_discovery_errors_total", "counter",
		       "Processes whose trace context variables could not be located (unreadable, still "
		       "relocating after retries, or too many waiting).");
	metrics_value(b, "anorak_trace_context_discovery_errors_total", NULL,
		      atomic_load(&c->trace_discovery_errors));
}

static void *event_main(void *arg)
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
		retry_trace_discovery(c);
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

/* Sleeps until deadline (CLOCK_MONOTONIC) unless the collector stops. */
static int wait_until(struct collector *c, const struct timespec *deadline)
{
	int err = 0;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping && pthread_cond_timedwait(&c->served, &c->lock, deadline) != ETIMEDOUT)
		;
	if (c->stopping)
		err = -ESHUTDOWN;
	pthread_mutex_unlock(&c->lock);
	return err;
}

int collector_profile(void *collector, unsigned seconds, void **out, size_t *outlen)
{
	struct collector *c = collector;
	struct drain_request start = { .pin = true }, end = { 0 };
	struct timespec deadline;
	int err = drain_edge(c, &start);

	if (err)
		return err;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	err = wait_until(c, &deadline);
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
		};
		err = profile_encode(&req, out, outlen);
	}
	window_store_unpin(&c->windows, start.seq);
	return err;
}

struct history *collector_history(struct collector *c)
{
	return c->history;
}

int collector_reload(struct collector *c)
{
	return target_labeler_reload(&c->labeler);
}

/* The port of a Prometheus-style listen address (":9760", "host:9760", "[::1]:9760"). */
static const char *listen_port(const char *listen_address)
{
	const char *colon = strrchr(listen_address, ':');

	return colon && colon[1] ? colon + 1 : "9760";
}

bool collector_ready(void *collector)
{
	struct collector *c = collector;

	return atomic_load(&c->ready);
}

static int start_threads(struct collector *c)
{
	int err = pthread_create(&c->drain_thread, NULL, drain_main, c);

	if (err)
		return -err;
	c->drain_started = true;
	err = pthread_create(&c->event_thread, NULL, event_main, c);
	if (err)
		return -err;
	c->event_started = true;
	return 0;
}

int collector_start(const struct anorak_config *cfg, const char *node_name, struct collector **out)
{
	struct collector *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->cfg = cfg;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &monotonic);
	pthread_cond_init(&c->served, &monotonic);
	pthread_condattr_destroy(&monotonic);
	window_store_init(&c->windows);
	c->last_drain_ns = realtime_ns();

	struct symbolizer_opts sym_opts = {
		.cache_max_bytes = cfg->symbol_cache_bytes,
		.elf_max_bytes = cfg->elf_max_bytes,
		.max_symbols_per_file = 4000000,
		.proc_root = "/proc",
		.kallsyms_path = "/proc/kallsyms",
	};
	c->symbolizer = symbolizer_new(&sym_opts);
	if (!c->symbolizer) {
		err = -ENOMEM;
		goto fail;
	}
	struct history_opts history_opts = {
		.retention_ns = (int64_t)(cfg->retention_seconds > INT64_MAX / 1000000000 ? INT64_MAX / 1000000000
							    : cfg->retention_seconds) * 1000000000,
		.max_bytes = cfg->storage_max_bytes,
		.window_ns = HISTORY_WINDOW_NS,
		.symbolizer = c->symbolizer,
	};
	err = history_new(&history_opts, &c->history);
	if (err)
		goto fail;
	err = target_labeler_init(&c->labeler, cfg->config_file);
	if (err)
		goto fail;
	c->labeler_ready = true;
	snprintf(c->address, sizeof(c->address), "%s:%s", node_name, listen_port(cfg->listen_address));
	struct process_table_opts proc_opts = {
		.on_learnt = on_process_learnt,
		.on_learnt_ctx = c,
		.symbolizer = c->symbolizer,
		.proc_root = "/proc",
		.labeler = &c->labeler,
		.address = c->address,
		.max_processes = cfg->max_processes,
	};
	err = process_table_new(&proc_opts, &c->processes);
	if (err)
		goto fail;
	struct sampler_opts sampler_opts = {
		.frequency = cfg->sampling_frequency,
		.include_idle = cfg->sampling_include_idle,
		.stack_map_entries = cfg->bpf_stack_map_entries,
		.count_map_entries = cfg->bpf_count_map_entries,
		.max_processes = cfg->max_processes,
	};
	err = sampler_open(&sampler_opts, process_table_on_event, c->processes, &c->sampler);
	if (err)
		goto fail;
	err = start_threads(c);
	if (err) {
		log_error("cannot start the collector threads", "err=\"%s\"", strerror(-err));
		goto fail;
	}
	metrics_register(sampler_write_metrics, c->sampler);
	metrics_register(process_table_write_metrics, c->processes);
	metrics_register(symbolizer_write_metrics, c->symbolizer);
	metrics_register(write_collector_metrics, c);
	metrics_register(history_write_metrics, c->history);
	atomic_store(&c->ready, true);
	*out = c;
	return 0;
fail:
	collector_free(c);
	return err;
}

void collector_stop(struct collector *c)
{
	atomic_store(&c->ready, false);
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->wake);
	pthread_cond_broadcast(&c->served);
	pthread_mutex_unlock(&c->lock);
	window_store_stop(&c->windows);
	if (c->drain_started)
		pthread_join(c->drain_thread, NULL);
	if (c->event_started)
		pthread_join(c->event_thread, NULL);
	c->drain_started = c->event_started = false;
}

void collector_free(struct collector *c)
{
	if (!c)
		return;
	collector_stop(c);
	for (int i = 0; i < c->ntrace_retries; i++)
		process_put(c->trace_retries[i].process);
	sampler_close(c->sampler);
	window_store_destroy(&c->windows);
	history_free(c->history);
	process_table_free(c->processes);
	symbolizer_free(c->symbolizer);
	if (c->labeler_ready)
		target_labeler_destroy(&c->labeler);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->served);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
