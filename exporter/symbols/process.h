/*
 * Processes the sampler has seen: their target labels and mapping snapshots. A process learnt from its
 * first sample (or exec) is kept after it exits until the drain that holds its last samples is done;
 * samples hold references, so windows encoded later still have its labels and mappings.
 */
#ifndef ANORAK_PROCESS_H
#define ANORAK_PROCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/types.h>
#include "labels/cgroup.h"
#include "labels/labelset.h"
#include "bpf/profiler.h"
#include "labels/targets.h"

struct metrics_buf;
struct symbolizer;
struct proc_maps;
struct maps_snapshot;

/* Where a process publishes trace contexts, as discovery found it (for metrics). */
enum process_trace_source {
	PROCESS_TRACE_NONE = 0,
	PROCESS_TRACE_OTEL_STATIC,      /* otel_thread_ctx_v1 in the executable */
	PROCESS_TRACE_OTEL_TLSDESC,     /* otel_thread_ctx_v1 in a start-up library */
	PROCESS_TRACE_CUSTOM_STATIC,    /* custom-labels v1 in the executable */
	PROCESS_TRACE_CUSTOM_TLSDESC,   /* custom-labels v1 in a start-up library */
	PROCESS_TRACE_DYNAMIC_TLS,      /* found, but in dynamic TLS: not read */
	PROCESS_TRACE_SOURCES,
};

struct process {
	atomic_int refs;
	uint32_t tgid;
	char comm[16];
	enum process_trace_source trace_source;
	struct cgroup_identity cgroup; /* as /proc/PID/cgroup said when it was learnt */
	uint64_t cgroup2_id;           /* its cgroup2 cgroup then; 0 when unknown */
	/* Guarded by the table's lock. */
	struct target *target;    /* its host target (outside Kubernetes pods); replaced on relabeling */
	struct proc_maps *maps;
	int64_t maps_loaded_ns;
	bool callers_reread;      /* maps read again once for a caller frame outside them */
	int64_t learnt_ns;        /* when read from /proc (an untracked one is read again after a while) */
	uint64_t gone_after_drain; /* exited or replaced by exec: purge after the next drain */
	bool gone;
	struct process *hash_next;
	struct process *previous; /* the incarnation before the last exec, kept one drain */
};

struct process_table_opts {
	/* Called whenever a process gets a host target (learnt, or relabeled), outside the table's lock:
	 * dropped ones are handed to the BPF filter here. */
	void (*on_target)(void *ctx, const struct process *p, const struct target *target, bool relabeled);
	void *on_target_ctx;
	/* Called on the event thread, never the drain thread, for each process learnt from an event,
	 * before it enters the table: discovery that reads files and memory is queued here. maps: the
	 * process's mappings as read for the table (NULL when they were not: read them afresh). */
	void (*on_learnt)(void *ctx, struct process *p, const struct maps_snapshot *maps);
	void *on_learnt_ctx;
	struct symbolizer *symbolizer;
	const char *proc_root;      /* "/proc" */
	const char *cgroup2_mount;  /* where cgroup2 is mounted; "" or NULL: processes get no cgroup2_id */
	struct target_labeler *labeler;
	const char *address;        /* __address__ of host targets: this exporter's address on the node */
	uint32_t max_processes;
};

struct process_table;

int process_table_new(const struct process_table_opts *opts, struct process_table **out);
void process_table_free(struct process_table *t);

/* sampler_event_fn: a process was sampled for the first time, exec'd or exited. A first sample reads the
 * process's mappings once: *maps (when maps is not NULL) gets a reference to them for the unwinder, or
 * NULL. */
void process_table_on_event(const struct process_event *e, void *table, struct maps_snapshot **maps);

/* The incarnation of tgid that the user stack belongs to, learnt now if unknown; with a reference
 * to its mappings at this moment in *maps (NULL when they could not be read). NULL when the table is
 * full or the process vanished unseen. Called by the drain thread only. */
struct process *process_table_resolve(struct process_table *t, uint32_t tgid, const uint64_t *user,
				      uint32_t nuser, struct proc_maps **maps);

/* Bracket each drain: processes that exited before a drain began are purged when it ends. */
void process_table_drain_begin(struct process_table *t);
void process_table_drain_end(struct process_table *t);

/* A reference to the process's current host target. */
struct target *process_target(struct process_table *t, struct process *p);
/* Relabels every process with the labeler's current configuration (after a reload). */
void process_table_relabel(struct process_table *t);
/* Calls fn for the host target of every live process, under the table's lock. */
void process_table_each_target(struct process_table *t,
			       void (*fn)(void *ctx, const struct process *p, const struct target *target), void *ctx);

struct process *process_get(struct process *p);
void process_put(struct process *p);

/* anorak_processes_tracked, anorak_process_maps_loads_total{result}, anorak_processes_untracked_total,
 * anorak_process_maps_snapshots_oversize_total,
 * anorak_trace_context_processes{source}. */
void process_table_write_metrics(struct metrics_buf *b, void *table);

#endif
