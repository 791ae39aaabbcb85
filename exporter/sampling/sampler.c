#include "exporter/sampling/sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/log.h"
#include "common/htab.h"
#include "common/metrics.h"
#include "profiler.skel.h"
#include "bpf/unwind.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/sampling/cpu_events.h"
#include "exporter/sampling/stack_table.h"
#include "exporter/sampling/unwind_table.h"

#define DRAIN_BATCH 512
#define STACK_BATCH 64
#define CPU_SYNC_INTERVAL_NS 1000000000LL /* how often CPU hotplug is looked for */
#define MAX_CPUS 4096

struct sampler {
	struct profiler_bpf *skel;
	struct cpu_events cpus;
	struct cpu_hotplug_stats hotplug;
	int64_t cpus_synced_ns;
	int ncpus_possible;
	struct ring_buffer *events;
	struct unwinder *unwinder;
	sampler_event_fn on_event;
	void *event_ctx;
	atomic_bool events_stopped;
	unsigned frequency;
	uint32_t generation;
	double offcpu_scale; /* 1/probability: what one followed wait stands for */

	struct bpf_map *count_maps[2];
	struct bpf_map *stack_maps[2];
	struct sample_key *batch_keys;
	__u64 *batch_values;
	__u64 *stack_keys;
	struct stack_trace *stack_values;
	struct stack_table stacks; /* the drained generation's stacks, reused across drains */

	atomic_uint_fast64_t drains;
	atomic_uint_fast64_t drained_samples;
	atomic_uint_fast64_t drained_offcpu_waits;
	uint64_t generation_counted[2]; /* drain thread: BPF's count of each generation at its last drain */
	atomic_uint_fast64_t counted_drained;
	atomic_uint_fast64_t drain_errors;
	atomic_uint_fast64_t last_distinct_stacks;
	atomic_uint_fast64_t last_count_entries;
	struct metrics_histogram drain_seconds;

	pthread_mutex_t policies_lock; /* cgroup_policies and cgroup_policies_used change together */
	pthread_mutex_t cgroup_sets_lock;
	struct cgroup_events *cgroup_sets; /* open containers' own events, for CPU hotplug */
	uint32_t max_cgroup_policies;
	atomic_uint_fast64_t cgroup_policies_full;
	atomic_uint_fast64_t processes_dropped;
	atomic_int cgroup_event_count;
};

static const double drain_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25 };

