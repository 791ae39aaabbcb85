#include "labels/k8s_meta.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/text.h"

#define META "__meta_kubernetes_"
#define POD META "pod_"
#define NAME_MAX_LEN 1024 /* label and annotation keys are at most 317 bytes in Kubernetes */

int k8s_sanitize_label_name(const char *in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	while (*s) {
		if (o + 1 >= outlen)
			return -ENAMETOOLONG;
		if (isascii(*s) && (isalnum(*s) || *s == '_')) {
			out[o++] = (char)*s++;
		} else {
			out[o++] = '_';
			s += text_utf8_char_len((const char *)s);
		}
	}
	if (!outlen)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return 0;
}

/* Sets prefix + sanitized key, and prefix_present + sanitized key = "true" for labels/annotations. */
static int set_map(struct labelset *ls, const char *prefix, const char *present_prefix,
		   const struct k8s_kv *kv, size_t n)
{
	char name[NAME_MAX_LEN + 64], clean[NAME_MAX_LEN]; /* + the longest prefix */
	int err;

	for (size_t i = 0; i < n; i++) {
		err = k8s_sanitize_label_name(kv[i].key, clean, sizeof(clean));
		if (err) {
			log_warn("Kubernetes label key too long, ignored", "key_len=%zu",
				 strlen(kv[i].key));
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", prefix, clean);
		if ((err = labelset_set(ls, name, kv[i].value)))
			return err;
		snprintf(name, sizeof(name), "%s%s", present_prefix, clean);
		if ((err = labelset_set(ls, name, "true")))
			return err;
	}
	return 0;
}

static void lower(const char *in, char *out, size_t outlen)
{
	size_t i = 0;

	for (; in[i] && i + 1 < outlen; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

/* The labels every target of the pod shares (Prometheus' target group labels). */
static int pod_labels(const struct k8s_pod *pod, struct labelset *ls)
{
	char ready[32];
	int err;

	lower(pod->ready ? pod->ready : "Unknown", ready, sizeof(ready));
	if ((err = labelset_set(ls, META "namespace", pod->namespace)) ||
	    (err = labelset_set(ls, POD "name", pod->name)) ||
	    (err = labelset_set(ls, POD "ip", pod->pod_ip)) ||
	    (err = labelset_set(ls, POD "ready", ready)) ||
	    (err = labelset_set(ls, POD "phase", pod->phase)) ||
	    (err = labelset_set(ls, POD "node_name", pod->node_name)) ||
	    (err = labelset_set(ls, POD "host_ip", pod->host_ip)) ||
	    (err = labelset_set(ls, POD "uid", pod->uid)) ||
	    (err = labelset_set(ls, POD "controller_kind", pod->controller_kind)) ||
	    (err = labelset_set(ls, POD "controller_name", pod->controller_name)))
		return err;
	if ((err = set_map(ls, POD "label_", POD "labelpresent_", pod->labels, pod->nlabels)))
		return err;
	return set_map(ls, POD "annotation_", POD "annotationpresent_", pod->annotations,
		       pod->nannotations);
}

/* The status's containerID (matched by container name), verbatim for the label. */
static const char *status_id(const struct k8s_container_status *st, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(st[i].name, name) == 0)
			return st[i].container_id;
	}
	return "";
}

/* "containerd://<64 hex>" (or cri-o://, docker://) -> the 64 hex, "" when it is not that shape. */
static void runtime_id(const char *status_id, char out[65])
{
	const char *sep = strstr(status_id, "://");
	const char *id = sep ? sep + 3 : status_id;

	out[0] = '\0';
	if (strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
		return;
	memcpy(out, id, 65);
}

/* net.JoinHostPort: IPv6 addresses get brackets. */
static void join_host_port(const char *ip, unsigned port, char *out, size_t outlen)
{
	snprintf(out, outlen, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
}

struct target_spec {
	const struct k8s_container *c;
	const struct k8s_port *port; /* NULL for a portless target */
	const char *status_id;
	bool init;
};

static int fill_target(const struct k8s_pod *pod, const struct labelset *common,
		       const struct target_spec *s, struct k8s_target *t)
{
	char addr[128], num[8];
	int err = 0;

	for (size_t i = 0; !err && i < common->n; i++)
		err = labelset_set(&t->labels, common->labels[i].name, common->labels[i].value);
	if (s->port) {
		join_host_port(pod->pod_ip, s->port->number, addr, sizeof(addr));
		snprintf(num, sizeof(num), "%u", s->port->number);
	}
	if (err || (err = labelset_set(&t->labels, "__address__", s->port ? addr : pod->pod_ip)) ||
	    (err = labelset_set(&t->labels, POD "container_name", s->c->name)) ||
	    (err = labelset_set(&t->labels, POD "container_id", s->status_id)) ||
	    (err = labelset_set(&t->labels, POD "container_image", s->c->image)) ||
	    (err = labelset_set(&t->labels, POD "container_init", s->init ? "true" : "false")))
		return err;
	if (s->port &&
	    ((err = labelset_set(&t->labels, POD "container_port_number", num)) ||
	     (err = labelset_set(&t->labels, POD "container_port_name", s->port->name)) ||
	     (err = labelset_set(&t->labels, POD "container_port_protocol", s->port->protocol))))
		return err;
	runtime_id(s->status_id, t->container_id);
	t->init = s->init;
	t->container_name = strdup(s->c->name);
	t->pod_uid = strdup(pod->uid);
	return t->container_name && t->pod_uid ? 0 : -ENOMEM;
}

static size_t count_targets(const struct k8s_container *c, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += c[i].nports ? c[i].nports : 1;
	return total;
}

/* Appends the targets of one container list (regular or init) at *next. */
static int add_containers(const struct k8s_pod *pod, const struct labelset *common, bool init,
			  struct k8s_target *targets, size_t *next)
{
	const struct k8s_container *cs = init ? pod->init_containers : pod->containers;
	size_t n = init ? pod->ninit_containers : pod->ncontainers;
	int err;

	for (size_t i = 0; i < n; i++) {
		struct target_spec s = {
			.c = &cs[i],
			.init = init,
			.status_id = init ? status_id(pod->init_statuses, pod->ninit_statuses, cs[i].name)
					  : status_id(pod->statuses, pod->nstatuses, cs[i].name),
		};

		for (size_t p = 0; p < (cs[i].nports ? cs[i].nports : 1); p++) {
			s.port = cs[i].nports ? &cs[i].ports[p] : NULL;
			if ((err = fill_target(pod, common, &s, &targets[(*next)++])))
				return err;
		}
	}
	return 0;
}

int k8s_pod_targets(const struct k8s_pod *pod, struct k8s_target **targets, size_t *n)
{
	struct labelset common = { 0 };
	struct k8s_target *t;
	size_t total, next = 0;
	int err;

	*targets = NULL;
	*n = 0;
	/* Prometheus: a pod without an IP (starting, evicted) is a group without targets. */
	if (!pod->pod_ip || !*pod->pod_ip)
		return 0;
	total = count_targets(pod->containers, pod->ncontainers) +
		count_targets(pod->init_containers, pod->ninit_containers);
	if (total > K8S_META_MAX_TARGETS) {
		log_warn("Kubernetes pod has too many container ports, no targets made",
			 "pod=\"%s/%s\" targets=%zu max=%d", pod->namespace, pod->name, total,
			 K8S_META_MAX_TARGETS);
		return -E2BIG;
	}
	if (!total)
		return 0;
	if (!(t = calloc(total, sizeof(*t))))
		return -ENOMEM;
	err = pod_labels(pod, &common);
	if (!err)
		err = add_containers(pod, &common, false, t, &next);
	if (!err)
		err = add_containers(pod, &common, true, t, &next);
	labelset_free(&common);
	if (err) {
		k8s_targets_free(t, total);
		return err;
	}
	*targets = t;
	*n = total;
	return 0;
}

void k8s_targets_free(struct k8s_target *targets, size_t n)
{
	for (size_t i = 0; targets && i < n; i++) {
		labelset_free(&targets[i].labels);
		free(targets[i].container_name);
		free(targets[i].pod_uid);
	}
	free(targets);
}
