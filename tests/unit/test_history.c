/* History ring: windows close at their length, queries select overlapping windows whole, records keep
 * stacks, labels and trace ids, the bounds (retention, max bytes) evict oldest first, pprof of a range. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <cmocka.h>

#include "exporter/store/history.h"
#include "exporter/encode/pprof_history.h"
#include "exporter/web/query.h"
#include "exporter/symbols/process.h"
#include "profile.pb-c.h"
#include "exporter/store/slices.h"

#define S 1000000000LL

static struct process *new_process(uint32_t tgid, const char *pod)
{
	struct process *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	atomic_init(&p->refs, 1);
	p->tgid = tgid;
	p->target = calloc(1, sizeof(*p->target));
	assert_non_null(p->target);
	atomic_init(&p->target->refs, 1);
	assert_int_equal(labelset_set(&p->target->labels, "namespace", "shop"), 0);
	assert_int_equal(labelset_set(&p->target->labels, "pod", pod), 0);
	return p;
}

static void put_process(struct process *p)
{
	process_put(p);
}

/* A sample of p (references taken) at the base rate. */
static struct slice_sample *sample_of(struct slice_sample *s, struct process *p, const struct trace_ids *trace,
				      uint32_t tid, uint64_t count)
{
	static const struct trace_ids none;

	*s = (struct slice_sample){ .process = process_get(p), .target = target_get(p->target),
				    .trace = trace ? *trace : none, .tid = tid, .count = count };
	return s;
}

static struct history *new_history(int64_t retention_ns, uint64_t max_bytes)
{
	struct history_opts o = { .retention_ns = retention_ns, .max_bytes = max_bytes, .window_ns = 10 * S };
	struct history *h;

	assert_int_equal(history_new(&o, &h), 0);
	return h;
}

/* One slice [t, t + 1 s) with count samples of the one-frame user stack `frame` in p. */
static void add(struct history *h, struct process *p, int64_t t, uint64_t frame, uint64_t count,
		const struct trace_ids *trace)
{
	struct slice *s = slice_new(1, t, 100);

	assert_non_null(s);
	struct slice_sample smp;

	assert_int_equal(slice_add(s, sample_of(&smp, p, trace, p->tgid + 1, count), frame, &frame, 1, 0, NULL, 0), 0);
	slice_seal(s, t + S);
	assert_int_equal(history_add_slice(h, s), 0);
	slice_free(s);
}

struct totals {
	uint64_t count, windows;
	uint64_t by_frame[16]; /* frame address - 0x1000 */
	int64_t first_start, last_end;
	char pod[32];
	bool traced;
	uint8_t span[8];
};

static int sum(void *ctx, const struct history_window *w)
{
	struct totals *t = ctx;

	if (!t->windows)
		t->first_start = w->start_ns;
	t->last_end = w->end_ns;
	t->windows++;
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *r = &w->records[i];
		const uint32_t *locs;
		const struct label *ls;
		struct history_location loc;

		assert_int_equal(history_stack(w->epoch, r->stack, &locs), 1);
		history_location(w->epoch, locs[0], &loc);
		assert_int_equal(loc.mapping, 0);
		assert_int_equal(loc.nlines, 0);
		assert_true(loc.address >= 0x1000 && loc.address < 0x1010);
		t->by_frame[loc.address - 0x1000] += r->count;
		t->count += r->count;
		assert_int_equal(r->frequency, 100);
		assert_int_equal(r->tid, r->pid + 1);
		assert_int_equal(history_labels(w->epoch, r->labels, &ls), 2);
		assert_string_equal(ls[0].name, "namespace");
		assert_string_equal(ls[1].name, "pod");
		snprintf(t->pod, sizeof(t->pod), "%s", ls[1].value);
		if (r->traced) {
			t->traced = true;
			memcpy(t->span, r->span_id, sizeof(t->span));
		}
	}
	return 0;
}

