/*
 * The BPF side as user space sees it: loads the BPF object (bpf/profiler.bpf.c linked with
 * bpf/unwind.bpf.c, bpf/tracectx.bpf.c and bpf/offcpu.bpf.c), opens one cpu-clock perf event per online
 * CPU (and hooks sched_switch for off-CPU waits when asked), and drains the sample counts of a
 * generation on demand. Not thread-safe: one drain thread calls sampler_drain,
 * one event thread calls sampler_poll_events.
 */
#ifndef ANORAK_SAMPLER_H
#define ANORAK_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/profiler.h"
#include "bpf/python.h"

struct metrics_buf;
struct maps_snapshot;

struct sampler_opts {
	unsigned frequency;          /* Hz per CPU */
	bool include_idle;
	uint32_t stack_map_entries;  /* per generation */
	uint32_t count_map_entries;  /* per generation */
	uint32_t max_processes;      /* processes announced to user space (LRU) */
	uint32_t max_cgroup_policies;
	uint64_t unwind_table_bytes; /* BPF memory for unwind tables; 0: frame pointers only */
	uint64_t elf_max_bytes;      /* larger files get no unwind table */
	double offcpu_probability;   /* of following a blocking switch; 0: no off-CPU profile */
	uint64_t offcpu_min_ns;      /* shorter waits are not counted */
	uint32_t offcpu_waits_entries; /* waits in flight */
	bool offcpu_include_self;    /* also the daemon's own waits */
};

/* One drained count: frames are leaf first, valid only during the callback. Off-CPU counts (key->kind)
 * are scaled by 1/probability, so they estimate all waits. */
struct drained_sample {
	const struct sample_key *key;
	uint64_t count;
	const uint64_t *user;
	uint32_t nuser;
	const uint64_t *kernel;
	uint32_t nkernel;
};

typedef void (*sampler_sample_fn)(const struct drained_sample *s, void *ctx);
/* A first sample's handler may hand back the process's mappings, read once, for the unwinder (a
 * reference, or NULL). */
typedef void (*sampler_event_fn)(const struct process_event *e, void *ctx, struct maps_snapshot **maps);

struct sampler;

/* Loads and attaches everything. On failure logs one line saying what failed and what to do and
 * returns negative errno. */
int sampler_open(const struct sampler_opts *opts, sampler_event_fn on_event, void *event_ctx,
		 struct sampler **out);
void sampler_close(struct sampler *s);

/* Switches generation, waits until no BPF program still writes the old one, and hands every count of
 * the old one to on_sample, then empties it. */
int sampler_drain(struct sampler *s, sampler_sample_fn on_sample, void *ctx);

/* counted: what the BPF program counted into the generations drained so far (its own count, exact at
 * each drain); drained: the samples read from them. Equal unless a drain failed part way (the rest
 * then waits in the map for the generation's next drain). Drain thread, or any thread for metrics. */
void sampler_drained_totals(struct sampler *s, uint64_t *counted, uint64_t *drained);

/* Tells the BPF program where process tgid publishes its trace context (thread-safe). */
int sampler_set_trace_slot(struct sampler *s, uint32_t tgid, const struct trace_slot *slot);
/* Hands BPF the interpreter of a CPython process (bpf/python.h); BPF forgets it on exec and exit. */
int sampler_set_python_proc(struct sampler *s, uint32_t tgid, const struct python_proc *proc);
/* Takes back an entry written for a program the process left (exec, exit) while it was discovered. */
void sampler_forget_trace_slot(struct sampler *s, uint32_t tgid);
void sampler_forget_python_proc(struct sampler *s, uint32_t tgid);
/* The Python walker's counters, summed over CPUs. */
int sampler_python_counters(struct sampler *s, struct python_counter_values *out);

/* Stops sampling process tgid (its target is dropped) until it execs, or resumes it (thread-safe). */
int sampler_set_process_dropped(struct sampler *s, uint32_t tgid, bool dropped);
/* Sets the policy of a cgroup v2 id, or removes it (policy NULL); thread-safe. -E2BIG when the map is
 * full (counted). */
int sampler_set_cgroup_policy(struct sampler *s, uint64_t cgroup_id, const struct cgroup_policy *policy);

/* Per-CPU events sampling one cgroup v2 (cgroup_fd: its directory, may be closed after; cgroup_id: its
 * id) at its own rate; the samples carry that rate. Give the cgroup a policy with that frequency once
 * they are open, so the base events leave it to them; until then, and for tasks in its descendant
 * cgroups, they count nothing. Thread-safe; negative errno (nothing left open) on failure. */
struct cgroup_events;
int sampler_open_cgroup_events(struct sampler *s, int cgroup_fd, uint64_t cgroup_id, unsigned frequency,
			       struct cgroup_events **out);
void sampler_close_cgroup_events(struct sampler *s, struct cgroup_events *e);

/* Waits up to timeout_ms for process events and dispatches them; negative errno on failure. */
int sampler_poll_events(struct sampler *s, int timeout_ms);
/* Follows CPU hotplug (the base events and the containers' own, of CPUs that came online or went
 * offline); called by the event thread, it looks at most once a second. Returns the change in open
 * events. */
int sampler_sync_cpus(struct sampler *s);
/* Makes sampler_poll_events return before the next event (thread-safe): for shutdown. */
void sampler_stop_events(struct sampler *s);

/* anorak_samples_total{outcome}, anorak_bpf_* families. */
void sampler_write_metrics(struct metrics_buf *b, void *sampler);

/* Online CPUs from a list such as "0-3,5,7-8" (the format of /sys/devices/system/cpu/online).
 * Fills cpus (up to max) and returns how many, or negative errno. */
int sampler_parse_cpu_list(const char *list, int *cpus, int max);

#endif
