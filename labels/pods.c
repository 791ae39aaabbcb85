#include "labels/pods.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels/k8s_meta.h"
#include "common/log.h"

/* Containers are kept in one list and searched linearly: a node runs at most a few hundred (the
 * kubelet's default is 110 pods), and the drain looks up each distinct cgroup once per drain. */
struct container {
	char id[65];            /* "" while the status has none */
	char *pod_uid;
	struct target *target;
	uint64_t cgroup_id;     /* 0 until linked */
	char *cgroup_path;      /* relative to the cgroup2 mount; NULL until the scan found it */
	unsigned frequency;     /* asked by __sampling_frequency__; 0: the base rate */
	bool frequency_invalid; /* the value was refused: the previous rate stands */
	struct pod_policy applied;
	bool has_policy;        /* applied was handed to the hook */
	unsigned applied_frequency; /* what the hook could apply */
	struct container *next;
};

struct pod_store {
	pthread_mutex_t lock;
	struct target_labeler *labeler;
	struct pod_store_opts opts;
	struct container *containers;
	size_t ncontainers;
	bool unlinked;
	uint64_t invalid_frequencies;
};

int pod_store_new(struct target_labeler *labeler, const struct pod_store_opts *opts, struct pod_store **out)
{
	struct pod_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->labeler = labeler;
	s->opts = *opts;
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

static void call_hook(struct pod_store *s, struct container *c, const struct pod_policy *policy)
{
	c->applied_frequency = s->opts.policy(s->opts.ctx, c->cgroup_id, c->cgroup_path, policy);
	/* A rate that needs the cgroup's directory, which the scan has not found yet. */
	if (policy && policy->frequency && !c->cgroup_path)
		s->unlinked = true;
}

/* Hands the container's policy to the hook when it changed (or could not be applied whole yet and
 * retry is set). Lock held. */
static void apply_policy(struct pod_store *s, struct container *c, bool retry)
{
	struct pod_policy want = { .dropped = c->target->dropped, .frequency = c->target->dropped ? 0 : c->frequency };
	bool needed = want.dropped || want.frequency;

	if (!c->cgroup_id || !s->opts.policy)
		return;
	bool same = needed == c->has_policy &&
		    (!needed || (want.dropped == c->applied.dropped && want.frequency == c->applied.frequency));
	if (same && !(retry && c->applied_frequency != want.frequency))
		return;
	call_hook(s, c, needed ? &want : NULL);
	c->applied = want;
	c->has_policy = needed;
}

static void withdraw_policy(struct pod_store *s, struct container *c)
{
	if (c->has_policy && s->opts.policy)
		call_hook(s, c, NULL);
	c->has_policy = false;
	c->applied_frequency = 0;
}

/* __sampling_frequency__ (from the pod's annotation with the default rules); an invalid value changes
 * nothing (-1: the previous rate stands) and is logged, naming the pod. */
static int frequency_of(struct pod_store *s, const struct target *t)
{
	int hz = target_sampling_frequency(t, s->opts.base_frequency, s->opts.max_frequency);

	if (hz < 0) {
		__atomic_add_fetch(&s->invalid_frequencies, 1, __ATOMIC_RELAXED);
		log_warn("invalid sampling frequency for a pod's container: keeping the base rate",
			 "pod=\"%s/%s\" container=\"%s\" value=\"%s\" max=%u",
			 labelset_get(&t->discovered, "__meta_kubernetes_namespace") ?: "",
			 labelset_get(&t->discovered, "__meta_kubernetes_pod_name") ?: "",
			 labelset_get(&t->discovered, "__meta_kubernetes_pod_container_name") ?: "",
			 t->sampling_frequency, s->opts.max_frequency);
		return -1;
	}
	return hz;
}

static void set_frequency(struct pod_store *s, struct container *c)
{
	int hz = frequency_of(s, c->target);

	c->frequency_invalid = hz < 0;
	if (hz >= 0)
		c->frequency = (unsigned)hz;
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
	set_frequency(s, c);
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
			c->applied_frequency = prior->applied_frequency;
			if (c->frequency_invalid)
				c->frequency = prior->frequency;
			container_free(prior);
		}
		if (c->id[0] && !c->cgroup_id)
			s->unlinked = true;
		apply_policy(s, c, false);
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
	apply_policy(s, c, false);
}

struct target *pod_store_target(struct pod_store *s, uint64_t cgroup_id, const struct cgroup_identity *id)
{
	struct target *t = NULL;

	pthread_mutex_lock(&s->lock);
	struct container *c = cgroup_id ? find_by_cgroup(s, cgroup_id) : NULL;
	/* Not linked from here: the cgroup2 group a sample ran in names the container only when the
	 * runtime put it there (v1-only containers on hybrid hosts share their service's), which only the
	 * scan of the cgroup2 tree knows. */
	if (!c && id)
		c = find_by_id(s, id->container_id);
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
		bool moved = !c->cgroup_path || strcmp(c->cgroup_path, path);

		if (moved) {
			char *copy = strdup(path);

			if (copy) {
				free(c->cgroup_path);
				c->cgroup_path = copy;
			}
		}
		link_locked(s, c, cgroup_id);
		/* With its directory known, a rate that could not be applied can be now. */
		if (moved)
			apply_policy(s, c, true);
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
		set_frequency(s, c);
		apply_policy(s, c, false);
	}
	pthread_mutex_unlock(&s->lock);
}

void pod_store_each(struct pod_store *s, void (*fn)(void *ctx, const struct target *t, unsigned frequency),
		    void *ctx)
{
	pthread_mutex_lock(&s->lock);
	for (struct container *c = s->containers; c; c = c->next)
		fn(ctx, c->target, c->applied_frequency ? c->applied_frequency : s->opts.base_frequency);
	pthread_mutex_unlock(&s->lock);
}

void pod_store_stats(struct pod_store *s, struct pod_store_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = (struct pod_store_stats){ .containers = s->ncontainers, .invalid_frequencies = s->invalid_frequencies };
	for (struct container *c = s->containers; c; c = c->next)
		st->high_frequency += c->applied_frequency != 0;
	pthread_mutex_unlock(&s->lock);
}