static void test_windows_and_ranges(void **state)
{
	(void)state;
	struct history *h = new_history(3600 * S, 64 << 20);
	struct process *p = new_process(100, "api-1");
	struct trace_ids trace = { .trace_id = { 1, 2, 3 }, .span_id = { 0xab, 0xcd } };
	struct totals t = { 0 };
	int64_t t0 = 1700000000 * S, first, last;

	/* 0-30 s: frame 0x1000; 30-40 s: the burst, frame 0x1001 traced; 40-45 s (open): 0x1002. */
	for (int i = 0; i < 30; i++)
		add(h, p, t0 + i * S, 0x1000, 2, NULL);
	for (int i = 30; i < 40; i++)
		add(h, p, t0 + i * S, 0x1001, 50, &trace);
	for (int i = 40; i < 45; i++)
		add(h, p, t0 + i * S, 0x1002, 1, NULL);

	struct history_stats st;
	history_stats(h, &st);
	assert_int_equal(st.windows, 4);
	assert_int_equal(st.samples, 30 * 2 + 10 * 50);

	/* The burst's window only. */
	assert_int_equal(history_query(h, t0 + 31 * S, t0 + 39 * S, sum, &t, &first, &last), 0);
	assert_int_equal(first, t0);
	assert_int_equal(last, t0 + 45 * S);
	assert_int_equal(t.windows, 1);
	assert_int_equal(t.count, 500);
	assert_int_equal(t.by_frame[1], 500);
	assert_true(t.traced);
	assert_int_equal(t.span[0], 0xab);
	assert_int_equal(t.first_start, t0 + 30 * S);
	assert_int_equal(t.last_end, t0 + 40 * S);

	/* The window before: none of the burst. A range touching two windows gets both, whole. */
	memset(&t, 0, sizeof(t));
	assert_int_equal(history_query(h, t0 + 20 * S, t0 + 30 * S, sum, &t, NULL, NULL), 0);
	assert_int_equal(t.windows, 1);
	assert_int_equal(t.by_frame[1], 0);
	assert_int_equal(t.count, 20);
	memset(&t, 0, sizeof(t));
	assert_int_equal(history_query(h, t0 + 25 * S, t0 + 42 * S, sum, &t, NULL, NULL), 0);
	assert_int_equal(t.windows, 3); /* 20-30, 30-40 and the open 40-45 */
	assert_int_equal(t.count, 20 + 500 + 5);
	assert_string_equal(t.pod, "api-1");

	/* Outside what is kept. */
	assert_int_equal(history_query(h, t0 - 100 * S, t0 - 50 * S, sum, &t, NULL, NULL), -ENOENT);
	assert_int_equal(history_query(h, t0 + 100 * S, t0 + 200 * S, sum, &t, NULL, NULL), -ENOENT);
	history_free(h);
	put_process(p);
}

/* One slice [t, t + 1 s) without samples: an idle node. */
static void add_idle(struct history *h, int64_t t)
{
	struct slice *s = slice_new(1, t, 100);

	assert_non_null(s);
	slice_seal(s, t + S);
	assert_int_equal(history_add_slice(h, s), 0);
	slice_free(s);
}

/* Time without samples is covered too: a range on an idle stretch is an empty answer, and the window
 * of a later burst does not reach back into the idle time. */
static void test_idle_time_is_covered(void **state)
{
	(void)state;
	struct history *h = new_history(3600 * S, 64 << 20);
	struct process *p = new_process(100, "api-1");
	struct totals t = { 0 };
	int64_t t0 = 1700000000 * S, first, last;

	for (int i = 0; i < 12; i++)
		add_idle(h, t0 + i * S);
	for (int i = 12; i < 15; i++)
		add(h, p, t0 + i * S, 0x1001, 50, NULL);

	assert_int_equal(history_query(h, t0 + 1 * S, t0 + 3 * S, sum, &t, &first, &last), 0);
	assert_int_equal(first, t0);
	assert_int_equal(last, t0 + 15 * S);
	assert_int_equal(t.windows, 1);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.first_start, t0);
	assert_int_equal(t.last_end, t0 + 10 * S);

	memset(&t, 0, sizeof(t));
	assert_int_equal(history_query(h, t0 + 12 * S, t0 + 15 * S, sum, &t, NULL, NULL), 0);
	assert_int_equal(t.windows, 1);
	assert_int_equal(t.count, 150);
	assert_int_equal(t.first_start, t0 + 10 * S);
	history_free(h);
	put_process(p);
}

