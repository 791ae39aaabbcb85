/*
 * tracectx: a CPU workload that publishes a known trace context while it burns CPU in one function and
 * none while it burns in another, for the trace-context integration tests.
 *
 * Two threads (index 0 and 1), each with fixed ids:
 *   trace_id byte k = 0x10 * (index + 1) + k   (thread 0: 101112...1f, thread 1: 202122...2f)
 *   span_id byte k  = 0xa0 + 0x10 * index + k  (thread 0: a0a1...a7,   thread 1: b0b1...b7)
 * Each thread prints "thread <tid> trace_id=<32 hex> span_id=<16 hex>" once, then for -d SECONDS
 * repeats: set its context, burn ~50 ms of thread CPU time in burn_with_context(), clear it, burn ~50 ms
 * in burn_without_context().
 *
 * Variants, chosen at build time:
 *   TRACECTX_OTEL_EXE  otel_thread_ctx_v1 in the executable (integrations/trace-context)
 *   TRACECTX_OTEL_DSO  the same writer in libtracectxwriter.so (TLSDESC), linked at startup
 *   TRACECTX_CUSTOM    a custom-labels v1 writer in the executable: labels trace_id and span_id as
 *                      lowercase hex strings. With -b each set starts with a bad id and repeats it valid
 *                      after (thread 0: a trace_id of 30 characters, thread 1: a span_id of 14): the
 *                      first of a key wins, so a reader must find the set invalid and take no ids.
 *
 * Built like weights.c (-O2 -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer); the burn functions
 * are noinline and call an opaque function, so frame-pointer stacks always show them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
#define NTHREADS 2
#define BURN_NS 50000000ull
#define CHUNK_ITERS 100000ul /* spins between clock reads, ~0.1 ms */

struct ids {
	unsigned index;
	uint8_t trace_id[16], span_id[8];
	char trace_hex[33], span_hex[17];
};

#if defined(TRACECTX_CUSTOM)

#include <string.h>

/* Polar Signals custom-labels v1, LP64 layout. */
struct custom_labels_string {
	size_t len;
	const unsigned char *buf;
};

struct custom_labels_label {
	struct custom_labels_string key, value;
};

struct custom_labels_labelset {
	struct custom_labels_label *storage;
	size_t count, capacity;
};

__attribute__((visibility("default"))) const uint32_t custom_labels_abi_version = 1;
__attribute__((visibility("default"))) __thread struct custom_labels_labelset *custom_labels_current_set;

#define BAD_FIRST_IDS_OPTION 1
static int bad_first_ids;

static __thread struct custom_labels_label labels[3];
static __thread struct custom_labels_labelset labelset;

static void set_string(struct custom_labels_string *s, const char *text)
{
	s->len = strlen(text);
	s->buf = (const unsigned char *)text;
}

/* -b: the bad id first (the valid text cut short by two characters), its valid duplicate after. */
static size_t bad_first_labels(const struct ids *id)
{
	int bad_trace = id->index == 0;

	set_string(&labels[0].key, bad_trace ? "trace_id" : "span_id");
	set_string(&labels[0].value, bad_trace ? id->trace_hex : id->span_hex);
	labels[0].value.len -= 2;
	set_string(&labels[1].key, "trace_id");
	set_string(&labels[1].value, id->trace_hex);
	set_string(&labels[2].key, "span_id");
	set_string(&labels[2].value, id->span_hex);
	return 3;
}

