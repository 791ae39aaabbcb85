/*
 * The queue of exec events waiting for their grace time (exporter/sampling/exec_queue.c): due in
 * arrival order once EXEC_GRACE_NS passed, taken out by a sample or an exit (only an exit counts as
 * skipped), the poll timeout shortened to the oldest one's due time, and a full queue refusing (counted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/sampling/exec_queue.h"

#define MS 1000000LL

static struct process_event exec_at(uint32_t tgid, int64_t ktime_ns)
{
	return (struct process_event){ .type = PROCESS_EVENT_EXEC, .tgid = tgid, .ktime_ns = ktime_ns };
}

static void test_due_in_order(void **state)
{
	static struct exec_queue q;
	struct process_event a = exec_at(10, 100 * MS), b = exec_at(11, 120 * MS), e;

	(void)state;
	memset(&q, 0, sizeof(q));
	assert_true(exec_queue_push(&q, &a));
	assert_true(exec_queue_push(&q, &b));
	assert_int_equal(exec_queue_wait_ms(&q, 100 * MS, 200), EXEC_GRACE_NS / MS);
	assert_int_equal(exec_queue_wait_ms(&q, 100 * MS, 10), 10);
	assert_false(exec_queue_pop_due(&q, 100 * MS + EXEC_GRACE_NS - 1, &e));
	assert_true(exec_queue_pop_due(&q, 100 * MS + EXEC_GRACE_NS, &e));
	assert_int_equal(e.tgid, 10);
	assert_false(exec_queue_pop_due(&q, 100 * MS + EXEC_GRACE_NS, &e));
	assert_true(exec_queue_pop_due(&q, 200 * MS, &e));
	assert_int_equal(e.tgid, 11);
	assert_int_equal(exec_queue_wait_ms(&q, 200 * MS, 200), 200);
}

static void test_taken(void **state)
{
	static struct exec_queue q;
	struct process_event a = exec_at(10, 0), b = exec_at(11, MS), c = exec_at(12, 2 * MS), e;

	(void)state;
	memset(&q, 0, sizeof(q));
	exec_queue_push(&q, &a);
	exec_queue_push(&q, &b);
	exec_queue_push(&q, &c);
	assert_true(exec_queue_take(&q, 10, false)); /* sampled: read now, not skipped */
	assert_true(exec_queue_take(&q, 12, true));  /* exited unsampled */
	assert_false(exec_queue_take(&q, 12, true));
	assert_int_equal(atomic_load(&q.skipped), 1);
	assert_int_equal(exec_queue_wait_ms(&q, 0, 1000), (MS + EXEC_GRACE_NS) / MS);
	assert_true(exec_queue_pop_due(&q, 1000 * MS, &e));
	assert_int_equal(e.tgid, 11);
	assert_false(exec_queue_pop_due(&q, 1000 * MS, &e));
}

static void test_full(void **state)
{
	static struct exec_queue q;
	struct process_event e;

	(void)state;
	memset(&q, 0, sizeof(q));
	for (uint32_t i = 0; i < EXEC_QUEUE_CAP; i++) {
		e = exec_at(i + 1, i);
		assert_true(exec_queue_push(&q, &e));
	}
	e = exec_at(EXEC_QUEUE_CAP + 1, EXEC_QUEUE_CAP);
	assert_false(exec_queue_push(&q, &e));
	assert_int_equal(atomic_load(&q.full), 1);
	/* Room again once the oldest is taken, the ring wrapping around. */
	assert_true(exec_queue_take(&q, 1, true));
	assert_true(exec_queue_push(&q, &e));
	for (uint32_t i = 2; i <= EXEC_QUEUE_CAP + 1; i++) {
		assert_true(exec_queue_pop_due(&q, INT64_MAX / 2, &e));
		assert_int_equal(e.tgid, i);
	}
	assert_false(exec_queue_pop_due(&q, INT64_MAX / 2, &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due_in_order),
		cmocka_unit_test(test_taken),
		cmocka_unit_test(test_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