/* A query holds up no drain: while it visits its first window, a drain thread adds 1000 s of slices,
 * growing the current epoch's dictionaries by 6000 entries and evicting (retention 40 s) every window
 * and the epoch the query still reads. The query then reads them whole and sees the ring as it was when
 * it began (ASan checks nothing was freed under it). */
struct concurrent {
	struct history *h;
	struct process *p;
	int64_t t0;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool started, done;
	int err;
	struct totals t;
};

static void *drain_thread(void *arg)
{
	struct concurrent *c = arg;
	int err = 0;

	for (int i = 35; i < 1035 && !err; i++) {
		struct slice *s = slice_new(1, c->t0 + i * S, 100);
		int nframes = i < 95 ? 100 : 1;
		struct slice_sample smp;

		err = s ? 0 : -ENOMEM;
		for (int k = 0; k < nframes && !err; k++) {
			uint64_t frame = 0x100000 + (uint64_t)i * 100 + k;

			err = slice_add(s, sample_of(&smp, c->p, NULL, c->p->tgid + 1, 1), frame, &frame, 1, 0, NULL, 0);
		}
		if (s) {
			slice_seal(s, c->t0 + (i + 1) * S);
			err = err ?: history_add_slice(c->h, s);
			slice_free(s);
		}
	}
	pthread_mutex_lock(&c->lock);
	c->err = err;
	c->done = true;
	pthread_cond_signal(&c->done_cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int count_all(void *ctx, const struct history_window *w)
{
	struct totals *t = ctx;

	t->windows++;
	for (size_t i = 0; i < w->n; i++)
		t->count += w->records[i].count;
	return 0;
}

static int visit_while_draining(void *ctx, const struct history_window *w)
{
	struct concurrent *c = ctx;

	if (!c->started) {
		pthread_t thread;
		struct timespec deadline;

		c->started = true;
		assert_int_equal(pthread_create(&thread, NULL, drain_thread, c), 0);
		/* Not a speed limit: the bound only turns a drain stuck behind the query into a failure. */
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 60;
		pthread_mutex_lock(&c->lock);
		while (!c->done && pthread_cond_timedwait(&c->done_cond, &c->lock, &deadline) == 0)
			;
		bool done = c->done;
		pthread_mutex_unlock(&c->lock);
		if (!done)
			fail_msg("the drain thread waited for the query to end");
		assert_int_equal(pthread_join(thread, NULL), 0);
		assert_int_equal(c->err, 0);

		struct history_stats st;
		history_stats(c->h, &st);
		assert_true(st.evictions_retention >= 90);
		assert_int_equal(st.epochs, 1); /* the query's epoch is the ring's no more */
		/* Its 3 windows and the epoch, counted until the query lets go. */
		assert_true(st.held_bytes > 64 * 1024);
	}
	return sum(&c->t, w);
}

static void test_query_during_drains(void **state)
{
	(void)state;
	struct concurrent c = { .h = new_history(40 * S, 64 << 20), .p = new_process(100, "api-1"),
				.t0 = 1700000000 * S };
	int64_t first, last;

	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.done_cond, NULL);
	/* 0-30 s: three sealed windows; 30-35 s: the open one. */
	for (int i = 0; i < 35; i++)
		add(c.h, c.p, c.t0 + i * S, 0x1000 + i % 16, 1 + i % 3, NULL);
	assert_int_equal(history_query(c.h, c.t0, c.t0 + 3600 * S, visit_while_draining, &c, &first, &last), 0);
	assert_int_equal(first, c.t0);
	assert_int_equal(last, c.t0 + 35 * S);
	assert_int_equal(c.t.windows, 4);
	assert_int_equal(c.t.first_start, c.t0);
	assert_int_equal(c.t.last_end, c.t0 + 35 * S);
	uint64_t want = 0;
	for (int i = 0; i < 35; i++)
		want += 1 + i % 3;
	assert_int_equal(c.t.count, want);
	assert_int_equal(c.t.by_frame[0], 1 + 2 + 3);
	assert_string_equal(c.t.pod, "api-1");
	struct history_stats st;
	history_stats(c.h, &st);
	assert_int_equal(st.held_bytes, 0);

	/* What the drains added is there for the next query. */
	struct totals t = { 0 };
	assert_int_equal(history_query(c.h, c.t0 + 1000 * S, c.t0 + 1035 * S, count_all, &t, &first, &last), 0);
	assert_true(first >= c.t0 + 990 * S);
	assert_int_equal(last, c.t0 + 1035 * S);
	assert_true(t.count > 0);
	history_free(c.h);
	put_process(c.p);
	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.done_cond);
}