/* The label set only ever holds this thread's fixed ids: it is built once and then published or not. */
static void context_set(const struct ids *id)
{
	if (!labelset.storage) {
		size_t n = 2;

		if (bad_first_ids) {
			n = bad_first_labels(id);
		} else {
			set_string(&labels[0].key, "trace_id");
			set_string(&labels[0].value, id->trace_hex);
			set_string(&labels[1].key, "span_id");
			set_string(&labels[1].value, id->span_hex);
		}
		labelset.storage = labels;
		labelset.count = labelset.capacity = n;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&custom_labels_current_set, &labelset, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void context_clear(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&custom_labels_current_set, NULL, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

#elif defined(TRACECTX_OTEL_EXE) || defined(TRACECTX_OTEL_DSO)

#ifdef TRACECTX_OTEL_EXE
#define ANORAK_TRACE_CONTEXT_IMPLEMENTATION
#endif
#include "anorak_trace_context.h"

static void context_set(const struct ids *id)
{
	if (anorak_trace_context_set(id->trace_id, id->span_id, 1))
		abort();
}

static void context_clear(void)
{
	anorak_trace_context_clear();
}

#define BAD_FIRST_IDS_OPTION 0
static int bad_first_ids;

#else
#error "define TRACECTX_OTEL_EXE, TRACECTX_OTEL_DSO or TRACECTX_CUSTOM"
#endif

static double duration_s = 10.0;

/* Opaque to the compiler: the burn functions call through it so they are never leaves. */
NOINLINE void tracectx_opaque(void) { __asm__ volatile("" ::: "memory"); }
static void (*volatile opaque_fn)(void) = tracectx_opaque;

#define SPIN(n)                                                                                     \
	do {                                                                                        \
		for (unsigned long i_ = 0; i_ < (n); i_++)                                          \
			__asm__ volatile("" : : "r"(i_) : "memory");                                \
	} while (0)

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Different return values keep the compiler from folding the two identical loops into one. */
NOINLINE uint64_t burn_with_context(uint64_t ns)
{
	uint64_t end = clock_ns(CLOCK_THREAD_CPUTIME_ID) + ns;

	do {
		opaque_fn();
		SPIN(CHUNK_ITERS);
	} while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < end);
	return 1;
}

NOINLINE uint64_t burn_without_context(uint64_t ns)
{
	uint64_t end = clock_ns(CLOCK_THREAD_CPUTIME_ID) + ns;

	do {
		opaque_fn();
		SPIN(CHUNK_ITERS);
	} while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < end);
	return 2;
}

static void make_ids(unsigned index, struct ids *id)
{
	static const char digits[] = "0123456789abcdef";

	id->index = index;
	for (unsigned k = 0; k < 16; k++)
		id->trace_id[k] = (uint8_t)(0x10 * (index + 1) + k);
	for (unsigned k = 0; k < 8; k++)
		id->span_id[k] = (uint8_t)(0xa0 + 0x10 * index + k);
	for (unsigned k = 0; k < 16; k++) {
		id->trace_hex[2 * k] = digits[id->trace_id[k] >> 4];
		id->trace_hex[2 * k + 1] = digits[id->trace_id[k] & 15];
	}
	for (unsigned k = 0; k < 8; k++) {
		id->span_hex[2 * k] = digits[id->span_id[k] >> 4];
		id->span_hex[2 * k + 1] = digits[id->span_id[k] & 15];
	}
	id->trace_hex[32] = '\0';
	id->span_hex[16] = '\0';
}

static volatile uint64_t sink;

NOINLINE void *worker(void *arg)
{
	uint64_t end = clock_ns(CLOCK_MONOTONIC) + (uint64_t)(duration_s * 1e9);
	struct ids id;

	make_ids((unsigned)(uintptr_t)arg, &id);
	printf("thread %ld trace_id=%s span_id=%s\n", (long)syscall(SYS_gettid), id.trace_hex, id.span_hex);
	fflush(stdout);
	while (clock_ns(CLOCK_MONOTONIC) < end) {
		context_set(&id);
		sink += burn_with_context(BURN_NS);
		context_clear();
		sink += burn_without_context(BURN_NS);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t threads[NTHREADS];
	int opt;

	while ((opt = getopt(argc, argv, "bd:")) != -1) {
		if (opt == 'b' && BAD_FIRST_IDS_OPTION) {
			bad_first_ids = 1;
		} else if (opt != 'd' || (duration_s = atof(optarg)) <= 0) {
			fprintf(stderr, "usage: %s [-d SECONDS]%s\n", argv[0], BAD_FIRST_IDS_OPTION ? " [-b]" : "");
			return 2;
		}
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		if (pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i)) {
			perror("pthread_create");
			return 1;
		}
	}
	for (unsigned i = 0; i < NTHREADS; i++)
		pthread_join(threads[i], NULL);
	return 0;
}
