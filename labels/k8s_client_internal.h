/*
 * Internals of the Kubernetes client: what its two halves share (k8s_client.c: the connection,
 * requests and thread; k8s_events.c: the pod table fed by list items and watch events), and the
 * replay of a watch stream for the fuzz targets (tests/fuzz).
 */
#ifndef ANORAK_K8S_CLIENT_INTERNAL_H
#define ANORAK_K8S_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "labels/k8s_client.h"
#include "labels/k8s_conn.h"
#include "labels/k8s_pod.h"

#define RV_MAX 256
#define JSON_DEPTH 64        /* managedFields nest deeper than json-c's default of 32 */
#define ERR_LEN 512

struct pod_entry {
	struct k8s_pod pod;
	bool seen; /* in the list being read */
};

struct k8s_client {
	struct k8s_conn conn;
	char *selector; /* "fieldSelector=spec.nodeName%3D<node>" */
	unsigned watch_timeout_s, backoff_min_ms, backoff_max_ms;
	size_t max_object, max_list;
	k8s_pod_fn on_pod;
	void *ctx;

	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock; /* stats and the backoff sleep */
	pthread_cond_t wake;
	struct k8s_client_stats st;

	/* The client thread's own state. */
	CURL *curl;
	char curl_err[CURL_ERROR_SIZE];
	struct curl_slist *headers;
	char *token;
	struct stat token_st;
	struct pod_entry *pods;
	size_t npods, cap;
	char rv[RV_MAX];
	bool list_latest; /* after a 410: list the latest state, not the API server's cache */
	unsigned failures;
	unsigned seed;
};

enum outcome { OUT_NONE, OUT_GONE, OUT_ERROR_EVENT };

/* One HTTP request: a list page (body kept whole) or a watch (events parsed as they stream in). */
struct xfer {
	struct k8s_client *c;
	bool stream;
	long status;
	char *body;
	size_t len, max;
	bool overflow;
	struct json_tokener *tok;
	char *line;                 /* the watch event being received, up to max_object bytes */
	size_t line_len, line_cap;
	bool skipping;              /* the rest of this line is dropped */
	enum outcome outcome;
	unsigned events;
	char err[ERR_LEN];
};

#define STAT_ADD(c, field, n)                       \
	do {                                        \
		pthread_mutex_lock(&(c)->lock);     \
		(c)->st.field += (n);               \
		pthread_mutex_unlock(&(c)->lock);   \
	} while (0)

/* --- k8s_events.c -------------------------------------------------------------------------------- */

/* A string member of obj, or of its metadata; NULL when absent or not a string. */
const char *k8s_json_str(struct json_object *obj, const char *key);
const char *k8s_meta_str(struct json_object *obj, const char *key);
/* A whole document, parsed JSON_DEPTH deep; NULL when invalid. */
struct json_object *k8s_parse_json(const char *buf, size_t len);
/* Replaces what would break a logfmt value (quotes, backslashes, control characters). */
void k8s_log_safe(char *s);
/* Keeps rv as the resourceVersion to watch from (an empty one is ignored). */
void k8s_set_rv(struct k8s_client *c, const char *rv);
/* A pod of a list page: stored (marked seen) and reported when it changed, or skipped (counted). */
void k8s_list_item(struct k8s_client *c, struct json_object *item);
/* After a complete list, pods it did not contain are gone. */
void k8s_remove_unseen(struct k8s_client *c);
/* A piece of a 200 watch response: its events are handled as each line ends. */
void k8s_stream_data(struct xfer *x, const char *data, size_t len);
/* Handles the line received so far as a complete event (the stream ended). */
void k8s_stream_end_line(struct xfer *x);

/* --- fuzzing ------------------------------------------------------------------------------------- */

/* Runs data through the watch stream splitter and event handling of a client that has no connection,
 * as if a 200 watch response delivered it in pieces of chunk bytes (chunk >= 1), with events above
 * max_object bytes skipped. on_pod sees the pods as the daemon would; stats gets the client's counters
 * (skips, pods). Returns K8S_RES_SUCCESS, or K8S_RES_GONE / K8S_RES_HTTP_ERROR when an ERROR event
 * ended the stream. */
enum k8s_result k8s_watch_replay(const char *data, size_t len, size_t chunk, size_t max_object,
				 k8s_pod_fn on_pod, void *ctx, struct k8s_client_stats *stats);

#endif