int sampler_parse_cpu_list(const char *list, int *cpus, int max)
{
	int n = 0;
	const char *p = list;

	while (*p && *p != '\n') {
		char *end;
		long lo = strtol(p, &end, 10), hi;

		if (end == p || lo < 0 || lo >= MAX_CPUS)
			return -EINVAL;
		hi = lo;
		p = end;
		if (*p == '-') {
			hi = strtol(p + 1, &end, 10);
			if (end == p + 1 || hi < lo || hi >= MAX_CPUS)
				return -EINVAL;
			p = end;
		}
		for (long c = lo; c <= hi; c++) {
			if (n == max)
				return -E2BIG;
			cpus[n++] = (int)c;
		}
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return n > 0 ? n : -EINVAL;
}

static int handle_event(void *ctx, void *data, size_t size)
{
	struct sampler *s = ctx;
	const struct process_event *e = data;

	if (size < sizeof(*e))
		return 0;
	/* Ends the poll early: a backlog of events, each of which may read ELF files, must not hold up
	 * shutdown. */
	if (atomic_load(&s->events_stopped))
		return -ECANCELED;
	/* A sampled process is read first (its maps must be read while it lives), then queued for unwind
	 * tables, which are built on the unwinder's thread. An exec only ends the old program: the new
	 * one is read at its first sample (BPF forgot the process at exec, so that sample announces it),
	 * and one that exits unsampled, as most of a busy node's short processes do at 19 Hz, is never
	 * read. */
	struct maps_snapshot *maps = NULL;

	s->on_event(e, s->event_ctx, &maps);
	if (s->unwinder && e->type == PROCESS_EVENT_SAMPLED)
		unwinder_request(s->unwinder, e->tgid, maps);
	maps_snapshot_put(maps);
	return 0;
}

/* A table miss: as with process events, a backlog (each may parse .eh_frame) must not hold up shutdown. */
static int handle_unwind_event(void *ctx, void *data, size_t size)
{
	struct sampler *s = ctx;

	if (atomic_load(&s->events_stopped))
		return -ECANCELED;
	return unwinder_handle_event(s->unwinder, data, size);
}

static int size_maps(struct sampler *s, const struct sampler_opts *opts)
{
	struct profiler_bpf *skel = s->skel;
	int err = 0;

	err = err ?: bpf_map__set_max_entries(skel->maps.counts_gen0, opts->count_map_entries);
	err = err ?: bpf_map__set_max_entries(skel->maps.counts_gen1, opts->count_map_entries);
	err = err ?: bpf_map__set_max_entries(skel->maps.stacks_gen0, opts->stack_map_entries);
	err = err ?: bpf_map__set_max_entries(skel->maps.stacks_gen1, opts->stack_map_entries);
	err = err ?: bpf_map__set_max_entries(skel->maps.known_processes, opts->max_processes);
	err = err ?: bpf_map__set_max_entries(skel->maps.trace_slots, opts->max_processes);
	err = err ?: bpf_map__set_max_entries(skel->maps.python_procs, opts->max_processes);
	err = err ?: bpf_map__set_max_entries(skel->maps.cgroup_policies, s->max_cgroup_policies);
	err = err ?: bpf_map__set_max_entries(skel->maps.offcpu_waits,
					      opts->offcpu_waits_entries ? opts->offcpu_waits_entries : 4096);
	if (opts->unwind_table_bytes) {
		uint32_t rows, procs;

		unwinder_plan(opts->unwind_table_bytes, opts->max_processes, &rows, &procs);
		err = err ?: bpf_map__set_max_entries(skel->maps.unwind_rows, rows);
		err = err ?: bpf_map__set_max_entries(skel->maps.unwind_index, rows / UNWIND_BLOCK_ROWS);
		err = err ?: bpf_map__set_max_entries(skel->maps.unwind_procs, procs);
	}
	return err;
}

/* Unwind tables: loaded per process from the event thread; BPF asks for refreshes on unwind_events. */
static int open_unwinder(struct sampler *s, const struct sampler_opts *opts)
{
	struct profiler_bpf *skel = s->skel;
	struct unwinder_maps maps = {
		.rows_fd = bpf_map__fd(skel->maps.unwind_rows),
		.index_fd = bpf_map__fd(skel->maps.unwind_index),
		.tables_fd = bpf_map__fd(skel->maps.unwind_tables),
		.procs_fd = bpf_map__fd(skel->maps.unwind_procs),
		.counters_fd = bpf_map__fd(skel->maps.unwind_counters),
		.sync_fd = bpf_map__fd(skel->maps.unwind_sync),
		.sync_inner_fd = bpf_map__fd(skel->maps.unwind_sync_dummy),
		.epoch = &skel->bss->unwind_epoch,
		.announce_epoch = &skel->bss->announce_epoch,
		.nrows = bpf_map__max_entries(skel->maps.unwind_rows),
		.nprocs = bpf_map__max_entries(skel->maps.unwind_procs),
		.ncpus = s->ncpus_possible,
	};
	struct unwinder_opts uopts = { .proc_root = "/proc", .elf_max_bytes = opts->elf_max_bytes };
	int err;

	if (!opts->unwind_table_bytes)
		return 0;
	err = unwinder_new(&uopts, &maps, &s->unwinder);
	if (!err && ring_buffer__add(s->events, bpf_map__fd(skel->maps.unwind_events), handle_unwind_event, s))
		err = -errno;
	if (err)
		log_error("cannot set up unwind tables", "err=\"%s\"", strerror(-err));
	return err;
}

/* Off-CPU waits (offcpu.bpf.c): its program is not even loaded unless asked for. */
static void configure_offcpu(struct sampler *s, const struct sampler_opts *opts)
{
	double p = opts->offcpu_probability;

	if (p <= 0) {
		bpf_program__set_autoload(s->skel->progs.offcpu_switch, false);
		return;
	}
	if (p > 1)
		p = 1;
	s->offcpu_scale = 1 / p;
	s->skel->rodata->offcpu_threshold = (__u64)(p * 4294967296.0);
	s->skel->rodata->offcpu_min_ns = opts->offcpu_min_ns;
	s->skel->rodata->offcpu_self_tgid = opts->offcpu_include_self ? 0 : (__u32)getpid();
}

static int load_bpf(struct sampler *s, const struct sampler_opts *opts)
{
	int err;

	s->skel = profiler_bpf__open();
	if (!s->skel) {
		err = -errno;
		log_error("cannot open the BPF object", "err=\"%s\"", strerror(-err));
		return err;
	}
	s->skel->rodata->include_idle = opts->include_idle;
	configure_offcpu(s, opts);
	err = size_maps(s, opts);
	if (!err)
		err = profiler_bpf__load(s->skel);
	if (err) {
		log_error("the kernel refused the BPF program (libbpf said why above): run as root (or with "
			  "CAP_BPF and CAP_PERFMON) on a kernel with BTF (/sys/kernel/btf/vmlinux)",
			  "err=\"%s\"", strerror(-err));
		return err;
	}
	err = profiler_bpf__attach(s->skel); /* the process exec/exit tracepoints */
	if (err) {
		log_error("cannot attach the process tracepoints", "err=\"%s\"", strerror(-err));
		return err;
	}
	s->count_maps[0] = s->skel->maps.counts_gen0;
	s->count_maps[1] = s->skel->maps.counts_gen1;
	s->stack_maps[0] = s->skel->maps.stacks_gen0;
	s->stack_maps[1] = s->skel->maps.stacks_gen1;
	return 0;
}

int sampler_open(const struct sampler_opts *opts, sampler_event_fn on_event, void *event_ctx,
		 struct sampler **out)
{
	struct sampler *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->frequency = opts->frequency;
	s->max_cgroup_policies = opts->max_cgroup_policies ? opts->max_cgroup_policies : 4096;
	pthread_mutex_init(&s->policies_lock, NULL);
	pthread_mutex_init(&s->cgroup_sets_lock, NULL);
	s->on_event = on_event;
	s->event_ctx = event_ctx;
	s->ncpus_possible = libbpf_num_possible_cpus();
	s->batch_keys = calloc(DRAIN_BATCH, sizeof(*s->batch_keys));
	s->batch_values = calloc(DRAIN_BATCH, sizeof(*s->batch_values));
	s->stack_keys = calloc(STACK_BATCH, sizeof(*s->stack_keys));
	s->stack_values = calloc(STACK_BATCH, sizeof(*s->stack_values));
	if (s->ncpus_possible <= 0 || !s->batch_keys || !s->batch_values || !s->stack_keys ||
	    !s->stack_values) {
		err = s->ncpus_possible < 0 ? s->ncpus_possible : -ENOMEM;
		goto fail;
	}
	err = metrics_histogram_init(&s->drain_seconds, drain_buckets,
				     sizeof(drain_buckets) / sizeof(drain_buckets[0]));
	if (err)
		goto fail;

	err = load_bpf(s, opts);
	if (err)
		goto fail;
	s->events = ring_buffer__new(bpf_map__fd(s->skel->maps.process_events), handle_event, s, NULL);
	if (!s->events) {
		err = -errno;
		log_error("cannot open the process event ring buffer", "err=\"%s\"", strerror(-err));
		goto fail;
	}
	err = open_unwinder(s, opts);
	if (err)
		goto fail;
	err = cpu_events_open(&s->cpus, s->skel->progs.profile_cpu, s->frequency, s->ncpus_possible, -1, 0,
			      &s->hotplug);
	if (err) {
		log_error("cannot sample every CPU: run as root (or with CAP_PERFMON) and check "
			  "kernel.perf_event_paranoid", "err=\"%s\"", strerror(-err));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sampler_close(s);
	return err;
}

void sampler_close(struct sampler *s)
{
	if (!s)
		return;
	cpu_events_close(&s->cpus);
	ring_buffer__free(s->events);
	unwinder_free(s->unwinder);
	profiler_bpf__destroy(s->skel);
	if (s->drain_seconds.buckets)
		metrics_histogram_destroy(&s->drain_seconds);
	free(s->batch_keys);
	free(s->batch_values);
	free(s->stack_keys);
	free(s->stack_values);
	stack_table_free(&s->stacks);
	pthread_mutex_destroy(&s->policies_lock);
	pthread_mutex_destroy(&s->cgroup_sets_lock);
	free(s);
}

/* Re-setting an entry of an array of maps returns only after synchronize_rcu(): every program that
 * could still have been writing the old generation has finished. */
static int wait_for_writers(struct sampler *s, uint32_t gen)
{
	int inner = bpf_map__fd(s->count_maps[gen]);

	if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.counts), &gen, &inner, BPF_ANY))
		return -errno;
	return 0;
}

