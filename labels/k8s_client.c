#include "labels/k8s_client.h"
#include "labels/k8s_client_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "labels/curl_lib.h"
#include "labels/k8s_conn.h"
#include "common/log.h"
#include "common/metrics.h"

#define DEFAULT_WATCH_TIMEOUT_S 300
#define DEFAULT_MAX_OBJECT (4u << 20)
#define DEFAULT_MAX_LIST (256u << 20)
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define MAX_LIST_BYTES_LIMIT (1u << 30) /* json-c takes an int length */
#define LIST_LIMIT 500
#define LIST_MAX_PAGES 64   /* K8S_CLIENT_MAX_PODS / LIST_LIMIT, with room to spare */
#define LIST_TIMEOUT_S 120
#define CONNECT_TIMEOUT_S 10
#define WATCH_GRACE_S 60     /* beyond timeoutSeconds before the client gives up on the server */
#define WATCH_MIN_MS 1000    /* a watch ending sooner with no event backs off (no busy loop) */
#define TOKEN_MAX_BYTES 65536
#define ERROR_BODY_MAX 4096
#define CONTINUE_MAX 8192

static const struct curl_lib *cu; /* set by the first k8s_client_start */

static const char *const request_names[] = { "list", "watch" };
static const char *const result_names[] = { "success", "gone", "http_error", "network_error",
					    "invalid_response" };
static const char *const skip_names[] = { "too_large", "invalid", "too_many_pods" };

static bool stopping(struct k8s_client *c)
{
	return atomic_load(&c->stop);
}

/* --- HTTP ------------------------------------------------------------------------------------------ */

static bool body_append(struct xfer *x, const char *data, size_t len)
{
	if (x->len + len > x->max) {
		x->overflow = true;
		len = x->max - x->len;
	}
	char *grown = realloc(x->body, x->len + len + 1);

	if (!grown)
		return false;
	x->body = grown;
	memcpy(x->body + x->len, data, len);
	x->len += len;
	x->body[x->len] = '\0';
	return true;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;

	if (stopping(x->c))
		return 0;
	if (!x->status) {
		cu->easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status);
		x->max = x->status == 200 ? x->c->max_list : ERROR_BODY_MAX;
	}
	if (x->stream && x->status == 200) {
		k8s_stream_data(x, data, len);
		return x->outcome ? 0 : len; /* an ERROR event ends the watch */
	}
	if (!body_append(x, data, len))
		return 0;
	/* An error body is only logged, so its head is enough; a list page must be whole. */
	return x->overflow && x->status == 200 ? 0 : len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return stopping(arg); /* non-zero aborts the transfer: how stop interrupts a long watch */
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Projected service account tokens are rotated by swapping a symlink: stat follows it. */
static int reload_token(struct k8s_client *c)
{
	char buf[TOKEN_MAX_BYTES + 1];
	struct stat st;
	size_t n;
	FILE *f;

	if (stat(c->conn.token_file, &st) < 0 || !(f = fopen(c->conn.token_file, "r"))) {
		log_warn("cannot read Kubernetes token file", "file=\"%s\" err=\"%s\"",
			 c->conn.token_file, strerror(errno));
		return -errno;
	}
	if (c->token && same_file(&st, &c->token_st)) {
		fclose(f);
		return 0;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > TOKEN_MAX_BYTES) {
		log_warn("Kubernetes token file larger than 64 KiB, ignored", "file=\"%s\"",
			 c->conn.token_file);
		return -EFBIG;
	}
	while (n && strchr(" \t\r\n", buf[n - 1]))
		n--;
	buf[n] = '\0';
	free(c->token);
	c->token = strdup(buf);
	c->token_st = st;
	return c->token ? 1 : -ENOMEM;
}

static void build_headers(struct k8s_client *c)
{
	char *auth = NULL;
	const char *token = c->conn.token ? c->conn.token : c->token;

	cu->slist_free_all(c->headers);
	c->headers = cu->slist_append(NULL, "Accept: application/json");
	if (token && strcspn(token, "\r\n") == strlen(token) &&
	    asprintf(&auth, "Authorization: Bearer %s", token) >= 0) {
		struct curl_slist *h = cu->slist_append(c->headers, auth);

		if (h)
			c->headers = h;
		free(auth);
	}
}

/* The Status object's message of an error response, else its first bytes. */
static void error_message(const struct xfer *x, char *out, size_t outlen)
{
	struct json_object *st = x->len ? json_tokener_parse(x->body) : NULL;
	const char *msg = k8s_json_str(st, "message");

	snprintf(out, outlen, "HTTP %ld: %.200s", x->status, msg ? msg : x->body ? x->body : "");
	json_object_put(st);
	k8s_log_safe(out);
}

