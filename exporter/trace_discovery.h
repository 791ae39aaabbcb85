/*
 * Where each new process publishes its trace context (OTel or custom labels thread-local variables),
 * handed to the BPF program so samples carry trace and span ids. A process still relocating (TLSDESC
 * not resolved yet) is looked at again every 100 ms, a bounded number of times; a young one (under 2 s)
 * in which nothing was found, once more after 1 s. Everything here but the metrics runs on the
 * discovery thread (exporter/discovery.h).
 */
#ifndef ANORAK_TRACE_DISCOVERY_H
#define ANORAK_TRACE_DISCOVERY_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/metrics.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/sampling/sampler.h"
#include "exporter/sampling/tracectx.h"
#include "exporter/symbols/process.h"

#define TRACE_RETRIES_MAX 64

struct trace_retry {
	struct process *process; /* referenced */
	struct proc_identity id; /* the program it ran when learnt */
	int attempts;
	bool second_look;        /* young, nothing found: one more look */
	int64_t next_ns;         /* CLOCK_MONOTONIC */
};

struct trace_discovery {
	struct sampler *sampler;
	uint64_t elf_max_bytes;
	/* Discovery thread only. */
	struct trace_retry retries[TRACE_RETRIES_MAX];
	int nretries;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t second_looks[3]; /* found, none, refused */
	struct tracectx_files files; /* discovery thread only; its counters read by the metrics writer */
};

void trace_discovery_init(struct trace_discovery *t, struct sampler *sampler, uint64_t elf_max_bytes);
/* Looks at a process learnt from its first sample, running the program id names (a slot found after it
 * left that program is taken back). */
void trace_discovery_learnt(struct trace_discovery *t, struct process *p, const struct proc_identity *id);
/* Looks again at the processes whose time came (still relocating, or young); when the next one is due
 * (CLOCK_MONOTONIC ns), 0 when none waits. */
int64_t trace_discovery_retry(struct trace_discovery *t);
/* Processes whose trace context could not be located (unreadable, still relocating after the
 * retries, or too many waiting). */
uint64_t trace_discovery_errors(struct trace_discovery *t);
/* Writes the file cache's counters (struct tracectx_files) and the second looks. */
void trace_discovery_write_metrics(struct metrics_buf *b, struct trace_discovery *t);
/* Drops the processes still waiting. */
void trace_discovery_destroy(struct trace_discovery *t);

#endif
