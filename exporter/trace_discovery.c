#include "exporter/trace_discovery.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "exporter/sampling/tracectx.h"

#define TRACE_RETRY_ATTEMPTS 10

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

/* Finds where the process publishes trace contexts and tells the BPF program. -EAGAIN: not yet. */
static int discover(struct trace_discovery *t, struct process *p)
{
	struct tracectx_result r;
	struct trace_slot slot = { 0 };
	int err = tracectx_discover_files("/proc", (int)p->tgid, t->elf_max_bytes, &t->files, &r);

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
	err = sampler_set_trace_slot(t->sampler, p->tgid, &slot);
	if (err)
		log_warn("cannot hand a trace context slot to BPF", "pid=%u err=\"%s\"", p->tgid, strerror(-err));
	return err;
}

static void queue_retry(struct trace_discovery *t, struct process *p)
{
	if (t->nretries == TRACE_RETRIES_MAX) {
		atomic_fetch_add(&t->errors, 1);
		return;
	}
	t->retries[t->nretries++] = (struct trace_retry){ .process = process_get(p) };
}

void trace_discovery_learnt(struct trace_discovery *t, struct process *p)
{
	int err = discover(t, p);

	if (err == -EAGAIN)
		queue_retry(t, p);
	else if (err && err != -ENOENT && err != -ESRCH)
		atomic_fetch_add(&t->errors, 1);
}

void trace_discovery_retry(struct trace_discovery *t)
{
	int kept = 0;

	for (int i = 0; i < t->nretries; i++) {
		struct trace_retry *r = &t->retries[i];
		int err = discover(t, r->process);

		if (err == -EAGAIN && ++r->attempts < TRACE_RETRY_ATTEMPTS) {
			t->retries[kept++] = *r;
			continue;
		}
		if (err && err != -ESRCH)
			atomic_fetch_add(&t->errors, 1);
		process_put(r->process);
	}
	t->nretries = kept;
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
}

void trace_discovery_destroy(struct trace_discovery *t)
{
	for (int i = 0; i < t->nretries; i++)
		process_put(t->retries[i].process);
	t->nretries = 0;
}