static enum k8s_result classify(struct xfer *x, CURLcode rc)
{
	if (x->outcome == OUT_GONE)
		return K8S_RES_GONE;
	if (x->outcome == OUT_ERROR_EVENT)
		return K8S_RES_HTTP_ERROR;
	if (rc == CURLE_WRITE_ERROR && x->overflow) {
		snprintf(x->err, sizeof(x->err), "list page larger than %zu bytes", x->max);
		return K8S_RES_INVALID;
	}
	if (rc != CURLE_OK) {
		snprintf(x->err, sizeof(x->err), "%s: %s", cu->easy_strerror(rc), x->c->curl_err);
		k8s_log_safe(x->err);
		return K8S_RES_NETWORK_ERROR;
	}
	/* The write callback takes the status with the first bytes: an empty body has not. */
	if (!x->status)
		cu->easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status == 200)
		return K8S_RES_SUCCESS;
	error_message(x, x->err, sizeof(x->err));
	return x->status == 410 ? K8S_RES_GONE : K8S_RES_HTTP_ERROR;
}

static enum k8s_result perform(struct k8s_client *c, enum k8s_request req, const char *url,
			       struct xfer *x)
{
	CURL *h = c->curl;
	enum k8s_result res;
	CURLcode rc;

	if (c->conn.token_file && reload_token(c) > 0)
		build_headers(c);
	c->curl_err[0] = '\0';
	cu->easy_setopt(h, CURLOPT_URL, url);
	cu->easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	cu->easy_setopt(h, CURLOPT_WRITEDATA, x);
	cu->easy_setopt(h, CURLOPT_TIMEOUT, (long)(req == K8S_REQ_WATCH ?
						    c->watch_timeout_s + WATCH_GRACE_S :
						    LIST_TIMEOUT_S));
	rc = cu->easy_perform(h);
	if (stopping(c))
		return K8S_RES_NETWORK_ERROR; /* not counted: the caller leaves */
	if (x->stream && rc == CURLE_OK)
		k8s_stream_end_line(x); /* a clean end of the stream ends its last line */
	res = classify(x, rc);
	log_debug("Kubernetes API request", "request=%s status=%ld result=%s", request_names[req],
		  x->status, result_names[res]);
	return res;
}

static void count_request(struct k8s_client *c, enum k8s_request req, enum k8s_result res)
{
	if (!stopping(c))
		STAT_ADD(c, requests[req][res], 1);
}