/* BPF's own count of the samples put in generation gen so far: exact once no program writes it. */
static int read_generation_counted(struct sampler *s, uint32_t gen)
{
	__u64 *percpu = calloc(s->ncpus_possible, sizeof(*percpu));
	uint64_t total = 0;
	int err = 0;

	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.generation_counted), &gen, percpu))
		err = -errno;
	for (int c = 0; c < s->ncpus_possible && !err; c++)
		total += percpu[c];
	free(percpu);
	if (!err) {
		s->generation_counted[gen] = total;
		atomic_store(&s->counted_drained, s->generation_counted[0] + s->generation_counted[1]);
	}
	return err;
}

void sampler_drained_totals(struct sampler *s, uint64_t *counted, uint64_t *drained)
{
	*counted = atomic_load(&s->counted_drained);
	*drained = atomic_load(&s->drained_samples);
}

/* Reads and deletes every entry of a map nobody writes any more, n at a time into keys/values, and
 * hands each batch to fn. */
static int drain_map(int fd, void *keys, void *values, __u32 batch_size,
		     int (*fn)(struct sampler *s, __u32 n, void *ctx), struct sampler *s, void *ctx)
{
	__u64 batch = 0;
	bool first = true, done = false;

	while (!done) {
		__u32 n = batch_size;
		int err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &batch, &batch, keys, values, &n,
							  NULL);

		first = false;
		if (err) {
			err = -errno;
			if (err != -ENOENT)
				return err;
			done = true; /* the last batch may still carry entries */
		}
		err = fn(s, n, ctx);
		if (err)
			return err;
	}
	return 0;
}

