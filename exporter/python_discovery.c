#include "exporter/python_discovery.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/symbols/python_functions.h"

/* Code objects cached, bytes of their line tables, functions named: bounds of user-space memory. */
#define PYTHON_CODE_OBJECTS_MAX 65536
#define PYTHON_CODE_BYTES_MAX (64u << 20)
#define PYTHON_FUNCTIONS_MAX (1u << 20)
/* How often and how long an executable waiting for its libpython is looked at again: the loader maps it
 * within milliseconds, or seconds on a node under load. */
#define PYTHON_RETRY_INTERVAL_NS 100000000LL
#define PYTHON_RETRY_FOR_NS 3000000000LL

int python_discovery_init(struct python_discovery *d, struct sampler *sampler, uint64_t elf_max_bytes,
			  uint32_t max_processes)
{
	int err;

	memset(d, 0, sizeof(*d));
	d->sampler = sampler;
	d->elf_max_bytes = elf_max_bytes;
	err = python_functions_init(PYTHON_FUNCTIONS_MAX);
	if (err)
		return err;
	d->code = python_code_new("/proc", PYTHON_CODE_OBJECTS_MAX, PYTHON_CODE_BYTES_MAX, max_processes);
	return d->code ? 0 : -ENOMEM;
}

/* Hands the interpreter to BPF and the resolver, unless the process left the program id names (exec,
 * exit) by then: BPF forgot it at that point, so an entry written after would be the old program's. */
static int hand_over(struct python_discovery *d, uint32_t tgid, const struct python_target *t,
		     const struct proc_identity *id)
{
	int err = python_code_add_process(d->code, tgid, &t->layout) ?:
		  sampler_set_python_proc(d->sampler, tgid, &t->proc);

	if (err)
		return err;
	if (proc_identity_current(id, "/proc", (int)tgid))
		return 0;
	sampler_forget_python_proc(d->sampler, tgid);
	python_code_forget(d->code, tgid);
	return -ESRCH;
}

/* Looks at p, running the program id names (at maps, its mappings read when it was learnt; NULL: read
 * afresh): -EAGAIN when it runs a python3.N executable without the interpreter's symbols and no
 * libpython is mapped (yet), unless this is the last look. */
static int look_at(struct python_discovery *d, struct process *p, bool last, const struct maps_snapshot *maps,
		   const struct proc_identity *id)
{
	struct python_target t;
	int err = python_discover("/proc", (int)p->tgid, d->elf_max_bytes, maps, &t);

	if (err) {
		if (err != -ENOENT && err != -ESRCH)
			atomic_fetch_add(&d->failures[PYTHON_FAIL_UNREADABLE], 1);
		return 0;
	}
	if (t.failure == PYTHON_FAIL_NO_SYMBOLS && !t.minor && !last)
		return -EAGAIN;
	if (t.failure != PYTHON_FAIL_NONE) {
		atomic_fetch_add(&d->failures[t.failure], 1);
		return 0;
	}
	if (!t.minor)
		return 0;
	err = hand_over(d, p->tgid, &t, id);
	if (err == -ESRCH)
		return 0;
	if (err) {
		atomic_fetch_add(&d->failures[PYTHON_FAIL_UNREADABLE], 1);
		log_warn("cannot walk a Python process", "pid=%u err=\"%s\"", p->tgid, strerror(-err));
		return 0;
	}
	atomic_fetch_add(&d->by_minor[t.minor], 1);
	return 0;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool waiting(const struct python_discovery *d, uint32_t tgid, const struct proc_identity *id)
{
	for (int i = 0; i < d->nretries; i++) {
		if (d->retries[i].process->tgid == tgid && !memcmp(&d->retries[i].id, id, sizeof(*id)))
			return true;
	}
	return false;
}

void python_discovery_learnt(struct python_discovery *d, struct process *p, const struct maps_snapshot *maps,
			     const struct proc_identity *id)
{
	int64_t now = monotonic_ns();

	/* Learnt at its exec and again at its first sample: one wait is enough. */
	if (waiting(d, p->tgid, id))
		return;
	if (look_at(d, p, d->nretries == PYTHON_RETRIES_MAX, maps, id) == -EAGAIN)
		d->retries[d->nretries++] = (struct python_retry){
			.process = process_get(p),
			.id = *id,
			.until_ns = now + PYTHON_RETRY_FOR_NS,
			.next_ns = now + PYTHON_RETRY_INTERVAL_NS,
		};
}

int64_t python_discovery_retry(struct python_discovery *d)
{
	int64_t now = monotonic_ns(), next = 0;
	int kept = 0;

	for (int i = 0; i < d->nretries; i++) {
		struct python_retry *r = &d->retries[i];

		if (now >= r->next_ns) {
			/* Exec'd or exited since: a new program is looked at from its own first sample. */
			if (!proc_identity_current(&r->id, "/proc", (int)r->process->tgid) ||
			    look_at(d, r->process, now >= r->until_ns, NULL, &r->id) != -EAGAIN) {
				process_put(r->process);
				continue;
			}
			r->next_ns = now + PYTHON_RETRY_INTERVAL_NS;
		}
		if (!next || r->next_ns < next)
			next = r->next_ns;
		d->retries[kept++] = *r;
	}
	d->nretries = kept;
	return next;
}

bool python_discovery_resolve(struct python_discovery *d, uint32_t tgid, const uint64_t *frames, uint32_t n,
			      uint64_t *out)
{
	if (!d->code || !python_code_has_raw(frames, n))
		return false;
	python_code_resolve(d->code, tgid, frames, n, out);
	return true;
}

void python_discovery_write_metrics(struct metrics_buf *b, void *ctx)
{
	static const char *const reasons[PYTHON_FAIL_REASONS] = { "none", "unreadable", "no_symbols",
								   "version", "layout", "thread_state" };
	static const char *const counters[PYTHON_COUNTERS] = { "sampled", "no_thread_state", "read_fault",
								"truncated" };
	struct python_discovery *d = ctx;
	struct python_counter_values v;
	struct metrics_series series;

	series = metrics_series_begin(b, "anorak_python_processes_total", "counter",
				      "CPython processes handed to the BPF walker, by minor version.");
	for (int m = PYTHON_MINOR_MIN; m <= PYTHON_MINOR_MAX; m++)
		metrics_series_valuef(series, (double)atomic_load(&d->by_minor[m]), "version=\"3.%d\"", m);
	series = metrics_series_begin(b, "anorak_python_processes_failed_total", "counter",
				      "CPython processes left with native stacks only, by reason.");
	for (int r = 1; r < PYTHON_FAIL_REASONS; r++)
		metrics_series_valuef(series, (double)atomic_load(&d->failures[r]), "reason=\"%s\"", reasons[r]);
	if (sampler_python_counters(d->sampler, &v) == 0) {
		series = metrics_series_begin(b, "anorak_python_stacks_total", "counter",
					      "Samples of CPython processes at the BPF walker, by what it found.");
		for (int i = 0; i < PYTHON_FRAMES; i++)
			metrics_series_valuef(series, (double)v.n[i], "result=\"%s\"", counters[i]);
		metrics_counter(b, "anorak_python_frames_walked_total", "Python frames placed in stacks by BPF.",
				(double)v.n[PYTHON_FRAMES]);
	}
	python_code_write_metrics(b, d->code);
}

void python_discovery_destroy(struct python_discovery *d)
{
	for (int i = 0; i < d->nretries; i++)
		process_put(d->retries[i].process);
	d->nretries = 0;
	python_code_free(d->code);
	d->code = NULL;
}
