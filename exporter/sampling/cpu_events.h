/* Per-CPU sampling events: a cpu-clock perf event on every online CPU with the BPF program attached
 * (the base events), or a task-clock one counting a cgroup's tasks (a container sampled at its own
 * rate). CPUs are hot-pluggable: cpu_events_sync opens the events of CPUs that came online since and
 * releases those of CPUs gone offline (an event the kernel parked on an offlined CPU stays off when
 * the CPU comes back, so it is replaced). */
#ifndef ANORAK_CPU_EVENTS_H
#define ANORAK_CPU_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/metrics.h"

struct bpf_link;
struct bpf_program;

/* Shared by every set: the base events and each cgroup's own. */
struct cpu_hotplug_stats {
	atomic_uint_fast64_t onlined, offlined, open_errors;
};

/* One event per online CPU, the program attached to each. */
struct cpu_events {
	struct bpf_program *prog;
	unsigned frequency;
	int cgroup_fd;           /* a copy of its own, to open events later; -1: every task */
	uint64_t cookie;         /* the links' bpf_cookie */
	int ncpus;               /* possible CPUs: the size of links */
	struct bpf_link **links; /* by CPU number, NULL where none is open */
	atomic_int nlinks;
	struct cpu_hotplug_stats *stats;
};

/* The online CPUs (/sys/devices/system/cpu/online), at most max; negative errno. */
int cpu_online_list(int *cpus, int max);
/* The online CPUs as a calloc'd flag per possible CPU; NULL when unreadable. */
bool *cpu_online_mask(int ncpus);
/* A cpu-clock event on one CPU; with cgroup_fd >= 0 it counts only that cgroup's tasks (task-clock). */
int cpu_event_open(unsigned frequency, int cpu, int cgroup_fd);

/* Attaches prog to an event on every online CPU (cgroup_fd -1: every task, else that cgroup's, the fd
 * copied); negative errno on any failure (cpu_events_close cleans up). */
int cpu_events_open(struct cpu_events *ce, struct bpf_program *prog, unsigned frequency, int ncpus,
		    int cgroup_fd, uint64_t cookie, struct cpu_hotplug_stats *stats);
/* Follows CPU hotplug: opens the events of CPUs online in mask that have none, releases those of CPUs
 * offline. Returns the change in open events; open failures are logged once, counted and retried. */
int cpu_events_sync(struct cpu_events *ce, const bool *online);
void cpu_events_close(struct cpu_events *ce);
void cpu_events_write_metrics(struct metrics_buf *b, struct cpu_events *base);

#endif
