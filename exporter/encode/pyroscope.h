/*
 * Grafana Pyroscope's query API over the history ring, so Grafana's built-in profiles datasource can
 * query anorak directly: querier.v1.QuerierService ProfileTypes, LabelNames, LabelValues,
 * SelectMergeStacktraces, SelectSeries, SelectMergeSpanProfile and GetProfileStats, Connect protocol (unary POST,
 * application/proto), messages from Pyroscope's .proto files (exporter/proto). Errors are Connect's
 * JSON `{"code": ..., "message": ...}` with the matching HTTP status; unknown methods are
 * `unimplemented`.
 */
#ifndef ANORAK_PYROSCOPE_H
#define ANORAK_PYROSCOPE_H

#include <stddef.h>

#include "exporter/encode/http_reply.h"

struct history;
struct ProtobufCMessage;

#define PYROSCOPE_SERVICE_PATH "/querier.v1.QuerierService/"
/* Pyroscope's default for a request without max_nodes. */
#define PYROSCOPE_DEFAULT_MAX_NODES 8192
/* Points of one series at most, as Prometheus bounds a range query. */
#define PYROSCOPE_MAX_POINTS 11000
#define PYROSCOPE_MAX_SERIES 10000
/* Series times points of a SelectSeries (12 bytes each while it is built). */
#define PYROSCOPE_MAX_SERIES_POINTS 2000000

/* Answers one call: method is the path after the service prefix, body the request message. Fills
 * reply (body malloc'd); negative errno only when memory ran out for the error reply itself. */
int pyroscope_serve(struct history *h, const char *method, const void *body, size_t len,
		    struct http_reply *reply);

/* Connect's error {"code", "message"} as JSON with the code's HTTP status (500 for an unknown code);
 * the message may quote client input of any bytes. -ENOMEM when memory ran out. */
int connect_error_reply(struct http_reply *reply, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Packs m as the 200 reply (application/proto); a Connect error when memory ran out. */
int pyroscope_message_reply(struct http_reply *reply, const struct ProtobufCMessage *m);

#endif
