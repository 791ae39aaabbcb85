#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/web/http.h"
#include "exporter/web/query.h"
#include "common/log.h"

/* --- the query parser ------------------------------------------------------------------------- */

static void test_parse_query(void **state)
{
	static const struct {
		const char *query;
		unsigned max;
		int ret;
		unsigned seconds;
		const char *reason;
	} cases[] = {
		{ NULL, 3600, 0, 30, NULL },
		{ "", 3600, 0, 30, NULL },
		{ "seconds=10", 3600, 0, 10, NULL },
		{ "seconds=1", 3600, 0, 1, NULL },
		{ "seconds=3600", 3600, 0, 3600, NULL },
		{ "seconds=007", 3600, 0, 7, NULL },
		{ "debug=1&seconds=15&gc=1", 3600, 0, 15, NULL },
		{ "seconds=5&seconds=9", 3600, 0, 5, NULL },
		{ "%73econds=%31%32", 3600, 0, 12, NULL },
		{ "seconds", 3600, 0, 30, NULL },
		{ "seconds=", 3600, 0, 30, NULL },
		{ "second=5", 3600, 0, 30, NULL },
		{ "secondsx=5", 3600, 0, 30, NULL },
		{ "seconds%00=5", 3600, 0, 30, NULL },
		{ "seconds%zz=5&seconds=4", 3600, 0, 4, NULL },
		{ "&&seconds=8&", 3600, 0, 8, NULL },
		{ "seconds=5&end=2", 3600, 0, 5, NULL },
		{ "", 10, 0, 10, NULL },
		{ "seconds=0", 3600, -EINVAL, 0, "invalid seconds: must be at least 1" },
		{ "seconds=000", 3600, -EINVAL, 0, "invalid seconds: must be at least 1" },
		{ "seconds=-5", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=+5", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=%2B5", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=abc", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=1.5", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=10s", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds= 10", 3600, -EINVAL, 0, "invalid seconds: not a positive integer" },
		{ "seconds=1%", 3600, -EINVAL, 0, "invalid seconds: bad percent-encoding" },
		{ "seconds=%3", 3600, -EINVAL, 0, "invalid seconds: bad percent-encoding" },
		{ "seconds=%g1", 3600, -EINVAL, 0, "invalid seconds: bad percent-encoding" },
		{ "seconds=3601", 3600, -EINVAL, 0,
		  "invalid seconds: longer than the maximum of 3600 (--storage.retention)" },
		{ "seconds=99999999999999999999999999999", 3600, -EINVAL, 0,
		  "invalid seconds: longer than the maximum of 3600 (--storage.retention)" },
		{ "seconds=4294967296", 4294967295u, -EINVAL, 0,
		  "invalid seconds: longer than the maximum of 4294967295 (--storage.retention)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char reason[128] = "";
		unsigned seconds = 0;
		int ret = http_parse_profile_query(cases[i].query, cases[i].max, &seconds, reason,
						   sizeof(reason));

		if (ret != cases[i].ret)
			fail_msg("query \"%s\": returned %d, want %d (%s)", cases[i].query, ret,
				 cases[i].ret, reason);
		if (ret == 0 && seconds != cases[i].seconds)
			fail_msg("query \"%s\": seconds %u, want %u", cases[i].query, seconds,
				 cases[i].seconds);
		if (ret && strcmp(reason, cases[i].reason) != 0)
			fail_msg("query \"%s\": reason \"%s\", want \"%s\"", cases[i].query, reason,
				 cases[i].reason);
	}
}

static void test_parse_query_short_reason_buffer(void **state)
{
	char reason[8];
	unsigned seconds;

	(void)state;
	assert_int_equal(http_parse_profile_query("seconds=x", 60, &seconds, reason, sizeof(reason)),
			 -EINVAL);
	assert_string_equal(reason, "invalid");
}

/* --- a fake daemon ---------------------------------------------------------------------------- */

#define FAKE_BODY "\x1f\x8b\x08\x00 not really a profile"
#define MAX_SECONDS 60
#define MAX_REQUESTS 16

static struct fake {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready;
	bool block;      /* profile calls wait until this is false */
	int waiting;     /* profile calls inside the handler */
	int ret;         /* what profile calls return */
	bool watch_client; /* blocked profile calls return -ECANCELED once their client hangs up */
	unsigned seconds; /* the last profile call's argument */
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int fake_profile(void *ctx, unsigned seconds, bool (*client_gone)(void *arg), void *arg,
			void **body, size_t *len)
{
	struct fake *f = ctx;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	f->seconds = seconds;
	f->waiting++;
	pthread_cond_broadcast(&f->cond);
	while (f->block && !ret) {
		struct timespec step;

		clock_gettime(CLOCK_REALTIME, &step);
		step.tv_nsec += 20000000;
		if (step.tv_nsec >= 1000000000) {
			step.tv_sec++;
			step.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&f->cond, &f->lock, &step);
		if (f->watch_client && client_gone(arg))
			ret = -ECANCELED;
	}
	f->waiting--;
	pthread_cond_broadcast(&f->cond);
	ret = ret ? ret : f->ret;
	pthread_mutex_unlock(&f->lock);
	if (ret)
		return ret;
	*len = sizeof(FAKE_BODY) - 1;
	*body = malloc(*len);
	if (!*body)
		return -ENOMEM;
	memcpy(*body, FAKE_BODY, *len);
	return 0;
}

static bool fake_ready(void *ctx)
{
	struct fake *f = ctx;
	bool ready;

	pthread_mutex_lock(&f->lock);
	ready = f->ready;
	pthread_mutex_unlock(&f->lock);
	return ready;
}

#define FAKE_TARGETS "{\"status\":\"success\",\"data\":{\"activeTargets\":[],\"droppedTargets\":[]}}"

static int fake_targets(void *ctx, char **body, size_t *len)
{
	struct fake *f = ctx;

	if (f->ret)
		return f->ret;
	*body = strdup(FAKE_TARGETS);
	*len = strlen(FAKE_TARGETS);
	return *body ? 0 : -ENOMEM;
}

static const struct http_handlers handlers = {
	.profile = fake_profile, .ready = fake_ready, .targets = fake_targets, .ctx = &fake,
	.max_seconds = MAX_SECONDS,
	.limits = { .max_connections = 32, .max_requests = MAX_REQUESTS, .read_timeout_ms = 30000,
		    .max_header_bytes = 16384, .max_per_client = 32,
		    .max_waiting = 64 },
};

static struct http_server *server;
static int port;

static int start_server(void **state)
{
	(void)state;
	log_set_level(LOG_WARN);
	if (http_server_start("127.0.0.1:0", &handlers, &server))
		return -1;
	port = http_server_port(server);
	return port > 0 ? 0 : -1;
}

static int stop_server(void **state)
{
	(void)state;
	http_server_stop(server);
	return 0;
}

static int reset_fake(void **state)
{
	(void)state;
	pthread_mutex_lock(&fake.lock);
	fake.ready = true;
	fake.block = false;
	fake.ret = 0;
	fake.seconds = 0;
	fake.watch_client = false;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

/* --- a small HTTP/1.1 client ------------------------------------------------------------------ */

struct response {
	int status;
	char raw[1 << 16];
	size_t len;
	const char *body;
	size_t body_len;
};

static int connect_loopback(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* One request on a fresh connection ("Connection: close"), the whole answer read until EOF. */
static void request(const char *method, const char *target, struct response *r)
{
	char req[512];
	int fd = connect_loopback(), n;
	char *end;
	ssize_t got;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test_http\r\nConnection: close\r\n\r\n",
		     method, target);
	assert_int_equal(write(fd, req, n), n);
	r->len = 0;
	while ((got = read(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len)) > 0)
		r->len += got;
	assert_int_equal(got, 0); /* EOF, not a timeout */
	close(fd);
	r->raw[r->len] = '\0';

	assert_int_equal(sscanf(r->raw, "HTTP/1.1 %d ", &r->status), 1);
	end = strstr(r->raw, "\r\n\r\n");
	assert_non_null(end);
	r->body = end + 4;
	r->body_len = r->len - (r->body - r->raw);
}

static struct response *get(const char *target)
{
	static struct response r;

	request("GET", target, &r);
	return &r;
}

/* The value of a response header (case-insensitive name), or NULL. */
static const char *header(const struct response *r, const char *name, char *value, size_t len)
{
	size_t nlen = strlen(name);

	for (const char *line = strstr(r->raw, "\r\n") + 2; line < r->body - 2;
	     line = strstr(line, "\r\n") + 2) {
		const char *eol = strstr(line, "\r\n");

		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;

			while (*v == ' ')
				v++;
			snprintf(value, len, "%.*s", (int)(eol - v), v);
			return value;
		}
	}
	return NULL;
}

static void assert_header(const struct response *r, const char *name, const char *want)
{
	char value[256];

	if (!header(r, name, value, sizeof(value)))
		fail_msg("no %s header in:\n%s", name, r->raw);
	assert_string_equal(value, want);
}

static void assert_no_header(const struct response *r, const char *name)
{
	char value[256];

	if (header(r, name, value, sizeof(value)))
		fail_msg("unexpected %s: %s", name, value);
}

static void assert_text(const struct response *r, int status, const char *body)
{
	if (r->status != status)
		fail_msg("status %d, want %d:\n%s", r->status, status, r->raw);
	assert_header(r, "Content-Type", "text/plain; charset=utf-8");
	assert_string_equal(r->body, body);
}

/* --- the routes ------------------------------------------------------------------------------- */

static void test_index(void **state)
{
	struct response *r = get("/");

	(void)state;
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type", "text/html; charset=utf-8");
	assert_non_null(strstr(r->body, "href=\"metrics\""));
	assert_non_null(strstr(r->body, "href=\"debug/pprof/profile?seconds=10\""));
	assert_non_null(strstr(r->body, "href=\"-/healthy\""));
	assert_non_null(strstr(r->body, "href=\"-/ready\""));
	assert_non_null(strstr(r->body, "href=\"api/v1/targets\""));
}

static void test_healthy(void **state)
{
	struct response *r = get("/-/healthy");
	char len[16];

	(void)state;
	assert_text(r, 200, "anorak is Healthy.\n");
	assert_header(r, "Content-Length", "19");

	request("HEAD", "/-/healthy", r);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->body_len, 0);
	assert_string_equal(header(r, "Content-Length", len, sizeof(len)), "19");
}

static void test_ready(void **state)
{
	(void)state;
	assert_text(get("/-/ready"), 200, "anorak is Ready.\n");
	fake.ready = false;
	assert_text(get("/-/ready"), 503, "anorak is not ready.\n");
}

static void test_targets(void **state)
{
	struct response *r = get("/api/v1/targets");

	(void)state;
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type", "application/json");
	assert_int_equal(r->body_len, strlen(FAKE_TARGETS));
	assert_memory_equal(r->body, FAKE_TARGETS, r->body_len);
	fake.ret = -ENOMEM;
	r = get("/api/v1/targets");
	assert_int_equal(r->status, 500);
	assert_non_null(strstr(r->body, "could not list the targets"));
}

static void test_profile(void **state)
{
	struct response *r = get("/debug/pprof/profile?seconds=2");

	(void)state;
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type", "application/octet-stream");
	assert_header(r, "Content-Disposition", "attachment; filename=\"profile\"");
	assert_header(r, "X-Content-Type-Options", "nosniff");
	assert_no_header(r, "Content-Encoding");
	assert_int_equal(r->body_len, sizeof(FAKE_BODY) - 1);
	assert_memory_equal(r->body, FAKE_BODY, r->body_len);
	assert_int_equal(fake.seconds, 2);

	assert_int_equal(get("/debug/pprof/profile")->status, 200);
	assert_int_equal(fake.seconds, 30);
	assert_int_equal(get("/debug/pprof/profile?debug=0&seconds=%36%30")->status, 200);
	assert_int_equal(fake.seconds, 60);
}

static void test_profile_bad_seconds(void **state)
{
	(void)state;
	assert_text(get("/debug/pprof/profile?seconds=0"), 400, "invalid seconds: must be at least 1\n");
	assert_text(get("/debug/pprof/profile?seconds=-1"), 400,
		    "invalid seconds: not a positive integer\n");
	assert_text(get("/debug/pprof/profile?seconds=abc"), 400,
		    "invalid seconds: not a positive integer\n");
	assert_text(get("/debug/pprof/profile?seconds=61"), 400,
		    "invalid seconds: longer than the maximum of 60 (--storage.retention)\n");
	assert_text(get("/debug/pprof/profile?seconds=%zz"), 400,
		    "invalid seconds: bad percent-encoding\n");
	assert_int_equal(fake.seconds, 0); /* the handler never ran */
}

static void test_profile_errors(void **state)
{
	(void)state;
	fake.ret = -ESHUTDOWN;
	assert_text(get("/debug/pprof/profile?seconds=1"), 503, "anorak is shutting down\n");
	fake.ret = -EIO;
	assert_text(get("/debug/pprof/profile?seconds=1"), 500,
		    "could not collect the profile: Input/output error\n");
}

static void test_not_found(void **state)
{
	static const char *const paths[] = {
		"/nope", "/metrics/", "/metricsx", "/debug/pprof/", "/debug/pprof/heap", "/-/", "/index.html",
		"/../../etc/passwd",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		assert_text(get(paths[i]), 404, "404 page not found\n");
}

static void test_methods(void **state)
{
	struct response r;

	(void)state;
	request("POST", "/metrics", &r);
	assert_text(&r, 405, "method not allowed\n");
	assert_header(&r, "Allow", "GET, HEAD");
	request("HEAD", "/debug/pprof/profile?seconds=1", &r);
	assert_int_equal(r.status, 405);
	assert_header(&r, "Allow", "GET");
	assert_int_equal(fake.seconds, 0);
	request("DELETE", "/-/healthy", &r);
	assert_int_equal(r.status, 405);
}

static void test_metrics(void **state)
{
	struct response *r;

	(void)state;
	assert_int_equal(get("/-/ready")->status, 200);
	assert_int_equal(get("/nope")->status, 404);
	r = get("/metrics");
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(r->body, "# TYPE anorak_http_requests_total counter\n"));
	assert_non_null(strstr(r->body, "anorak_http_requests_total{handler=\"/-/ready\",code=\"200\"} "));
	assert_non_null(strstr(r->body, "anorak_http_requests_total"
					 "{handler=\"/debug/pprof/profile\",code=\"400\"} 5\n"));
	assert_non_null(strstr(r->body, "anorak_http_requests_total{handler=\"other\",code=\"404\"} "));
	assert_non_null(strstr(r->body, "# TYPE anorak_http_request_duration_seconds histogram\n"));
	assert_non_null(strstr(r->body, "anorak_http_request_duration_seconds_bucket"
					 "{handler=\"/metrics\",le=\"+Inf\"} "));
	assert_non_null(strstr(r->body, "anorak_http_request_duration_seconds_count"
					 "{handler=\"/debug/pprof/profile\"} "));
	assert_non_null(strstr(r->body, "# TYPE anorak_profile_requests_in_flight gauge\n"));
	assert_non_null(strstr(r->body, "anorak_profile_requests_in_flight 0\n"));
}

static void *profile_request(void *arg)
{
	struct response *r = malloc(sizeof(*r));

	(void)arg;
	assert_non_null(r);
	request("GET", "/debug/pprof/profile?seconds=1", r);
	return r;
}

/* Profiles that wait take at most MAX_REQUESTS threads: more are turned away and the
 * cheap endpoints keep answering. */
static void test_profile_limit(void **state)
{
	pthread_t threads[MAX_REQUESTS];
	struct timespec deadline;
	char gauge[64];

	(void)state;
	fake.block = true;
	for (int i = 0; i < MAX_REQUESTS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, profile_request, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&fake.lock);
	while (fake.waiting < MAX_REQUESTS)
		assert_int_equal(pthread_cond_timedwait(&fake.cond, &fake.lock, &deadline), 0);
	pthread_mutex_unlock(&fake.lock);

	assert_text(get("/debug/pprof/profile?seconds=1"), 503,
		    "too many concurrent profile requests (at most 16, --web.max-requests), try again later\n");
	assert_text(get("/-/healthy"), 200, "anorak is Healthy.\n");
	snprintf(gauge, sizeof(gauge), "anorak_profile_requests_in_flight %d\n",
		 MAX_REQUESTS);
	assert_non_null(strstr(get("/metrics")->body, gauge));

	pthread_mutex_lock(&fake.lock);
	fake.block = false;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
	for (int i = 0; i < MAX_REQUESTS; i++) {
		struct response *r;

		pthread_join(threads[i], (void **)&r);
		assert_int_equal(r->status, 200);
		assert_memory_equal(r->body, FAKE_BODY, sizeof(FAKE_BODY) - 1);
		free(r);
	}
}

/* Waits (bounded) until n profile calls are inside the handler. */
static void wait_waiting(int n)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	pthread_mutex_lock(&fake.lock);
	while (fake.waiting != n)
		assert_int_equal(pthread_cond_timedwait(&fake.cond, &fake.lock, &deadline), 0);
	pthread_mutex_unlock(&fake.lock);
}