static int add_stacks(struct sampler *s, __u32 n, void *ctx)
{
	(void)ctx;
	for (__u32 i = 0; i < n; i++)
		if (stack_table_add(&s->stacks, s->stack_keys[i], &s->stack_values[i]))
			return -ENOMEM;
	return 0;
}

struct count_sink {
	sampler_sample_fn on_sample;
	void *ctx;
	uint64_t entries;
};

static int emit_counts(struct sampler *s, __u32 n, void *ctx)
{
	struct count_sink *sink = ctx;

	for (__u32 i = 0; i < n; i++) {
		const struct sample_key *key = &s->batch_keys[i];
		struct drained_sample sample = { .key = key, .count = s->batch_values[i] };

		if (key->kind != SAMPLE_KIND_CPU) {
			if (key->kind == SAMPLE_KIND_OFFCPU_WAITS)
				atomic_fetch_add(&s->drained_offcpu_waits, sample.count);
			sample.count = (uint64_t)(sample.count * s->offcpu_scale + 0.5);
		}
		sample.user = stack_table_frames(&s->stacks, key->user_stack, &sample.nuser);
		sample.kernel = stack_table_frames(&s->stacks, key->kernel_stack, &sample.nkernel);
		if (key->kind == SAMPLE_KIND_CPU)
			atomic_fetch_add(&s->drained_samples, sample.count);
		sink->on_sample(&sample, sink->ctx);
	}
	sink->entries += n;
	return 0;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

int sampler_drain(struct sampler *s, sampler_sample_fn on_sample, void *ctx)
{
	uint32_t old = s->generation;
	struct count_sink sink = { .on_sample = on_sample, .ctx = ctx };
	struct timespec start;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &start);
	s->generation ^= 1;
	__atomic_store_n(&s->skel->bss->generation, s->generation, __ATOMIC_SEQ_CST);
	err = wait_for_writers(s, old);
	if (!err)
		err = read_generation_counted(s, old);
	stack_table_reset(&s->stacks);
	/* Stacks first: the counts name them. */
	if (!err)
		err = drain_map(bpf_map__fd(s->stack_maps[old]), s->stack_keys, s->stack_values, STACK_BATCH,
				add_stacks, s, NULL);
	if (!err)
		err = drain_map(bpf_map__fd(s->count_maps[old]), s->batch_keys, s->batch_values, DRAIN_BATCH,
				emit_counts, s, &sink);

	atomic_fetch_add(&s->drains, 1);
	atomic_store(&s->last_distinct_stacks, s->stacks.n);
	atomic_store(&s->last_count_entries, sink.entries);
	metrics_histogram_observe(&s->drain_seconds, seconds_since(&start));
	if (err) {
		atomic_fetch_add(&s->drain_errors, 1);
		log_warn("draining the sample counts failed", "generation=%u err=\"%s\"", old, strerror(-err));
	}
	return err;
}

