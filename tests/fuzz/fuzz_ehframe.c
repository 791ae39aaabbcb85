/*
 * libFuzzer target for the .eh_frame interpreter and table builder (exporter/ehframe.c). Standalone:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I exporter -I bpf \
 *         tests/fuzz/fuzz_ehframe.c exporter/ehframe.c exporter/elf_file.c -lelf -lz -o fuzz_ehframe
 *   ./fuzz_ehframe -max_total_time=60 CORPUS_DIR
 *
 * A good seed corpus is the .eh_frame of a few real binaries:
 *   objcopy -O binary --only-section=.eh_frame /lib/x86_64-linux-gnu/libc.so.6 CORPUS_DIR/libc
 * The first 8 bytes of the input are the section's virtual address, the rest its contents.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ehframe.h"

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
