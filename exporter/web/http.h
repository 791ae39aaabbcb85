/* The HTTP server (civetweb): /, /metrics, /-/healthy, /-/ready, /debug/pprof/profile and offcpu,
 * /api/v1/targets, and Pyroscope's query API under /querier.v1.QuerierService/. */
#ifndef ANORAK_HTTP_H
#define ANORAK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/encode/http_reply.h"

struct history_range_query;

struct http_handlers {
	/* Collects a CPU profile of the next `seconds` seconds (blocks that long) and returns it as a
	 * malloc'd gzip'd pprof; negative errno on failure (-ESHUTDOWN while the daemon stops,
	 * -ECANCELED once client_gone(arg), looked at while waiting, says the client hung up). */
	int (*profile)(void *ctx, unsigned seconds, bool (*client_gone)(void *arg), void *arg,
		       void **body, size_t *len);
	/* The same for off-CPU waits (/debug/pprof/offcpu); NULL when off-CPU profiling is off. */
	int (*offcpu_profile)(void *ctx, unsigned seconds, bool (*client_gone)(void *arg), void *arg,
			      void **body, size_t *len);
	/* The profile of a past range from the history ring (?start=&end=): -ENOENT when nothing kept
	 * overlaps it, with the range the ring covers in first_ns/last_ns (0 when empty). */
	int (*history_profile)(void *ctx, const struct history_range_query *q, void **body, size_t *len,
			       int64_t *first_ns, int64_t *last_ns);
	/* A Connect call to POST /querier.v1.QuerierService/<method> (Pyroscope's query API). */
	int (*query_api)(void *ctx, const char *method, const void *body, size_t len, struct http_reply *reply);
	/* BPF attached and targets known. */
	bool (*ready)(void *ctx);
	/* The targets as Prometheus' /api/v1/targets JSON, malloc'd; negative errno on failure. */
	int (*targets)(void *ctx, char **body, size_t *len);
	void *ctx;
	unsigned max_seconds; /* larger ?seconds= is a 400 */
	/* Every one nonzero (http_server_start refuses zeros); max_requests below max_connections, so
	 * /metrics and the health checks always find a worker. */
	struct http_limits {
		unsigned max_connections;  /* worker threads: connections served at once */
		unsigned max_requests;     /* profile requests waiting at once; more are answered 503 */
		unsigned read_timeout_ms;  /* each network read or write (civetweb's request_timeout_ms) */
		unsigned max_header_bytes; /* request line and headers; larger requests are refused */
		unsigned max_per_client;   /* connections from one client address; more are reset on accept */
		unsigned max_waiting;      /* connections held, without a worker, until their header is in */
	} limits;
	struct webconfig *web; /* --web.config.file (TLS, basic auth), borrowed; NULL for neither */
};

struct http_server;
struct webconfig;

/* listen_address is Prometheus style: ":9760", "127.0.0.1:9760", "[::1]:9760". On failure logs one
 * line naming the address and the cause (port taken, bad address) and returns negative errno. */
int http_server_start(const char *listen_address, const struct http_handlers *handlers,
		      struct http_server **out);
/* Stops serving and waits for the handlers that run: make handlers->profile return (-ESHUTDOWN) first. */
void http_server_stop(struct http_server *server);
/* The TCP port the server listens on (useful with port 0, an ephemeral port); negative errno on error. */
int http_server_port(const struct http_server *server);

#endif
