/* The query string of /debug/pprof/profile (exporter/web/query.c: ?seconds=, and ?start=&end=&match[]=
 * with RFC 3339 times and selectors), which comes straight from the network. The first two bytes pick
 * --storage.retention's maximum. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/web/query.h"

static void range_query(const char *query)
{
	struct history_range_query q;
	char err[128];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = history_parse_range_query(query, &q, err, sizeof(err));
	if (ret == 1) {
		FUZZ_CHECK(q.end_ns > q.start_ns && q.nselectors <= HISTORY_MAX_MATCHES);
		history_range_query_free(&q);
	} else if (ret < 0) {
		FUZZ_CHECK(ret == -EINVAL && memchr(err, '\0', sizeof(err)) && err[0] != '\0');
	} else {
		FUZZ_CHECK(ret == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned max, seconds = 0;
	char err[128], *query;
	int ret;

	if (size < 2)
		return 0;
	max = 1 + (data[0] | (unsigned)data[1] << 8);
	query = fuzz_strdup(data + 2, size - 2);
	memset(err, 'x', sizeof(err));
	ret = http_parse_profile_query(query, max, &seconds, err, sizeof(err));
	if (ret == 0)
		FUZZ_CHECK(seconds >= 1 && seconds <= max);
	else
		FUZZ_CHECK(ret == -EINVAL && memchr(err, '\0', sizeof(err)) && err[0] != '\0');
	range_query(query);
	free(query);
	return 0;
}
