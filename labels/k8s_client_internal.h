/* Internals of the Kubernetes client exposed for the fuzz targets (tests/fuzz). */
#ifndef ANORAK_K8S_CLIENT_INTERNAL_H
#define ANORAK_K8S_CLIENT_INTERNAL_H

#include "labels/k8s_client.h"

/* Runs data through the watch stream splitter and event handling of a client that has no connection,
 * as if a 200 watch response delivered it in pieces of chunk bytes (chunk >= 1), with events above
 * max_object bytes skipped. on_pod sees the pods as the daemon would; stats gets the client's counters
 * (skips, pods). Returns K8S_RES_SUCCESS, or K8S_RES_GONE / K8S_RES_HTTP_ERROR when an ERROR event
 * ended the stream. */
enum k8s_result k8s_watch_replay(const char *data, size_t len, size_t chunk, size_t max_object,
				 k8s_pod_fn on_pod, void *ctx, struct k8s_client_stats *stats);

#endif
