/*
 * encode_bench: how fast the pprof builder (exporter/encode/pprof.h) turns samples into a gzip'd profile.
 *
 * Builds a profile shaped like a busy host's: SAMPLES distinct stacks of depth 8..40 drawn from
 * FUNCTIONS functions in MAPPINGS mappings, each sample with pid/tid numeric labels and
 * job/instance/comm string labels, and times pprof_add_sample (interning + merging) and
 * pprof_encode_gzip separately, best of ROUNDS.
 *
 *   encode_bench [-n SAMPLES] [-f FUNCTIONS] [-m MAPPINGS] [-r ROUNDS]
 * Prints one line of key=value (logfmt) results.
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

#include "exporter/encode/pprof.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	unsigned nsamples = 20000, nfuncs = 5000, nmaps = 50, rounds = 5;
	int c;
	while ((c = getopt(argc, argv, "n:f:m:r:h")) != -1) {
		switch (c) {
		case 'n': nsamples = (unsigned)atoi(optarg); break;
		case 'f': nfuncs = (unsigned)atoi(optarg); break;
		case 'm': nmaps = (unsigned)atoi(optarg); break;
		case 'r': rounds = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n SAMPLES] [-f FUNCTIONS] [-m MAPPINGS] [-r ROUNDS]\n", argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (!nsamples || !nfuncs || !nmaps || !rounds) {
		fprintf(stderr, "encode_bench: arguments must be positive\n");
		return 2;
	}

	/* Pre-generate names so only the builder is timed. */
	char (*fnames)[64] = calloc(nfuncs, sizeof(*fnames));
	char (*mnames)[64] = calloc(nmaps, sizeof(*mnames));
	char (*bids)[41] = calloc(nmaps, sizeof(*bids));
	if (!fnames || !mnames || !bids)
		return 1;
	for (unsigned i = 0; i < nfuncs; i++)
		snprintf(fnames[i], sizeof(fnames[i]), "namespace::Class%u::method_%u_with_a_longish_name", i % 97, i);
	for (unsigned i = 0; i < nmaps; i++) {
		snprintf(mnames[i], sizeof(mnames[i]), "/usr/lib/x86_64-linux-gnu/libbench%u.so.1", i);
		snprintf(bids[i], sizeof(bids[i]), "%016llx%016llx%08x", (unsigned long long)next(),
			 (unsigned long long)next(), i);
	}

	struct pprof_value_type types[] = {{"samples", "count"}, {"cpu", "nanoseconds"}};
	const int64_t period = 1000000000 / 19;
	double best_add = 1e30, best_enc = 1e30;
	size_t outlen = 0, nout_samples = 0;
	uint64_t total_frames = 0;

	for (unsigned r = 0; r < rounds; r++) {
		rng = 0x9E3779B97F4A7C15ull;
		struct pprof_builder *b = pprof_builder_new(types, 2, types[1], period);
		if (!b) {
			fprintf(stderr, "encode_bench: pprof_builder_new failed\n");
			return 1;
		}
		uint64_t locs[64];
		double t0 = now();
		total_frames = 0;
		for (unsigned s = 0; s < nsamples; s++) {
			unsigned depth = 8 + (unsigned)(next() % 33);
			for (unsigned d = 0; d < depth; d++) {
				unsigned f = (unsigned)(next() % nfuncs), m = f % nmaps;
				uint64_t start = 0x7f0000000000ull + (uint64_t)m * 0x1000000ull;
				uint64_t mid = pprof_mapping(b, start, start + 0x800000, 0, mnames[m], bids[m], true);
				uint64_t fid = pprof_function(b, fnames[f], fnames[f], "");
				locs[d] = pprof_location(b, mid, start + 0x1000 + (uint64_t)f * 16 + d, fid);
				if (!mid || !fid || !locs[d]) {
					fprintf(stderr, "encode_bench: out of memory\n");
					return 1;
				}
			}
			total_frames += depth;
			int64_t values[2] = {1 + (int64_t)(next() % 5), 0};
			values[1] = values[0] * period;
			int64_t pid = 1000 + (int64_t)(next() % 200);
			struct pprof_label labels[] = {
				{.key = "job", .str = "node"},
				{.key = "instance", .str = "bench-host:9760"},
				{.key = "comm", .str = fnames[pid % nfuncs] + 10},
				{.key = "pid", .num = pid},
				{.key = "tid", .num = pid + (int64_t)(next() % 4)},
			};
			if (pprof_add_sample(b, locs, depth, values, labels, 5) < 0) {
				fprintf(stderr, "encode_bench: pprof_add_sample failed\n");
				return 1;
			}
		}
		double t1 = now();
		void *out = NULL;
		if (pprof_encode_gzip(b, (int64_t)time(NULL) * 1000000000ll, 10000000000ll, &out, &outlen) < 0) {
			fprintf(stderr, "encode_bench: pprof_encode_gzip failed\n");
			return 1;
		}
		double t2 = now();
		nout_samples = pprof_sample_count(b);
		free(out);
		pprof_builder_free(b);
		if (t1 - t0 < best_add)
			best_add = t1 - t0;
		if (t2 - t1 < best_enc)
			best_enc = t2 - t1;
	}
	printf("samples=%u distinct=%zu frames=%llu functions=%u mappings=%u add_seconds=%.4f "
	       "encode_seconds=%.4f add_samples_per_second=%.0f encode_samples_per_second=%.0f "
	       "total_samples_per_second=%.0f gzip_bytes=%zu bytes_per_sample=%.1f\n",
	       nsamples, nout_samples, (unsigned long long)total_frames, nfuncs, nmaps, best_add, best_enc,
	       nsamples / best_add, nsamples / best_enc, nsamples / (best_add + best_enc), outlen,
	       (double)outlen / nsamples);
	free(fnames);
	free(mnames);
	free(bids);
	return 0;
}
