#include "exporter/pod_scan.h"

#include <string.h>

#include "common/log.h"
#include "labels/cgroup.h"

#define CGROUP_SCAN_INTERVAL_NS 1000000000LL
#define CGROUP_SCAN_MAX_DIRS 65536

void pod_scan_init(struct pod_scan *s, struct pod_store *pods, const char *cgroup2_mount)
{
	s->pods = pods;
	s->cgroup2_mount = cgroup2_mount;
}

void pod_scan_want(struct pod_scan *s)
{
	atomic_store(&s->wanted, true);
}

static void on_container_cgroup(void *ctx, const char *path, uint64_t cgroup_id, const struct cgroup_identity *id)
{
	struct pod_scan *s = ctx;

	pod_store_link_cgroup(s->pods, cgroup_id, path, id);
}

void pod_scan_run(struct pod_scan *s, int64_t now_ns)
{
	/* Both, always: each takes its request. */
	bool unlinked = pod_store_take_unlinked(s->pods);
	bool asked = atomic_exchange(&s->wanted, false);

	if (!(unlinked || asked) || !s->cgroup2_mount[0])
		return;
	if (now_ns - s->last_ns < CGROUP_SCAN_INTERVAL_NS) {
		atomic_store(&s->wanted, true);
		return;
	}
	s->last_ns = now_ns;
	atomic_fetch_add(&s->scans, 1);
	int n = cgroup_scan_containers(s->cgroup2_mount, CGROUP_SCAN_MAX_DIRS, on_container_cgroup, s);
	if (n < 0) {
		atomic_fetch_add(&s->errors, 1);
		log_warn("cannot scan the cgroup tree for containers", "mount=\"%s\" err=\"%s\"", s->cgroup2_mount,
			 strerror(-n));
	}
}

void pod_scan_write_metrics(struct metrics_buf *b, struct pod_scan *s)
{
	metrics_counter(b, "anorak_cgroup_scans_total", "Scans of the cgroup tree for the cgroups of new containers.",
			atomic_load(&s->scans));
	metrics_counter(b, "anorak_cgroup_scan_errors_total",
			"Scans of the cgroup tree that failed or stopped at their bound.", atomic_load(&s->errors));
}
