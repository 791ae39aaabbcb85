/*
 * Kubernetes API client for the pods of one node: lists them (following pagination), then watches
 * from the list's resourceVersion, in its own thread. Watch ends are resumed from the last
 * resourceVersion, 410 Gone (a response or an ERROR event) lists again, and failures back off
 * exponentially with jitter (the last known pods are kept meanwhile).
 */
#ifndef ANORAK_K8S_CLIENT_H
#define ANORAK_K8S_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/k8s_pod.h"

struct k8s_client_config {
	const char *api_server;  /* --kubernetes.api-server: a plain URL, no credentials */
	const char *kubeconfig;  /* --kubernetes.kubeconfig; without either, in-cluster config */
	const char *node_name;   /* required: only pods with spec.nodeName equal to it */
	/* 0 picks the default: */
	unsigned watch_timeout_s;    /* 300: timeoutSeconds asked of the server per watch */
	size_t max_object_bytes;     /* 4 MiB: a larger watch event or list item is skipped */
	size_t max_list_bytes;       /* 256 MiB: a larger list page is an error */
	unsigned backoff_min_ms;     /* 500 */
	unsigned backoff_max_ms;     /* 30000 */
	const char *serviceaccount_dir; /* K8S_SERVICEACCOUNT_DIR */
};

/* Called on the client's thread for every pod added or changed (deleted = false) and removed
 * (deleted = true; the pod's last known state). pod is valid only during the call. Must not call
 * k8s_client_stop. */
typedef void (*k8s_pod_fn)(void *ctx, const struct k8s_pod *pod, bool deleted);

enum k8s_request { K8S_REQ_LIST, K8S_REQ_WATCH, K8S_REQ_NR };
enum k8s_result {
	K8S_RES_SUCCESS,       /* 200, the body or stream read to its end */
	K8S_RES_GONE,          /* 410, or an ERROR event with code 410 */
	K8S_RES_HTTP_ERROR,    /* another status, or an ERROR event */
	K8S_RES_NETWORK_ERROR, /* connect, TLS, reset, timeout */
	K8S_RES_INVALID,       /* a 200 whose body is not what the API sends */
	K8S_RES_NR
};
enum k8s_skip { K8S_SKIP_TOO_LARGE, K8S_SKIP_INVALID, K8S_SKIP_TOO_MANY_PODS, K8S_SKIP_NR };

struct k8s_client_stats {
	uint64_t requests[K8S_REQ_NR][K8S_RES_NR];
	uint64_t watch_restarts; /* watches re-opened from the last resourceVersion after a clean end */
	uint64_t relists;        /* lists after the first (410 Gone) */
	uint64_t backoff_ms;     /* time slept backing off */
	uint64_t skipped[K8S_SKIP_NR];
	uint64_t pods;           /* pods known now */
	bool synced;             /* a list has completed */
};

#define K8S_CLIENT_MAX_PODS 8192

struct k8s_client;

/* Resolves the connection (logged errors: -EINVAL, -ENOENT, -ENOTSUP), starts the thread and
 * registers the anorak_kubernetes_* metrics. */
int k8s_client_start(const struct k8s_client_config *cfg, k8s_pod_fn on_pod, void *ctx,
		     struct k8s_client **client);
/* True once the first list has been delivered through on_pod; stays true while the API is
 * unreachable (the last known pods stand). */
bool k8s_client_synced(struct k8s_client *c);
void k8s_client_stats(struct k8s_client *c, struct k8s_client_stats *stats);
/* Aborts the request in flight (within about a second), joins the thread, frees everything. */
void k8s_client_stop(struct k8s_client *c);

#endif
