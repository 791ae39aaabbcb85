#include "exporter/symbols/process.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "labels/cgroup.h"
#include "common/log.h"
#include "common/metrics.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/symbols/symbolize.h"

#define PROCESS_BUCKETS 4096
/* A process whose stack points outside its known mappings (dlopen, JIT) re-reads them at most this
 * often. */
#define MAPS_RELOAD_INTERVAL_NS 1000000000LL
/* A caller frame outside the known mappings (the first read came while the loader was still mapping
 * the libraries) re-reads them once, this long after the first read at the earliest, and is looked for
 * only in the stacks drained in the window after it: the drain symbolizes every frame anyway, and
 * checking each caller of every stack of a process's whole life would be that work twice. */
#define CALLERS_REREAD_DELAY_NS 100000000LL
#define CALLERS_CHECK_WINDOW_NS (5 * 1000000000LL)
/* x86-64 user addresses are below this; stack entries above it are tagged Python frames. */
#define USER_ADDRESS_END (1ULL << 47)
/* While the table is full, processes it cannot take are kept here (direct-mapped by tgid) so their
 * samples cost no /proc and ELF reads; an entry is dropped on the process's exit or exec, replaced
 * by another tgid of its slot, or re-read after UNTRACKED_TTL_NS in case an event was lost. */
#define UNTRACKED_CACHE 1024
#define UNTRACKED_TTL_NS (60 * 1000000000LL)

struct process_table {
	struct process_table_opts opts;
	pthread_mutex_t lock;
	struct process *buckets[PROCESS_BUCKETS];
	uint32_t tracked;
	uint64_t drains_begun;
	uint64_t learnt, purged; /* incarnations that entered the table, and that left it */

	atomic_uint_fast64_t maps_loaded;
	atomic_uint_fast64_t maps_failed;
	atomic_uint_fast64_t snapshots_oversize; /* maps over MAPS_SNAPSHOT_MAX_BYTES: each reader reads */
	struct metrics_histogram read_delay; /* first sample to mappings read */
	atomic_uint_fast64_t untracked;

	struct process *untracked_cache[UNTRACKED_CACHE];
	uint32_t untracked_cached;
	atomic_uint_fast64_t untracked_hits, untracked_evictions;
};

static const double read_delay_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct process *process_get(struct process *p)
{
	atomic_fetch_add(&p->refs, 1);
	return p;
}

void process_put(struct process *p)
{
	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	process_put(p->previous);
	if (p->maps)
		proc_maps_put(p->maps);
	target_put(p->target);
	free(p);
}

static void read_comm(const char *proc_root, uint32_t tgid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%u/comm", proc_root, tgid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, (int)len, f))
		comm[strcspn(comm, "\n")] = '\0';
	fclose(f);
}

/* From snap when not NULL (a first sample's one read), else from /proc. */
static struct proc_maps *load_maps(struct process_table *t, uint32_t tgid, const struct maps_snapshot *snap)
{
	struct proc_maps *maps = NULL;
	int err = symbolizer_load_snapshot(t->opts.symbolizer, (int)tgid, snap, &maps);

	if (err) {
		atomic_fetch_add(&t->maps_failed, 1);
		log_debug("cannot read the mappings of a process", "pid=%u err=%d", tgid, err);
		return NULL;
	}
	atomic_fetch_add(&t->maps_loaded, 1);
	return maps;
}

/* The executable's path as the process sees it; "" when unreadable (kernel threads, gone). */
static void read_executable(const char *proc_root, uint32_t tgid, char *exe, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%u/exe", proc_root, tgid);
	n = readlink(path, exe, len - 1);
	exe[n > 0 ? n : 0] = '\0';
}

static struct target *host_target(struct process_table *t, struct process *p)
{
	char exe[PATH_MAX], cgroup_path[PATH_MAX];
	struct labelset discovered = { 0 };

	read_executable(t->opts.proc_root, p->tgid, exe, sizeof(exe));
	cgroup_identity_of_pid(t->opts.proc_root, (int)p->tgid, &p->cgroup, cgroup_path, sizeof(cgroup_path));
	if (t->opts.cgroup2_mount && t->opts.cgroup2_mount[0] &&
	    cgroup2_of_pid(t->opts.proc_root, t->opts.cgroup2_mount, (int)p->tgid, &p->cgroup2_id, NULL, 0))
		p->cgroup2_id = 0;
	struct host_process hp = { .address = t->opts.address, .pid = p->tgid, .comm = p->comm,
				   .executable = exe, .cgroup_path = cgroup_path, .cgroup = &p->cgroup };
	if (host_discovered_labels(&hp, &discovered)) {
		labelset_free(&discovered);
		return NULL;
	}
	return target_make(t->opts.labeler, &discovered);
}

