/*
 * A thread that waits in three known places, in known shares of its time: a pipe read (a helper
 * answers after pipe_ms), a nanosleep (sleep_ms), a contended mutex (a helper holds it mutex_ms).
 *
 *   offcpu -d SECONDS -s STATUS_FILE [-p PIPE_MS] [-n SLEEP_MS] [-m MUTEX_MS]
 *
 * It prints "offcpu pid=P tids=T" (T: the waiting thread) when it starts. The waiting thread measures its own time in each place (CLOCK_MONOTONIC around the call) and after
 * every round rewrites STATUS_FILE with "tid pipe_ns sleep_ns mutex_ns rounds", so a test can take the
 * difference over its profile window.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static unsigned pipe_ms = 10, sleep_ms = 6, mutex_ms = 4;
static int ask_pipe[2], answer_pipe[2], lock_ask[2], lock_held[2];
static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_ms_(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) != 1)
		if (errno != EINTR)
			exit(3);
}

static void write_byte(int fd)
{
	if (write(fd, "x", 1) != 1)
		exit(3);
}

/* Answers each request on ask_pipe pipe_ms later. */
static void *pipe_helper(void *arg)
{
	(void)arg;
	for (;;) {
		read_byte(ask_pipe[0]);
		sleep_ms_(pipe_ms);
		write_byte(answer_pipe[1]);
	}
	return NULL;
}

/* On each request takes the mutex, says so, and holds it mutex_ms. */
static void *lock_helper(void *arg)
{
	(void)arg;
	for (;;) {
		read_byte(lock_ask[0]);
		pthread_mutex_lock(&contended);
		write_byte(lock_held[1]);
		sleep_ms_(mutex_ms);
		pthread_mutex_unlock(&contended);
	}
	return NULL;
}

__attribute__((noinline)) static void wait_pipe(void)
{
	write_byte(ask_pipe[1]);
	read_byte(answer_pipe[0]);
}

__attribute__((noinline)) static void wait_sleep(void)
{
	sleep_ms_(sleep_ms);
}

__attribute__((noinline)) static void wait_mutex(void)
{
	write_byte(lock_ask[1]);
	read_byte(lock_held[0]);
	pthread_mutex_lock(&contended);
	pthread_mutex_unlock(&contended);
}

struct run {
	double seconds;
	const char *status;
};

static void write_status(const char *path, long tid, const uint64_t *ns, uint64_t rounds)
{
	char tmp[4096], line[160];
	int n = snprintf(line, sizeof(line), "%ld %llu %llu %llu %llu\n", tid, (unsigned long long)ns[0],
			 (unsigned long long)ns[1], (unsigned long long)ns[2], (unsigned long long)rounds);
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fwrite(line, 1, n, f) != (size_t)n || fclose(f) || rename(tmp, path))
		exit(4);
}

__attribute__((noinline)) static void *waiter(void *arg)
{
	const struct run *r = arg;
	void (*const places[3])(void) = { wait_pipe, wait_sleep, wait_mutex };
	uint64_t ns[3] = { 0 }, rounds = 0, end = now_ns() + (uint64_t)(r->seconds * 1e9);
	long tid = syscall(SYS_gettid);

	/* The start line the tests read (harness.Workload). */
	printf("offcpu pid=%d tids=%ld\n", (int)getpid(), tid);
	fflush(stdout);
	while (now_ns() < end) {
		for (int i = 0; i < 3; i++) {
			uint64_t t0 = now_ns();

			places[i]();
			ns[i] += now_ns() - t0;
		}
		write_status(r->status, tid, ns, ++rounds);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct run r = { .seconds = 10, .status = NULL };
	pthread_t helpers[2], w;
	int opt;

	while ((opt = getopt(argc, argv, "d:s:p:n:m:")) != -1) {
		switch (opt) {
		case 'd': r.seconds = atof(optarg); break;
		case 's': r.status = optarg; break;
		case 'p': pipe_ms = (unsigned)atoi(optarg); break;
		case 'n': sleep_ms = (unsigned)atoi(optarg); break;
		case 'm': mutex_ms = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s -d SECONDS -s STATUS_FILE [-p MS] [-n MS] [-m MS]\n", argv[0]);
			return 2;
		}
	}
	if (!r.status) {
		fprintf(stderr, "%s: -s STATUS_FILE is required\n", argv[0]);
		return 2;
	}
	if (pipe(ask_pipe) || pipe(answer_pipe) || pipe(lock_ask) || pipe(lock_held) ||
	    pthread_create(&helpers[0], NULL, pipe_helper, NULL) ||
	    pthread_create(&helpers[1], NULL, lock_helper, NULL) || pthread_create(&w, NULL, waiter, &r)) {
		perror("offcpu: setup");
		return 1;
	}
	pthread_join(w, NULL);
	return 0;
}
