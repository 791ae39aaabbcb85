/*
 * Host targets' own sampling rates: a process outside pods whose target asks __sampling_frequency__
 * has its cgroup sampled at that rate (the highest any of the cgroup's processes asks), through
 * cgroup_rates; a cgroup no live target asks any more goes back to the base rate. The process table's
 * hook marks the rates stale; the event thread brings them up to date at most once a second.
 */
#ifndef ANORAK_HOST_RATES_H
#define ANORAK_HOST_RATES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/flags.h"
#include "exporter/sampling/cgroup_rates.h"
#include "exporter/symbols/process.h"

struct host_rate;

struct host_rates {
	const struct anorak_config *cfg;
	const char *cgroup2_mount;       /* "" without a cgroup2 hierarchy */
	struct cgroup_rates *rates;      /* NULL without cgroup2: no rate is applied */
	struct process_table *processes;
	bool pods;                       /* processes in pods are left to their containers' rates */
	/* Cgroups asked a rate for, as last applied; event thread only. */
	struct host_rate *asked;
	size_t nasked, cap;
	int64_t checked_ns;
	atomic_bool stale;
	atomic_uint_fast64_t invalid_frequencies;
};

/* cgroup2_mount is read when rates are applied, so it may be filled in later. */
void host_rates_init(struct host_rates *h, const struct anorak_config *cfg, const char *cgroup2_mount);
/* Once the cgroup rates (may be NULL) and the process table exist, before the event thread runs. */
void host_rates_attach(struct host_rates *h, struct cgroup_rates *rates, struct process_table *processes,
		       bool pods);
/* The process table's on_target hook, for a process outside pods: a target that asks a rate, or was
 * relabeled, has its rate checked (an invalid one is logged and counted) and looked at by the next
 * host_rates_update. */
void host_rates_target_changed(struct host_rates *h, const struct process *p, const struct target *t,
			       bool relabeled);
/* Event thread: applies the rates asked now (now_ns: CLOCK_REALTIME). */
void host_rates_update(struct host_rates *h, int64_t now_ns);
/* Invalid __sampling_frequency__ values of host targets seen so far. */
uint64_t host_rates_invalid(struct host_rates *h);
void host_rates_destroy(struct host_rates *h);

#endif
