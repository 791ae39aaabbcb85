/* perf map parsing (/tmp/perf-PID.map, written by any process: exporter/symbols/perfmap.c) and lookups. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/symbols/perfmap.h"

#define MAX_ENTRIES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fuzz_stream(data, size);
	struct perfmap *p = NULL;
	int err;

	if (!f)
		return 0;
	err = perfmap_parse(f, MAX_ENTRIES, &p);
	fclose(f);
	FUZZ_CHECK(err == 0 || err == -ENOMEM);
	if (err)
		return 0;
	FUZZ_CHECK(perfmap_count(p) <= MAX_ENTRIES);
	FUZZ_CHECK(perfmap_bytes(p) >= perfmap_count(p));
	uint64_t addrs[256];
	size_t naddrs = fuzz_addresses(data, size, addrs, 256);

	/* Symbol starts, one byte before and inside them. */
	for (size_t i = 0; i < 3 * naddrs; i++) {
		uint64_t a = addrs[i / 3] + (uint64_t)(i % 3) - 1;
		const char *name;

		name = perfmap_lookup(p, a);
		if (name)
			FUZZ_CHECK(*name && strlen(name) < PERFMAP_LINE_MAX && !strchr(name, '\n'));
	}
	perfmap_free(p);
	return 0;
}