/* Whether /metrics shows the line within the seconds: the handler counts its answer after the
 * profile's wait has ended, so a reader can come between the two. */
static bool metrics_show_within(const char *line, int seconds)
{
	for (int i = 0; i < seconds * 100; i++) {
		if (strstr(get("/metrics")->body, line))
			return true;
		usleep(10000);
	}
	return false;
}

/* A client that hangs up while its profile waits frees the handler at once, counted as 499. */
static void test_client_hangs_up(void **state)
{
	static const char req[] = "GET /debug/pprof/profile?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = connect_loopback();

	(void)state;
	fake.block = true;
	fake.watch_client = true;
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	wait_waiting(1);
	close(fd);
	wait_waiting(0);
	assert_true(metrics_show_within("anorak_http_requests_total"
					"{handler=\"/debug/pprof/profile\",code=\"499\"} 1\n", 20));
	pthread_mutex_lock(&fake.lock);
	fake.block = false;
	pthread_mutex_unlock(&fake.lock);
}

/* Connections that send nothing wait without a worker: more of them than workers leave the server
 * answering. Each comes from its own loopback address, so the per-client cap does not step in. */
static void test_idle_connections_take_no_worker(void **state)
{
	int fds[48];
	char addr[32];

	(void)state;
	assert_true(sizeof(fds) / sizeof(fds[0]) > handlers.limits.max_connections);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };

		snprintf(addr, sizeof(addr), "127.0.3.%zu", i + 1);
		inet_pton(AF_INET, addr, &src.sin_addr);
		dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		dst.sin_port = htons(port);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&src, sizeof(src)), 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)), 0);
	}
	assert_int_equal(get("/-/healthy")->status, 200);
	assert_non_null(strstr(get("/metrics")->body, "anorak_http_connections{state=\"waiting\"} 48\n"));
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close(fds[i]);
}

