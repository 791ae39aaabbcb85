/*
 * The targets Prometheus' kubernetes_sd_configs role "pod" makes for one pod, with exactly its
 * discovered labels (__address__ and __meta_kubernetes_*), plus what the daemon needs to attribute
 * samples to them: the container's name and runtime id and the pod's uid.
 */
#ifndef ANORAK_K8S_META_H
#define ANORAK_K8S_META_H

#include <stdbool.h>
#include <stddef.h>

#include "labels/k8s_pod.h"
#include "labels/labelset.h"

/* At most this many targets per pod (containers x ports); a pod beyond it makes none. */
#define K8S_META_MAX_TARGETS 1024

struct k8s_target {
	struct labelset labels;   /* discovered labels, before relabeling */
	char *container_name;
	char container_id[65];    /* 64 lowercase hex, the runtime's id without "containerd://" & co;
				   * "" while the container has no (valid) status */
	char *pod_uid;
	bool init;                /* an init container */
};

/* The pod's targets in Prometheus' order: for each regular container, then each init container, one
 * target per declared port, or one portless target. A pod without status.podIP has none (*n = 0).
 * -E2BIG (logged) beyond K8S_META_MAX_TARGETS, -ENOMEM. The caller frees with k8s_targets_free. */
int k8s_pod_targets(const struct k8s_pod *pod, struct k8s_target **targets, size_t *n);
void k8s_targets_free(struct k8s_target *targets, size_t n);

/* Prometheus' label name sanitizing: every character (UTF-8 sequence, or invalid byte) outside
 * [a-zA-Z0-9_] becomes one '_'. Writes at most outlen bytes including the NUL; -ENAMETOOLONG if the
 * result does not fit. */
int k8s_sanitize_label_name(const char *in, char *out, size_t outlen);

#endif
