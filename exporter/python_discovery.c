#include "exporter/python_discovery.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/symbols/python_functions.h"

/* Code objects cached, bytes of their line tables, functions named: bounds of user-space memory. */
#define PYTHON_CODE_OBJECTS_MAX 65536
#define PYTHON_CODE_BYTES_MAX (64u << 20)
#define PYTHON_FUNCTIONS_MAX (1u << 20)

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

void python_discovery_learnt(struct python_discovery *d, struct process *p)
{
	struct python_target t;
	int err = python_discover("/proc", (int)p->tgid, d->elf_max_bytes, &t);

	if (err) {
		if (err != -ENOENT && err != -ESRCH)
			atomic_fetch_add(&d->failures[PYTHON_FAIL_UNREADABLE], 1);
		return;
	}
	if (t.failure != PYTHON_FAIL_NONE) {
		atomic_fetch_add(&d->failures[t.failure], 1);
		return;
	}
	if (!t.minor)
		return;
	err = python_code_add_process(d->code, p->tgid, &t.layout) ?:
	      sampler_set_python_proc(d->sampler, p->tgid, &t.proc);
	if (err) {
		atomic_fetch_add(&d->failures[PYTHON_FAIL_UNREADABLE], 1);
		log_warn("cannot walk a Python process", "pid=%u err=\"%s\"", p->tgid, strerror(-err));
		return;
	}
	atomic_fetch_add(&d->by_minor[t.minor], 1);
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
	python_code_free(d->code);
	d->code = NULL;
}