/* --- starting --------------------------------------------------------------------------------- */

static void test_port_taken(void **state)
{
	struct http_server *second = NULL;
	char addr[32];

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(http_server_start(addr, &handlers, &second), -EADDRINUSE);
	assert_null(second);
	/* The first server is unharmed. */
	assert_int_equal(get("/-/healthy")->status, 200);
}

static void test_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"", "9760", "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:-1",
		"127.0.0.1:http", "::1:9760", "[::1:9760",
	};
	struct http_server *s = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (http_server_start(bad[i], &handlers, &s) != -EINVAL)
			fail_msg("\"%s\" was not rejected with -EINVAL", bad[i]);
	/* A well-formed address this host does not have. */
	assert_int_equal(http_server_start("192.0.2.1:0", &handlers, &s), -EADDRNOTAVAIL);
	assert_null(s);
}

static void test_restart(void **state)
{
	struct http_server *s = NULL;

	(void)state;
	assert_int_equal(http_server_start("localhost:0", &handlers, &s), 0);
	assert_true(http_server_port(s) > 0);
	http_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_query),
		cmocka_unit_test(test_parse_query_short_reason_buffer),
		cmocka_unit_test_setup(test_index, reset_fake),
		cmocka_unit_test_setup(test_healthy, reset_fake),
		cmocka_unit_test_setup(test_ready, reset_fake),
		cmocka_unit_test_setup(test_targets, reset_fake),
		cmocka_unit_test_setup(test_profile, reset_fake),
		cmocka_unit_test_setup(test_profile_bad_seconds, reset_fake),
		cmocka_unit_test_setup(test_profile_errors, reset_fake),
		cmocka_unit_test_setup(test_not_found, reset_fake),
		cmocka_unit_test_setup(test_methods, reset_fake),
		cmocka_unit_test_setup(test_metrics, reset_fake),
		cmocka_unit_test_setup(test_profile_limit, reset_fake),
		cmocka_unit_test_setup(test_client_hangs_up, reset_fake),
		cmocka_unit_test_setup(test_idle_connections_take_no_worker, reset_fake),
		cmocka_unit_test_setup(test_port_taken, reset_fake),
		cmocka_unit_test_setup(test_bad_addresses, reset_fake),
		cmocka_unit_test_setup(test_restart, reset_fake),
	};

	return cmocka_run_group_tests(tests, start_server, stop_server);
}
