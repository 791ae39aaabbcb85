/*
 * From a process's discovered labels to its target's final labels: the configured job_name and
 * relabel_configs, applied exactly as Prometheus applies them to a scrape target. The configuration is
 * swapped whole on reload; processes learnt after a reload use the new one.
 */
#ifndef ANORAK_TARGETS_H
#define ANORAK_TARGETS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "labels/cgroup.h"
#include "labels/labelset.h"

struct anorak_file_config;

struct target_labeler {
	pthread_rwlock_t lock;
	struct anorak_file_config *config;
	char *path; /* NULL: the built-in default config */
};

/* Loads path (NULL: the built-in default). A bad file is one error line naming the file, line and
 * problem, and -EINVAL. */
int target_labeler_init(struct target_labeler *t, const char *path);
void target_labeler_destroy(struct target_labeler *t);
/* Re-reads the file; a bad file keeps the running configuration and says why. */
int target_labeler_reload(struct target_labeler *t);

/* What discovery knows of a process outside Kubernetes pods. */
struct host_process {
	const char *address;      /* this exporter's address on the node */
	unsigned pid;
	const char *comm;
	const char *executable;   /* "" when unreadable */
	const char *cgroup_path;  /* "" when unknown */
	const struct cgroup_identity *cgroup;
};

/* The labels Prometheus-style discovery gives a host process: __address__ (the exporter's own
 * address, so a target's instance matches anorak's /metrics), __meta_process_pid,
 * __meta_process_comm, __meta_process_executable, __meta_process_cgroup, and __meta_systemd_unit and
 * __meta_container_id when its cgroup names them. Empty values are left out, as Prometheus does. */
int host_discovered_labels(const struct host_process *hp, struct labelset *out);

/* A target samples are attributed to: immutable once made, shared by reference, so samples keep the
 * labels they were taken under when the target is relabeled or goes away. */
struct target {
	atomic_int refs;
	struct labelset discovered; /* before relabeling */
	struct labelset labels;     /* after relabeling; empty when dropped */
	bool dropped;               /* the rules dropped it: not sampled */
	/* __sampling_frequency__ as the rules left it ("" when unset; longer values are cut, and then
	 * invalid anyway): the rate its samples are asked to be taken at. */
	char sampling_frequency[32];
};

#define TARGET_SAMPLING_FREQUENCY_LABEL "__sampling_frequency__"

/* The rate a target asks for with __sampling_frequency__: a decimal integer from 1 to max_frequency.
 * 0 when it asks for nothing, or for the base rate, or is dropped; -EINVAL for any other value. */
int target_sampling_frequency(const struct target *t, unsigned base_frequency, unsigned max_frequency);

/* Makes a target of discovered (taken over, emptied on return): relabeled by t, dropped when the rules
 * drop it. NULL on allocation failure. */
struct target *target_make(struct target_labeler *t, struct labelset *discovered);
struct target *target_get(struct target *target);
void target_put(struct target *target);

/* The running configuration's job_name (Prometheus' scrape pool). */
void target_labeler_job_name(struct target_labeler *t, char *out, size_t outlen);

/* Relabels a copy of discovered into final: 1 when the target is kept, 0 when the rules drop it (or
 * Prometheus would reject it), negative errno on allocation failure. */
int target_labeler_apply(struct target_labeler *t, const struct labelset *discovered, struct labelset *final);

#endif
