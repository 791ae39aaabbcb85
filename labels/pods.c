#include "pods.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_meta.h"
#include "log.h"

/* Containers are kept in one list and searched linearly: a node runs at most a few hundred (the
 * kubelet's default is 110 pods), and the drain looks up each distinct cgroup once per drain. */
struct container {
	char id[65];            /* "" while the status has none */
	char *pod_uid;
	struct target *target;
	uint64_t cgroup_id;     /* 0 until linked */
	char *cgroup_path;      /* relative to the cgroup2 mount; NULL until the scan found it */
	struct pod_policy applied;
	bool has_policy;        /* applied was handed to the hook */
	struct container *next;
};

struct pod_store {
	pthread_mutex_t lock;
	struct target_labeler *labeler;
	struct pod_store_hooks hooks;
	struct container *containers;
	size_t ncontainers;
	bool unlinked;
};

int pod_store_new(struct target_labeler *labeler, const struct pod_store_hooks *hooks, struct pod_store **out)
{
	struct pod_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->labeler = labeler;
	if (hooks)
		s->hooks = *hooks;
	*out = s;
	return 0;
}

static void container_free(struct container *c)
{
	target_put(c->target);
	free(c->pod_uid);
	free(c->cgroup_path);
	free(c);
}

void pod_store_free(struct pod_store *s)
{
	if (!s)
		return;
	while (s->containers) {
		struct container *next = s->containers->next;

		container_free(s->containers);
		s->containers = next;
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Hands the container's policy to the hook when it changed. Lock held. */
static void apply_policy(struct pod_store *s, struct container *c)
{
	struct pod_policy want = { .dropped = c->target->dropped };
	bool needed = want.dropped || want.frequency;

	if (!c->cgroup_id || !s->hooks.policy)
		return;
	if (needed == c->has_policy && (!needed || !memcmp(&want, &c->applied, sizeof(want))))
		return;
	s->hooks.policy(s->hooks.ctx, c->cgroup_id, needed ? &want : NULL);
	c->applied = want;
	c->has_policy = needed;
}

static void withdraw_policy(struct pod_store *s, struct container *c)
{
	if (c->has_policy && s->hooks.policy)
		s->hooks.policy(s->hooks.ctx, c->cgroup_id, NULL);
	c->has_policy = false;
}

/* Takes the pod's containers out of the list, in their order. Lock held. */
static struct container *unlink_pod(struct pod_store *s, const char *uid)
{
	struct container *taken = NULL, **tail = &taken;

	for (struct container **p = &s->containers; *p;) {
		struct container *c = *p;

		if (strcmp(c->pod_uid, uid)) {
			p = &c->next;
			continue;
		}
		*p = c->next;
		c->next = NULL;
		*tail = c;
		tail = &c->next;
		s->ncontainers--;
	}
	return taken;
}

/* The container of the old state with the same runtime id: its cgroup link carries over. */
static struct container *take_old(struct container **old, const char *id)
{
	if (!id[0])
		return NULL;
	for (struct container **p = old; *p; p = &(*p)->next) {
		if (!strcmp((*p)->id, id)) {
			struct container *c = *p;

			*p = c->next;
			c->next = NULL;
			return c;
		}
	}
	return NULL;
}

/* One container per name: the first of its targets is its first declared port (or its only,
 * portless, target). */
static bool first_of_container(const struct k8s_target *t, size_t i)
{
	return i == 0 || t[i].init != t[i - 1].init || strcmp(t[i].container_name, t[i - 1].container_name);
}

static struct container *container_new(struct pod_store *s, struct k8s_target *kt)
{
	struct container *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	memcpy(c->id, kt->container_id, sizeof(c->id));
	c->pod_uid = strdup(kt->pod_uid);
	c->target = target_make(s->labeler, &kt->labels);
	if (!c->pod_uid || !c->target) {
		container_free(c);
		return NULL;
	}
	return c;
}

/* Builds the pod's containers; on failure the pod has none (logged once). */
static struct container *build_pod(struct pod_store *s, const struct k8s_pod *pod)
{
	struct k8s_target *targets;
	struct container *built = NULL, **tail = &built;
	size_t n;
	int err = k8s_pod_targets(pod, &targets, &n);

	for (size_t i = 0; !err && i < n; i++) {
		if (!first_of_container(targets, i))
			continue;
		struct container *c = container_new(s, &targets[i]);
		if (!c) {
			err = -ENOMEM;
			break;
		}
		*tail = c;
		tail = &c->next;
	}
	k8s_targets_free(targets, n);
	if (err) {
		log_warn("Kubernetes pod left without targets", "pod=\"%s/%s\" err=\"%s\"", pod->namespace,
			 pod->name, strerror(-err));
		while (built) {
			struct container *next = built->next;

			container_free(built);
			built = next;
		}
	}
	return built;
}

void pod_store_on_pod(void *store, const struct k8s_pod *pod, bool deleted)
{
	struct pod_store *s = store;
	struct container *fresh = deleted ? NULL : build_pod(s, pod);

	pthread_mutex_lock(&s->lock);
	struct container *old = unlink_pod(s, pod->uid);
	while (fresh) {
		struct container *c = fresh, *prior = take_old(&old, c->id);

		fresh = c->next;
		if (prior) {
			c->cgroup_id = prior->cgroup_id;
			c->cgroup_path = prior->cgroup_path;
			prior->cgroup_path = NULL;
			c->applied = prior->applied;
			c->has_policy = prior->has_policy;
			container_free(prior);
		}
		if (c->id[0] && !c->cgroup_id)
			s->unlinked = true;
		apply_policy(s, c);
		c->next = s->containers;
		s->containers = c;
		s->ncontainers++;
	}
	while (old) {
		struct container *next = old->next;

		withdraw_policy(s, old);
		container_free(old);
		old = next;
	}
	pthread_mutex_unlock(&s->lock);
}

static struct container *find_by_id(struct pod_store *s, const char *id)
{
	for (struct container *c = s->containers; c && id[0]; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static struct container *find_by_cgroup(struct pod_store *s, uint64_t cgroup_id)
{
	for (struct container *c = s->containers; c; c = c->next)
		if (c->cgroup_id == cgroup_id)
			return c;
	return NULL;
}

/* The pod's one container still without a runtime id, if there is exactly one. */
static struct container *only_unstarted(struct pod_store *s, const char *pod_uid)
{
	struct container *found = NULL;

	for (struct container *c = s->containers; c; c = c->next) {
		if (c->id[0] || strcmp(c->pod_uid, pod_uid))
			continue;
		if (found)
			return NULL;
		found = c;
	}
	return found;
}

/* Links cgroup_id to c (a container restarted in place gets a new id and cgroup). Lock held. */
static void link_locked(struct pod_store *s, struct container *c, uint64_t cgroup_id)
{
	if (c->cgroup_id == cgroup_id)
		return;
	withdraw_policy(s, c);
	c->cgroup_id = cgroup_id;
	apply_policy(s, c);
}

struct target *pod_store_target(struct pod_store *s, uint64_t cgroup_id, const struct cgroup_identity *id)
{
	struct target *t = NULL;

	pthread_mutex_lock(&s->lock);
	struct container *c = cgroup_id ? find_by_cgroup(s, cgroup_id) : NULL;
	if (!c && id && (c = find_by_id(s, id->container_id)) && cgroup_id)
		link_locked(s, c, cgroup_id);
	if (!c && id && id->pod_uid[0])
		c = only_unstarted(s, id->pod_uid);
	if (c)
		t = target_get(c->target);
	pthread_mutex_unlock(&s->lock);
	return t;
}

void pod_store_link_cgroup(struct pod_store *s, uint64_t cgroup_id, const char *path,
			   const struct cgroup_identity *id)
{
	pthread_mutex_lock(&s->lock);
	struct container *c = find_by_id(s, id->container_id);
	if (c) {
		if (!c->cgroup_path || strcmp(c->cgroup_path, path)) {
			char *copy = strdup(path);

			if (copy) {
				free(c->cgroup_path);
				c->cgroup_path = copy;
			}
		}
		link_locked(s, c, cgroup_id);
	}
	pthread_mutex_unlock(&s->lock);
}

bool pod_store_take_unlinked(struct pod_store *s)
{
	pthread_mutex_lock(&s->lock);
	bool unlinked = s->unlinked;
	s->unlinked = false;
	pthread_mutex_unlock(&s->lock);
	return unlinked;
}

void pod_store_relabel(struct pod_store *s)
{
	pthread_mutex_lock(&s->lock);
	for (struct container *c = s->containers; c; c = c->next) {
		struct labelset discovered = { 0 };

		if (labelset_copy(&discovered, &c->target->discovered))
			continue;
		struct target *fresh = target_make(s->labeler, &discovered);
		if (!fresh)
			continue;
		target_put(c->target);
		c->target = fresh;
		apply_policy(s, c);
	}
	pthread_mutex_unlock(&s->lock);
}

void pod_store_each(struct pod_store *s, void (*fn)(void *ctx, const struct target *t), void *ctx)
{
	pthread_mutex_lock(&s->lock);
	for (struct container *c = s->containers; c; c = c->next)
		fn(ctx, c->target);
	pthread_mutex_unlock(&s->lock);
}

size_t pod_store_containers(struct pod_store *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->ncontainers;
	pthread_mutex_unlock(&s->lock);
	return n;
}
