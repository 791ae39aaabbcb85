/*
 * weights: a CPU workload whose profile is known in advance.
 *
 * Each of N threads runs worker(), which spends its CPU time in three leaf functions with fixed shares
 * (default 50/30/20): main -> worker -> hot_a / hot_b / hot_c (the first worker runs on the main
 * thread, the others under pthread's start_thread). The shares are exact in thread CPU time: worker
 * measures every call with CLOCK_THREAD_CPUTIME_ID and always runs the function furthest behind its
 * target, so preemption by other processes does not skew them. Each call's length is random (0.5x to
 * 1.5x the nominal chunk): a fixed length makes the a/b/c sequence periodic, and a period close to
 * the sampling period phase-locks with it and skews the sampled shares by several points.
 *
 * --mode=syscall instead spends the time in syscall_heavy(), which issues read(2) of /dev/zero
 * directly (inline syscall instruction on x86-64, so the user stack stays main/worker -> syscall_heavy)
 * and thus shows kernel frames below the user ones. --mode=mixed does both (half each).
 *
 * Built with -O2 -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer; the hot functions are
 * noinline and make an opaque call so they always have a frame and the frame-pointer chain is complete.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

enum mode { MODE_WEIGHTS, MODE_SYSCALL, MODE_MIXED };

static enum mode mode = MODE_WEIGHTS;
static unsigned weights[3] = {50, 30, 20};
static double duration_s = 10.0;
static unsigned long chunk_iters = 200000; /* iterations per hot_x call, roughly 0.1-0.3 ms */
static int zero_fd = -1;

/* Opaque to the compiler: the hot functions call through it so they are never leaves. */
NOINLINE void weights_opaque(void) { __asm__ volatile("" ::: "memory"); }
static void (*volatile opaque_fn)(void) = weights_opaque;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SPIN(n)                                                                                     \
	do {                                                                                        \
		for (unsigned long i_ = 0; i_ < (n); i_++)                                          \
			__asm__ volatile("" : : "r"(i_) : "memory");                                \
	} while (0)

NOINLINE uint64_t hot_a(unsigned long n)
{
	opaque_fn();
	SPIN(n);
	return n;
}

NOINLINE uint64_t hot_b(unsigned long n)
{
	opaque_fn();
	SPIN(n);
	return n + 1;
}

NOINLINE uint64_t hot_c(unsigned long n)
{
	opaque_fn();
	SPIN(n);
	return n + 2;
}

static char zbuf[64 * 1024];

/* read(2) of /dev/zero in a tight loop: most of the time is in the kernel (entry, vfs_read, clearing
 * the user buffer). */
NOINLINE long syscall_heavy(unsigned calls)
{
	long total = 0;
	opaque_fn();
	for (unsigned i = 0; i < calls; i++) {
		long ret;
#if defined(__x86_64__)
		/* The syscall instruction right here, not in libc's wrapper (built without frame
		 * pointers): the user-space registers the kernel saves then point into this frame. */
		register long rdi __asm__("rdi") = zero_fd;
		register long rsi __asm__("rsi") = (long)zbuf;
		register long rdx __asm__("rdx") = sizeof(zbuf);
		__asm__ volatile("syscall"
				 : "=a"(ret)
				 : "0"((long)SYS_read), "r"(rdi), "r"(rsi), "r"(rdx)
				 : "rcx", "r11", "memory");
#else
		ret = syscall(SYS_read, zero_fd, zbuf, sizeof(zbuf));
#endif
		total += ret;
	}
	return total;
}

static volatile uint64_t sink;

