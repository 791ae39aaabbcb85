/* CPython line tables (exporter/symbols/python_linetable.c), read from any Python process's memory. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/symbols/python_linetable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t first;
	uint32_t lasti;

	if (size < 8)
		return 0;
	memcpy(&first, data, 4);
	memcpy(&lasti, data + 4, 4);
	data += 8;
	size -= 8;
	/* Every unit up to lasti (bounded) and lasti itself, with both decoders. */
	for (uint32_t u = 0; u <= (lasti & 1023); u++) {
		for (int v = 0; v < 2; v++) {
			uint32_t at = u == (lasti & 1023) ? lasti : u;
			int line = v ? python_line_311(data, size, first, at) : python_line_310(data, size, first, at);

			FUZZ_CHECK(line >= 0 || line == -ENOENT || line == -EINVAL);
		}
	}
	return 0;
}
