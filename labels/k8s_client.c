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

#include <curl/curl.h>
#include <json-c/json.h>

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
#define RV_MAX 256
#define CONTINUE_MAX 8192
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

static const char *const request_names[] = { "list", "watch" };
static const char *const result_names[] = { "success", "gone", "http_error", "network_error",
					    "invalid_response" };
static const char *const skip_names[] = { "too_large", "invalid", "too_many_pods" };

static bool stopping(struct k8s_client *c)
{
	return atomic_load(&c->stop);
}

#define STAT_ADD(c, field, n)                       \
	do {                                        \
		pthread_mutex_lock(&(c)->lock);     \
		(c)->st.field += (n);               \
		pthread_mutex_unlock(&(c)->lock);   \
	} while (0)

static void skip_object(struct k8s_client *c, enum k8s_skip why)
{
	STAT_ADD(c, skipped[why], 1);
}

/* --- pods ---------------------------------------------------------------------------------------- */

static struct pod_entry *find_pod(struct k8s_client *c, const struct k8s_pod *pod)
{
	for (size_t i = 0; i < c->npods; i++) {
		if (strcmp(c->pods[i].pod.name, pod->name) == 0 &&
		    strcmp(c->pods[i].pod.namespace, pod->namespace) == 0)
			return &c->pods[i];
	}
	return NULL;
}

static void set_pod_count(struct k8s_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->st.pods = c->npods;
	pthread_mutex_unlock(&c->lock);
}

/* Takes ownership of *pod. Reports it unless the stored copy has the same resourceVersion. */
static void upsert_pod(struct k8s_client *c, struct k8s_pod *pod)
{
	struct pod_entry *e = find_pod(c, pod);
	bool changed = !e || !*pod->resource_version ||
		       strcmp(e->pod.resource_version, pod->resource_version) != 0;

	if (!e) {
		if (c->npods == K8S_CLIENT_MAX_PODS) {
			log_warn("too many pods on the node, ignoring one", "pod=\"%s/%s\" max=%d",
				 pod->namespace, pod->name, K8S_CLIENT_MAX_PODS);
			skip_object(c, K8S_SKIP_TOO_MANY_PODS);
			k8s_pod_free(pod);
			return;
		}
		if (c->npods == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			struct pod_entry *grown = realloc(c->pods, cap * sizeof(*grown));

			if (!grown) {
				log_error("out of memory storing a pod", "pod=\"%s/%s\"", pod->namespace,
					  pod->name);
				k8s_pod_free(pod);
				return;
			}
			c->pods = grown;
			c->cap = cap;
		}
		e = &c->pods[c->npods++];
	} else {
		k8s_pod_free(&e->pod);
	}
	e->pod = *pod;
	e->seen = true;
	*pod = (struct k8s_pod){ 0 };
	set_pod_count(c);
	if (changed)
		c->on_pod(c->ctx, &e->pod, false);
}

static void remove_at(struct k8s_client *c, size_t i, const struct k8s_pod *last_state)
{
	c->on_pod(c->ctx, last_state ? last_state : &c->pods[i].pod, true);
	k8s_pod_free(&c->pods[i].pod);
	c->pods[i] = c->pods[--c->npods];
	set_pod_count(c);
}

static void delete_pod(struct k8s_client *c, const struct k8s_pod *pod)
{
	struct pod_entry *e = find_pod(c, pod);

	if (e)
		remove_at(c, (size_t)(e - c->pods), pod);
}

/* After a complete list, pods it did not contain are gone. */
static void remove_unseen(struct k8s_client *c)
{
	for (size_t i = c->npods; i-- > 0;) {
		if (!c->pods[i].seen)
			remove_at(c, i, NULL);
	}
}

static void set_rv(struct k8s_client *c, const char *rv)
{
	if (!*rv)
		return;
	if (strlen(rv) >= sizeof(c->rv)) {
		log_warn("Kubernetes resourceVersion too long, ignored", "len=%zu", strlen(rv));
		return;
	}
	strcpy(c->rv, rv);
}

/* --- JSON helpers --------------------------------------------------------------------------------- */

static const char *json_str(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static const char *meta_str(struct json_object *obj, const char *key)
{
	struct json_object *meta;

	if (!obj || !json_object_object_get_ex(obj, "metadata", &meta))
		return NULL;
	return json_str(meta, key);
}

static struct json_object *parse_json(const char *buf, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	struct json_object *obj = NULL;

	if (tok && len && len <= INT32_MAX)
		obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (tok)
		json_tokener_free(tok);
	return obj;
}

/* Quotes and newlines would break a logfmt value. */
static void log_safe(char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*s = '\'';
		else if ((unsigned char)*s < 0x20)
			*s = ' ';
	}
}

/* The Status object's message of an error response, else its first bytes. */
static void error_message(const struct xfer *x, char *out, size_t outlen)
{
	struct json_object *st = x->len ? json_tokener_parse(x->body) : NULL;
	const char *msg = json_str(st, "message");

	snprintf(out, outlen, "HTTP %ld: %.200s", x->status, msg ? msg : x->body ? x->body : "");
	json_object_put(st);
	log_safe(out);
}

