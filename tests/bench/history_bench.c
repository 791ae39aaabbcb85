/*
 * history_bench: what the history ring costs for an hour of a busy host, and how fast it answers.
 *
 * Feeds one hour of drains (3600 slices of 1 s) into a ring, as the collector does: CPUS x HZ samples a
 * second over STACKS distinct stacks (depth 8..40, skewed so some are hot), TARGETS targets with four
 * threads each and Kubernetes-like labels. Frames are real return addresses in this program's own
 * executable mappings, symbolized by the real symbolizer, so the dictionaries hold real function names.
 * Then times queries over the whole hour: pprof (?start=&end=), the flame graph and a series grouped by
 * pod (Pyroscope's query API), and label values. Last, runs the hour's pprof query again in a thread
 * while drains go on (one slice every 100 ms, evicting the oldest windows) and prints how long each
 * drain's history_add_slice took meanwhile: queries must not hold drains up.
 *
 *   history_bench [-c CPUS] [-z HZ] [-s STACKS] [-t TARGETS] [-m MAX_BYTES]
 * Prints logfmt lines: ingest, ring size and bytes per stored sample, and query latencies.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exporter/store/history.h"
#include "exporter/encode/pprof_history.h"
#include "exporter/web/query.h"
#include "exporter/symbols/process.h"
#include "exporter/encode/pyroscope.h"
#include "querier/v1/querier.pb-c.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/store/slices.h"

#define S 1000000000LL
#define HOUR 3600
#define MAX_DEPTH 40

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Executable file mappings of this process: where the frames come from. */
static size_t text_ranges(uint64_t (*ranges)[2], size_t max)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;

	while (f && n < max && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) == 3 && perms[2] == 'x' && strchr(line, '/')) {
			ranges[n][0] = lo;
			ranges[n][1] = hi;
			n++;
		}
	}
	if (f)
		fclose(f);
	return n;
}

struct bench_stack {
	uint64_t frames[MAX_DEPTH];
	uint32_t depth;
};

struct bench {
	struct history *h;
	struct proc_maps *maps;
	struct bench_stack *stacks;
	struct process **procs;
	unsigned cpus, hz, nstacks, ntargets;
	int64_t t0;
};

/* Second sec's drain: cpus x hz samples. Returns the seconds history_add_slice took. */
static double feed(struct bench *b, int sec)
{
	struct slice *s = slice_new(sec + 1, b->t0 + sec * S, b->hz);

	for (unsigned k = 0; k < b->cpus * b->hz; k++) {
		/* Skewed: a fifth of the samples in the first 1% of the stacks. */
		unsigned st = next_rand() % 5 == 0 ? next_rand() % (b->nstacks / 100 + 1) : next_rand() % b->nstacks;
		unsigned tg = st % b->ntargets;
		const struct bench_stack *bs = &b->stacks[st];
		struct slice_sample smp = { .process = process_get(b->procs[tg]),
					    .target = target_get(b->procs[tg]->target),
					    .maps = proc_maps_get(b->maps),
					    .tid = b->procs[tg]->tgid + next_rand() % 4, .count = 1 };
		slice_add(s, &smp, st + 1, bs->frames, bs->depth, 0, NULL, 0);
	}
	slice_seal(s, b->t0 + (sec + 1) * S);
	double a = now();
	history_add_slice(b->h, s);
	double took = now() - a;
	slice_free(s);
	return took;
}

struct background_query {
	struct bench *b;
	double seconds;
	int err;
	bool done; /* atomic */
};

