/* Past windows as pprof: GET /debug/pprof/profile?start=T1&end=T2[&match[]=SELECTOR...]. */
#ifndef ANORAK_HISTORY_PPROF_H
#define ANORAK_HISTORY_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct history;
struct history_range_query; /* exporter/store/history.h */

/* The gzip'd pprof of every window overlapping the range, whole; time_nanos/duration_nanos say what
 * the windows cover. -ENOENT when none overlaps, with the range kept in first_ns and last_ns (0, 0 when
 * the ring is empty). */
int history_profile_encode(struct history *h, const struct history_range_query *q, unsigned base_frequency,
			   void **out, size_t *outlen, int64_t *first_ns, int64_t *last_ns);

#endif
