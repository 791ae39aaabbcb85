#include "labels/k8s_pod.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/log.h"

#define ARENA_CHUNK 4096

/* Chunks are only ever appended, so pointers handed out stay valid until the pod is freed. */
struct k8s_pod_arena {
	struct k8s_pod_arena *next;
	size_t used, cap;
	_Alignas(max_align_t) char data[];
};

struct decoder {
	struct k8s_pod *pod;
	char what[256]; /* the pod's namespace/name for log lines, once known */
};

static void *arena_alloc(struct k8s_pod *pod, size_t n)
{
	struct k8s_pod_arena *a = pod->arena;
	size_t align = _Alignof(max_align_t);

	n = (n + align - 1) & ~(align - 1);
	if (!a || a->cap - a->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		a = malloc(sizeof(*a) + cap);
		if (!a)
			return NULL;
		a->next = pod->arena;
		a->used = 0;
		a->cap = cap;
		pod->arena = a;
	}
	void *p = a->data + a->used;
	a->used += n;
	return p;
}

static void *arena_array(struct k8s_pod *pod, size_t n, size_t size)
{
	void *p = arena_alloc(pod, n * size); /* n is bounded by K8S_POD_MAX_*, no overflow */

	if (p)
		memset(p, 0, n * size);
	return p;
}

