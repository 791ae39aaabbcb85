#include "exporter/trace_discovery.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "exporter/sampling/tracectx.h"

/* A process still relocating is looked at every 100 ms, 10 times. */
#define TRACE_RETRY_ATTEMPTS 10
#define TRACE_RETRY_INTERVAL_NS 100000000LL
/* A process younger than this in which nothing was found is looked at once more, this much later: its
 * first sample may have come before the loader mapped a library publishing a trace context. */
#define TRACE_YOUNG_SECONDS 2.0
#define TRACE_SECOND_LOOK_NS 1000000000LL

enum { SECOND_LOOK_FOUND, SECOND_LOOK_NONE, SECOND_LOOK_REFUSED };

void trace_discovery_init(struct trace_discovery *t, struct sampler *sampler, uint64_t elf_max_bytes)
{
	t->sampler = sampler;
	t->elf_max_bytes = elf_max_bytes;
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

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Hands BPF the slot, unless the process left the program id names (exec, exit) by then: BPF forgot
 * it at that point, so a slot written after would be the old program's for the new one. */
static int set_slot(struct trace_discovery *t, uint32_t tgid, const struct trace_slot *slot,
		    const struct proc_identity *id)
{
	int err = sampler_set_trace_slot(t->sampler, tgid, slot);

	if (err) {
		log_warn("cannot hand a trace context slot to BPF", "pid=%u err=\"%s\"", tgid, strerror(-err));
		return err;
	}
	if (proc_identity_current(id, "/proc", (int)tgid))
		return 0;
	sampler_forget_trace_slot(t->sampler, tgid);
	return -ESRCH;
}

/* Finds where the process (running the program id names) publishes trace contexts and tells the BPF
 * program. -EAGAIN: not yet. *found: it publishes one, readable or not. */
static int discover(struct trace_discovery *t, struct process *p, const struct proc_identity *id, bool *found)
{
	struct tracectx_result r;
	struct trace_slot slot = { 0 };
	int err = tracectx_discover_files("/proc", (int)p->tgid, t->elf_max_bytes, &t->files, &r);

	*found = false;
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
	*found = source != PROCESS_TRACE_NONE;
	slot.has_otel = readable(&r.otel);
	slot.otel_tpoff = r.otel.tpoff;
	slot.has_custom = readable(&r.custom);
	slot.custom_tpoff = r.custom.tpoff;
	if (!slot.has_otel && !slot.has_custom)
		return 0;
	return set_slot(t, p->tgid, &slot, id);
}

/* false when the retries are full; second looks take half of them at most, so a burst of new processes
 * leaves room for those still relocating. */
static bool queue_retry(struct trace_discovery *t, struct process *p, const struct proc_identity *id,
			bool second_look)
{
	if (t->nretries >= (second_look ? TRACE_RETRIES_MAX / 2 : TRACE_RETRIES_MAX))
		return false;
	t->retries[t->nretries++] = (struct trace_retry){
		.process = process_get(p),
		.id = *id,
		.second_look = second_look,
		.next_ns = monotonic_ns() + (second_look ? TRACE_SECOND_LOOK_NS : TRACE_RETRY_INTERVAL_NS),
	};
	return true;
}

void trace_discovery_learnt(struct trace_discovery *t, struct process *p, const struct proc_identity *id)
{
	bool found;
	int err = discover(t, p, id, &found);

	if (err == -EAGAIN) {
		if (!queue_retry(t, p, id, false))
			atomic_fetch_add(&t->errors, 1);
	} else if (err && err != -ENOENT && err != -ESRCH) {
		atomic_fetch_add(&t->errors, 1);
	} else if (!err && !found && proc_identity_age_seconds(id) < TRACE_YOUNG_SECONDS) {
		if (!queue_retry(t, p, id, true))
			atomic_fetch_add(&t->second_looks[SECOND_LOOK_REFUSED], 1);
	}
}

/* Whether r is done with (its reference still held). */
static bool look_again(struct trace_discovery *t, struct trace_retry *r, int64_t now)
{
	bool found;
	int err;

	/* Exec'd or exited since: BPF forgot it, and a new program is looked at from its own first sample. */
	if (!proc_identity_current(&r->id, "/proc", (int)r->process->tgid))
		return true;
	err = discover(t, r->process, &r->id, &found);
	if (r->second_look) {
		/* -EAGAIN: found, still relocating; then retried as any other. */
		found = found || err == -EAGAIN;
		if (err != -ESRCH)
			atomic_fetch_add(&t->second_looks[found ? SECOND_LOOK_FOUND : SECOND_LOOK_NONE], 1);
		if (err != -EAGAIN)
			return true;
		r->second_look = false;
	}
	if (err == -EAGAIN && ++r->attempts < TRACE_RETRY_ATTEMPTS) {
		r->next_ns = now + TRACE_RETRY_INTERVAL_NS;
		return false;
	}
	if (err && err != -ESRCH)
		atomic_fetch_add(&t->errors, 1);
	return true;
}

int64_t trace_discovery_retry(struct trace_discovery *t)
{
	int64_t now = monotonic_ns(), next = 0;
	int kept = 0;

	for (int i = 0; i < t->nretries; i++) {
		struct trace_retry *r = &t->retries[i];

		if (now >= r->next_ns && look_again(t, r, now)) {
			process_put(r->process);
			continue;
		}
		if (!next || r->next_ns < next)
			next = r->next_ns;
		t->retries[kept++] = *r;
	}
	t->nretries = kept;
	return next;
}

uint64_t trace_discovery_errors(struct trace_discovery *t)
{
	return atomic_load(&t->errors);
}

void trace_discovery_write_metrics(struct metrics_buf *b, struct trace_discovery *t)
{
	metrics_counter(b, "anorak_trace_context_files_skipped_total",
			"Mapped files not opened while looking for trace context variables: known to define none.",
			atomic_load(&t->files.skipped));
	metrics_counter(b, "anorak_trace_context_file_cache_evictions_total",
			"Files known to define no trace context variable forgotten for another file of their slot "
			"in the fixed-size cache of such files.",
			atomic_load(&t->files.evictions));
	struct metrics_series series = metrics_series_begin(
		b, "anorak_trace_context_second_looks_total", "counter",
		"Processes younger than 2 s in which no trace context variable was found, looked at once "
		"more 1 s later, by result (refused: 32 such looks already waiting).");
	metrics_series_value(series, "result=\"found\"", atomic_load(&t->second_looks[SECOND_LOOK_FOUND]));
	metrics_series_value(series, "result=\"none\"", atomic_load(&t->second_looks[SECOND_LOOK_NONE]));
	metrics_series_value(series, "result=\"refused\"", atomic_load(&t->second_looks[SECOND_LOOK_REFUSED]));
}

void trace_discovery_destroy(struct trace_discovery *t)
{
	for (int i = 0; i < t->nretries; i++)
		process_put(t->retries[i].process);
	t->nretries = 0;
}
