#include "exporter/sampling/cgroup_rates.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "exporter/sampling/sampler.h"

struct raised {
	uint64_t cgroup_id;
	unsigned frequency;
	struct cgroup_events *events;
};

struct cgroup_rates {
	struct cgroup_rates_opts opts;
	char mount[PATH_MAX];
	pthread_mutex_t lock;
	struct raised *raised; /* opts.max_cgroups entries */
	size_t nraised;
	uint64_t refused_limit, open_errors;
};

int cgroup_rates_new(const struct cgroup_rates_opts *opts, struct cgroup_rates **out)
{
	struct cgroup_rates *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->opts = *opts;
	snprintf(r->mount, sizeof(r->mount), "%s", opts->cgroup2_mount ? opts->cgroup2_mount : "");
	r->opts.cgroup2_mount = r->mount;
	r->raised = calloc(opts->max_cgroups ? opts->max_cgroups : 1, sizeof(*r->raised));
	if (!r->raised) {
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void cgroup_rates_free(struct cgroup_rates *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nraised; i++)
		sampler_close_cgroup_events(r->opts.sampler, r->raised[i].events);
	free(r->raised);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct raised *find(struct cgroup_rates *r, uint64_t cgroup_id)
{
	for (size_t i = 0; i < r->nraised; i++)
		if (r->raised[i].cgroup_id == cgroup_id)
			return &r->raised[i];
	return NULL;
}

/* The cgroup's own events at hz; NULL when they cannot be opened (logged, counted). Lock held. */
static struct cgroup_events *open_events(struct cgroup_rates *r, uint64_t cgroup_id, const char *path, unsigned hz)
{
	char dir[PATH_MAX * 2];
	struct cgroup_events *events = NULL;

	snprintf(dir, sizeof(dir), "%s%s", r->mount, path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = fd < 0 ? -errno : sampler_open_cgroup_events(r->opts.sampler, fd, cgroup_id, hz, &events);
	if (fd >= 0)
		close(fd);
	if (err) {
		r->open_errors++;
		log_warn("cannot sample a cgroup at its own rate: keeping the base rate", "cgroup=\"%s\" hz=%u err=\"%s\"",
			 dir, hz, strerror(-err));
	}
	return events;
}

/* Events at hz for the cgroup: the current ones when they run at hz already (*fresh stays NULL), new ones
 * in *fresh, or none (0: the base rate) when the directory is unknown, the limit is reached or the events
 * cannot be opened. Lock held. */
static unsigned raise_or_keep(struct cgroup_rates *r, uint64_t cgroup_id, const char *path, unsigned hz,
			      struct cgroup_events **fresh)
{
	struct raised *cur = find(r, cgroup_id);

	if (cur && cur->frequency == hz)
		return hz;
	if (!path || !r->mount[0])
		return 0;
	if (!cur && r->nraised >= r->opts.max_cgroups) {
		r->refused_limit++;
		log_warn("too many cgroups at a raised sampling frequency: keeping the base rate", "cgroup=\"%s\" max=%u",
			 path, r->opts.max_cgroups);
		return 0;
	}
	*fresh = open_events(r, cgroup_id, path, hz);
	return *fresh ? hz : 0;
}

unsigned cgroup_rates_set(struct cgroup_rates *r, uint64_t cgroup_id, const char *path, bool dropped, unsigned hz,
			  bool forget)
{
	struct cgroup_events *fresh = NULL, *stale = NULL;
	struct cgroup_policy bpf = { 0 };

	pthread_mutex_lock(&r->lock);
	if (!forget && hz && !dropped)
		hz = raise_or_keep(r, cgroup_id, path, hz, &fresh);
	else
		hz = 0;
	bpf.dropped = !forget && dropped;
	bpf.frequency = hz;
	int err = sampler_set_cgroup_policy(r->opts.sampler, cgroup_id, bpf.dropped || hz ? &bpf : NULL);
	if (err) {
		log_warn("cannot update the BPF cgroup policy", "cgroup_id=%llu err=\"%s\"", (unsigned long long)cgroup_id,
			 strerror(-err));
		stale = fresh; /* the base events still sample it */
		fresh = NULL;
		hz = 0;
	}
	struct raised *cur = find(r, cgroup_id);
	if (fresh && cur) {
		stale = cur->events;
		*cur = (struct raised){ cgroup_id, hz, fresh };
	} else if (fresh) {
		r->raised[r->nraised++] = (struct raised){ cgroup_id, hz, fresh };
	} else if (!hz && cur) {
		stale = cur->events;
		*cur = r->raised[--r->nraised];
	}
	pthread_mutex_unlock(&r->lock);
	sampler_close_cgroup_events(r->opts.sampler, stale);
	return hz;
}

unsigned cgroup_rates_of(struct cgroup_rates *r, uint64_t cgroup_id)
{
	pthread_mutex_lock(&r->lock);
	struct raised *cur = find(r, cgroup_id);
	unsigned hz = cur ? cur->frequency : 0;
	pthread_mutex_unlock(&r->lock);
	return hz;
}

void cgroup_rates_stats(struct cgroup_rates *r, struct cgroup_rates_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = (struct cgroup_rates_stats){ .cgroups = r->nraised,
					    .refused_limit = r->refused_limit,
					    .open_errors = r->open_errors };
	pthread_mutex_unlock(&r->lock);
}