int sampler_set_trace_slot(struct sampler *s, uint32_t tgid, const struct trace_slot *slot)
{
	if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.trace_slots), &tgid, slot, BPF_ANY))
		return -errno;
	__atomic_store_n(&s->skel->bss->trace_slots_used, 1, __ATOMIC_RELAXED);
	/* After the write: CPUs that remembered the process had no slot look again. */
	__atomic_fetch_add(&s->skel->bss->announce_epoch, 1, __ATOMIC_SEQ_CST);
	return 0;
}

int sampler_set_python_proc(struct sampler *s, uint32_t tgid, const struct python_proc *proc)
{
	if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.python_procs), &tgid, proc, BPF_ANY))
		return -errno;
	__atomic_store_n(&s->skel->bss->python_procs_used, 1, __ATOMIC_RELAXED);
	/* After the write: CPUs that remembered the process was not a Python one look again. */
	__atomic_fetch_add(&s->skel->bss->announce_epoch, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* Discovery that read a program the process has since left by exec or exit: BPF forgot the process then,
 * so the entry written after would outlive the program. */
void sampler_forget_trace_slot(struct sampler *s, uint32_t tgid)
{
	bpf_map_delete_elem(bpf_map__fd(s->skel->maps.trace_slots), &tgid);
	__atomic_fetch_add(&s->skel->bss->announce_epoch, 1, __ATOMIC_SEQ_CST);
}

void sampler_forget_python_proc(struct sampler *s, uint32_t tgid)
{
	bpf_map_delete_elem(bpf_map__fd(s->skel->maps.python_procs), &tgid);
	__atomic_fetch_add(&s->skel->bss->announce_epoch, 1, __ATOMIC_SEQ_CST);
}

int sampler_python_counters(struct sampler *s, struct python_counter_values *out)
{
	struct python_counter_values *percpu = calloc(s->ncpus_possible, sizeof(*percpu));
	__u32 zero = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!percpu)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.python_counters), &zero, percpu))
		err = -errno;
	for (int c = 0; c < s->ncpus_possible && !err; c++)
		for (int i = 0; i < PYTHON_COUNTERS; i++)
			out->n[i] += percpu[c].n[i];
	free(percpu);
	return err;
}