/* Queries in a loop while a drain thread adds 100 windows (two epochs) of slices with new stacks and
 * evicts (retention 60 s): every window a query sees is whole and consistent (a sealed window holds its
 * ten slices' samples; every stack and label set resolves). Run under ASan and TSan too. */
struct stress {
	struct history *h;
	struct process *p;
	int64_t t0;
	int querying; /* atomic: the drains start once the queries have */
	int done;     /* atomic */
	int err;
};

static uint64_t stress_count(int i)
{
	return 1 + i % 7;
}

static void *stress_drains(void *arg)
{
	struct stress *c = arg;
	int err = 0;

	while (!__atomic_load_n(&c->querying, __ATOMIC_ACQUIRE))
		sched_yield();
	for (int i = 0; i < 1000 && !err; i++) {
		struct slice *s = slice_new(1, c->t0 + i * S, 100);
		struct slice_sample smp;
		uint64_t frames[3] = { 0x200000 + (uint64_t)i * 4, 0x1000, 0x1001 };

		err = s ? 0 : -ENOMEM;
		/* One sample of a stack new in this slice, the rest on a recurring one. */
		err = err ?: slice_add(s, sample_of(&smp, c->p, NULL, c->p->tgid + 1, 1), 1, frames, 3, 0, NULL, 0);
		err = err ?: slice_add(s, sample_of(&smp, c->p, NULL, c->p->tgid + 1, stress_count(i) - 1), 2,
				       frames + 1, 2, 0, NULL, 0);
		if (s) {
			slice_seal(s, c->t0 + (i + 1) * S);
			err = err ?: history_add_slice(c->h, s);
			slice_free(s);
		}
	}
	c->err = err;
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int check_window(void *ctx, const struct history_window *w)
{
	struct stress *c = ctx;
	uint64_t total = 0;

	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *r = &w->records[i];
		const uint32_t *locs;
		const struct label *ls;
		struct history_location loc;
		size_t n = history_stack(w->epoch, r->stack, &locs);

		assert_true(r->stack < w->sizes.stacks && r->labels < w->sizes.labelsets);
		assert_true(n == 2 || n == 3);
		for (size_t k = 0; k < n; k++) {
			assert_true(locs[k] < w->sizes.locations);
			history_location(w->epoch, locs[k], &loc);
		}
		assert_int_equal(loc.address, 0x1001);
		assert_int_equal(history_labels(w->epoch, r->labels, &ls), 2);
		assert_string_equal(ls[1].value, "api-1");
		total += r->count;
	}
	if (w->end_ns - w->start_ns == 10 * S) {
		uint64_t want = 0;
		int first = (int)((w->start_ns - c->t0) / S);

		for (int i = first; i < first + 10; i++)
			want += stress_count(i);
		assert_int_equal(total, want);
	}
	return 0;
}

static void test_queries_during_drains(void **state)
{
	(void)state;
	struct stress c = { .h = new_history(60 * S, 64 << 20), .p = new_process(100, "api-1"),
			    .t0 = 1700000000 * S };
	struct history_range_query q = { .start_ns = c.t0, .end_ns = c.t0 + 3600 * S };
	pthread_t thread;
	int queries = 0;

	assert_int_equal(pthread_create(&thread, NULL, stress_drains, &c), 0);
	while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE)) {
		void *out;
		size_t len;
		int err;

		__atomic_store_n(&c.querying, 1, __ATOMIC_RELEASE);
		err = history_query(c.h, c.t0, c.t0 + 3600 * S, check_window, &c, NULL, NULL);

		assert_true(err == 0 || err == -ENOENT);
		err = history_profile_encode(c.h, &q, 100, &out, &len, NULL, NULL);
		assert_true(err == 0 || err == -ENOENT);
		if (!err)
			free(out);
		queries++;
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(c.err, 0);
	assert_true(queries > 0);
	struct history_stats st;
	history_stats(c.h, &st);
	assert_true(st.evictions_retention > 0);
	assert_int_equal(st.held_bytes, 0);
	history_free(c.h);
	put_process(c.p);
}

