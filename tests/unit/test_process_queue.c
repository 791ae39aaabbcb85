#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/metrics.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/proc/process_queue.h"

/* What the queue did with the jobs and items it was given. Items are small ints cast to pointers. */
struct record {
	pthread_mutex_t lock;
	uint32_t ran_tgid[16];
	uintptr_t ran_item[16];
	bool ran_snap[16];
	unsigned ran, dropped, ticks, ticks_wanted;
};

static void record_run(void *ctx, const struct process_queue_job *job)
{
	struct record *r = ctx;

	pthread_mutex_lock(&r->lock);
	if (r->ran < 16) {
		r->ran_tgid[r->ran] = job->tgid;
		r->ran_item[r->ran] = (uintptr_t)job->item;
		r->ran_snap[r->ran] = job->snap != NULL;
	}
	r->ran++;
	pthread_mutex_unlock(&r->lock);
}

static struct record *dropping; /* drop_item has no context */

static void record_drop(void *item)
{
	(void)item;
	pthread_mutex_lock(&dropping->lock);
	dropping->dropped++;
	pthread_mutex_unlock(&dropping->lock);
}

/* Due again 1 ms later while ticks are wanted. */
static int64_t record_tick(void *ctx)
{
	struct record *r = ctx;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&r->lock);
	bool more = ++r->ticks < r->ticks_wanted;
	pthread_mutex_unlock(&r->lock);
	return more ? now.tv_sec * 1000000000LL + now.tv_nsec + 1000000 : 0;
}

static const struct process_queue_ops ops = {
	.run = record_run,
	.drop_item = record_drop,
	.queued_name = "test_queued",
	.queued_help = "Jobs waiting.",
	.full_name = "test_full_total",
	.full_help = "Requests refused.",
};

static const struct process_queue_ops ticking_ops = {
	.run = record_run,
	.tick = record_tick,
	.drop_item = record_drop,
	.queued_name = "test_queued",
	.queued_help = "Jobs waiting.",
	.full_name = "test_full_total",
	.full_help = "Requests refused.",
};

struct fixture {
	struct record r;
	struct process_queue q;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	pthread_mutex_init(&f->r.lock, NULL);
	dropping = &f->r;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	process_queue_destroy(&f->q);
	pthread_mutex_destroy(&f->r.lock);
	free(f);
	return 0;
}

static void *item(uintptr_t n)
{
	return (void *)n;
}

/* Waits (at most 10 s: a queue that never gets there fails the test) until fn holds. */
static bool wait_until(struct record *r, bool (*fn)(const struct record *, unsigned), unsigned n)
{
	for (int i = 0; i < 10000; i++) {
		pthread_mutex_lock(&r->lock);
		bool done = fn(r, n);
		pthread_mutex_unlock(&r->lock);
		if (done)
			return true;
		usleep(1000);
	}
	return false;
}

static bool ran_at_least(const struct record *r, unsigned n)
{
	return r->ran >= n && r->dropped >= n;
}

static bool ran_jobs(const struct record *r, unsigned n)
{
	return r->ran >= n;
}

static bool ticked_at_least(const struct record *r, unsigned n)
{
	return r->ticks >= n;
}

static void test_runs_in_order_and_drops_items(void **state)
{
	struct fixture *f = *state;

	process_queue_init(&f->q, &ops, &f->r);
	for (uint32_t tgid = 1; tgid <= 3; tgid++)
		assert_int_equal(process_queue_request(&f->q, tgid, item(100 + tgid), NULL), 0);
	assert_int_equal(process_queue_start(&f->q), 0);
	assert_true(wait_until(&f->r, ran_at_least, 3));
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(f->r.ran_tgid[i], i + 1);
		assert_int_equal(f->r.ran_item[i], 101 + i);
	}
}

static void test_later_request_replaces_waiting_one(void **state)
{
	struct fixture *f = *state;

	process_queue_init(&f->q, &ops, &f->r);
	assert_int_equal(process_queue_request(&f->q, 7, item(1), NULL), 0);
	assert_int_equal(process_queue_request(&f->q, 8, item(2), NULL), 0);
	assert_int_equal(process_queue_request(&f->q, 7, item(3), NULL), 0);
	assert_int_equal(f->q.len, 2);
	assert_int_equal(f->r.dropped, 1);
	assert_int_equal(process_queue_start(&f->q), 0);
	assert_true(wait_until(&f->r, ran_at_least, 2));
	/* The replaced job keeps its place: tgid 7 first, with the newer item. */
	assert_int_equal(f->r.ran_tgid[0], 7);
	assert_int_equal(f->r.ran_item[0], 3);
	assert_int_equal(f->r.ran_tgid[1], 8);
	assert_int_equal(f->r.ran, 2);
}

