/* Turns the slices of a window into a gzip'd pprof CPU or off-CPU profile: symbolizes frames, attaches
 * labels. */
#ifndef ANORAK_PROFILE_H
#define ANORAK_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct symbolizer;
struct slice_store;

struct profile_request {
	struct slice_store *windows;
	uint64_t after_seq, through_seq; /* slices with after_seq < seq <= through_seq */
	int64_t time_ns, duration_ns;
	unsigned base_frequency;         /* sets the profile's period */
	struct symbolizer *symbolizer;
	bool offcpu;                     /* the off-CPU profile, not the CPU one */
};

int profile_encode(const struct profile_request *req, void **out, size_t *outlen);

#endif
