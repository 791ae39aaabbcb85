/* The query string of /debug/pprof/profile (http_parse_profile_query in exporter/web/query.c), which comes
 * straight from the network. The first two bytes pick --storage.retention's maximum. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/web/query.h"

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
	free(query);
	return 0;
}