/* A new incarnation of tgid, read from /proc now (comm falls back to the event's; mappings from snap
 * when not NULL). */
static struct process *process_new(struct process_table *t, uint32_t tgid, const char *event_comm,
				   const struct maps_snapshot *snap)
{
	struct process *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	atomic_init(&p->refs, 1);
	p->tgid = tgid;
	if (event_comm)
		snprintf(p->comm, sizeof(p->comm), "%s", event_comm);
	read_comm(t->opts.proc_root, tgid, p->comm, sizeof(p->comm));
	p->target = host_target(t, p);
	if (!p->target) {
		process_put(p);
		return NULL;
	}
	if (t->opts.on_target)
		t->opts.on_target(t->opts.on_target_ctx, p, p->target, false);
	p->maps = load_maps(t, tgid, snap);
	p->maps_loaded_ns = p->learnt_ns = now_ns();
	return p;
}

static struct process **slot_of(struct process_table *t, uint32_t tgid)
{
	struct process **slot = &t->buckets[tgid % PROCESS_BUCKETS];

	while (*slot && (*slot)->tgid != tgid)
		slot = &(*slot)->hash_next;
	return slot;
}

static void mark_gone(struct process_table *t, struct process *p)
{
	p->gone = true;
	p->gone_after_drain = t->drains_begun;
}

/* Puts fresh in the table in place of the current incarnation, which it keeps as previous for the
 * samples still to be drained. Takes the caller's reference to fresh. Called with the lock held. */
static void replace_locked(struct process_table *t, struct process *fresh)
{
	struct process **slot = slot_of(t, fresh->tgid);
	struct process *old = *slot;

	if (old) {
		fresh->hash_next = old->hash_next;
		old->hash_next = NULL;
		process_put(old->previous);
		old->previous = NULL;
		if (!old->gone)
			mark_gone(t, old);
		fresh->previous = old;
	} else {
		t->tracked++;
	}
	*slot = fresh;
}

static bool table_full(struct process_table *t, uint32_t tgid)
{
	return t->tracked >= t->opts.max_processes && !*slot_of(t, tgid);
}

/* The untracked process cached for tgid, referenced, or NULL; lock held. */
static struct process *cached_untracked(struct process_table *t, uint32_t tgid)
{
	struct process *p = t->untracked_cache[tgid % UNTRACKED_CACHE];

	if (!p || p->tgid != tgid || now_ns() - p->learnt_ns > UNTRACKED_TTL_NS)
		return NULL;
	atomic_fetch_add(&t->untracked_hits, 1);
	return process_get(p);
}

/* Lock held. */
static void uncache_untracked(struct process_table *t, uint32_t tgid)
{
	struct process **slot = &t->untracked_cache[tgid % UNTRACKED_CACHE];

	if (*slot && (*slot)->tgid == tgid) {
		process_put(*slot);
		*slot = NULL;
		t->untracked_cached--;
	}
}

/* Takes the caller's reference to p; lock held. */
static void cache_untracked(struct process_table *t, struct process *p)
{
	struct process **slot = &t->untracked_cache[p->tgid % UNTRACKED_CACHE];

	if (*slot) {
		if ((*slot)->tgid != p->tgid)
			atomic_fetch_add(&t->untracked_evictions, 1);
		process_put(*slot);
	} else {
		t->untracked_cached++;
	}
	*slot = p;
}

/* The mappings of a process first sampled, read once for the table, the on_learnt hook and the
 * unwinder: the kernel builds the text anew for every read. NULL when unreadable or too large. */
static struct maps_snapshot *read_snapshot(struct process_table *t, uint32_t tgid)
{
	struct maps_snapshot *m = NULL;
	int err = maps_snapshot_read(t->opts.proc_root, (int)tgid, &m);

	if (err == -EFBIG)
		atomic_fetch_add(&t->snapshots_oversize, 1);
	return err ? NULL : m;
}

/* sampled_ns: when BPF announced the process (CLOCK_MONOTONIC), 0 when not learnt from its event; then
 * its mappings are read once, as snap. */
