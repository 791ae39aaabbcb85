/* The base sampling events: a cpu-clock perf event on every online CPU with the BPF program attached.
 * CPUs are hot-pluggable: cpu_events_sync opens the events of CPUs that came online since and
 * releases those of CPUs gone offline (an event the kernel parked on an offlined CPU stays off when
 * the CPU comes back, so it is replaced). */
#ifndef ANORAK_CPU_EVENTS_H
#define ANORAK_CPU_EVENTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/metrics.h"

struct bpf_link;
struct bpf_program;

struct cpu_events {
	struct bpf_program *prog;
	unsigned frequency;
	int ncpus;               /* possible CPUs: the size of links */
	struct bpf_link **links; /* by CPU number, NULL where none is open */
	atomic_int nlinks;
	atomic_uint_fast64_t onlined, offlined, open_errors;
	int64_t synced_ns;
};

/* The online CPUs (/sys/devices/system/cpu/online), at most max; negative errno. */
int cpu_online_list(int *cpus, int max);
/* A cpu-clock event on one CPU; with cgroup_fd >= 0 it counts only that cgroup's tasks (task-clock). */
int cpu_event_open(unsigned frequency, int cpu, int cgroup_fd);

/* Attaches prog to an event on every online CPU; any failure is an error (logged). */
int cpu_events_open(struct cpu_events *ce, struct bpf_program *prog, unsigned frequency, int ncpus_possible);
/* Follows CPU hotplug, at most once a second (cheap to call more often): the number of CPUs whose
 * event was opened or released. Failures are logged and counted, and retried on the next sync. */
int cpu_events_sync(struct cpu_events *ce);
void cpu_events_close(struct cpu_events *ce);
void cpu_events_write_metrics(struct metrics_buf *b, struct cpu_events *ce);

#endif