static void test_retention(void **state)
{
	(void)state;
	struct history *h = new_history(60 * S, 64 << 20);
	struct process *p = new_process(7, "a");
	struct history_stats st;
	int64_t t0 = 1700000000 * S, first, last;
	struct totals t = { 0 };

	for (int i = 0; i < 600; i++)
		add(h, p, t0 + i * S, 0x1000 + i % 4, 1, NULL);
	history_stats(h, &st);
	/* Windows ending more than 60 s before the newest slice are gone. */
	assert_in_range(st.windows, 5, 7);
	assert_true(st.evictions_retention >= 53);
	assert_int_equal(st.evictions_size, 0);
	assert_int_equal(history_query(h, t0, t0 + 400 * S, sum, &t, &first, &last), -ENOENT);
	assert_true(first >= t0 + 530 * S);
	assert_int_equal(last, t0 + 600 * S);
	history_free(h);
	put_process(p);
}

static void test_max_bytes(void **state)
{
	(void)state;
	const uint64_t max = 4 << 20;
	struct history *h = new_history(3600 * S, max);
	struct process *procs[8];
	struct history_stats st;
	int64_t t0 = 1700000000 * S;
	uint64_t peak = 0;

	for (int i = 0; i < 8; i++)
		procs[i] = new_process(1000 + i, i % 2 ? "odd" : "even");
	/* Many distinct stacks: every slice has 200 new ones, 20 frames deep, from 4096 addresses. */
	for (int i = 0; i < 300; i++) {
		struct slice *s = slice_new(1, t0 + i * S, 19);
		static const struct trace_ids none;

		for (int k = 0; k < 200; k++) {
			uint64_t frames[20];

			for (int f = 0; f < 20; f++)
				frames[f] = 0x400000 + (((uint64_t)i * 200 + k) * 2654435761u >> (f % 7)) % 4096;
			struct slice_sample smp;

			assert_int_equal(slice_add(s, sample_of(&smp, procs[k % 8], &none, 1, 1), (uint64_t)i * 200 + k,
						   frames, 20, 0, NULL, 0), 0);
		}
		slice_seal(s, t0 + (i + 1) * S);
		assert_int_equal(history_add_slice(h, s), 0);
		slice_free(s);
		history_stats(h, &st);
		if (st.bytes > peak)
			peak = st.bytes;
	}
	print_message("max-bytes %llu: peak %llu, %llu windows, %llu epochs, %llu size evictions\n",
		      (unsigned long long)max, (unsigned long long)peak, (unsigned long long)st.windows,
		      (unsigned long long)st.epochs, (unsigned long long)st.evictions_size);
	assert_true(peak <= max);
	assert_true(st.evictions_size > 0);
	assert_true(st.windows > 0);
	history_free(h);
	for (int i = 0; i < 8; i++)
		put_process(procs[i]);
}

static void gunzip(const void *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	z_stream zs = { .next_in = (Bytef *)in, .avail_in = inlen };
	size_t cap = 1 << 16;
	int ret;

	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	*out = malloc(cap);
	*outlen = 0;
	do {
		if (*outlen == cap)
			*out = realloc(*out, cap *= 2);
		zs.next_out = *out + *outlen;
		zs.avail_out = cap - *outlen;
		ret = inflate(&zs, Z_NO_FLUSH);
		assert_true(ret == Z_OK || ret == Z_STREAM_END);
		*outlen = cap - zs.avail_out;
	} while (ret != Z_STREAM_END);
	inflateEnd(&zs);
}

static Perftools__Profiles__Profile *range_profile_of(struct history *h, const char *query, bool offcpu)
{
	struct history_range_query q;
	char err[256] = "";
	void *gz;
	size_t gzlen, rawlen;
	uint8_t *raw;
	int64_t first, last;

	if (history_parse_range_query(query, &q, err, sizeof(err)) != 1)
		fail_msg("query %s: %s", query, err);
	q.offcpu = offcpu;
	assert_int_equal(history_profile_encode(h, &q, 100, &gz, &gzlen, &first, &last), 0);
	history_range_query_free(&q);
	gunzip(gz, gzlen, &raw, &rawlen);
	free(gz);
	Perftools__Profiles__Profile *p = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	free(raw);
	assert_non_null(p);
	return p;
}