static void learn(struct process_table *t, uint32_t tgid, const char *comm, int64_t sampled_ns,
		  const struct maps_snapshot *snap)
{
	struct process *fresh = process_new(t, tgid, comm, snap);

	if (!fresh)
		return;
	if (sampled_ns && fresh->maps)
		metrics_histogram_observe(&t->read_delay, (double)(fresh->maps_loaded_ns - sampled_ns) / 1e9);
	if (sampled_ns && t->opts.on_learnt)
		t->opts.on_learnt(t->opts.on_learnt_ctx, fresh, snap);
	pthread_mutex_lock(&t->lock);
	if (table_full(t, tgid)) {
		atomic_fetch_add(&t->untracked, 1);
		cache_untracked(t, fresh);
	} else {
		uncache_untracked(t, tgid);
		replace_locked(t, fresh);
		t->learnt++;
	}
	pthread_mutex_unlock(&t->lock);
}

/* Exit or exec: the incarnation stays for the samples still to be drained. After an exec the new
 * program is learnt at its first sample. */
static void end_incarnation(struct process_table *t, uint32_t tgid)
{
	pthread_mutex_lock(&t->lock);
	uncache_untracked(t, tgid);
	struct process *p = *slot_of(t, tgid);
	if (p && !p->gone)
		mark_gone(t, p);
	pthread_mutex_unlock(&t->lock);
}

void process_table_on_event(const struct process_event *e, void *table, struct maps_snapshot **maps)
{
	struct process_table *t = table;
	char comm[sizeof(e->comm) + 1];
	struct maps_snapshot *snap;

	memcpy(comm, e->comm, sizeof(e->comm));
	comm[sizeof(e->comm)] = '\0';
	if (maps)
		*maps = NULL;
	switch (e->type) {
	case PROCESS_EVENT_SAMPLED: /* first sample since start or exec: its mappings are new */
		snap = read_snapshot(t, e->tgid);
		learn(t, e->tgid, comm, (int64_t)e->ktime_ns, snap);
		if (maps)
			*maps = snap;
		else
			maps_snapshot_put(snap);
		break;
	case PROCESS_EVENT_EXEC:
	case PROCESS_EVENT_EXIT:
		end_incarnation(t, e->tgid);
		break;
	}
}

static bool maps_hold(const struct proc_maps *maps, const uint64_t *user, uint32_t nuser)
{
	return maps && nuser > 0 && proc_maps_find(maps, user[0]);
}

/* Whether maps hold every native frame of the stack, not only the leaf. */
static bool maps_hold_callers(const struct proc_maps *maps, const uint64_t *user, uint32_t nuser)
{
	for (uint32_t i = 1; i < nuser; i++) {
		if (user[i] < USER_ADDRESS_END && !proc_maps_find(maps, user[i]))
			return false;
	}
	return true;
}

/* Picks the incarnation whose mappings hold the stack's leaf: right after an exec, samples of the
 * old program may still be waiting in the generation being drained. Lock held. */
static struct process *pick_incarnation(struct process *current, const uint64_t *user, uint32_t nuser)
{
	struct process *prev = current->previous;

	if (prev && !maps_hold(current->maps, user, nuser) && maps_hold(prev->maps, user, nuser))
		return prev;
	return current;
}

/* The leaf is outside every known mapping of a live process: it mapped new code since (re-read at most
 * once a second). Or, once per process, a caller frame is: a process first sampled in the loader was
 * read before its libraries were mapped, and its leaves, in its own code, would never tell. Once only,
 * as a frame no read explains (a frame-pointer walk's garbage) must not cost a read a second. */
static void refresh_maps(struct process_table *t, struct process *p, const uint64_t *user,
			 uint32_t nuser)
{
	pthread_mutex_lock(&t->lock);
	int64_t since = now_ns() - p->maps_loaded_ns;
	bool leaf_out = !maps_hold(p->maps, user, nuser);
	bool stale = !p->gone && nuser > 0 &&
		     ((leaf_out && since > MAPS_RELOAD_INTERVAL_NS) ||
		      (!leaf_out && !p->callers_reread && since > CALLERS_REREAD_DELAY_NS &&
		       since < CALLERS_CHECK_WINDOW_NS && !maps_hold_callers(p->maps, user, nuser)));
	if (stale) {
		p->maps_loaded_ns = now_ns();
		p->callers_reread |= !leaf_out;
	}
	pthread_mutex_unlock(&t->lock);
	if (!stale)
		return;

	struct proc_maps *fresh = load_maps(t, p->tgid, NULL);
	if (!fresh)
		return;
	pthread_mutex_lock(&t->lock);
	struct proc_maps *old = p->maps;
	p->maps = fresh;
	pthread_mutex_unlock(&t->lock);
	if (old)
		proc_maps_put(old);
}