struct cgroup_events {
	struct cpu_events ce;
	struct cgroup_events *next;
};

void sampler_close_cgroup_events(struct sampler *s, struct cgroup_events *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&s->cgroup_sets_lock);
	for (struct cgroup_events **p = &s->cgroup_sets; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	atomic_fetch_sub(&s->cgroup_event_count, atomic_load(&e->ce.nlinks));
	pthread_mutex_unlock(&s->cgroup_sets_lock);
	cpu_events_close(&e->ce);
	free(e);
}

int sampler_open_cgroup_events(struct sampler *s, int cgroup_fd, uint64_t cgroup_id, unsigned frequency,
			       struct cgroup_events **out)
{
	struct cgroup_events *e = calloc(1, sizeof(*e));
	int err;

	if (!e)
		return -ENOMEM;
	err = cpu_events_open(&e->ce, s->skel->progs.profile_cpu, frequency, s->ncpus_possible, cgroup_fd,
			      CGROUP_EVENT_COOKIE(cgroup_id, frequency), &s->hotplug);
	if (err) {
		cpu_events_close(&e->ce);
		free(e);
		return err;
	}
	pthread_mutex_lock(&s->cgroup_sets_lock);
	e->next = s->cgroup_sets;
	s->cgroup_sets = e;
	atomic_fetch_add(&s->cgroup_event_count, atomic_load(&e->ce.nlinks));
	pthread_mutex_unlock(&s->cgroup_sets_lock);
	*out = e;
	return 0;
}

int sampler_set_process_dropped(struct sampler *s, uint32_t tgid, bool dropped)
{
	__u8 state = dropped ? KNOWN_PROCESS_DROPPED : KNOWN_PROCESS_SAMPLED;

	/* BPF_EXIST: an entry BPF deleted at exec or exit must stay deleted, or the next program (or a
	 * process reusing the pid) would never be announced. Its next sample announces it again. */
	if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.known_processes), &tgid, &state, BPF_EXIST))
		return errno == ENOENT ? 0 : -errno;
	/* CPUs that cached this process look it up again. */
	__atomic_fetch_add(&s->skel->bss->announce_epoch, 1, __ATOMIC_SEQ_CST);
	if (dropped)
		atomic_fetch_add(&s->processes_dropped, 1);
	return 0;
}

int sampler_set_cgroup_policy(struct sampler *s, uint64_t cgroup_id, const struct cgroup_policy *policy)
{
	int fd = bpf_map__fd(s->skel->maps.cgroup_policies);
	int err = 0;

	pthread_mutex_lock(&s->policies_lock);
	if (policy) {
		bool fresh = bpf_map_lookup_elem(fd, &cgroup_id, &(struct cgroup_policy){ 0 }) != 0;

		if (bpf_map_update_elem(fd, &cgroup_id, policy, BPF_ANY)) {
			err = -errno;
			if (err == -E2BIG)
				atomic_fetch_add(&s->cgroup_policies_full, 1);
		} else if (fresh) {
			s->skel->bss->cgroup_policies_used++;
		}
	} else if (bpf_map_delete_elem(fd, &cgroup_id) == 0) {
		s->skel->bss->cgroup_policies_used--;
	}
	pthread_mutex_unlock(&s->policies_lock);
	return err;
}

int sampler_poll_events(struct sampler *s, int timeout_ms)
{
	int n = ring_buffer__poll(s->events, timeout_ms);

	/* Execs and exits do not wake the poll (profiler.bpf.c): they are read when it times out. */
	if (n == 0)
		n = ring_buffer__consume(s->events);

	return n == -EINTR || n == -ECANCELED ? 0 : n;
}

