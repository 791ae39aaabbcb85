#include "exporter/target_listing.h"

struct listing {
	const struct target_sources *src;
	struct target_list *list;
	int err;
};

/* Table lock held. */
static void add_host_target(void *ctx, const struct process *p, const struct target *t)
{
	struct listing *l = ctx;
	const struct target_sources *src = l->src;

	/* A process in a pod is listed as its container's target. */
	if (l->err || (src->pods && p->cgroup.pod_uid[0]))
		return;
	unsigned hz = src->rates && p->cgroup2_id ? cgroup_rates_of(src->rates, p->cgroup2_id) : 0;
	l->err = target_list_add(l->list, t, hz ? hz : src->base_frequency);
}

static void add_pod_target(void *ctx, const struct target *t, unsigned frequency)
{
	struct listing *l = ctx;

	if (!l->err)
		l->err = target_list_add(l->list, t, frequency);
}

int target_listing_collect(const struct target_sources *src, struct target_list *list)
{
	struct listing l = { .src = src, .list = list };

	process_table_each_target(src->processes, add_host_target, &l);
	if (src->pods && !l.err)
		pod_store_each(src->pods, add_pod_target, &l);
	return l.err;
}