/* --- the watch stream ------------------------------------------------------------------------------ */

static void handle_error_event(struct xfer *x, struct json_object *status)
{
	struct json_object *code;
	const char *msg = json_str(status, "message");
	int64_t n = 0;

	if (status && json_object_object_get_ex(status, "code", &code))
		n = json_object_get_int64(code);
	x->outcome = n == 410 ? OUT_GONE : OUT_ERROR_EVENT;
	snprintf(x->err, sizeof(x->err), "watch ERROR event %lld: %.200s", (long long)n,
		 msg ? msg : "");
	log_safe(x->err);
}

static void handle_pod_event(struct xfer *x, const char *type, struct json_object *obj)
{
	struct k8s_client *c = x->c;
	struct k8s_pod pod;

	if (k8s_pod_decode(obj, &pod)) {
		skip_object(c, K8S_SKIP_INVALID);
		return;
	}
	set_rv(c, pod.resource_version);
	if (strcmp(type, "DELETED") == 0)
		delete_pod(c, &pod);
	else
		upsert_pod(c, &pod);
	k8s_pod_free(&pod);
}

static void handle_event(struct xfer *x, struct json_object *ev)
{
	const char *type = json_str(ev, "type");
	struct json_object *obj = NULL;

	if (ev)
		json_object_object_get_ex(ev, "object", &obj);
	if (!type || !json_object_is_type(obj, json_type_object)) {
		log_warn("malformed Kubernetes watch event, skipped", "type=\"%s\"", type ? type : "");
		skip_object(x->c, K8S_SKIP_INVALID);
		return;
	}
	x->events++;
	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
	    strcmp(type, "DELETED") == 0) {
		handle_pod_event(x, type, obj);
	} else if (strcmp(type, "BOOKMARK") == 0) {
		const char *rv = meta_str(obj, "resourceVersion");

		if (rv)
			set_rv(x->c, rv);
	} else if (strcmp(type, "ERROR") == 0) {
		handle_error_event(x, obj);
	} else {
		log_warn("unknown Kubernetes watch event type, skipped", "type=\"%.64s\"", type);
		skip_object(x->c, K8S_SKIP_INVALID);
	}
}

static void skip_line(struct xfer *x, enum k8s_skip why)
{
	skip_object(x->c, why);
	x->skipping = true;
}

