#include "exporter/sampling/cpu_events.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "common/log.h"
#include "exporter/sampling/sampler.h"

#define MAX_CPUS 4096

int cpu_online_list(int *cpus, int max)
{
	char buf[4096];
	FILE *f = fopen("/sys/devices/system/cpu/online", "re");
	int n;

	if (!f)
		return -errno;
	n = fgets(buf, sizeof(buf), f) ? sampler_parse_cpu_list(buf, cpus, max) : -EIO;
	fclose(f);
	return n;
}

int cpu_event_open(unsigned frequency, int cpu, int cgroup_fd)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		/* A container's own events use task-clock: a PMU of their own, so the kernel's cgroup switches
		 * (which re-schedule every event of a PMU that has cgroup events) leave the base cpu-clock
		 * events alone. */
		.config = cgroup_fd >= 0 ? PERF_COUNT_SW_TASK_CLOCK : PERF_COUNT_SW_CPU_CLOCK,
		.freq = 1,
		.sample_freq = frequency,
	};
	unsigned long flags = PERF_FLAG_FD_CLOEXEC | (cgroup_fd >= 0 ? PERF_FLAG_PID_CGROUP : 0);
	int fd = syscall(__NR_perf_event_open, &attr, cgroup_fd >= 0 ? cgroup_fd : -1, cpu, -1, flags);

	return fd < 0 ? -errno : fd;
}

bool *cpu_online_mask(int ncpus)
{
	int cpus[MAX_CPUS], n = cpu_online_list(cpus, MAX_CPUS);
	bool *online = n < 0 ? NULL : calloc(ncpus, sizeof(*online));

	for (int i = 0; online && i < n; i++)
		if (cpus[i] < ncpus)
			online[cpus[i]] = true;
	return online;
}

/* Opens cpu's event and attaches the program; negative errno. */
static int attach_cpu(struct cpu_events *ce, int cpu)
{
	LIBBPF_OPTS(bpf_perf_event_opts, attach, .bpf_cookie = ce->cookie);
	int fd = cpu_event_open(ce->frequency, cpu, ce->cgroup_fd), err;

	if (fd < 0)
		return fd;
	ce->links[cpu] = bpf_program__attach_perf_event_opts(ce->prog, fd, &attach);
	if (!ce->links[cpu]) {
		err = -errno;
		close(fd);
		return err;
	}
	atomic_fetch_add(&ce->nlinks, 1);
	return 0;
}

static void detach_cpu(struct cpu_events *ce, int cpu)
{
	bpf_link__destroy(ce->links[cpu]);
	ce->links[cpu] = NULL;
	atomic_fetch_sub(&ce->nlinks, 1);
}

int cpu_events_open(struct cpu_events *ce, struct bpf_program *prog, unsigned frequency, int ncpus,
		    int cgroup_fd, uint64_t cookie, struct cpu_hotplug_stats *stats)
{
	int cpus[MAX_CPUS];
	int n = cpu_online_list(cpus, MAX_CPUS);

	*ce = (struct cpu_events){ .prog = prog, .frequency = frequency, .ncpus = ncpus, .cookie = cookie,
				   .stats = stats, .cgroup_fd = -1 };
	if (n < 0)
		return n;
	if (cgroup_fd >= 0 && (ce->cgroup_fd = fcntl(cgroup_fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	ce->links = calloc(ncpus, sizeof(*ce->links));
	if (!ce->links)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		int err = cpus[i] < ncpus ? attach_cpu(ce, cpus[i]) : -ERANGE;

		if (err)
			return err;
	}
	return 0;
}

/* Opens the event of a CPU that came online; a failure is retried on the next sync. */
static void came_online(struct cpu_events *ce, int cpu)
{
	int err = attach_cpu(ce, cpu);

	if (err) {
		if (atomic_fetch_add(&ce->stats->open_errors, 1) == 0)
			log_warn("cannot sample a CPU that came online (retried every second; later failures are "
				 "counted in anorak_cpu_hotplug_errors_total)", "cpu=%d err=\"%s\"", cpu, strerror(-err));
		return;
	}
	atomic_fetch_add(&ce->stats->onlined, 1);
	log_info("sampling a CPU that came online", "cpu=%d cgroup_events=%s", cpu,
		 ce->cgroup_fd >= 0 ? "true" : "false");
}

int cpu_events_sync(struct cpu_events *ce, const bool *online)
{
	int before = atomic_load(&ce->nlinks);

	for (int cpu = 0; ce->links && cpu < ce->ncpus; cpu++) {
		if (online[cpu] && !ce->links[cpu]) {
			came_online(ce, cpu);
		} else if (!online[cpu] && ce->links[cpu]) {
			detach_cpu(ce, cpu);
			atomic_fetch_add(&ce->stats->offlined, 1);
			log_info("released the sampling event of a CPU gone offline", "cpu=%d cgroup_events=%s", cpu,
				 ce->cgroup_fd >= 0 ? "true" : "false");
		}
	}
	return atomic_load(&ce->nlinks) - before;
}

void cpu_events_close(struct cpu_events *ce)
{
	if (!ce->prog)
		return; /* never opened */
	for (int cpu = 0; ce->links && cpu < ce->ncpus; cpu++)
		if (ce->links[cpu])
			detach_cpu(ce, cpu);
	free(ce->links);
	ce->links = NULL;
	if (ce->cgroup_fd >= 0)
		close(ce->cgroup_fd);
	ce->cgroup_fd = -1;
}

void cpu_events_write_metrics(struct metrics_buf *b, struct cpu_events *base)
{
	struct cpu_hotplug_stats *st = base->stats;
	struct metrics_series hotplug;

	metrics_gauge(b, "anorak_perf_events", "Open per-CPU sampling perf events.", atomic_load(&base->nlinks));
	hotplug = metrics_series_begin(b, "anorak_cpu_hotplug_total", "counter",
				       "Per-CPU sampling events (base and containers' own) opened after start for a CPU that came "
				       "online, or released for one gone offline.");
	metrics_series_value(hotplug, "change=\"online\"", atomic_load(&st->onlined));
	metrics_series_value(hotplug, "change=\"offline\"", atomic_load(&st->offlined));
	metrics_counter(b, "anorak_cpu_hotplug_errors_total",
			"Sampling events that could not be opened for a CPU that came online (retried).",
			atomic_load(&st->open_errors));
}
