#include "exporter/web/http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/encode/pyroscope.h"
#include "exporter/web/conn_guard.h"
#include "exporter/web/gunzip.h"
#include "exporter/web/listen_addr.h"
#include "exporter/web/query.h"
#include "exporter/web/webconfig.h"

enum route {
	ROUTE_INDEX,
	ROUTE_METRICS,
	ROUTE_HEALTHY,
	ROUTE_READY,
	ROUTE_PROFILE,
	ROUTE_OFFCPU,
	ROUTE_TARGETS,
	ROUTE_QUERY_API,
	ROUTE_OTHER, /* unknown paths, counted together */
	NROUTES
};

struct http_server;
typedef int (*route_fn)(struct http_server *s, struct mg_connection *conn,
			const struct mg_request_info *ri);

/* Status codes counted in anorak_http_requests_total; anything else is counted as 500. */
/* 499: the client hung up while its profile waited (nginx's code for it); nothing is sent. */
static const int status_codes[] = { 200, 400, 401, 404, 405, 413, 415, 429, 499, 500, 501, 503 };
#define NCODES (sizeof(status_codes) / sizeof(status_codes[0]))

/* Request durations, seconds: /metrics takes milliseconds, profiles take their window. */
static const double duration_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
};
#define NBOUNDS (sizeof(duration_bounds) / sizeof(duration_bounds[0]))

struct http_server {
	struct mg_context *mg;
	struct conn_guard *guard;
	struct http_handlers h;
	int profiles_in_flight;             /* atomic */
	uint64_t requests[NROUTES][NCODES]; /* atomic */
	struct metrics_histogram duration[NROUTES];
};

/* --- responses -------------------------------------------------------------------------------- */

/* Sends a whole response with Content-Length (so keep-alive works); extra is "Name: value\r\n"
 * lines or NULL. Returns status, for civetweb's access log and our metrics. */
static int send_response(struct mg_connection *conn, int status, const char *type, const void *body,
			 size_t len, const char *extra)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	char length[24];

	snprintf(length, sizeof(length), "%zu", len);
	mg_response_header_start(conn, status);
	mg_response_header_add(conn, "Content-Type", type, -1);
	mg_response_header_add(conn, "Content-Length", length, -1);
	mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
	if (extra)
		mg_response_header_add_lines(conn, extra);
	mg_response_header_send(conn);
	if (len && strcmp(ri->request_method, "HEAD") != 0)
		mg_write(conn, body, len);
	return status;
}