static Perftools__Profiles__Profile *range_profile(struct history *h, const char *query)
{
	return range_profile_of(h, query, false);
}

static int64_t total_of(const Perftools__Profiles__Profile *p, uint64_t address)
{
	int64_t n = 0;

	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Location *l = p->location[p->sample[i]->location_id[0] - 1];

		if (!address || l->address == address)
			n += p->sample[i]->value[0];
	}
	return n;
}

static void test_pprof_of_range(void **state)
{
	(void)state;
	struct history *h = new_history(3600 * S, 64 << 20);
	struct process *a = new_process(10, "api-1"), *b = new_process(20, "web-1");
	int64_t t0 = 1700000000LL * S;

	for (int i = 0; i < 20; i++) {
		struct slice *s = slice_new(1, t0 + i * S, 100);
		uint64_t fa = 0x1000, fb = 0x1001;
		struct slice_sample smp;

		assert_int_equal(slice_add(s, sample_of(&smp, a, NULL, 11, 3), fa, &fa, 1, 0, NULL, 0), 0);
		assert_int_equal(slice_add(s, sample_of(&smp, b, NULL, 21, 5), fb, &fb, 1, 0, NULL, 0), 0);
		slice_seal(s, t0 + (i + 1) * S);
		assert_int_equal(history_add_slice(h, s), 0);
		slice_free(s);
	}
	/* 1700000010 to 1700000020: the second window, whole. */
	Perftools__Profiles__Profile *p = range_profile(h, "start=1700000012&end=2023-11-14T22:13:38Z");
	assert_int_equal(p->time_nanos, t0 + 10 * S);
	assert_int_equal(p->duration_nanos, 10 * S);
	assert_int_equal(p->period, 10000000);
	assert_int_equal(total_of(p, 0x1000), 30);
	assert_int_equal(total_of(p, 0x1001), 50);
	perftools__profiles__profile__free_unpacked(p, NULL);

	p = range_profile(h, "start=1700000000&end=1700000020&match[]=%7Bpod%3D~%22api-.%2A%22%7D");
	assert_int_equal(total_of(p, 0), 60);
	assert_int_equal(total_of(p, 0x1000), 60);
	/* Labels as the live encoder writes them: target labels, then pid and tid numbers. */
	const Perftools__Profiles__Sample *s = p->sample[0];
	assert_int_equal(s->n_label, 4);
	assert_int_equal(s->value[1], 3 * 10000000LL * (s->value[0] / 3));
	perftools__profiles__profile__free_unpacked(p, NULL);

	p = range_profile(h, "start=1700000000&end=1700000020&match%5B%5D={pod=\"web-1\"}&match[]={pod=\"none\"}");
	assert_int_equal(total_of(p, 0), 100);
	perftools__profiles__profile__free_unpacked(p, NULL);

	struct history_range_query q;
	char err[256];
	void *gz;
	size_t gzlen;
	int64_t first, last;
	assert_int_equal(history_parse_range_query("start=1600000000&end=1600000100", &q, err, sizeof(err)), 1);
	assert_int_equal(history_profile_encode(h, &q, 100, &gz, &gzlen, &first, &last), -ENOENT);
	assert_int_equal(first, t0);
	assert_int_equal(last, t0 + 20 * S);
	history_range_query_free(&q);

	history_free(h);
	put_process(a);
	put_process(b);
}

/* Off-CPU waits and nanoseconds share the ring with CPU samples (through closed, encoded windows and
 * the open one): each profile shows only its own, as two values of one sample per stack. */