static int setup_curl(struct k8s_client *c)
{
	CURL *h = cu->easy_init();
	const struct k8s_conn *k = &c->conn;

	if (!h)
		return -ENOMEM;
	c->curl = h;
	cu->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	cu->easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
	cu->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	cu->easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	cu->easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	cu->easy_setopt(h, CURLOPT_XFERINFODATA, c);
	cu->easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	cu->easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	cu->easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	cu->easy_setopt(h, CURLOPT_USERAGENT, "anorak/" ANORAK_VERSION);
	if (k->insecure) {
		cu->easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		cu->easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->ca.file)
		cu->easy_setopt(h, CURLOPT_CAINFO, k->ca.file);
	if (k->ca.data) {
		struct curl_blob b = { k->ca.data, k->ca.len, CURL_BLOB_COPY };

		cu->easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cert.file)
		cu->easy_setopt(h, CURLOPT_SSLCERT, k->cert.file);
	if (k->key.file)
		cu->easy_setopt(h, CURLOPT_SSLKEY, k->key.file);
	if (k->cert.data) {
		struct curl_blob b = { k->cert.data, k->cert.len, CURL_BLOB_COPY };

		cu->easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (k->key.data) {
		struct curl_blob b = { k->key.data, k->key.len, CURL_BLOB_COPY };

		cu->easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
	}
	build_headers(c);
	return c->headers ? 0 : -ENOMEM;
}

/* --- list and watch ---------------------------------------------------------------------------------- */

/* Reads one page; *cont becomes the next page's token or NULL. */
static enum k8s_result list_page(struct k8s_client *c, char **cont, char *err)
{
	struct xfer x = { .c = c };
	struct json_object *root = NULL, *items = NULL;
	char *url = NULL, *esc = *cont ? cu->easy_escape(c->curl, *cont, 0) : NULL;
	const char *rv, *next;
	enum k8s_result res = K8S_RES_INVALID;

	if (asprintf(&url, "%s/api/v1/pods?%s&limit=%d%s%s", c->conn.server, c->selector, LIST_LIMIT,
		     esc ? "&continue=" : c->list_latest ? "" : "&resourceVersion=0",
		     esc ? esc : "") < 0) {
		url = NULL;
		snprintf(err, ERR_LEN, "out of memory");
		goto out;
	}
	free(*cont);
	*cont = NULL;
	res = perform(c, K8S_REQ_LIST, url, &x);
	if (res != K8S_RES_SUCCESS) {
		snprintf(err, ERR_LEN, "%s", x.err);
		goto out;
	}
	root = k8s_parse_json(x.body, x.len);
	rv = k8s_meta_str(root, "resourceVersion");
	next = k8s_meta_str(root, "continue");
	if (!rv || !json_object_object_get_ex(root, "items", &items) ||
	    !(json_object_is_type(items, json_type_array) || json_object_is_type(items, json_type_null)) ||
	    (next && strlen(next) > CONTINUE_MAX)) {
		snprintf(err, ERR_LEN, "list response is not a PodList");
		res = K8S_RES_INVALID;
		goto out;
	}
	for (size_t i = 0; items && i < json_object_array_length(items); i++)
		k8s_list_item(c, json_object_array_get_idx(items, i));
	k8s_set_rv(c, rv);
	if (next && *next && !(*cont = strdup(next)))
		res = K8S_RES_INVALID;
out:
	if (url)
		count_request(c, K8S_REQ_LIST, res);
	json_object_put(root);
	cu->free(esc);
	free(url);
	free(x.body);
	return res;
}

static enum k8s_result do_list(struct k8s_client *c, char *err)
{
	enum k8s_result res;
	char *cont = NULL;
	size_t pages = 0;

	for (size_t i = 0; i < c->npods; i++)
		c->pods[i].seen = false;
	do {
		if (++pages > LIST_MAX_PAGES) {
			snprintf(err, ERR_LEN, "list longer than %d pages", LIST_MAX_PAGES);
			free(cont);
			return K8S_RES_INVALID;
		}
		res = list_page(c, &cont, err);
	} while (res == K8S_RES_SUCCESS && cont && !stopping(c));
	free(cont);
	if (res != K8S_RES_SUCCESS || stopping(c))
		return res;
	k8s_remove_unseen(c);
	c->list_latest = false;
	pthread_mutex_lock(&c->lock);
	if (!c->st.synced)
		log_info("Kubernetes pods listed", "pods=%zu resource_version=%s", c->npods, c->rv);
	c->st.synced = true;
	pthread_mutex_unlock(&c->lock);
	return res;
}

static enum k8s_result do_watch(struct k8s_client *c, char *err, unsigned *events)
{
	struct xfer x = { .c = c, .stream = true, .tok = json_tokener_new_ex(JSON_DEPTH) };
	char *url = NULL, *rv = cu->easy_escape(c->curl, c->rv, 0);
	enum k8s_result res = K8S_RES_INVALID;

	if (!x.tok || !rv ||
	    asprintf(&url,
		     "%s/api/v1/pods?%s&watch=true&allowWatchBookmarks=true&timeoutSeconds=%u"
		     "&resourceVersion=%s",
		     c->conn.server, c->selector, c->watch_timeout_s, rv) < 0) {
		url = NULL;
		snprintf(err, ERR_LEN, "out of memory");
	} else {
		res = perform(c, K8S_REQ_WATCH, url, &x);
		count_request(c, K8S_REQ_WATCH, res);
		snprintf(err, ERR_LEN, "%s", x.err);
	}
	*events = x.events;
	if (x.tok)
		json_tokener_free(x.tok);
	free(x.line);
	cu->free(rv);
	free(url);
	free(x.body);
	return res;
}

/* --- the thread -------------------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(struct k8s_client *c, uint64_t ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->lock);
	while (!stopping(c) && pthread_cond_timedwait(&c->wake, &c->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&c->lock);
}

/* Exponential, capped, with jitter in [d/2, d] so the nodes of a cluster do not retry in step. */
static void backoff(struct k8s_client *c, enum k8s_request req, const char *err)
{
	unsigned shift = c->failures < 16 ? c->failures : 16;
	uint64_t d = (uint64_t)c->backoff_min_ms << shift;

	if (d > c->backoff_max_ms)
		d = c->backoff_max_ms;
	d = d / 2 + (uint64_t)rand_r(&c->seed) % (d / 2 + 1);
	c->failures++;
	log_warn("Kubernetes API request failed, keeping the last known pods",
		 "request=%s err=\"%s\" failures=%u retry_in_ms=%llu", request_names[req], err,
		 c->failures, (unsigned long long)d);
	STAT_ADD(c, backoff_ms, d);
	sleep_ms(c, d);
}

static void *run(void *arg)
{
	struct k8s_client *c = arg;
	bool need_list = true;
	char err[ERR_LEN];

	while (!stopping(c)) {
		enum k8s_request req = need_list ? K8S_REQ_LIST : K8S_REQ_WATCH;
		uint64_t start = now_ms();
		unsigned events = 0;
		enum k8s_result res = need_list ? do_list(c, err) : do_watch(c, err, &events);

		if (stopping(c))
			break;
		if (res == K8S_RES_SUCCESS && (need_list || events || now_ms() - start >= WATCH_MIN_MS)) {
			if (!need_list)
				STAT_ADD(c, watch_restarts, 1);
			need_list = false;
			c->failures = 0;
			continue;
		}
		if (res == K8S_RES_SUCCESS)
			snprintf(err, sizeof(err), "watch ended at once without events");
		if (res == K8S_RES_GONE) {
			STAT_ADD(c, relists, 1);
			c->list_latest = true;
			/* An expired watch relists at once; an expired list (its continue token) backs
			 * off like any failure, so a server that always answers 410 is not hammered. */
			if (!need_list) {
				log_info("Kubernetes resourceVersion expired, listing pods again",
					 "resource_version=%s err=\"%s\"", c->rv, err);
				need_list = true;
				continue;
			}
		}
		backoff(c, req, err);
	}
	return NULL;
}

/* --- public -------------------------------------------------------------------------------------------- */

static void write_metrics(struct metrics_buf *b, void *arg)
{
	struct k8s_client_stats s;
	struct metrics_series series;

	k8s_client_stats(arg, &s);
	series = metrics_series_begin(b, "anorak_kubernetes_requests_total", "counter",
				      "Kubernetes API requests by request (list page, watch) and result.");
	for (int q = 0; q < K8S_REQ_NR; q++)
		for (int r = 0; r < K8S_RES_NR; r++)
			metrics_series_valuef(series, (double)s.requests[q][r], "request=\"%s\",result=\"%s\"",
					      request_names[q], result_names[r]);
	metrics_counter(b, "anorak_kubernetes_watch_restarts_total",
			"Watches re-opened from the last resourceVersion after the server ended one.",
			(double)s.watch_restarts);
	metrics_counter(b, "anorak_kubernetes_relists_total",
			"Pod lists made again because the resourceVersion expired (410 Gone).",
			(double)s.relists);
	metrics_counter(b, "anorak_kubernetes_backoff_seconds_total",
			"Time spent waiting before retrying a failed Kubernetes API request.",
			(double)s.backoff_ms / 1000);
	metrics_gauge(b, "anorak_kubernetes_pods", "Pods of this node known to discovery.", (double)s.pods);
	series = metrics_series_begin(b, "anorak_kubernetes_objects_skipped_total", "counter",
				      "Pod objects and watch events ignored, by reason.");
	for (int k = 0; k < K8S_SKIP_NR; k++)
		metrics_series_valuef(series, (double)s.skipped[k], "reason=\"%s\"", skip_names[k]);
	metrics_gauge(b, "anorak_kubernetes_synced", "1 once the node's pods have been listed.",
		      s.synced ? 1 : 0);
}

static int resolve_conn(const struct k8s_client_config *cfg, struct k8s_conn *conn)
{
	if (cfg->api_server && cfg->kubeconfig) {
		log_error("--kubernetes.api-server and --kubernetes.kubeconfig are mutually exclusive",
			  NULL);
		return -EINVAL;
	}
	if (cfg->api_server)
		return k8s_conn_from_url(cfg->api_server, conn);
	if (cfg->kubeconfig)
		return k8s_conn_from_kubeconfig(cfg->kubeconfig, conn);
	return k8s_conn_in_cluster(cfg->serviceaccount_dir ? cfg->serviceaccount_dir :
							     K8S_SERVICEACCOUNT_DIR,
				   conn);
}

static void apply_defaults(struct k8s_client *c, const struct k8s_client_config *cfg)
{
	c->watch_timeout_s = cfg->watch_timeout_s ? cfg->watch_timeout_s : DEFAULT_WATCH_TIMEOUT_S;
	c->max_object = cfg->max_object_bytes ? cfg->max_object_bytes : DEFAULT_MAX_OBJECT;
	c->max_list = cfg->max_list_bytes ? cfg->max_list_bytes : DEFAULT_MAX_LIST;
	if (c->max_list > MAX_LIST_BYTES_LIMIT)
		c->max_list = MAX_LIST_BYTES_LIMIT;
	if (c->max_object > c->max_list)
		c->max_object = c->max_list;
	c->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
	c->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->seed = (unsigned)getpid() ^ (unsigned)now_ms();
}

static void client_free(struct k8s_client *c)
{
	for (size_t i = 0; i < c->npods; i++)
		k8s_pod_free(&c->pods[i].pod);
	free(c->pods);
	if (c->curl)
		cu->easy_cleanup(c->curl);
	if (c->headers)
		cu->slist_free_all(c->headers);
	free(c->token);
	free(c->selector);
	k8s_conn_free(&c->conn);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int init_sync(struct k8s_client *c)
{
	pthread_condattr_t attr;
	int err;

	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	err = pthread_cond_init(&c->wake, &attr);
	pthread_condattr_destroy(&attr);
	return -err;
}

int k8s_client_start(const struct k8s_client_config *cfg, k8s_pod_fn on_pod, void *ctx,
		     struct k8s_client **client)
{
	struct k8s_client *c;
	char *node;
	int err;

	*client = NULL;
	if (!cfg->node_name || !*cfg->node_name) {
		log_error("Kubernetes discovery needs the node name", NULL);
		return -EINVAL;
	}
	cu = curl_lib();
	if (!cu)
		return -ENOPKG;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	if ((err = init_sync(c))) {
		free(c);
		return err;
	}
	c->on_pod = on_pod;
	c->ctx = ctx;
	apply_defaults(c, cfg);
	if ((err = resolve_conn(cfg, &c->conn)) || (err = setup_curl(c)))
		goto fail;
	node = cu->easy_escape(c->curl, cfg->node_name, 0);
	if (!node || asprintf(&c->selector, "fieldSelector=spec.nodeName%%3D%s", node) < 0) {
		c->selector = NULL;
		cu->free(node);
		err = -ENOMEM;
		goto fail;
	}
	cu->free(node);
	if ((err = -pthread_create(&c->thread, NULL, run, c)))
		goto fail;
	metrics_register(write_metrics, c);
	log_info("Kubernetes discovery started", "server=\"%s\" node=\"%s\"", c->conn.server,
		 cfg->node_name);
	*client = c;
	return 0;
fail:
	client_free(c);
	return err;
}

bool k8s_client_synced(struct k8s_client *c)
{
	bool synced;

	pthread_mutex_lock(&c->lock);
	synced = c->st.synced;
	pthread_mutex_unlock(&c->lock);
	return synced;
}

void k8s_client_stats(struct k8s_client *c, struct k8s_client_stats *stats)
{
	pthread_mutex_lock(&c->lock);
	*stats = c->st;
	pthread_mutex_unlock(&c->lock);
}

void k8s_client_stop(struct k8s_client *c)
{
	if (!c)
		return;
	metrics_unregister(write_metrics, c);
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stop, true);
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	client_free(c);
}

/* --- replaying a watch stream (fuzzing) ---------------------------------------------------------- */

enum k8s_result k8s_watch_replay(const char *data, size_t len, size_t chunk, size_t max_object,
				 k8s_pod_fn on_pod, void *ctx, struct k8s_client_stats *stats)
{
	struct xfer x = { .stream = true, .status = 200, .tok = json_tokener_new_ex(JSON_DEPTH) };
	struct k8s_client *c = calloc(1, sizeof(*c));
	enum k8s_result res = K8S_RES_INVALID;

	if (!c || !x.tok || init_sync(c)) {
		free(c);
		if (x.tok)
			json_tokener_free(x.tok);
		return res;
	}
	c->on_pod = on_pod;
	c->ctx = ctx;
	c->max_object = max_object;
	x.c = c;
	/* In pieces, as curl hands a stream over: events and escapes straddle the cuts. */
	for (size_t off = 0; off < len && !x.outcome; off += chunk)
		k8s_stream_data(&x, data + off, len - off < chunk ? len - off : chunk);
	k8s_stream_end_line(&x);
	res = classify(&x, CURLE_OK);
	*stats = c->st;
	json_tokener_free(x.tok);
	free(x.line);
	client_free(c);
	return res;
}