static void *pprof_hour(void *arg)
{
	struct background_query *q = arg;
	struct history_range_query rq = { .start_ns = q->b->t0, .end_ns = q->b->t0 + HOUR * S };
	void *out = NULL;
	size_t len;
	double a = now();

	q->err = history_profile_encode(q->b->h, &rq, q->b->hz, &out, &len, NULL, NULL);
	q->seconds = now() - a;
	free(out);
	__atomic_store_n(&q->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Drains every 100 ms while the hour's pprof is built in a thread. */
static void drains_during_query(struct bench *b)
{
	struct background_query q = { .b = b };
	double took[1024];
	size_t n = 0;
	pthread_t thread;

	if (pthread_create(&thread, NULL, pprof_hour, &q))
		return;
	while (!__atomic_load_n(&q.done, __ATOMIC_ACQUIRE) && n < sizeof(took) / sizeof(took[0])) {
		took[n] = feed(b, HOUR + (int)n);
		n++;
		usleep(100000);
	}
	pthread_join(thread, NULL);
	qsort(took, n, sizeof(took[0]), cmp_double);
	printf("drains_during_query what=pprof_1h err=%d query_seconds=%.3f drains=%zu add_slice_ms_median=%.3f "
	       "add_slice_ms_max=%.3f\n", q.err, q.seconds, n, n ? took[n / 2] * 1000 : 0,
	       n ? took[n - 1] * 1000 : 0);
}

int main(int argc, char **argv)
{
	unsigned cpus = 8, hz = 19, nstacks = 20000, ntargets = 50;
	uint64_t max_bytes = 64ULL << 20;
	int opt;

	while ((opt = getopt(argc, argv, "c:z:s:t:m:")) != -1) {
		switch (opt) {
		case 'c': cpus = atoi(optarg); break;
		case 'z': hz = atoi(optarg); break;
		case 's': nstacks = atoi(optarg); break;
		case 't': ntargets = atoi(optarg); break;
		case 'm': max_bytes = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s [-c CPUS] [-z HZ] [-s STACKS] [-t TARGETS] [-m MAX_BYTES]\n", argv[0]);
			return 2;
		}
	}

	struct symbolizer_opts so = { .cache_max_bytes = 256 << 20, .elf_max_bytes = 1ULL << 30,
				      .max_symbols_per_file = 4000000, .proc_root = "/proc",
				      .kallsyms_path = "/proc/kallsyms" };
	struct symbolizer *sym = symbolizer_new(&so);
	struct proc_maps *maps;
	if (!sym || symbolizer_load_maps(sym, getpid(), &maps)) {
		fprintf(stderr, "history_bench: cannot load this process's mappings\n");
		return 1;
	}
	uint64_t ranges[64][2];
	size_t nranges = text_ranges(ranges, 64);

	/* FUNCTIONS functions spread over the executable mappings, each with 4 call sites (return
	 * addresses) and 16 instruction addresses a leaf can be sampled at; a stack is a root (one of 4
	 * entry points) then callees drawn with a skew towards common ones. */
	const unsigned nfuncs = 5000;
	uint64_t *funcs = calloc(nfuncs, sizeof(*funcs));
	for (unsigned f = 0; f < nfuncs; f++) {
		uint64_t (*r)[2] = &ranges[next_rand() % nranges];

		funcs[f] = (*r)[0] + next_rand() % ((*r)[1] - (*r)[0] - 64);
	}
	struct bench_stack *stacks = calloc(nstacks, sizeof(*stacks));
	for (unsigned i = 0; i < nstacks; i++) {
		struct bench_stack *b = &stacks[i];

		b->depth = 8 + next_rand() % (MAX_DEPTH - 7);
		for (uint32_t d = 0; d < b->depth; d++) {
			unsigned f = d == 0 ? next_rand() % 4 : next_rand() % 3 ? next_rand() % (nfuncs / 20) : next_rand() % nfuncs;
			bool leaf = d == b->depth - 1;

			b->frames[b->depth - 1 - d] = funcs[f] + (leaf ? next_rand() % 16 : 16 + 4 * (next_rand() % 4));
		}
	}
	struct process **procs = calloc(ntargets, sizeof(*procs));
	for (unsigned i = 0; i < ntargets; i++) {
		char pod[64], ns[32];

		procs[i] = calloc(1, sizeof(**procs));
		atomic_init(&procs[i]->refs, 1);
		procs[i]->tgid = 1000 + i;
		snprintf(ns, sizeof(ns), "namespace-%u", i % 5);
		snprintf(pod, sizeof(pod), "service-%u-7f9c8d6b5-%05u", i / 3, i * 7919 % 100000);
		struct target *t = procs[i]->target = calloc(1, sizeof(*t));
		atomic_init(&t->refs, 1);
		labelset_set(&t->labels, "namespace", ns);
		labelset_set(&t->labels, "pod", pod);
		labelset_set(&t->labels, "container", "app");
		labelset_set(&t->labels, "job", "kubernetes-pods");
		labelset_set(&t->labels, "instance", "127.0.1.3:9760");
		labelset_set(&t->labels, "node", "node-1.example.internal");
	}

	struct history *h;
	struct history_opts ho = { .retention_ns = HOUR * S, .max_bytes = max_bytes, .window_ns = HISTORY_WINDOW_NS,
				   .symbolizer = sym };
	if (history_new(&ho, &h))
		return 1;
	struct bench b = { .h = h, .maps = maps, .stacks = stacks, .procs = procs, .cpus = cpus, .hz = hz,
			   .nstacks = nstacks, .ntargets = ntargets, .t0 = 1700000000LL * S };
	int64_t t0 = b.t0;
	uint64_t samples = (uint64_t)HOUR * cpus * hz;
	double ingest = 0;

	for (int sec = 0; sec < HOUR; sec++)
		ingest += feed(&b, sec);
	struct history_stats st;
	history_stats(h, &st);
	printf("ring cpus=%u hz=%u stacks=%u targets=%u samples_fed=%llu samples_kept=%llu windows=%llu epochs=%llu "
	       "records=%llu bytes=%llu window_bytes=%llu max_bytes=%llu bytes_per_sample=%.2f bytes_per_record=%.2f "
	       "evictions_size=%llu ingest_ms_per_slice=%.3f\n",
	       cpus, hz, nstacks, ntargets, (unsigned long long)samples, (unsigned long long)st.samples,
	       (unsigned long long)st.windows, (unsigned long long)st.epochs, (unsigned long long)st.records,
	       (unsigned long long)st.bytes, (unsigned long long)st.window_bytes, (unsigned long long)max_bytes,
	       st.samples ? (double)st.bytes / st.samples : 0, st.records ? (double)st.bytes / st.records : 0,
	       (unsigned long long)st.evictions_size, ingest * 1000 / HOUR);

	/* The whole hour, as pprof. */
	struct history_range_query q = { .start_ns = t0, .end_ns = t0 + HOUR * S };
	void *out;
	size_t len;
	int64_t first, last;
	double a = now();
	int err = history_profile_encode(h, &q, hz, &out, &len, &first, &last);
	printf("query what=pprof_1h err=%d seconds=%.3f bytes=%zu\n", err, now() - a, err ? 0 : len);
	if (!err)
		free(out);

	/* The flame graph of the hour, and the series by pod at Grafana's 15 s step. */
	uint8_t buf[512];
	struct http_reply r;
	Querier__V1__SelectMergeStacktracesRequest fr = QUERIER__V1__SELECT_MERGE_STACKTRACES_REQUEST__INIT;
	fr.profile_typeid = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
	fr.label_selector = "{}";
	fr.start = t0 / 1000000;
	fr.end = (t0 + HOUR * S) / 1000000;
	len = querier__v1__select_merge_stacktraces_request__pack(&fr, buf);
	a = now();
	pyroscope_serve(h, "SelectMergeStacktraces", buf, len, &r);
	printf("query what=flamegraph_1h status=%d seconds=%.3f bytes=%zu\n", r.status, now() - a, r.len);
	free(r.body);

	fr.label_selector = "{namespace=\"namespace-1\",pod=~\"service-1.*\"}";
	len = querier__v1__select_merge_stacktraces_request__pack(&fr, buf);
	a = now();
	pyroscope_serve(h, "SelectMergeStacktraces", buf, len, &r);
	printf("query what=flamegraph_1h_selector status=%d seconds=%.3f bytes=%zu\n", r.status, now() - a, r.len);
	free(r.body);

	Querier__V1__SelectSeriesRequest sr = QUERIER__V1__SELECT_SERIES_REQUEST__INIT;
	char *group_by[] = { "pod" };
	sr.profile_typeid = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
	sr.label_selector = "{}";
	sr.start = fr.start;
	sr.end = fr.end;
	sr.step = 15;
	sr.n_group_by = 1;
	sr.group_by = group_by;
	len = querier__v1__select_series_request__pack(&sr, buf);
	a = now();
	pyroscope_serve(h, "SelectSeries", buf, len, &r);
	printf("query what=series_by_pod_1h status=%d seconds=%.3f bytes=%zu\n", r.status, now() - a, r.len);
	free(r.body);

	Types__V1__LabelValuesRequest lr = TYPES__V1__LABEL_VALUES_REQUEST__INIT;
	lr.name = "pod";
	lr.start = fr.start;
	lr.end = fr.end;
	len = types__v1__label_values_request__pack(&lr, buf);
	a = now();
	pyroscope_serve(h, "LabelValues", buf, len, &r);
	printf("query what=label_values_1h status=%d seconds=%.3f bytes=%zu\n", r.status, now() - a, r.len);
	free(r.body);

	drains_during_query(&b);
	history_free(h);
	for (unsigned i = 0; i < ntargets; i++)
		process_put(procs[i]);
	proc_maps_put(maps);
	symbolizer_free(sym);
	free(stacks);
	free(funcs);
	free(procs);
	return 0;
}