static void test_offcpu_kinds(void **state)
{
	(void)state;
	struct history *h = new_history(3600 * S, 64 << 20);
	struct process *a = new_process(10, "api-1");
	int64_t t0 = 1700000000LL * S;

	for (int i = 0; i < 15; i++) {
		struct slice *s = slice_new(1, t0 + i * S, 100);
		uint64_t cpu = 0x1000, wait = 0x1001;
		struct slice_sample smp;

		assert_int_equal(slice_add(s, sample_of(&smp, a, NULL, 11, 2), cpu, &cpu, 1, 0, NULL, 0), 0);
		sample_of(&smp, a, NULL, 11, 4)->kind = SAMPLE_KIND_OFFCPU_WAITS;
		assert_int_equal(slice_add(s, &smp, wait, &wait, 1, 0, NULL, 0), 0);
		sample_of(&smp, a, NULL, 11, 7000000)->kind = SAMPLE_KIND_OFFCPU_NS;
		assert_int_equal(slice_add(s, &smp, wait, &wait, 1, 0, NULL, 0), 0);
		slice_seal(s, t0 + (i + 1) * S);
		assert_int_equal(history_add_slice(h, s), 0);
		slice_free(s);
	}
	Perftools__Profiles__Profile *p = range_profile(h, "start=1700000000&end=1700000015");
	assert_int_equal(total_of(p, 0), 30);
	assert_int_equal(total_of(p, 0x1001), 0);
	perftools__profiles__profile__free_unpacked(p, NULL);

	p = range_profile_of(h, "start=1700000000&end=1700000015", true);
	assert_string_equal(p->string_table[p->sample_type[1]->type], "offcpu");
	assert_string_equal(p->string_table[p->period_type->type], "offcpu");
	assert_int_equal(p->period, 1);
	assert_int_equal(total_of(p, 0x1000), 0);
	assert_int_equal(p->n_sample, 1);
	assert_int_equal(p->sample[0]->value[0], 15 * 4);
	assert_int_equal(p->sample[0]->value[1], 15 * 7000000LL);
	perftools__profiles__profile__free_unpacked(p, NULL);

	history_free(h);
	put_process(a);
}

static void test_parse_query(void **state)
{
	(void)state;
	struct history_range_query q;
	char err[256];
	int64_t ns;

	assert_int_equal(history_parse_time("1700000000", &ns), 0);
	assert_int_equal(ns, 1700000000LL * S);
	assert_int_equal(history_parse_time("1700000000.25", &ns), 0);
	assert_int_equal(ns, 1700000000LL * S + 250000000);
	assert_int_equal(history_parse_time("2023-11-14T22:13:20Z", &ns), 0);
	assert_int_equal(ns, 1700000000LL * S);
	assert_int_equal(history_parse_time("2023-11-14T23:13:20.5+01:00", &ns), 0);
	assert_int_equal(ns, 1700000000LL * S + 500000000);
	assert_int_equal(history_parse_time("yesterday", &ns), -EINVAL);
	/* Outside 1678..2261 int64 nanoseconds would overflow. */
	assert_int_equal(history_parse_time("9999-12-31T23:59:59Z", &ns), -EINVAL);
	assert_int_equal(history_parse_time("0001-01-01T00:00:00Z", &ns), -EINVAL);
	assert_int_equal(history_parse_time("2261-12-31T23:59:59Z", &ns), 0);
	assert_int_equal(history_parse_time("2023-11-14", &ns), -EINVAL);
	assert_int_equal(history_parse_time("-5", &ns), -EINVAL);

	assert_int_equal(history_parse_range_query("seconds=5", &q, err, sizeof(err)), 0);
	assert_int_equal(history_parse_range_query(NULL, &q, err, sizeof(err)), 0);
	assert_int_equal(history_parse_range_query("start=1", &q, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid query: end is missing (start and end go together)");
	assert_int_equal(history_parse_range_query("start=x&end=2", &q, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid start: not unix seconds or an RFC 3339 time");
	assert_int_equal(history_parse_range_query("start=5&end=2", &q, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid query: end must be after start");
	assert_int_equal(history_parse_range_query("start=1&end=2&match[]={a=b}", &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid match[] {a=b}: parse error at char 4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows_and_ranges),
		cmocka_unit_test(test_idle_time_is_covered),
		cmocka_unit_test(test_query_during_drains),
		cmocka_unit_test(test_queries_during_drains),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_max_bytes),
		cmocka_unit_test(test_pprof_of_range),
		cmocka_unit_test(test_offcpu_kinds),
		cmocka_unit_test(test_parse_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
