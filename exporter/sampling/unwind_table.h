/*
 * Unwind tables in BPF maps: one compact table (exporter/sampling/ehframe.c; for Go code
 * exporter/sampling/unwind_go.c) per binary, shared by every process mapping it, and per process the
 * address ranges of its executable mappings with their table and load bias (bpf/unwind.h). Processes
 * are added when the sampler learns them (first sample, exec) and again when BPF reports that their
 * stacks left the known ranges (dlopen, an evicted table); BPF drops a process's entry itself on exec
 * and exit.
 *
 * Table rows share one array map of a fixed size (--unwind.table-memory); when a new table does not
 * fit, the tables least recently used by samples are evicted (counted). Tables are keyed by the mapped
 * file's device, inode, size and modification time, so one file is parsed once however many
 * processes map it. Requests come from the event thread and are built on a thread of the unwinder's
 * own; metrics are read from any thread.
 */
#ifndef ANORAK_UNWIND_TABLE_H
#define ANORAK_UNWIND_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

struct maps_snapshot;
struct metrics_buf;
struct unwinder;

struct unwinder_maps {
	int rows_fd;        /* unwind_rows */
	int index_fd;       /* unwind_index: the first pc of each block of rows */
	int tables_fd;      /* unwind_tables */
	int procs_fd;       /* unwind_procs */
	int counters_fd;    /* unwind_counters (per CPU) */
	int sync_fd;        /* unwind_sync: re-setting entry 0 waits for running programs */
	int sync_inner_fd;  /* the map entry 0 is re-set to */
	__u64 *epoch;       /* unwind_epoch in the program's .bss: bumped on eviction */
	__u64 *announce_epoch; /* bumped after a process entry is written: CPUs remember entries within one */
	uint32_t nrows;     /* capacity of unwind_rows, whole blocks (unwind_index has one entry each) */
	uint32_t nprocs;    /* max_entries of unwind_procs */
	int ncpus;          /* possible CPUs, for the per-CPU counters */
};

struct unwinder_opts {
	const char *proc_root;   /* "/proc" */
	uint64_t elf_max_bytes;  /* larger files get no table */
};

/* How --unwind.table-memory is split: process entries get a quarter (at most one per tracked
 * process), the rows (whole blocks) and their block index the rest. */
void unwinder_plan(uint64_t memory_bytes, uint32_t max_processes, uint32_t *nrows, uint32_t *nprocs);

int unwinder_new(const struct unwinder_opts *opts, const struct unwinder_maps *maps, struct unwinder **out);
void unwinder_free(struct unwinder *u);

/* Queues the process: the builder thread reads its mappings (snap, when not NULL, is them read at the
 * first sample: used while the process still runs the same program, else read afresh), finds or builds
 * the tables of its executable files and writes its entry. -ENOSPC when the queue is full (counted). */
int unwinder_request(struct unwinder *u, uint32_t tgid, struct maps_snapshot *snap);

/* ring_buffer callback for unwind_events (struct unwind_event): re-adds the process. */
int unwinder_handle_event(void *unwinder, void *data, size_t size);

/* anorak_unwind_* families. */
void unwinder_write_metrics(struct metrics_buf *b, void *unwinder);

#endif