static int send_text(struct mg_connection *conn, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int send_text(struct mg_connection *conn, int status, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	else if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	return send_response(conn, status, "text/plain; charset=utf-8", text, n, NULL);
}

/* --- routes ----------------------------------------------------------------------------------- */

static int serve_index(struct http_server *s, struct mg_connection *conn,
		       const struct mg_request_info *ri)
{
	static const char page[] =
		"<!DOCTYPE html>\n<html>\n<head><title>anorak</title></head>\n<body>\n"
		"<h1>anorak</h1>\n<p>eBPF continuous profiler.</p>\n<ul>\n"
		"<li><a href=\"debug/pprof/profile?seconds=10\">/debug/pprof/profile?seconds=N</a>: "
		"CPU profile of the next N seconds (gzip'd pprof)</li>\n"
		"<li>/debug/pprof/profile?start=T1&amp;end=T2&amp;match[]={...}: a past range kept in memory "
		"(unix seconds or RFC 3339)</li>\n"
		"<li><a href=\"debug/pprof/offcpu?seconds=10\">/debug/pprof/offcpu?seconds=N</a> (and "
		"?start=&amp;end=): where threads waited off the CPU (with --offcpu.probability)</li>\n"
		"<li>POST /querier.v1.QuerierService/...: Pyroscope's query API, for Grafana</li>\n"
		"<li><a href=\"metrics\">/metrics</a>: the exporter's own metrics</li>\n"
		"<li><a href=\"api/v1/targets\">/api/v1/targets</a>: targets and their labels (Prometheus' "
		"JSON shape)</li>\n"
		"<li><a href=\"-/healthy\">/-/healthy</a>, <a href=\"-/ready\">/-/ready</a></li>\n"
		"</ul>\n</body>\n</html>\n";

	(void)s, (void)ri;
	return send_response(conn, 200, "text/html; charset=utf-8", page, sizeof(page) - 1, NULL);
}

static int serve_metrics(struct http_server *s, struct mg_connection *conn,
			 const struct mg_request_info *ri)
{
	struct metrics_buf b = { 0 };
	int status;

	(void)s, (void)ri;
	if (metrics_render(&b))
		return send_text(conn, 500, "out of memory while rendering metrics\n");
	status = send_response(conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
	metrics_buf_free(&b);
	return status;
}

static int serve_healthy(struct http_server *s, struct mg_connection *conn,
			 const struct mg_request_info *ri)
{
	(void)s, (void)ri;
	return send_text(conn, 200, "anorak is Healthy.\n");
}

static int serve_ready(struct http_server *s, struct mg_connection *conn,
		       const struct mg_request_info *ri)
{
	(void)ri;
	if (!s->h.ready(s->h.ctx))
		return send_text(conn, 503, "anorak is not ready.\n");
	return send_text(conn, 200, "anorak is Ready.\n");
}

static int serve_targets(struct http_server *s, struct mg_connection *conn,
			 const struct mg_request_info *ri)
{
	char *body = NULL;
	size_t len = 0;
	int status, ret;

	(void)ri;
	ret = s->h.targets(s->h.ctx, &body, &len);
	if (ret < 0)
		return send_text(conn, 500, "could not list the targets: %s\n", strerror(-ret));
	status = send_response(conn, 200, "application/json", body, len, NULL);
	free(body);
	return status;
}

static void rfc3339(int64_t ns, char *out, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ?start=&end=: answered at once from the history ring. */
static int serve_history(struct http_server *s, struct mg_connection *conn, struct history_range_query *q)
{
	char first[32], last[32];
	int64_t first_ns = 0, last_ns = 0;
	size_t len = 0;
	void *body = NULL;
	int ret = s->h.history_profile ? s->h.history_profile(s->h.ctx, q, &body, &len, &first_ns, &last_ns)
				       : -ENOENT;

	history_range_query_free(q);
	if (ret == -ENOENT && !last_ns)
		return send_text(conn, 404, "no profile kept for that range: the history is still empty\n");
	if (ret == -ENOENT) {
		rfc3339(first_ns, first, sizeof(first));
		rfc3339(last_ns, last, sizeof(last));
		return send_text(conn, 404, "no profile kept for that range: the history covers %s to %s "
				 "(unix %lld to %lld, --storage.retention)\n", first, last,
				 (long long)(first_ns / 1000000000), (long long)((last_ns + 999999999) / 1000000000));
	}
	if (ret < 0) {
		log_warn("history profile request failed", "err=\"%s\"", strerror(-ret));
		return send_text(conn, 500, "could not build the profile: %s\n", strerror(-ret));
	}
	ret = send_response(conn, 200, "application/octet-stream", body, len,
			    "Content-Disposition: attachment; filename=\"profile\"\r\n");
	free(body);
	return ret;
}

/* Past --web.max-requests: 503 with Retry-After, as node_exporter answers past its own limit. */
static int send_busy(struct http_server *s, struct mg_connection *conn)
{
	char text[128];
	int n = snprintf(text, sizeof(text), "too many concurrent profile requests (at most %u, "
			 "--web.max-requests), try again later\n", s->h.limits.max_requests);

	return send_response(conn, 503, "text/plain; charset=utf-8", text, n, "Retry-After: 1\r\n");
}

struct waiting_client {
	struct http_server *s;
	const struct mg_request_info *ri;
};

/* Looked at while a profile waits: a client that hung up frees its slot at once. */
static bool client_gone(void *arg)
{
	const struct waiting_client *c = arg;

	return conn_guard_peer_gone(c->s->guard, c->ri->remote_addr, c->ri->remote_port);
}

/* /debug/pprof/profile (CPU) and /debug/pprof/offcpu share their queries and answers. */
static int serve_pprof(struct http_server *s, struct mg_connection *conn,
		       const struct mg_request_info *ri, bool offcpu)
{
	struct history_range_query range;
	char reason[256];
	unsigned seconds;
	size_t len = 0;
	void *body = NULL;
	int ret, status;

	ret = history_parse_range_query(ri->query_string, &range, reason, sizeof(reason));
	if (ret < 0)
		return send_text(conn, 400, "%s\n", reason);
	range.offcpu = offcpu;
	if (ret == 1)
		return serve_history(s, conn, &range);
	if (http_parse_profile_query(ri->query_string, s->h.max_seconds, &seconds, reason,
	    sizeof(reason)))
		return send_text(conn, 400, "%s\n", reason);

	/* Waiting profiles hold a worker each: past the limit they are turned away, so they cannot take
	 * every worker and starve /metrics and the health checks. */
	if (__atomic_add_fetch(&s->profiles_in_flight, 1, __ATOMIC_SEQ_CST) > (int)s->h.limits.max_requests) {
		__atomic_sub_fetch(&s->profiles_in_flight, 1, __ATOMIC_SEQ_CST);
		return send_busy(s, conn);
	}
	struct waiting_client client = { .s = s, .ri = ri };

	ret = (offcpu ? s->h.offcpu_profile : s->h.profile)(s->h.ctx, seconds, client_gone, &client, &body,
							     &len);
	__atomic_sub_fetch(&s->profiles_in_flight, 1, __ATOMIC_SEQ_CST);

	if (ret == -ECANCELED)
		return 499;
	if (ret == -ESHUTDOWN)
		return send_text(conn, 503, "anorak is shutting down\n");
	if (ret < 0) {
		log_warn("profile request failed", "seconds=%u err=\"%s\"", seconds, strerror(-ret));
		return send_text(conn, 500, "could not collect the profile: %s\n", strerror(-ret));
	}
	/* Like Go's net/http/pprof: the gzip'd protobuf is the body itself, without Content-Encoding,
	 * which is what Parca and Alloy expect. */
	status = send_response(conn, 200, "application/octet-stream", body, len,
			       "Content-Disposition: attachment; filename=\"profile\"\r\n");
	free(body);
	return status;
}

static int serve_profile(struct http_server *s, struct mg_connection *conn,
			 const struct mg_request_info *ri)
{
	return serve_pprof(s, conn, ri, false);
}

static int serve_offcpu(struct http_server *s, struct mg_connection *conn,
			const struct mg_request_info *ri)
{
	if (!s->h.offcpu_profile)
		return send_text(conn, 404, "off-CPU profiling is off: start anorak with --offcpu.probability\n");
	return serve_pprof(s, conn, ri, true);
}

#define QUERY_API_MAX_BODY (1 << 20)

/* Connect's error for a request body that cannot be used. */
static int send_connect_error(struct mg_connection *conn, const char *code, const char *message,
			      const char *extra)
{
	struct http_reply reply;
	int status;

	if (connect_error_reply(&reply, code, "%s", message))
		return send_text(conn, 500, "out of memory\n");
	status = send_response(conn, reply.status, reply.content_type, reply.body, reply.len, extra);
	free(reply.body);
	return status;
}

/* Connect unary call: POST, application/proto, the body as is or gzip'd (Content-Encoding); the method
 * is the rest of the path. */
static int serve_query_api(struct http_server *s, struct mg_connection *conn,
			   const struct mg_request_info *ri)
{
	const char *type = mg_get_header(conn, "Content-Type");
	const char *encoding = mg_get_header(conn, "Content-Encoding");
	struct http_reply reply = { 0 };
	size_t len = 0;
	char *body;
	int status;

	static const char not_post[] = "method not allowed\n";
	static const char not_proto[] = "unsupported content type: use application/proto\n";

	if (!s->h.query_api)
		return send_text(conn, 404, "404 page not found\n");
	if (strcmp(ri->request_method, "POST") != 0)
		return send_response(conn, 405, "text/plain; charset=utf-8", not_post, sizeof(not_post) - 1,
				     "Allow: POST\r\n");
	if (!type || strncmp(type, "application/proto", 17) != 0 || (type[17] && type[17] != ';'))
		return send_response(conn, 415, "text/plain; charset=utf-8", not_proto, sizeof(not_proto) - 1,
				     "Accept-Post: application/proto\r\n");
	bool gzipped = encoding && strcmp(encoding, "gzip") == 0;
	if (encoding && !gzipped && strcmp(encoding, "identity") != 0)
		return send_connect_error(conn, "unimplemented",
					  "unsupported Content-Encoding: send gzip or identity", "Accept-Encoding: gzip\r\n");
	if (ri->content_length > QUERY_API_MAX_BODY)
		return send_text(conn, 413, "request body larger than %d bytes\n", QUERY_API_MAX_BODY);
	body = malloc(QUERY_API_MAX_BODY + 1);
	if (!body)
		return send_text(conn, 500, "out of memory\n");
	for (;;) {
		int n = mg_read(conn, body + len, QUERY_API_MAX_BODY + 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > QUERY_API_MAX_BODY) {
			free(body);
			return send_text(conn, 413, "request body larger than %d bytes\n", QUERY_API_MAX_BODY);
		}
	}
	if (gzipped) {
		void *raw;
		size_t rawlen;
		int err = gunzip_bounded(body, len, QUERY_API_MAX_BODY, &raw, &rawlen);

		free(body);
		if (err == -EFBIG)
			return send_text(conn, 413, "request body inflates to more than %d bytes\n", QUERY_API_MAX_BODY);
		if (err == -ENOMEM)
			return send_text(conn, 500, "out of memory\n");
		if (err)
			return send_connect_error(conn, "invalid_argument", "request body is not valid gzip", NULL);
		body = raw;
		len = rawlen;
	}
	if (s->h.query_api(s->h.ctx, ri->local_uri + strlen(PYROSCOPE_SERVICE_PATH), body, len, &reply)) {
		free(body);
		return send_text(conn, 500, "out of memory\n");
	}
	free(body);
	status = send_response(conn, reply.status, reply.content_type, reply.body, reply.len, NULL);
	free(reply.body);
	return status;
}

static const struct {
	const char *path; /* also the handler label */
	route_fn serve;
	bool get_only;    /* HEAD would wait for a whole profile window for nothing */
	bool prefix;      /* path is a prefix; the handler checks the method */
} routes[NROUTES] = {
	[ROUTE_INDEX] = { .path = "/", .serve = serve_index },
	[ROUTE_METRICS] = { .path = "/metrics", .serve = serve_metrics },
	[ROUTE_HEALTHY] = { .path = "/-/healthy", .serve = serve_healthy },
	[ROUTE_READY] = { .path = "/-/ready", .serve = serve_ready },
	[ROUTE_PROFILE] = { .path = "/debug/pprof/profile", .serve = serve_profile, .get_only = true },
	[ROUTE_OFFCPU] = { .path = "/debug/pprof/offcpu", .serve = serve_offcpu, .get_only = true },
	[ROUTE_TARGETS] = { .path = "/api/v1/targets", .serve = serve_targets },
	[ROUTE_QUERY_API] = { .path = PYROSCOPE_SERVICE_PATH, .serve = serve_query_api, .prefix = true },
	[ROUTE_OTHER] = { .path = "other" },
};

static int send_405(struct mg_connection *conn, bool get_only)
{
	static const char msg[] = "method not allowed\n";

	return send_response(conn, 405, "text/plain; charset=utf-8", msg, sizeof(msg) - 1,
			     get_only ? "Allow: GET\r\n" : "Allow: GET, HEAD\r\n");
}

static enum route find_route(const char *path)
{
	for (int r = 0; r < ROUTE_OTHER; r++)
		if (path && (routes[r].prefix ? strncmp(path, routes[r].path, strlen(routes[r].path)) == 0
					      : strcmp(path, routes[r].path) == 0))
			return r;
	return ROUTE_OTHER;
}

static size_t code_index(int status)
{
	for (size_t c = 0; c < NCODES; c++)
		if (status_codes[c] == status)
			return c;
	return code_index(500);
}

static void count_request(struct http_server *s, enum route r, int status, double seconds)
{
	__atomic_add_fetch(&s->requests[r][code_index(status)], 1, __ATOMIC_RELAXED);
	metrics_histogram_observe(&s->duration[r], seconds);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Every request comes here: exact paths only, no files are ever served. */
static int begin_request(struct mg_connection *conn)
{
	struct http_server *s = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	enum route r = find_route(ri->local_uri);
	const char *method = ri->request_method;
	double start = now_seconds();
	int status;

	/* Like exporter-toolkit: the web config is looked at on every request, and guards every path. */
	webconfig_refresh(s->h.web);
	if (s->h.web && webconfig_authorize(s->h.web, mg_get_header(conn, "Authorization")))
		status = send_response(conn, 401, "text/plain; charset=utf-8", "Unauthorized\n", 13,
				       "WWW-Authenticate: Basic\r\n");
	else if (r == ROUTE_OTHER)
		status = send_text(conn, 404, "404 page not found\n");
	else if (!routes[r].prefix && strcmp(method, "GET") != 0 &&
		 (routes[r].get_only || strcmp(method, "HEAD") != 0))
		status = send_405(conn, routes[r].get_only);
	else
		status = routes[r].serve(s, conn, ri);
	count_request(s, r, status, now_seconds() - start);
	return status;
}

/* --- metrics ---------------------------------------------------------------------------------- */

static void write_metrics(struct metrics_buf *b, void *ctx)
{
	struct http_server *s = ctx;
	struct metrics_series series;
	char labels[128];

	series = metrics_series_begin(b, "anorak_http_requests_total", "counter",
				      "HTTP requests answered, by handler and status code.");
	for (int r = 0; r < NROUTES; r++) {
		for (size_t c = 0; c < NCODES; c++) {
			uint64_t n = __atomic_load_n(&s->requests[r][c], __ATOMIC_RELAXED);

			/* The usual code (200, or 404 for unknown paths) always, so rate() sees the
			 * first request; other codes once they happen. */
			if (!n && status_codes[c] != (r == ROUTE_OTHER ? 404 : 200))
				continue;
			snprintf(labels, sizeof(labels), "handler=\"%s\",code=\"%d\"", routes[r].path,
				 status_codes[c]);
			metrics_series_value(series, labels, (double)n);
		}
	}

	series = metrics_series_begin(b, "anorak_http_request_duration_seconds", "histogram",
				      "Time to answer HTTP requests, by handler; profiles include their window.");
	for (int r = 0; r < NROUTES; r++) {
		snprintf(labels, sizeof(labels), "handler=\"%s\"", routes[r].path);
		metrics_series_histogram(series, labels, &s->duration[r]);
	}

	metrics_gauge(b, "anorak_profile_requests_in_flight", "Profile requests waiting for their window to end.",
		      __atomic_load_n(&s->profiles_in_flight, __ATOMIC_RELAXED));
}

/* civetweb only says "Failed to setup server ports": binding the same address ourselves tells why
 * (EADDRINUSE, EADDRNOTAVAIL, EACCES...). */
static int bind_error(const struct listen_addr *la)
{
	int fd = socket(la->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, err = 0;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&la->sa, la->salen) || listen(fd, 1))
		err = -errno;
	close(fd);
	return err;
}

/* --- server ----------------------------------------------------------------------------------- */

static pthread_once_t civetweb_once = PTHREAD_ONCE_INIT, civetweb_tls_once = PTHREAD_ONCE_INIT;

static void civetweb_init(void)
{
	mg_init_library(0);
}

/* Only with TLS configured: initializing OpenSSL makes ~2 MB of libcrypto resident. */
static void civetweb_init_tls(void)
{
	mg_init_library(MG_FEATURES_TLS);
}

static void server_free(struct http_server *s)
{
	conn_guard_free(s->guard);
	for (int r = 0; r < NROUTES; r++)
		metrics_histogram_destroy(&s->duration[r]);
	free(s);
}

/* civetweb's SSL_CTX gets everything from the web config: 1 tells civetweb it is set up. */
static int init_ssl(void *ssl_ctx, void *user_data)
{
	struct http_server *s = user_data;

	return webconfig_setup_tls(s->h.web, ssl_ctx) ? -1 : 1;
}

static void connection_closed(const struct mg_connection *conn)
{
	struct http_server *s = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);

	/* No request info after a failed TLS handshake: the guard finds those out by itself. */
	if (ri)
		conn_guard_closed(s->guard, ri->remote_addr, ri->remote_port);
}

static int new_guard(struct http_server *s)
{
	const struct http_limits *lim = &s->h.limits;
	struct conn_guard_limits g = {
		/* civetweb holds at most its workers' connections and its queue's (connection_queue, 20) */
		.served = lim->max_connections + 32,
		.max_waiting = lim->max_waiting,
		.max_per_client = lim->max_per_client,
		.header_timeout_ms = lim->read_timeout_ms,
		.max_header_bytes = lim->max_header_bytes,
		.tls = webconfig_tls(s->h.web),
	};

	return conn_guard_new(&g, &s->guard);
}

static int start_civetweb(struct http_server *s, const char *listen_address,
			  const struct listen_addr *la)
{
	char ports[sizeof(la->ports) + 1], threads[16], timeout[16], header[16], backlog[16];
	/* request_timeout_ms bounds each network read and write (a client that stops sending its request,
	 * or stops reading the answer), not the time a handler runs: a profile can wait for its whole
	 * window while idle and slow clients are still dropped. */
	const char *options[] = {
		"listening_ports", ports,
		"num_threads", threads,
		"request_timeout_ms", timeout,
		"max_request_size", header,
		"enable_keep_alive", "yes",
		/* The guard accepts into its waiting room: a burst as large as the room waits in the
		 * kernel's queue rather than overflow it (the kernel caps it at net.core.somaxconn). */
		"listen_backlog", backlog,
		NULL,
	};
	struct mg_callbacks callbacks = { .begin_request = begin_request, .init_ssl = init_ssl,
					  .connection_closed = connection_closed };
	struct mg_init_data init = { .callbacks = &callbacks, .user_data = s,
				     .configuration_options = options };
	char text[256] = "";
	struct mg_error_data error = { .text = text, .text_buffer_size = sizeof(text) };
	int err;

	snprintf(threads, sizeof(threads), "%u", s->h.limits.max_connections);
	snprintf(timeout, sizeof(timeout), "%u", s->h.limits.read_timeout_ms);
	snprintf(header, sizeof(header), "%u", s->h.limits.max_header_bytes);
	snprintf(backlog, sizeof(backlog), "%u", s->h.limits.max_waiting);
	/* civetweb's "s" suffix: this port speaks TLS only. */
	snprintf(ports, sizeof(ports), "%s%s", la->ports, webconfig_tls(s->h.web) ? "s" : "");
	pthread_once(&civetweb_once, civetweb_init);
	if (webconfig_tls(s->h.web))
		pthread_once(&civetweb_tls_once, civetweb_init_tls);
	s->mg = mg_start2(&init, &error);
	if (s->mg)
		return 0;
	err = bind_error(la);
	if (err)
		log_error("cannot listen", "address=%s err=\"%s\"", listen_address, strerror(-err));
	else
		log_error("cannot start the HTTP server", "address=%s err=\"%s\"", listen_address, text);
	return err ? err : -EIO;
}

int http_server_start(const char *listen_address, const struct http_handlers *handlers,
		      struct http_server **out)
{
	struct listen_addr la = { 0 };
	struct http_server *s;
	const char *why;
	int err;

	const struct http_limits *lim = &handlers->limits;

	if (!lim->max_connections || !lim->max_requests || lim->max_requests >= lim->max_connections ||
	    !lim->read_timeout_ms || !lim->max_header_bytes || !lim->max_per_client ||
	    !lim->max_waiting) {
		log_error("bad HTTP limits", "max_connections=%u max_requests=%u read_timeout_ms=%u "
			  "max_header_bytes=%u max_per_client=%u max_waiting=%u", lim->max_connections,
			  lim->max_requests, lim->read_timeout_ms, lim->max_header_bytes, lim->max_per_client,
			  lim->max_waiting);
		return -EINVAL;
	}
	err = listen_addr_parse(listen_address, &la, &why);
	if (err) {
		log_error("bad listen address", "address=\"%s\" err=\"%s\"", listen_address, why);
		return err;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err = -ENOMEM;
		goto fail_log;
	}
	s->h = *handlers;
	for (int r = 0; r < NROUTES; r++) {
		err = metrics_histogram_init(&s->duration[r], duration_bounds, NBOUNDS);
		if (err)
			goto fail_log;
	}
	err = new_guard(s);
	if (err)
		goto fail_log;
	err = start_civetweb(s, listen_address, &la);
	if (err)
		goto fail; /* logged with the cause */
	conn_guard_listen(s->guard, http_server_port(s)); /* logs why not; served unguarded then */
	err = metrics_register(write_metrics, s);
	if (err) {
		mg_stop(s->mg);
		goto fail_log;
	}
	log_info("listening", "address=%s port=%d tls=%s", listen_address, http_server_port(s),
		 webconfig_tls(s->h.web) ? "true" : "false");
	*out = s;
	return 0;
fail_log:
	log_error("cannot start the HTTP server", "address=%s err=\"%s\"", listen_address,
		  strerror(-err));
fail:
	if (s)
		server_free(s);
	return err;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	metrics_unregister(write_metrics, s);
	mg_stop(s->mg);
	server_free(s);
}

int http_server_port(const struct http_server *s)
{
	struct mg_server_port port;

	if (mg_get_server_ports(s->mg, 1, &port) != 1)
		return -ENOENT;
	return port.port;
}