int sampler_sync_cpus(struct sampler *s)
{
	struct timespec ts;
	int64_t now;
	bool *online;
	int changed;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (now - s->cpus_synced_ns < CPU_SYNC_INTERVAL_NS || !(online = cpu_online_mask(s->ncpus_possible)))
		return 0;
	s->cpus_synced_ns = now;
	changed = cpu_events_sync(&s->cpus, online);
	pthread_mutex_lock(&s->cgroup_sets_lock);
	for (struct cgroup_events *e = s->cgroup_sets; e; e = e->next) {
		int d = cpu_events_sync(&e->ce, online);

		atomic_fetch_add(&s->cgroup_event_count, d);
		changed += d;
	}
	pthread_mutex_unlock(&s->cgroup_sets_lock);
	free(online);
	return changed;
}

void sampler_stop_events(struct sampler *s)
{
	atomic_store(&s->events_stopped, true);
}

static void sum_outcomes(struct sampler *s, uint64_t *totals)
{
	__u64 *percpu = calloc(s->ncpus_possible, sizeof(*percpu));
	int fd = bpf_map__fd(s->skel->maps.outcomes);

	for (__u32 o = 0; o < SAMPLE_OUTCOME_MAX; o++) {
		totals[o] = 0;
		if (!percpu || bpf_map_lookup_elem(fd, &o, percpu))
			continue;
		for (int c = 0; c < s->ncpus_possible; c++)
			totals[o] += percpu[c];
	}
	free(percpu);
}

static void write_offcpu_metrics(struct metrics_buf *b, struct sampler *s, const uint64_t *o)
{
	struct metrics_series series;

	series = metrics_series_begin(b, "anorak_offcpu_waits_total", "counter",
				      "Off-CPU waits followed (sampled blocking switches), by what happened to them.");
	metrics_series_value(series, "outcome=\"counted\"", o[SAMPLE_OFFCPU_COUNTED]);
	metrics_series_value(series, "outcome=\"short\"", o[SAMPLE_OFFCPU_SHORT]);
	metrics_series_value(series, "outcome=\"filtered\"", o[SAMPLE_OFFCPU_FILTERED]);
	metrics_series_value(series, "outcome=\"waits_map_full\"", o[SAMPLE_OFFCPU_WAITS_FULL]);
	metrics_series_value(series, "outcome=\"count_map_full\"", o[SAMPLE_OFFCPU_DROP_COUNT_MAP_FULL]);
	metrics_counter(b, "anorak_offcpu_waits_drained_total", "Off-CPU waits read from the BPF maps.",
			atomic_load(&s->drained_offcpu_waits));
	metrics_gauge(b, "anorak_offcpu_probability", "Probability of following a blocking switch (0: off).",
		      s->offcpu_scale > 0 ? 1 / s->offcpu_scale : 0);
}

