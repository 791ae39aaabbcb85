#include "exporter/host_rates.h"

#include <limits.h>
#include <stdlib.h>

#include "common/log.h"
#include "labels/cgroup.h"

/* Host targets' own rates are brought up to date at most this often (exits, moves, relabeling). */
#define HOST_RATES_INTERVAL_NS 1000000000LL

/* A host cgroup some host target asks a rate for: the highest any of its processes asks. */
struct host_rate {
	uint64_t cgroup_id;
	uint32_t pid;     /* one of the processes asking, to find its directory */
	unsigned wanted;  /* Hz */
	unsigned applied; /* Hz; 0 while refused (limit, perf events) */
	uint64_t raised_when_refused; /* cgroups raised then: tried again once fewer are */
};

struct host_rates_scan {
	struct host_rates *h;
	struct host_rate *wanted;
	size_t n, cap;
};

void host_rates_init(struct host_rates *h, const struct anorak_config *cfg, const char *cgroup2_mount)
{
	h->cfg = cfg;
	h->cgroup2_mount = cgroup2_mount;
	/* Room to see a few cgroups past the limit, so that refusals are counted. */
	h->cap = (size_t)cfg->sampling_max_hf_cgroups + 16;
}

void host_rates_attach(struct host_rates *h, struct cgroup_rates *rates, struct process_table *processes,
		       bool pods)
{
	h->rates = rates;
	h->processes = processes;
	h->pods = pods;
}

static bool in_pod(const struct host_rates *h, const struct process *p)
{
	return h->pods && p->cgroup.pod_uid[0];
}

void host_rates_target_changed(struct host_rates *h, const struct process *p, const struct target *t,
			       bool relabeled)
{
	const struct anorak_config *cfg = h->cfg;

	if (!t->sampling_frequency[0] && !relabeled)
		return;
	if (target_sampling_frequency(t, cfg->sampling_frequency, cfg->sampling_max_frequency) < 0) {
		atomic_fetch_add(&h->invalid_frequencies, 1);
		log_warn("invalid sampling frequency for a host target: keeping the base rate",
			 "pid=%u comm=\"%s\" unit=\"%s\" value=\"%s\" max=%u", p->tgid, p->comm, p->cgroup.systemd_unit,
			 t->sampling_frequency, cfg->sampling_max_frequency);
	}
	atomic_store(&h->stale, true);
}

uint64_t host_rates_invalid(struct host_rates *h)
{
	return atomic_load(&h->invalid_frequencies);
}

static const struct host_rate *find_host_rate(const struct host_rate *rates, size_t n, uint64_t cgroup_id)
{
	for (size_t i = 0; i < n; i++)
		if (rates[i].cgroup_id == cgroup_id)
			return &rates[i];
	return NULL;
}

/* process_table_each_target callback (table lock held: no I/O): the highest rate asked per cgroup. */
static void want_host_rate(void *ctx, const struct process *p, const struct target *t)
{
	struct host_rates_scan *scan = ctx;
	struct host_rates *h = scan->h;

	if (!t->sampling_frequency[0] || !p->cgroup2_id || in_pod(h, p))
		return;
	int hz = target_sampling_frequency(t, h->cfg->sampling_frequency, h->cfg->sampling_max_frequency);
	if (hz < 0) { /* invalid: the rate it had stands */
		const struct host_rate *before = find_host_rate(h->asked, h->nasked, p->cgroup2_id);

		hz = before ? (int)before->wanted : 0;
	}
	if (hz <= 0)
		return;
	for (size_t i = 0; i < scan->n; i++) {
		if (scan->wanted[i].cgroup_id == p->cgroup2_id) {
			if ((unsigned)hz > scan->wanted[i].wanted)
				scan->wanted[i] = (struct host_rate){ .cgroup_id = p->cgroup2_id, .pid = p->tgid,
								      .wanted = (unsigned)hz };
			return;
		}
	}
	/* Beyond the limit of raised cgroups they would be refused anyway. */
	if (scan->n < scan->cap)
		scan->wanted[scan->n++] = (struct host_rate){ .cgroup_id = p->cgroup2_id, .pid = p->tgid,
							      .wanted = (unsigned)hz };
}

/* Raises a host cgroup to what its processes ask, or lowers it back. Only a change (or a raise refused
 * earlier, once a place is free) touches the events, so a refusal is logged and counted once. */
static unsigned apply_host_rate(struct host_rates *h, struct host_rate *want, const struct host_rate *before)
{
	char path[PATH_MAX];
	uint64_t id;
	struct cgroup_rates_stats st;

	cgroup_rates_stats(h->rates, &st);
	if (before && before->wanted == want->wanted &&
	    (before->applied == want->wanted || st.cgroups >= before->raised_when_refused)) {
		want->raised_when_refused = before->raised_when_refused;
		return before->applied;
	}
	/* Its directory, as long as the process is still in it. */
	if (cgroup2_of_pid("/proc", h->cgroup2_mount, (int)want->pid, &id, path, sizeof(path)) ||
	    id != want->cgroup_id) {
		want->raised_when_refused = UINT64_MAX; /* try again next time */
		return before ? before->applied : 0;
	}
	unsigned hz = cgroup_rates_set(h->rates, want->cgroup_id, path, false, want->wanted, false);
	if (hz != want->wanted)
		want->raised_when_refused = st.cgroups;
	return hz;
}

/* Gives host cgroups the rates their targets ask for (__sampling_frequency__), and takes them back
 * from cgroups no live target asks any more. */
void host_rates_update(struct host_rates *h, int64_t now_ns)
{
	if (!h->rates || (!atomic_load(&h->stale) && !h->nasked) || now_ns - h->checked_ns < HOST_RATES_INTERVAL_NS)
		return;
	h->checked_ns = now_ns;
	atomic_store(&h->stale, false);
	struct host_rates_scan scan = { .h = h, .cap = h->cap };
	scan.wanted = calloc(scan.cap, sizeof(*scan.wanted));
	if (!scan.wanted)
		return;
	process_table_each_target(h->processes, want_host_rate, &scan);
	for (size_t i = 0; i < scan.n; i++)
		scan.wanted[i].applied = apply_host_rate(h, &scan.wanted[i],
							 find_host_rate(h->asked, h->nasked, scan.wanted[i].cgroup_id));
	for (size_t i = 0; i < h->nasked; i++)
		if (!find_host_rate(scan.wanted, scan.n, h->asked[i].cgroup_id) && h->asked[i].applied)
			cgroup_rates_set(h->rates, h->asked[i].cgroup_id, NULL, false, 0, true);
	free(h->asked);
	h->asked = scan.wanted;
	h->nasked = scan.n;
}

void host_rates_destroy(struct host_rates *h)
{
	free(h->asked);
	h->asked = NULL;
	h->nasked = 0;
}
