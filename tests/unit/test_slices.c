/* Slices: stack dedup, pins keep exactly the slices a request needs, references are released. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <cmocka.h>

#include "exporter/symbols/process.h"
#include "exporter/store/slices.h"

static struct process *new_process(uint32_t tgid)
{
	struct process *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	atomic_init(&p->refs, 1);
	p->tgid = tgid;
	return p;
}

static void test_slice_dedups_stacks(void **state)
{
	(void)state;
	struct process *p = new_process(42);
	struct slice *s = slice_new(1, 0, 19);
	const uint64_t user[] = { 0x401000, 0x402000, 0x403000 };
	const uint64_t kernel[] = { 0xffffffff81000000ULL };

	assert_int_equal(slice_add(s, &(struct slice_sample){ .process = process_get(p), .tid = 43, .cgroup_id = 7, .count = 5 }, 3, user, 3, 9, kernel, 1), 0);
	assert_int_equal(slice_add(s, &(struct slice_sample){ .process = process_get(p), .tid = 44, .cgroup_id = 7, .count = 2 }, 3, user, 3, 9, kernel, 1), 0);
	assert_int_equal(slice_add(s, &(struct slice_sample){ .process = process_get(p), .tid = 44, .cgroup_id = 7, .count = 1 }, 3, user, 3, 0, NULL, 0), 0);
	slice_seal(s, 1000);

	assert_int_equal(s->nsamples, 3);
	/* The first two share one stored stack; the third has none of the kernel frames. */
	assert_int_equal(s->samples[0].frames, s->samples[1].frames);
	assert_int_equal(s->nframes, 4 + 3);
	const uint64_t *f = s->frames + s->samples[0].frames;
	assert_int_equal(s->samples[0].nkernel, 1);
	assert_int_equal(f[0], kernel[0]);
	assert_int_equal(f[1], user[0]);
	assert_int_equal(s->samples[2].nkernel, 0);
	assert_int_equal((s->frames + s->samples[2].frames)[0], user[0]);
	assert_int_equal(atomic_load(&p->refs), 4);
	slice_free(s);
	assert_int_equal(atomic_load(&p->refs), 1);
	process_put(p);
}

static void test_slice_many_stacks(void **state)
{
	(void)state;
	struct process *p = new_process(1);
	struct slice *s = slice_new(1, 0, 99);

	for (int32_t i = 1; i <= 5000; i++) {
		uint64_t frame = 0x1000 + (uint64_t)i;
		assert_int_equal(slice_add(s, &(struct slice_sample){ .process = process_get(p), .tid = 1, .count = 1 }, (uint64_t)i, &frame, 1, 0, NULL, 0), 0);
	}
	for (int32_t i = 1; i <= 5000; i++)
		assert_int_equal(s->frames[s->samples[i - 1].frames], 0x1000 + (uint64_t)i);
	slice_free(s);
	process_put(p);
}

struct visit {
	uint64_t seqs[16];
	size_t n;
};

static void record_seq(const struct slice *s, void *ctx)
{
	struct visit *v = ctx;

	v->seqs[v->n++] = s->seq;
}

static void append(struct slice_store *w, uint64_t seq)
{
	struct slice *s = slice_new(seq, (int64_t)seq - 1, 19);

	assert_non_null(s);
	slice_seal(s, (int64_t)seq);
	slice_store_append(w, s);
}

static void test_pins_keep_what_requests_need(void **state)
{
	(void)state;
	struct slice_store w;
	struct visit v = { 0 };

	slice_store_init(&w);
	append(&w, 1); /* nobody asked: freed at once */
	assert_null(w.head);

	assert_int_equal(slice_store_pin(&w, 1), 0);
	append(&w, 2);
	append(&w, 3);
	assert_int_equal(slice_store_pin(&w, 3), 0);
	append(&w, 4);

	slice_store_each(&w, 1, 3, record_seq, &v);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.seqs[0], 2);
	assert_int_equal(v.seqs[1], 3);

	slice_store_unpin(&w, 1);
	assert_int_equal(w.head->seq, 4); /* only the slice after the remaining pin is left */
	v.n = 0;
	slice_store_each(&w, 3, 4, record_seq, &v);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.seqs[0], 4);

	slice_store_unpin(&w, 3);
	assert_null(w.head);
	slice_store_destroy(&w);
}

static void test_wait_returns_on_stop(void **state)
{
	(void)state;
	struct slice_store w;

	slice_store_init(&w);
	append(&w, 1);
	assert_int_equal(slice_store_wait(&w, 1), 0);
	slice_store_stop(&w);
	assert_int_equal(slice_store_wait(&w, 2), -ESHUTDOWN);
	slice_store_destroy(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slice_dedups_stacks),
		cmocka_unit_test(test_slice_many_stacks),
		cmocka_unit_test(test_pins_keep_what_requests_need),
		cmocka_unit_test(test_wait_returns_on_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