void sampler_write_metrics(struct metrics_buf *b, void *ctx)
{
	struct sampler *s = ctx;
	uint64_t o[SAMPLE_OUTCOME_MAX];
	struct metrics_series series;

	sum_outcomes(s, o);
	series = metrics_series_begin(b, "anorak_samples_total", "counter",
				      "CPU samples taken by the BPF program, by what happened to them.");
	metrics_series_value(series, "outcome=\"counted\"", o[SAMPLE_COUNTED]);
	metrics_series_value(series, "outcome=\"idle\"", o[SAMPLE_IDLE]);
	metrics_series_value(series, "outcome=\"dropped\"", o[SAMPLE_DROP_COUNT_MAP_FULL]);
	metrics_series_value(series, "outcome=\"filtered\"", o[SAMPLE_FILTERED]);
	metrics_counter(b, "anorak_bpf_filtered_samples_total",
			"Samples of targets dropped by relabeling, stopped by the BPF cgroup or process filter.",
			o[SAMPLE_FILTERED]);
	metrics_gauge(b, "anorak_bpf_cgroup_policies",
		      "cgroups with a BPF policy (dropped, or sampled at their own rate).",
		      __atomic_load_n(&s->skel->bss->cgroup_policies_used, __ATOMIC_RELAXED));
	metrics_counter(b, "anorak_bpf_cgroup_policies_full_total",
			"cgroup policies refused because the map was full (--bpf.cgroup-map-entries).",
			atomic_load(&s->cgroup_policies_full));
	metrics_counter(b, "anorak_bpf_processes_dropped_total",
			"Processes whose target relabeling dropped, marked for the BPF process filter.",
			atomic_load(&s->processes_dropped));
	/* Equal to outcome="counted" but for the samples of the generation being filled: every counted
	 * sample is drained exactly once. */
	metrics_counter(b, "anorak_samples_drained_total", "CPU samples read from the BPF maps.",
			atomic_load(&s->drained_samples));
	series = metrics_series_begin(b, "anorak_samples_dropped_total", "counter",
				      "CPU samples lost, by reason.");
	metrics_series_value(series, "reason=\"count_map_full\"", o[SAMPLE_DROP_COUNT_MAP_FULL]);
	series = metrics_series_begin(b, "anorak_stacks_dropped_total", "counter",
				      "Stacks missing from counted samples, by reason.");
	metrics_series_value(series, "reason=\"stack_map_full\"", o[SAMPLE_STACK_MAP_FULL]);
	metrics_series_value(series, "reason=\"user_stack_missing\"", o[SAMPLE_USER_STACK_MISSING]);
	metrics_series_value(series, "reason=\"kernel_stack_missing\"", o[SAMPLE_KERNEL_STACK_MISSING]);
	metrics_counter(b, "anorak_stacks_truncated_total", "User stacks cut at the depth limit (127 frames).",
			o[SAMPLE_USER_STACK_TRUNCATED]);
	metrics_counter(b, "anorak_process_events_lost_total",
			"Process events lost because the BPF ring buffer was full.",
			o[SAMPLE_NEW_PROCESS_EVENT_LOST]);

	series = metrics_series_begin(b, "anorak_trace_context_samples_total", "counter",
				      "Samples of processes that publish a trace context, by what was read.");
	metrics_series_value(series, "result=\"ids\"", o[SAMPLE_TRACE_CONTEXT]);
	metrics_series_value(series, "result=\"read_failed\"", o[SAMPLE_TRACE_READ_FAILED]);
	metrics_series_value(series, "result=\"invalid\"", o[SAMPLE_TRACE_INVALID]);
	metrics_gauge(b, "anorak_cgroup_perf_events",
		      "Open per-CPU perf events of containers sampled at their own rate.",
		      atomic_load(&s->cgroup_event_count));
	metrics_counter(b, "anorak_samples_elsewhere_total",
			"Base-rate samples of containers sampled by their own events, left to those (not "
			"counted twice).",
			o[SAMPLE_ELSEWHERE]);
	metrics_counter(b, "anorak_samples_cgroup_stale_total",
			"Samples of a container's own events taken after its rate was lowered, not counted.",
			o[SAMPLE_CGROUP_STALE]);
	write_offcpu_metrics(b, s, o);
	cpu_events_write_metrics(b, &s->cpus);
	metrics_gauge(b, "anorak_sampling_frequency_hertz", "Base sampling frequency per CPU.", s->frequency);
	metrics_counter(b, "anorak_drains_total", "Drains of the BPF sample maps.", atomic_load(&s->drains));
	metrics_counter(b, "anorak_drain_errors_total", "Drains of the BPF sample maps that failed.",
			atomic_load(&s->drain_errors));
	metrics_gauge(b, "anorak_drain_distinct_stacks",
		      "Distinct stacks (user and kernel) in the last drained generation.",
		      atomic_load(&s->last_distinct_stacks));
	metrics_gauge(b, "anorak_drain_count_map_entries",
		      "Entries of the count map in the last drained generation.",
		      atomic_load(&s->last_count_entries));
	metrics_histogram_write(b, "anorak_drain_duration_seconds", "Time to switch generation and drain it.",
				&s->drain_seconds);
	if (s->unwinder)
		unwinder_write_metrics(b, s->unwinder);
}