static void test_full_queue_refuses_and_counts(void **state)
{
	struct fixture *f = *state;
	struct metrics_buf b = { 0 };

	process_queue_init(&f->q, &ops, &f->r);
	for (uint32_t tgid = 1; tgid <= PROCESS_QUEUE_MAX; tgid++)
		assert_int_equal(process_queue_request(&f->q, tgid, item(tgid), NULL), 0);
	assert_int_equal(process_queue_request(&f->q, PROCESS_QUEUE_MAX + 1, item(1), NULL), -ENOSPC);
	assert_int_equal(f->r.dropped, 1);
	/* A waiting pid is still taken when full. */
	assert_int_equal(process_queue_request(&f->q, 5, item(5), NULL), 0);
	process_queue_write_metrics(&b, &f->q);
	assert_non_null(strstr(b.data, "test_queued 1024\n"));
	assert_non_null(strstr(b.data, "test_full_total 1\n"));
	metrics_buf_free(&b);
}

static void test_first_requests_keep_their_snapshot(void **state)
{
	struct fixture *f = *state;
	struct maps_snapshot *snap;

	assert_int_equal(maps_snapshot_read("/proc", getpid(), &snap), 0);
	process_queue_init(&f->q, &ops, &f->r);
	for (uint32_t tgid = 1; tgid <= PROCESS_QUEUE_SNAPSHOTS + 1; tgid++)
		assert_int_equal(process_queue_request(&f->q, tgid, NULL, snap), 0);
	assert_int_equal(process_queue_request(&f->q, PROCESS_QUEUE_SNAPSHOTS + 2, NULL, NULL), 0);
	for (uint32_t i = 0; i < PROCESS_QUEUE_SNAPSHOTS + 2; i++) {
		const struct process_queue_job *job = &f->q.jobs[i];

		assert_int_equal(job->snap != NULL, i < PROCESS_QUEUE_SNAPSHOTS);
		/* Past the snapshots, the identity still tells an exec from the same program. */
		assert_int_equal(job->has_id, i <= PROCESS_QUEUE_SNAPSHOTS);
		if (job->has_id)
			assert_true(proc_identity_current(&job->id, "/proc", getpid()));
	}
	maps_snapshot_put(snap);
	assert_int_equal(process_queue_start(&f->q), 0);
	assert_true(wait_until(&f->r, ran_jobs, PROCESS_QUEUE_SNAPSHOTS + 2));
	assert_true(f->r.ran_snap[0]);
}

static void test_stop_drops_waiting_and_refuses_later(void **state)
{
	struct fixture *f = *state;

	process_queue_init(&f->q, &ops, &f->r);
	for (uint32_t tgid = 1; tgid <= 3; tgid++)
		assert_int_equal(process_queue_request(&f->q, tgid, item(tgid), NULL), 0);
	process_queue_stop(&f->q);
	assert_int_equal(f->r.dropped, 3);
	assert_int_equal(f->r.ran, 0);
	assert_int_equal(process_queue_request(&f->q, 9, item(9), NULL), -ESHUTDOWN);
	assert_int_equal(f->r.dropped, 4);
	process_queue_stop(&f->q);
}

static void test_tick_runs_while_it_has_work(void **state)
{
	struct fixture *f = *state;

	f->r.ticks_wanted = 5;
	process_queue_init(&f->q, &ticking_ops, &f->r);
	assert_int_equal(process_queue_start(&f->q), 0);
	assert_int_equal(process_queue_request(&f->q, 1, item(1), NULL), 0);
	/* One tick after the job, then one at each time it gives while it says work waits, then none. */
	assert_true(wait_until(&f->r, ticked_at_least, 5));
	process_queue_stop(&f->q);
	assert_int_equal(f->r.ticks, 5);
	assert_int_equal(f->r.ran, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_in_order_and_drops_items, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later_request_replaces_waiting_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_refuses_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_requests_keep_their_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_drops_waiting_and_refuses_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_runs_while_it_has_work, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
