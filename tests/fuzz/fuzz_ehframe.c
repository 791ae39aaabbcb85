/*
 * libFuzzer target for the .eh_frame interpreter and table builder (exporter/sampling/ehframe.c), built with the
 * others (ANORAK_FUZZ=ON, scripts/fuzz.sh). Seeds in tests/fuzz/corpus/ehframe/: the .eh_frame of a
 * workload without frame pointers, made with
 *   objcopy -O binary --only-section=.eh_frame BINARY OUT   (prefixed with the section's address)
 * The first 8 bytes of the input are the section's virtual address, the rest its contents.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "exporter/sampling/ehframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ehframe_table t;
	uint64_t vaddr = 0x1000;

	if (size >= 8) {
		memcpy(&vaddr, data, 8);
		data += 8;
		size -= 8;
	}
	if (ehframe_table_build(data, size, vaddr, 1u << 20, &t) == 0) {
		/* Every pc of the table must resolve to a row inside it. */
		for (uint32_t i = 0; i < t.nrows; i++)
			if (ehframe_table_find(&t, t.base + t.rows[i].pc) != &t.rows[i])
				__builtin_trap();
		ehframe_table_free(&t);
	}
	return 0;
}
