#include "exporter/sampling/cpu_events.h"

#include <errno.h>
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
#define SYNC_INTERVAL_NS 1000000000LL

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

/* Opens cpu's event and attaches the program; negative errno. */
static int attach_cpu(struct cpu_events *ce, int cpu)
{
	int fd = cpu_event_open(ce->frequency, cpu, -1), err;

	if (fd < 0)
		return fd;
	ce->links[cpu] = bpf_program__attach_perf_event(ce->prog, fd);
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

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int cpu_events_open(struct cpu_events *ce, struct bpf_program *prog, unsigned frequency, int ncpus_possible)
{
	int cpus[MAX_CPUS];
	int n = cpu_online_list(cpus, MAX_CPUS);

	ce->prog = prog;
	ce->frequency = frequency;
	ce->ncpus = ncpus_possible;
	ce->synced_ns = now_ns();
	if (n < 0) {
		log_error("cannot read the online CPUs", "file=/sys/devices/system/cpu/online err=%d", n);
		return n;
	}
	ce->links = calloc(ncpus_possible, sizeof(*ce->links));
	if (!ce->links)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		int err = cpus[i] < ncpus_possible ? attach_cpu(ce, cpus[i]) : -ERANGE;

		if (err) {
			log_error("cannot sample a CPU: run as root (or with CAP_PERFMON) and check "
				  "kernel.perf_event_paranoid", "cpu=%d err=\"%s\"", cpus[i], strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Opens the event of a CPU that came online; a failure is retried on the next sync. */
static int online(struct cpu_events *ce, int cpu)
{
	int err = attach_cpu(ce, cpu);

	if (err) {
		if (atomic_fetch_add(&ce->open_errors, 1) == 0)
			log_warn("cannot sample a CPU that came online (retried every second; later failures are "
				 "counted in anorak_cpu_hotplug_errors_total)", "cpu=%d err=\"%s\"", cpu, strerror(-err));
		return 0;
	}
	atomic_fetch_add(&ce->onlined, 1);
	log_info("sampling a CPU that came online", "cpu=%d", cpu);
	return 1;
}

int cpu_events_sync(struct cpu_events *ce)
{
	int cpus[MAX_CPUS], n, changed = 0;
	int64_t now = now_ns();
	bool *is_online;

	if (!ce->links || now - ce->synced_ns < SYNC_INTERVAL_NS)
		return 0;
	ce->synced_ns = now;
	n = cpu_online_list(cpus, MAX_CPUS);
	is_online = calloc(ce->ncpus, sizeof(*is_online));
	if (n < 0 || !is_online) {
		free(is_online);
		return 0; /* read again on the next sync */
	}
	for (int i = 0; i < n; i++)
		if (cpus[i] < ce->ncpus)
			is_online[cpus[i]] = true;
	for (int cpu = 0; cpu < ce->ncpus; cpu++) {
		if (is_online[cpu] && !ce->links[cpu]) {
			changed += online(ce, cpu);
		} else if (!is_online[cpu] && ce->links[cpu]) {
			detach_cpu(ce, cpu);
			atomic_fetch_add(&ce->offlined, 1);
			log_info("released the sampling event of a CPU gone offline", "cpu=%d", cpu);
			changed++;
		}
	}
	free(is_online);
	return changed;
}

void cpu_events_close(struct cpu_events *ce)
{
	for (int cpu = 0; ce->links && cpu < ce->ncpus; cpu++)
		if (ce->links[cpu])
			detach_cpu(ce, cpu);
	free(ce->links);
	ce->links = NULL;
}

void cpu_events_write_metrics(struct metrics_buf *b, struct cpu_events *ce)
{
	struct metrics_series hotplug;

	metrics_gauge(b, "anorak_perf_events", "Open per-CPU sampling perf events.", atomic_load(&ce->nlinks));
	hotplug = metrics_series_begin(b, "anorak_cpu_hotplug_total", "counter",
				       "CPUs whose sampling event was opened after start (came online) or released (went offline).");
	metrics_series_value(hotplug, "change=\"online\"", atomic_load(&ce->onlined));
	metrics_series_value(hotplug, "change=\"offline\"", atomic_load(&ce->offlined));
	metrics_counter(b, "anorak_cpu_hotplug_errors_total",
			"Sampling events that could not be opened for a CPU that came online (retried).",
			atomic_load(&ce->open_errors));
}
