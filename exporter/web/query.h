/* Query strings of /debug/pprof/profile, straight from the network: ?seconds= (a live profile) and
 * ?start=&end=&match[]= (a past range from the history ring). */
#ifndef ANORAK_QUERY_H
#define ANORAK_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/store/history.h"

/* Parses ?seconds=. seconds: missing -> 30; "0", negative, not a decimal integer, or above
 * max_seconds -> -EINVAL with a one-line reason in err.
 * query may be NULL; "seconds=" (empty) counts as missing, as in Go; the first seconds wins; 30 is
 * lowered to max_seconds when that is smaller. */
int http_parse_profile_query(const char *query, unsigned max_seconds, unsigned *seconds,
			     char *err, size_t errlen);

/* "1700000000", "1700000000.5" (unix seconds) or RFC 3339 ("2026-11-21T19:48:16Z",
 * "2026-11-21T20:48:16.25+01:00") -> nanoseconds since the epoch. */
int history_parse_time(const char *s, int64_t *ns);

/* Parses ?start=&end=&match[]=: 0 when the query has neither start nor end (a live ?seconds=
 * request), 1 with q filled (free it with history_range_query_free), -EINVAL with a one-line reason in
 * err. */
int history_parse_range_query(const char *query, struct history_range_query *q, char *err, size_t errlen);
void history_range_query_free(struct history_range_query *q);

#endif