static const char *arena_strdup(struct k8s_pod *pod, const char *s, size_t len)
{
	char *p = arena_alloc(pod, len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static int invalid(const struct decoder *d, const char *field, const char *problem)
{
	log_warn("skipping Kubernetes pod", "pod=\"%s\" field=%s err=\"%s\"", d->what, field, problem);
	return -EINVAL;
}

/* A JSON null is a field's zero value, as Go's decoder treats it. */
static struct json_object *field(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return json_object_is_type(v, json_type_null) ? NULL : v;
}

/* *out = the string at obj[key], "" when absent. */
static int get_str(struct decoder *d, struct json_object *obj, const char *key, const char **out)
{
	struct json_object *v = field(obj, key);

	if (!v) {
		*out = "";
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return invalid(d, key, "not a string");
	*out = arena_strdup(d->pod, json_object_get_string(v), json_object_get_string_len(v));
	return *out ? 0 : -ENOMEM;
}

static int get_obj(struct decoder *d, struct json_object *obj, const char *key, json_type type,
		   struct json_object **out)
{
	*out = field(obj, key);
	if (*out && !json_object_is_type(*out, type))
		return invalid(d, key, type == json_type_array ? "not an array" : "not an object");
	return 0;
}

/* Array at obj[key] with at most max elements; *n = 0 when absent. */
static int get_array(struct decoder *d, struct json_object *obj, const char *key, size_t max,
		     struct json_object **arr, size_t *n)
{
	int err = get_obj(d, obj, key, json_type_array, arr);

	if (err)
		return err;
	*n = *arr ? json_object_array_length(*arr) : 0;
	if (*n > max)
		return invalid(d, key, "too many elements");
	return 0;
}

static int decode_map(struct decoder *d, struct json_object *meta, const char *key,
		      const struct k8s_kv **out, size_t *n)
{
	struct json_object *map;
	struct k8s_kv *kv;
	size_t i = 0;
	int err = get_obj(d, meta, key, json_type_object, &map);

	*out = NULL;
	*n = 0;
	if (err || !map)
		return err;
	if ((size_t)json_object_object_length(map) > K8S_POD_MAX_LABELS)
		return invalid(d, key, "too many entries");
	kv = arena_array(d->pod, json_object_object_length(map), sizeof(*kv));
	if (!kv && json_object_object_length(map))
		return -ENOMEM;
	json_object_object_foreach(map, k, v) {
		if (v && !json_object_is_type(v, json_type_string))
			return invalid(d, key, "value not a string");
		kv[i].key = arena_strdup(d->pod, k, strlen(k));
		kv[i].value = v ? arena_strdup(d->pod, json_object_get_string(v),
					       json_object_get_string_len(v))
				: "";
		if (!kv[i].key || !kv[i].value)
			return -ENOMEM;
		i++;
	}
	*out = kv;
	*n = i;
	return 0;
}

/* Prometheus uses the first ownerReference with controller: true. */
static int decode_controller(struct decoder *d, struct json_object *meta)
{
	struct json_object *refs, *ref, *ctl;
	size_t n;
	int err = get_array(d, meta, "ownerReferences", SIZE_MAX, &refs, &n);

	d->pod->controller_kind = d->pod->controller_name = "";
	for (size_t i = 0; !err && i < n; i++) {
		ref = json_object_array_get_idx(refs, i);
		ctl = field(ref, "controller");
		if (!ctl || !json_object_is_type(ctl, json_type_boolean) || !json_object_get_boolean(ctl))
			continue;
		err = get_str(d, ref, "kind", &d->pod->controller_kind);
		if (!err)
			err = get_str(d, ref, "name", &d->pod->controller_name);
		break;
	}
	return err;
}

static int decode_metadata(struct decoder *d, struct json_object *obj)
{
	struct k8s_pod *pod = d->pod;
	struct json_object *meta;
	int err = get_obj(d, obj, "metadata", json_type_object, &meta);

	if (err)
		return err;
	if (!meta)
		return invalid(d, "metadata", "missing");
	if ((err = get_str(d, meta, "namespace", &pod->namespace)) ||
	    (err = get_str(d, meta, "name", &pod->name)))
		return err;
	if (!*pod->namespace || !*pod->name)
		return invalid(d, "metadata", "namespace or name missing");
	snprintf(d->what, sizeof(d->what), "%s/%s", pod->namespace, pod->name);
	if ((err = get_str(d, meta, "uid", &pod->uid)) ||
	    (err = get_str(d, meta, "resourceVersion", &pod->resource_version)) ||
	    (err = decode_map(d, meta, "labels", &pod->labels, &pod->nlabels)) ||
	    (err = decode_map(d, meta, "annotations", &pod->annotations, &pod->nannotations)))
		return err;
	return decode_controller(d, meta);
}

static int decode_port(struct decoder *d, struct json_object *obj, struct k8s_port *port)
{
	struct json_object *num = field(obj, "containerPort");
	int64_t v;
	int err;

	if (!num || !json_object_is_type(num, json_type_int))
		return invalid(d, "containerPort", "missing or not an integer");
	v = json_object_get_int64(num);
	if (v < 0 || v > UINT16_MAX)
		return invalid(d, "containerPort", "out of range");
	port->number = (uint16_t)v;
	if ((err = get_str(d, obj, "name", &port->name)))
		return err;
	return get_str(d, obj, "protocol", &port->protocol);
}

static int decode_container(struct decoder *d, struct json_object *obj, struct k8s_container *c)
{
	struct json_object *ports;
	struct k8s_port *p;
	size_t n;
	int err;

	if ((err = get_str(d, obj, "name", &c->name)) || (err = get_str(d, obj, "image", &c->image)) ||
	    (err = get_array(d, obj, "ports", K8S_POD_MAX_PORTS, &ports, &n)))
		return err;
	if (!n)
		return 0;
	if (!(p = arena_array(d->pod, n, sizeof(*p))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((err = decode_port(d, json_object_array_get_idx(ports, i), &p[i])))
			return err;
	}
	c->ports = p;
	c->nports = n;
	return 0;
}

static int decode_containers(struct decoder *d, struct json_object *spec, const char *key,
			     const struct k8s_container **out, size_t *nout)
{
	struct json_object *arr;
	struct k8s_container *c;
	size_t n;
	int err = get_array(d, spec, key, K8S_POD_MAX_CONTAINERS, &arr, &n);

	if (err || !n)
		return err;
	if (!(c = arena_array(d->pod, n, sizeof(*c))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((err = decode_container(d, json_object_array_get_idx(arr, i), &c[i])))
			return err;
	}
	*out = c;
	*nout = n;
	return 0;
}

static int decode_statuses(struct decoder *d, struct json_object *status, const char *key,
			   const struct k8s_container_status **out, size_t *nout)
{
	struct json_object *arr, *item;
	struct k8s_container_status *s;
	size_t n;
	int err = get_array(d, status, key, K8S_POD_MAX_STATUSES, &arr, &n);

	if (err || !n)
		return err;
	if (!(s = arena_array(d->pod, n, sizeof(*s))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		item = json_object_array_get_idx(arr, i);
		if ((err = get_str(d, item, "name", &s[i].name)) ||
		    (err = get_str(d, item, "containerID", &s[i].container_id)))
			return err;
	}
	*out = s;
	*nout = n;
	return 0;
}

/* The first Ready condition, as Prometheus takes it. */
static int decode_ready(struct decoder *d, struct json_object *status)
{
	struct json_object *conds, *cond, *type;
	size_t n;
	int err = get_array(d, status, "conditions", SIZE_MAX, &conds, &n);

	d->pod->ready = NULL;
	for (size_t i = 0; !err && i < n; i++) {
		cond = json_object_array_get_idx(conds, i);
		type = field(cond, "type");
		if (!type || !json_object_is_type(type, json_type_string) ||
		    strcmp(json_object_get_string(type), "Ready") != 0)
			continue;
		return get_str(d, cond, "status", &d->pod->ready);
	}
	return err;
}

static int decode_spec_status(struct decoder *d, struct json_object *obj)
{
	struct k8s_pod *pod = d->pod;
	struct json_object *spec, *status;
	int err;

	if ((err = get_obj(d, obj, "spec", json_type_object, &spec)) ||
	    (err = get_obj(d, obj, "status", json_type_object, &status)))
		return err;
	if ((err = get_str(d, spec, "nodeName", &pod->node_name)) ||
	    (err = decode_containers(d, spec, "containers", &pod->containers, &pod->ncontainers)) ||
	    (err = decode_containers(d, spec, "initContainers", &pod->init_containers,
				     &pod->ninit_containers)))
		return err;
	if ((err = get_str(d, status, "podIP", &pod->pod_ip)) ||
	    (err = get_str(d, status, "hostIP", &pod->host_ip)) ||
	    (err = get_str(d, status, "phase", &pod->phase)) || (err = decode_ready(d, status)) ||
	    (err = decode_statuses(d, status, "containerStatuses", &pod->statuses, &pod->nstatuses)))
		return err;
	return decode_statuses(d, status, "initContainerStatuses", &pod->init_statuses,
			       &pod->ninit_statuses);
}

int k8s_pod_decode(struct json_object *obj, struct k8s_pod *pod)
{
	struct decoder d = { .pod = pod, .what = "?" };
	int err;

	*pod = (struct k8s_pod){ 0 };
	if (!json_object_is_type(obj, json_type_object)) {
		err = invalid(&d, "object", "not a JSON object");
		goto out;
	}
	err = decode_metadata(&d, obj);
	if (!err)
		err = decode_spec_status(&d, obj);
out:
	if (err == -ENOMEM)
		log_error("out of memory decoding a Kubernetes pod", "pod=\"%s\"", d.what);
	if (err)
		k8s_pod_free(pod);
	return err;
}

static bool only_space(const char *s, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		if (!strchr(" \t\r\n", s[i]) || !s[i])
			return false;
	}
	return true;
}

int k8s_pod_parse(const char *json, size_t len, struct k8s_pod *pod)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	int err;

	*pod = (struct k8s_pod){ 0 };
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, json, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (!obj || len > INT32_MAX || !only_space(json, json_tokener_get_parse_end(tok), len)) {
		log_warn("malformed Kubernetes pod JSON", "len=%zu err=\"%s\"", len,
			 obj ? "trailing data" : json_tokener_error_desc(json_tokener_get_error(tok)));
		err = -EINVAL;
	} else {
		err = k8s_pod_decode(obj, pod);
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return err;
}

void k8s_pod_free(struct k8s_pod *pod)
{
	struct k8s_pod_arena *a = pod->arena, *next;

	for (; a; a = next) {
		next = a->next;
		free(a);
	}
	*pod = (struct k8s_pod){ 0 };
}
