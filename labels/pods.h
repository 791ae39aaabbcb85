/*
 * The containers of this node's pods as targets: one per container, with the labels Prometheus'
 * kubernetes_sd_configs role "pod" gives its first declared port (or its portless target), relabeled.
 * Fed by the Kubernetes client's pod events; read by the drain, which attributes a sample to a
 * container by the cgroup id BPF recorded.
 *
 * A container is found by its runtime id in the pod status. A cgroup whose container id the status
 * does not have yet falls back to its pod's uid, when exactly one container of that pod is still
 * without an id. cgroup ids are linked to containers by the scan of the cgroup2 tree, and
 * each linked cgroup's policy (dropped by relabeling, sampling frequency) is handed to the hook.
 */
#ifndef ANORAK_PODS_H
#define ANORAK_PODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/cgroup.h"
#include "labels/k8s_pod.h"
#include "labels/targets.h"

struct pod_policy {
	bool dropped;
	unsigned frequency; /* 0: the base rate */
};

struct pod_store_opts {
	/* The policy of a linked cgroup changed; policy NULL when it is gone or back to the default.
	 * cgroup_path (relative to the cgroup2 mount) is NULL until the scan found the directory.
	 * Returns the frequency it could apply (0: the base rate). Called with the store locked, so calls
	 * are serialized: must not call into the store. */
	unsigned (*policy)(void *ctx, uint64_t cgroup_id, const char *cgroup_path, const struct pod_policy *policy);
	void *ctx;
	unsigned base_frequency;
	unsigned max_frequency;  /* higher __sampling_frequency__ values are invalid */
};

struct pod_store;

int pod_store_new(struct target_labeler *labeler, const struct pod_store_opts *opts, struct pod_store **out);
void pod_store_free(struct pod_store *s);

/* k8s_pod_fn: a pod was added or changed, or deleted. */
void pod_store_on_pod(void *store, const struct k8s_pod *pod, bool deleted);

/* The target of the container that cgroup_id belongs to, found by the cgroup's link, else by what the
 * process's /proc/PID/cgroup said (id, may be NULL): a reference, or NULL when it is no known pod's
 * container. */
struct target *pod_store_target(struct pod_store *s, uint64_t cgroup_id, const struct cgroup_identity *id);

/* From the cgroup scan: a directory (path relative to the cgroup2 mount) naming a container. */
void pod_store_link_cgroup(struct pod_store *s, uint64_t cgroup_id, const char *path,
			   const struct cgroup_identity *id);

/* True (once) when a pod change left a container without a linked cgroup since the last call: the
 * cgroup tree is worth scanning. */
bool pod_store_take_unlinked(struct pod_store *s);

/* Relabels every container with the labeler's current configuration (after a reload). */
void pod_store_relabel(struct pod_store *s);

/* Calls fn for every container target with the frequency it is sampled at, under the store's lock. */
void pod_store_each(struct pod_store *s, void (*fn)(void *ctx, const struct target *t, unsigned frequency),
		    void *ctx);

struct pod_store_stats {
	size_t containers;           /* known now */
	size_t high_frequency;       /* sampled at their own rate now */
	uint64_t invalid_frequencies; /* __sampling_frequency__ values refused (logged) */
};

void pod_store_stats(struct pod_store *s, struct pod_store_stats *st);

#endif
