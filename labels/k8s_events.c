#include "labels/k8s_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

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
void k8s_remove_unseen(struct k8s_client *c)
{
	for (size_t i = c->npods; i-- > 0;) {
		if (!c->pods[i].seen)
			remove_at(c, i, NULL);
	}
}

void k8s_set_rv(struct k8s_client *c, const char *rv)
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

const char *k8s_json_str(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *k8s_meta_str(struct json_object *obj, const char *key)
{
	struct json_object *meta;

	if (!obj || !json_object_object_get_ex(obj, "metadata", &meta))
		return NULL;
	return k8s_json_str(meta, key);
}

struct json_object *k8s_parse_json(const char *buf, size_t len)
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
void k8s_log_safe(char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*s = '\'';
		else if ((unsigned char)*s < 0x20)
			*s = ' ';
	}
}

/* --- the watch stream ------------------------------------------------------------------------------ */

static void handle_error_event(struct xfer *x, struct json_object *status)
{
	struct json_object *code;
	const char *msg = k8s_json_str(status, "message");
	int64_t n = 0;

	if (status && json_object_object_get_ex(status, "code", &code))
		n = json_object_get_int64(code);
	x->outcome = n == 410 ? OUT_GONE : OUT_ERROR_EVENT;
	snprintf(x->err, sizeof(x->err), "watch ERROR event %lld: %.200s", (long long)n,
		 msg ? msg : "");
	k8s_log_safe(x->err);
}

static void handle_pod_event(struct xfer *x, const char *type, struct json_object *obj)
{
	struct k8s_client *c = x->c;
	struct k8s_pod pod;

	if (k8s_pod_decode(obj, &pod)) {
		skip_object(c, K8S_SKIP_INVALID);
		return;
	}
	k8s_set_rv(c, pod.resource_version);
	if (strcmp(type, "DELETED") == 0)
		delete_pod(c, &pod);
	else
		upsert_pod(c, &pod);
	k8s_pod_free(&pod);
}

static void handle_event(struct xfer *x, struct json_object *ev)
{
	const char *type = k8s_json_str(ev, "type");
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
		const char *rv = k8s_meta_str(obj, "resourceVersion");

		if (rv)
			k8s_set_rv(x->c, rv);
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
void k8s_stream_end_line(struct xfer *x)
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

void k8s_stream_data(struct xfer *x, const char *data, size_t len)
{
	while (len && !x->outcome) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl ? (size_t)(nl - data) : len;

		feed(x, data, seg);
		data += seg;
		len -= seg;
		if (nl) {
			k8s_stream_end_line(x);
			data++;
			len--;
		}
	}
}
/* --- list items ------------------------------------------------------------------------------------ */

void k8s_list_item(struct k8s_client *c, struct json_object *item)
{
	struct k8s_pod pod;
	size_t len = 0;

	/* The same bound as for a watch event, so a pod is either always seen or never. */
	json_object_to_json_string_length(item, JSON_C_TO_STRING_PLAIN, &len);
	if (len > c->max_object) {
		log_warn("Kubernetes pod larger than the limit, skipped", "pod=\"%s\" bytes=%zu max_bytes=%zu",
			 k8s_meta_str(item, "name") ? k8s_meta_str(item, "name") : "?", len, c->max_object);
		skip_object(c, K8S_SKIP_TOO_LARGE);
		return;
	}
	if (k8s_pod_decode(item, &pod)) {
		skip_object(c, K8S_SKIP_INVALID);
		return;
	}
	upsert_pod(c, &pod);
}
