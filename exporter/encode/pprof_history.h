/* Past windows as pprof: GET /debug/pprof/profile?start=T1&end=T2[&match[]=SELECTOR...]. */
#ifndef ANORAK_HISTORY_PPROF_H
#define ANORAK_HISTORY_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/selector.h"

struct history;

#define HISTORY_MAX_MATCHES 8

struct history_range_query {
	int64_t start_ns, end_ns;
	struct selector selectors[HISTORY_MAX_MATCHES]; /* any of them; none: everything */
	size_t nselectors;
};

/* "1700000000", "1700000000.5" (unix seconds) or RFC 3339 ("2026-11-21T19:48:16Z",
 * "2026-11-21T20:48:16.25+01:00") -> nanoseconds since the epoch. */
int history_parse_time(const char *s, int64_t *ns);

/* Parses the query string of /debug/pprof/profile: 0 when it has neither start nor end (a live
 * ?seconds= request), 1 with q filled (free it with history_range_query_free), -EINVAL with a one-line
 * reason in err. */
int history_parse_range_query(const char *query, struct history_range_query *q, char *err, size_t errlen);
void history_range_query_free(struct history_range_query *q);

/* The gzip'd pprof of every window overlapping the range, whole; time_nanos/duration_nanos say what
 * the windows cover. -ENOENT when none overlaps, with the range kept in first_ns and last_ns (0, 0 when
 * the ring is empty). */
int history_profile_encode(struct history *h, const struct history_range_query *q, unsigned base_frequency,
			   void **out, size_t *outlen, int64_t *first_ns, int64_t *last_ns);

#endif
