/*
 * Cgroups sampled at their own rate: per-CPU events opened on the cgroup's directory, and a BPF policy
 * that tells the base events to leave the cgroup to them. Pods' containers (their annotation) and host
 * targets (__sampling_frequency__) share it and its limit. The BPF policy also carries whether a
 * container's target is dropped.
 */
#ifndef ANORAK_CGROUP_RATES_H
#define ANORAK_CGROUP_RATES_H
#include <stdbool.h>
#include <stdint.h>

struct sampler;

struct cgroup_rates_opts {
	struct sampler *sampler;
	const char *cgroup2_mount; /* "" when the host has no cgroup2 hierarchy: nothing is raised */
	unsigned max_cgroups;      /* --sampling.max-high-frequency-containers */
};

struct cgroup_rates_stats {
	uint64_t cgroups;        /* at their own rate now */
	uint64_t refused_limit;  /* raises refused because max_cgroups were raised already */
	uint64_t open_errors;    /* raises refused because the perf events could not be opened */
};

struct cgroup_rates;
int cgroup_rates_new(const struct cgroup_rates_opts *opts, struct cgroup_rates **out);
/* Closes every cgroup's events. */
void cgroup_rates_free(struct cgroup_rates *r);

/* Applies what is wanted of a cgroup: dropped (not sampled), or sampled at hz (0: the base rate), or
 * forgotten (forget: no policy at all). path is its directory under the cgroup2 mount, NULL until it is
 * known (no raise until then). Raising opens the new events before the policy hands the cgroup to them
 * and closes the old ones after, so nothing is counted twice or missed. Returns the rate the cgroup is
 * sampled at from now on (0: the base rate). Thread-safe. */
unsigned cgroup_rates_set(struct cgroup_rates *r, uint64_t cgroup_id, const char *path, bool dropped, unsigned hz,
			  bool forget);
/* The rate cgroup_id is sampled at now; 0 for the base rate. Thread-safe. */
unsigned cgroup_rates_of(struct cgroup_rates *r, uint64_t cgroup_id);
void cgroup_rates_stats(struct cgroup_rates *r, struct cgroup_rates_stats *out);
#endif
