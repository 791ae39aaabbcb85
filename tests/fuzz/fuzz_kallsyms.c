/* /proc/kallsyms parsing (exporter/symbols/kallsyms.c) and lookups in what it keeps. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/symbols/kallsyms.h"

#define MAX_SYMBOLS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fuzz_stream(data, size);
	struct kallsyms *k = NULL;
	int err;

	if (!f)
		return 0;
	err = kallsyms_parse(f, MAX_SYMBOLS, &k);
	fclose(f);
	FUZZ_CHECK(err == 0 || err == -E2BIG || err == -EPERM || err == -ENOENT || err == -ENOMEM);
	if (err)
		return 0;
	FUZZ_CHECK(kallsyms_count(k) > 0 && kallsyms_count(k) <= MAX_SYMBOLS);
	uint64_t addrs[256];
	size_t naddrs = fuzz_addresses(data, size, addrs, 256);

	/* Symbol starts, one byte before and inside them. */
	for (size_t i = 0; i < 3 * naddrs; i++) {
		uint64_t a = addrs[i / 3] + (uint64_t)(i % 3) - 1;
		const char *module = NULL, *name;

		name = kallsyms_lookup(k, a, &module);
		if (name)
			FUZZ_CHECK(module && strlen(name) < size && strlen(module) < size);
	}
	kallsyms_free(k);
	return 0;
}