/* Appends a piece of one line (no newline). Lines above max_object bytes are dropped as they come. */
static void feed(struct xfer *x, const char *p, size_t n)
{
	if (x->skipping || !n)
		return;
	if (n > x->c->max_object - x->line_len) {
		log_warn("Kubernetes watch event larger than the limit, skipped",
			 "bytes_so_far=%zu max_bytes=%zu", x->line_len + n, x->c->max_object);
		skip_line(x, K8S_SKIP_TOO_LARGE);
		return;
	}
	if (x->line_len + n > x->line_cap) {
		size_t cap = x->line_cap ? x->line_cap : 4096;
		char *grown;

		while (cap < x->line_len + n)
			cap *= 2;
		grown = realloc(x->line, cap);
		if (!grown) {
			log_error("out of memory reading a Kubernetes watch event", "bytes=%zu", cap);
			skip_line(x, K8S_SKIP_TOO_LARGE);
			return;
		}
		x->line = grown;
		x->line_cap = cap;
	}
	memcpy(x->line + x->line_len, p, n);
	x->line_len += n;
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* The API server ends every event with a newline. A line is parsed whole, once it has ended: json-c
 * parsing in pieces can take or refuse the same malformed bytes depending on where they were cut. */
static void end_line(struct xfer *x)
{
	struct json_object *ev = NULL;
	enum json_tokener_error jerr;
	size_t end;

	if (x->skipping || blank(x->line, x->line_len))
		goto out;
	json_tokener_reset(x->tok);
	ev = json_tokener_parse_ex(x->tok, x->line, (int)x->line_len);
	jerr = json_tokener_get_error(x->tok);
	end = json_tokener_get_parse_end(x->tok);
	if (jerr == json_tokener_continue) {
		log_warn("incomplete Kubernetes watch event, skipped", "bytes=%zu", x->line_len);
		skip_object(x->c, K8S_SKIP_INVALID);
	} else if (jerr != json_tokener_success || !blank(x->line + end, x->line_len - end)) {
		log_warn("malformed Kubernetes watch event, skipped", "err=\"%s\"",
			 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "data after the event");
		skip_object(x->c, K8S_SKIP_INVALID);
	} else {
		handle_event(x, ev);
	}
	json_object_put(ev);
out:
	x->line_len = 0;
	x->skipping = false;
}

static void stream_data(struct xfer *x, const char *data, size_t len)
{
	while (len && !x->outcome) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl ? (size_t)(nl - data) : len;

		feed(x, data, seg);
		data += seg;
		len -= seg;
		if (nl) {
			end_line(x);
			data++;
			len--;
		}
	}
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
		curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status);
		x->max = x->status == 200 ? x->c->max_list : ERROR_BODY_MAX;
	}
	if (x->stream && x->status == 200) {
		stream_data(x, data, len);
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

	curl_slist_free_all(c->headers);
	c->headers = curl_slist_append(NULL, "Accept: application/json");
	if (token && strcspn(token, "\r\n") == strlen(token) &&
	    asprintf(&auth, "Authorization: Bearer %s", token) >= 0) {
		struct curl_slist *h = curl_slist_append(c->headers, auth);

		if (h)
			c->headers = h;
		free(auth);
	}
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
		snprintf(x->err, sizeof(x->err), "%s: %s", curl_easy_strerror(rc), x->c->curl_err);
		log_safe(x->err);
		return K8S_RES_NETWORK_ERROR;
	}
	/* The write callback takes the status with the first bytes: an empty body has not. */
	if (!x->status)
		curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status);
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
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(req == K8S_REQ_WATCH ?
						    c->watch_timeout_s + WATCH_GRACE_S :
						    LIST_TIMEOUT_S));
	rc = curl_easy_perform(h);
	if (stopping(c))
		return K8S_RES_NETWORK_ERROR; /* not counted: the caller leaves */
	if (x->stream && rc == CURLE_OK)
		end_line(x); /* a clean end of the stream ends its last line */
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
	CURL *h = curl_easy_init();
	const struct k8s_conn *k = &c->conn;

	if (!h)
		return -ENOMEM;
	c->curl = h;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "anorak/" ANORAK_VERSION);
	if (k->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->ca.file)
		curl_easy_setopt(h, CURLOPT_CAINFO, k->ca.file);
	if (k->ca.data) {
		struct curl_blob b = { k->ca.data, k->ca.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cert.file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, k->cert.file);
	if (k->key.file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, k->key.file);
	if (k->cert.data) {
		struct curl_blob b = { k->cert.data, k->cert.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (k->key.data) {
		struct curl_blob b = { k->key.data, k->key.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
	}
	build_headers(c);
	return c->headers ? 0 : -ENOMEM;
}

/* --- list and watch ---------------------------------------------------------------------------------- */

static void list_item(struct k8s_client *c, struct json_object *item)
{
	struct k8s_pod pod;
	size_t len = 0;

	/* The same bound as for a watch event, so a pod is either always seen or never. */
	json_object_to_json_string_length(item, JSON_C_TO_STRING_PLAIN, &len);
	if (len > c->max_object) {
		log_warn("Kubernetes pod larger than the limit, skipped", "pod=\"%s\" bytes=%zu max_bytes=%zu",
			 meta_str(item, "name") ? meta_str(item, "name") : "?", len, c->max_object);
		skip_object(c, K8S_SKIP_TOO_LARGE);
		return;
	}
	if (k8s_pod_decode(item, &pod)) {
		skip_object(c, K8S_SKIP_INVALID);
		return;
	}
	upsert_pod(c, &pod);
}

/* Reads one page; *cont becomes the next page's token or NULL. */
static enum k8s_result list_page(struct k8s_client *c, char **cont, char *err)
{
	struct xfer x = { .c = c };
	struct json_object *root = NULL, *items = NULL;
	char *url = NULL, *esc = *cont ? curl_easy_escape(c->curl, *cont, 0) : NULL;
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
	root = parse_json(x.body, x.len);
	rv = meta_str(root, "resourceVersion");
	next = meta_str(root, "continue");
	if (!rv || !json_object_object_get_ex(root, "items", &items) ||
	    !(json_object_is_type(items, json_type_array) || json_object_is_type(items, json_type_null)) ||
	    (next && strlen(next) > CONTINUE_MAX)) {
		snprintf(err, ERR_LEN, "list response is not a PodList");
		res = K8S_RES_INVALID;
		goto out;
	}
	for (size_t i = 0; items && i < json_object_array_length(items); i++)
		list_item(c, json_object_array_get_idx(items, i));
	set_rv(c, rv);
	if (next && *next && !(*cont = strdup(next)))
		res = K8S_RES_INVALID;
out:
	if (url)
		count_request(c, K8S_REQ_LIST, res);
	json_object_put(root);
	curl_free(esc);
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
	remove_unseen(c);
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
	char *url = NULL, *rv = curl_easy_escape(c->curl, c->rv, 0);
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
	curl_free(rv);
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

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
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
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
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
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct k8s_client *c;
	char *node;
	int err;

	*client = NULL;
	if (!cfg->node_name || !*cfg->node_name) {
		log_error("Kubernetes discovery needs the node name", NULL);
		return -EINVAL;
	}
	pthread_once(&once, curl_init_once);
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
	node = curl_easy_escape(c->curl, cfg->node_name, 0);
	if (!node || asprintf(&c->selector, "fieldSelector=spec.nodeName%%3D%s", node) < 0) {
		c->selector = NULL;
		curl_free(node);
		err = -ENOMEM;
		goto fail;
	}
	curl_free(node);
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
		stream_data(&x, data + off, len - off < chunk ? len - off : chunk);
	end_line(&x);
	res = classify(&x, CURLE_OK);
	*stats = c->st;
	json_tokener_free(x.tok);
	free(x.line);
	client_free(c);
	return res;
}
