/*
 * unwind_go_bench: what the unwind rows of a Go binary cost to build (exporter/sampling/unwind_go.c):
 * reading its .gopclntab and the prologues in its text, and turning every function's pcsp table into
 * rows, as the daemon does for each new Go binary. Best wall time of ROUNDS, the peak RSS growth of
 * the first round (pclntab copy, text read by libelf, rows), rows and rows per MB of Go text.
 *
 *   gcc -O2 -I. -o unwind_go_bench tests/bench/unwind_go_bench.c build/libanorak_core.a \
 *       build/libanorak_common.a -lelf -lz
 *   unwind_go_bench [-r ROUNDS] /usr/lib/go-1.19/pkg/tool/linux_amd64/compile
 * Prints one line of key=value (logfmt) results.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/sampling/unwind_go.h"

#define MAX_BYTES (1ull << 32)
#define MAX_ROWS (1u << 23)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* One build as the daemon does it: open, find pclntab, build rows. Returns seconds, or -1. */
static double build_once(const char *path, struct ehframe_table *t, struct unwind_go_stats *st)
{
	struct elf_file *ef;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;
	double t0 = now(), t1;

	if (fd < 0 || elf_file_open(fd, MAX_BYTES, &ef)) {
		fprintf(stderr, "unwind_go_bench: cannot open %s as ELF\n", path);
		return -1;
	}
	memset(t, 0, sizeof(*t));
	r = unwind_go_from_elf(ef, MAX_BYTES, MAX_ROWS, t, st);
	t1 = now();
	elf_file_close(ef);
	close(fd);
	if (r != 1) {
		fprintf(stderr, "unwind_go_bench: %s: no Go rows (%d)\n", path, r);
		return -1;
	}
	return t1 - t0;
}

int main(int argc, char **argv)
{
	struct unwind_go_stats st = { 0 };
	struct ehframe_table t;
	int rounds = 5, opt;
	double best = 1e9, span_mb;
	long rss0 = maxrss_kb(), rss1 = 0;

	while ((opt = getopt(argc, argv, "r:")) != -1)
		rounds = opt == 'r' ? atoi(optarg) : rounds;
	if (optind >= argc || rounds < 1) {
		fprintf(stderr, "usage: unwind_go_bench [-r ROUNDS] GO_BINARY\n");
		return 2;
	}
	for (int i = 0; i < rounds; i++) {
		double s = build_once(argv[optind], &t, &st);

		if (s < 0)
			return 1;
		best = s < best ? s : best;
		if (i == 0)
			rss1 = maxrss_kb();
		span_mb = t.nrows ? (t.rows[t.nrows - 1].pc) / 1e6 : 0;
		if (i < rounds - 1)
			ehframe_table_free(&t);
	}
	printf("binary=%s rows=%u text_mb=%.2f rows_per_mb=%.0f row_bytes=%zu build_ms=%.1f peak_rss_growth_mb=%.1f "
	       "unsupported=%u refused=%lu\n",
	       argv[optind], t.nrows, span_mb, t.nrows / span_mb, t.nrows * sizeof(t.rows[0]), best * 1e3,
	       (rss1 - rss0) / 1024.0, t.unsupported, (unsigned long)(st.funcs_refused / rounds));
	ehframe_table_free(&t);
	return 0;
}