struct process *process_table_resolve(struct process_table *t, uint32_t tgid, const uint64_t *user,
				      uint32_t nuser, struct proc_maps **maps)
{
	struct process *p;

	pthread_mutex_lock(&t->lock);
	p = *slot_of(t, tgid);
	p = p ? process_get(pick_incarnation(p, user, nuser)) : cached_untracked(t, tgid);
	pthread_mutex_unlock(&t->lock);

	if (!p) {
		/* Sampled before its event was handled, or the table is full: learn it now. A full
		 * table still gets an untracked process (cached) so its samples keep their labels. */
		learn(t, tgid, NULL, 0, NULL);
		pthread_mutex_lock(&t->lock);
		p = *slot_of(t, tgid);
		p = p ? process_get(p) : cached_untracked(t, tgid);
		pthread_mutex_unlock(&t->lock);
		if (!p)
			p = process_new(t, tgid, NULL, NULL);
		if (!p)
			return NULL;
	} else {
		refresh_maps(t, p, user, nuser);
	}

	pthread_mutex_lock(&t->lock);
	*maps = p->maps ? proc_maps_get(p->maps) : NULL;
	pthread_mutex_unlock(&t->lock);
	return p;
}

void process_table_drain_begin(struct process_table *t)
{
	pthread_mutex_lock(&t->lock);
	t->drains_begun++;
	pthread_mutex_unlock(&t->lock);
}

static bool done_with(const struct process *p, uint64_t drain)
{
	return p->gone && p->gone_after_drain < drain;
}

