/*
 * libcwork: a frame-pointer program whose CPU time is spent inside Debian's libc, which is built
 * without frame pointers.
 *
 *   -m memcpy  main -> copy_hot -> memcpy of 8 MiB buffers (libc's hand-written memmove: a leaf that
 *              sets up no frame, so a frame-pointer walk skips copy_hot)
 *   -m qsort   main -> sort_hot -> qsort -> (libc's merge sort) -> compare_ints (this program)
 *
 * Built with -O2 -fno-omit-frame-pointer; prints "libcwork pid=PID tids=PID" once running.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
#define COPY_BYTES (8u << 20)
#define SORT_INTS 100000

static volatile uint64_t sink;

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

NOINLINE void copy_hot(char *dst, const char *src)
{
	/* Through a volatile pointer, so the compiler cannot inline or drop the copy. */
	static void *(*volatile copy)(void *, const void *, size_t) = memcpy;

	copy(dst, src, COPY_BYTES);
	sink += (uint8_t)dst[COPY_BYTES / 2];
}

NOINLINE int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

NOINLINE void sort_hot(int *v, unsigned *seed)
{
	for (int i = 0; i < SORT_INTS; i++)
		v[i] = rand_r(seed);
	qsort(v, SORT_INTS, sizeof(int), compare_ints);
	sink += (uint64_t)v[SORT_INTS / 2];
}

int main(int argc, char **argv)
{
	const char *mode = "memcpy";
	double seconds = 10;
	int c;

	while ((c = getopt(argc, argv, "m:d:")) != -1) {
		if (c == 'm')
			mode = optarg;
		else if (c == 'd')
			seconds = strtod(optarg, NULL);
		else
			return 2;
	}
	if (strcmp(mode, "memcpy") != 0 && strcmp(mode, "qsort") != 0) {
		fprintf(stderr, "libcwork: bad mode %s (memcpy, qsort)\n", mode);
		return 2;
	}
	char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
	int *v = malloc(SORT_INTS * sizeof(int));
	unsigned seed = 1;
	if (!src || !dst || !v)
		return 1;
	/* Touch every page once so the timed loop does not fault. */
	memset(src, 1, COPY_BYTES);
	memset(dst, 2, COPY_BYTES);
	printf("libcwork pid=%d tids=%d\n", (int)getpid(), (int)getpid());
	fflush(stdout);

	double end = mono_s() + seconds;
	while (mono_s() < end) {
		if (mode[0] == 'm')
			copy_hot(dst, src);
		else
			sort_hot(v, &seed);
	}
	free(src);
	free(dst);
	free(v);
	return 0;
}
