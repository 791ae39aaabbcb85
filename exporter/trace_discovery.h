/*
 * Where each new process publishes its trace context (OTel or custom labels thread-local variables),
 * handed to the BPF program so samples carry trace and span ids. A process still relocating (TLSDESC
 * not resolved yet) is looked at again on each event poll, a bounded number of times.
 */
#ifndef ANORAK_TRACE_DISCOVERY_H
#define ANORAK_TRACE_DISCOVERY_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/metrics.h"
#include "exporter/sampling/sampler.h"
#include "exporter/sampling/tracectx.h"
#include "exporter/symbols/process.h"

#define TRACE_RETRIES_MAX 64

struct trace_retry {
	struct process *process; /* referenced */
	int attempts;
};

struct trace_discovery {
	struct sampler *sampler;
	uint64_t elf_max_bytes;
	/* Event thread only. */
	struct trace_retry retries[TRACE_RETRIES_MAX];
	int nretries;
	atomic_uint_fast64_t errors;
	struct tracectx_files files; /* event thread only; its counters read by the metrics writer */
};

void trace_discovery_init(struct trace_discovery *t, struct sampler *sampler, uint64_t elf_max_bytes);
/* The process table's on_learnt hook (event thread). */
void trace_discovery_learnt(struct trace_discovery *t, struct process *p);
/* Event thread: looks again at the processes that were still relocating. */
void trace_discovery_retry(struct trace_discovery *t);
/* Processes whose trace context could not be located (unreadable, still relocating after the
 * retries, or too many waiting). */
uint64_t trace_discovery_errors(struct trace_discovery *t);
/* Writes the file cache's counters (struct tracectx_files). */
void trace_discovery_write_metrics(struct metrics_buf *b, struct trace_discovery *t);
/* Drops the processes still waiting. */
void trace_discovery_destroy(struct trace_discovery *t);

#endif