void process_table_drain_end(struct process_table *t)
{
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < PROCESS_BUCKETS; b++) {
		struct process **slot = &t->buckets[b];

		while (*slot) {
			struct process *p = *slot;

			if (p->previous && done_with(p->previous, t->drains_begun)) {
				process_put(p->previous);
				p->previous = NULL;
				t->purged++;
			}
			if (done_with(p, t->drains_begun)) {
				*slot = p->hash_next;
				p->hash_next = NULL;
				t->tracked--;
				t->purged++;
				process_put(p);
			} else {
				slot = &p->hash_next;
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
}

struct target *process_target(struct process_table *t, struct process *p)
{
	pthread_mutex_lock(&t->lock);
	struct target *target = target_get(p->target);
	pthread_mutex_unlock(&t->lock);
	return target;
}

struct relabeled {
	struct process *process;
	struct target *target;
};

/* Relabels outside the lock (regexes over every process take a while), then swaps the targets in. */
void process_table_relabel(struct process_table *t)
{
	struct relabeled *relabel_list = NULL;
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	/* Untracked processes are learnt again, with the new labels. */
	for (size_t i = 0; i < UNTRACKED_CACHE; i++)
		if (t->untracked_cache[i])
			uncache_untracked(t, t->untracked_cache[i]->tgid);
	relabel_list = calloc(t->tracked ? t->tracked : 1, sizeof(*relabel_list));
	for (size_t b = 0; relabel_list && b < PROCESS_BUCKETS; b++)
		for (struct process *p = t->buckets[b]; p && n < t->tracked; p = p->hash_next)
			if (!p->gone)
				relabel_list[n++] = (struct relabeled){ process_get(p), target_get(p->target) };
	pthread_mutex_unlock(&t->lock);
	if (!relabel_list) {
		log_warn("cannot relabel processes: out of memory", NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct labelset discovered = { 0 };
		struct target *fresh = NULL;

		if (!labelset_copy(&discovered, &relabel_list[i].target->discovered))
			fresh = target_make(t->opts.labeler, &discovered);
		target_put(relabel_list[i].target);
		relabel_list[i].target = fresh;
		if (fresh && t->opts.on_target)
			t->opts.on_target(t->opts.on_target_ctx, relabel_list[i].process, fresh, true);
	}
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		if (relabel_list[i].target) {
			target_put(relabel_list[i].process->target);
			relabel_list[i].process->target = relabel_list[i].target;
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++)
		process_put(relabel_list[i].process);
	free(relabel_list);
}

void process_table_each_target(struct process_table *t,
			       void (*fn)(void *ctx, const struct process *p, const struct target *target), void *ctx)
{
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < PROCESS_BUCKETS; b++)
		for (struct process *p = t->buckets[b]; p; p = p->hash_next)
			if (!p->gone)
				fn(ctx, p, p->target);
	pthread_mutex_unlock(&t->lock);
}

int process_table_new(const struct process_table_opts *opts, struct process_table **out)
{
	struct process_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->opts = *opts;
	if (metrics_histogram_init(&t->read_delay, read_delay_buckets,
				   sizeof(read_delay_buckets) / sizeof(read_delay_buckets[0]))) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void process_table_free(struct process_table *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < PROCESS_BUCKETS; b++) {
		struct process *p = t->buckets[b];

		while (p) {
			struct process *next = p->hash_next;

			process_put(p);
			p = next;
		}
	}
	for (size_t i = 0; i < UNTRACKED_CACHE; i++)
		process_put(t->untracked_cache[i]);
	metrics_histogram_destroy(&t->read_delay);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const char *const trace_source_labels[PROCESS_TRACE_SOURCES] = {
	[PROCESS_TRACE_OTEL_STATIC] = "kind=\"otel_v1\",tls=\"static\"",
	[PROCESS_TRACE_OTEL_TLSDESC] = "kind=\"otel_v1\",tls=\"tlsdesc\"",
	[PROCESS_TRACE_CUSTOM_STATIC] = "kind=\"custom_labels_v1\",tls=\"static\"",
	[PROCESS_TRACE_CUSTOM_TLSDESC] = "kind=\"custom_labels_v1\",tls=\"tlsdesc\"",
	[PROCESS_TRACE_DYNAMIC_TLS] = "kind=\"unsupported\",tls=\"dynamic\"",
};

void process_table_write_metrics(struct metrics_buf *b, void *table)
{
	struct process_table *t = table;
	uint32_t by_source[PROCESS_TRACE_SOURCES] = { 0 };
	struct metrics_series series;

	pthread_mutex_lock(&t->lock);
	uint32_t tracked = t->tracked, cached = t->untracked_cached;
	uint64_t learnt = t->learnt, purged = t->purged;
	for (size_t i = 0; i < PROCESS_BUCKETS; i++)
		for (struct process *p = t->buckets[i]; p; p = p->hash_next)
			if (!p->gone)
				by_source[__atomic_load_n(&p->trace_source, __ATOMIC_RELAXED)]++;
	pthread_mutex_unlock(&t->lock);

	series = metrics_series_begin(b, "anorak_trace_context_processes", "gauge",
				      "Live processes that publish a trace context, by ABI and TLS model "
				      "(dynamic TLS is not read).");
	for (int src = PROCESS_TRACE_NONE + 1; src < PROCESS_TRACE_SOURCES; src++)
		metrics_series_value(series, trace_source_labels[src], by_source[src]);

	metrics_gauge(b, "anorak_processes_tracked",
		      "Processes whose labels and mappings are kept (including exited ones not yet drained).",
		      tracked);
	metrics_counter(b, "anorak_processes_learnt_total",
			"Processes entered in the table (a first sample, or an exec: each incarnation once).",
			learnt);
	metrics_counter(b, "anorak_processes_purged_total",
			"Exited or replaced processes let go after the drain that held their last samples.",
			purged);
	metrics_gauge(b, "anorak_processes_max", "Limit of tracked processes (--processes.max).",
		      t->opts.max_processes);
	metrics_counter(b, "anorak_processes_untracked_total",
			"Processes learnt while the table was full (kept in the untracked cache).",
			atomic_load(&t->untracked));
	metrics_gauge(b, "anorak_processes_untracked_cached",
		      "Untracked processes cached while the table is full, so their samples read nothing again.",
		      cached);
	metrics_gauge(b, "anorak_processes_untracked_cache_max", "Limit of the untracked cache.", UNTRACKED_CACHE);
	metrics_counter(b, "anorak_processes_untracked_cache_hits_total",
			"Samples of untracked processes answered from the untracked cache.",
			atomic_load(&t->untracked_hits));
	metrics_counter(b, "anorak_processes_untracked_cache_evictions_total",
			"Untracked processes dropped from their cache slot for another process (the bound hit).",
			atomic_load(&t->untracked_evictions));
	series = metrics_series_begin(b, "anorak_process_maps_loads_total", "counter",
				      "Reads of /proc/PID/maps, by result.");
	metrics_series_value(series, "result=\"success\"", atomic_load(&t->maps_loaded));
	metrics_series_value(series, "result=\"error\"", atomic_load(&t->maps_failed));
	metrics_counter(b, "anorak_process_maps_snapshots_oversize_total",
			"First-sampled processes whose mappings were too large (over 4 MiB of /proc/PID/maps) to "
			"read once for all: each consumer read them itself.",
			atomic_load(&t->snapshots_oversize));
	metrics_histogram_write(b, "anorak_process_read_delay_seconds",
				"Time from a process's first sample to its mappings being read. A process that "
				"exits sooner keeps its frames unnamed (addresses only).",
				&t->read_delay);
}