/* xorshift64: per thread, no locks, no libc state shared between the workers. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

NOINLINE void *worker(void *arg)
{
	(void)arg;
	uint64_t used[3] = {0, 0, 0};
	uint64_t end = mono_ns() + (uint64_t)(duration_s * 1e9);
	uint64_t (*const hot[3])(unsigned long) = {hot_a, hot_b, hot_c};
	unsigned round = 0;
	uint64_t random_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)syscall(SYS_gettid) << 20) ^ mono_ns();

	while (mono_ns() < end) {
		if (mode == MODE_SYSCALL || (mode == MODE_MIXED && (round++ & 1))) {
			sink += (uint64_t)syscall_heavy(16);
			continue;
		}
		/* Run the function furthest behind its share: minimal used[i] / weights[i]. */
		int best = -1;
		for (int i = 0; i < 3; i++) {
			if (!weights[i])
				continue;
			if (best < 0 || (double)used[i] / weights[i] < (double)used[best] / weights[best])
				best = i;
		}
		if (best < 0)
			break;
		uint64_t t0 = thread_cpu_ns();
		unsigned long iters = chunk_iters / 2 + next_random(&random_state) % chunk_iters;
		sink += hot[best](iters);
		used[best] += thread_cpu_ns() - t0;
	}
	return NULL;
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [-t THREADS] [-d SECONDS] [-m weights|syscall|mixed] [-w A,B,C]\n"
		"  -t, --threads N    busy threads (default 1); the first runs on the main thread\n"
		"  -d, --seconds S    how long to run (default 10, fractions allowed)\n"
		"  -m, --mode M       weights: CPU time in hot_a/hot_b/hot_c by the weights (default)\n"
		"                     syscall: read(2) of /dev/zero in syscall_heavy (kernel frames)\n"
		"                     mixed:   half of each\n"
		"  -w, --weights A,B,C  CPU shares of hot_a,hot_b,hot_c (default 50,30,20)\n"
		"Prints \"weights pid=PID tids=T1,T2,...\" on stdout once all threads run.\n",
		argv0);
}

static pid_t tids[256];
static unsigned ntids_started;
static pthread_mutex_t tid_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tid_cond = PTHREAD_COND_INITIALIZER;

static void register_tid(void)
{
	pthread_mutex_lock(&tid_lock);
	tids[ntids_started++] = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&tid_cond);
	pthread_mutex_unlock(&tid_lock);
}

static void *thread_main(void *arg)
{
	register_tid();
	return worker(arg);
}

int main(int argc, char **argv)
{
	unsigned threads = 1;
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 't'}, {"seconds", required_argument, NULL, 'd'},
		{"mode", required_argument, NULL, 'm'},    {"weights", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "t:d:m:w:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 't':
			threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || threads < 1 || threads > 256) {
				fprintf(stderr, "weights: bad --threads %s (1..256)\n", optarg);
				return 2;
			}
			break;
		case 'd':
			duration_s = strtod(optarg, &end);
			if (*end || duration_s <= 0) {
				fprintf(stderr, "weights: bad --seconds %s\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (!strcmp(optarg, "weights"))
				mode = MODE_WEIGHTS;
			else if (!strcmp(optarg, "syscall"))
				mode = MODE_SYSCALL;
			else if (!strcmp(optarg, "mixed"))
				mode = MODE_MIXED;
			else {
				fprintf(stderr, "weights: bad --mode %s\n", optarg);
				return 2;
			}
			break;
		case 'w':
			if (sscanf(optarg, "%u,%u,%u", &weights[0], &weights[1], &weights[2]) != 3 ||
			    weights[0] + weights[1] + weights[2] == 0) {
				fprintf(stderr, "weights: bad --weights %s (A,B,C)\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (zero_fd < 0) {
		perror("weights: /dev/zero");
		return 1;
	}

	pthread_t th[256];
	register_tid();
	for (unsigned i = 1; i < threads; i++) {
		int err = pthread_create(&th[i], NULL, thread_main, NULL);
		if (err) {
			fprintf(stderr, "weights: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	pthread_mutex_lock(&tid_lock);
	while (ntids_started < threads)
		pthread_cond_wait(&tid_cond, &tid_lock);
	pthread_mutex_unlock(&tid_lock);
	printf("weights pid=%d tids=", (int)getpid());
	for (unsigned i = 0; i < threads; i++)
		printf("%s%d", i ? "," : "", (int)tids[i]);
	printf("\n");
	fflush(stdout);

	worker(NULL);
	for (unsigned i = 1; i < threads; i++)
		pthread_join(th[i], NULL);
	return 0;
}
