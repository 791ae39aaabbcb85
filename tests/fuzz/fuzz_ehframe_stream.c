/* The streamed .eh_frame table (exporter/sampling/ehframe_stream.c) on arbitrary ELF files, read through
 * a memfd as the daemon reads a container's binaries: .eh_frame_hdr's search table, the windowed reads
 * of .eh_frame and the batches handed out. Whenever both the stream and the whole build
 * (ehframe_table_from_elf) succeed, their rows must be identical, batch by batch. */
#include "exporter/proc/elf_file.h"
#include "exporter/sampling/ehframe.h"
#include "exporter/sampling/ehframe_stream.h"
#include "fuzz_common.h"

#define MAX_BYTES (64u << 20)
#define MAX_ROWS (1u << 20)
#define MAX_HDR_BYTES (1u << 20)

struct expected {
	const struct ehframe_table *whole; /* NULL: the whole build failed, nothing to compare with */
	uint32_t n, nrows;
};

static int compare(void *ctx, uint32_t at, const struct unwind_row *rows, uint32_t n)
{
	struct expected *e = ctx;

	FUZZ_CHECK(at == e->n && n > 0 && n <= EHFRAME_STREAM_BATCH && at % UNWIND_BLOCK_ROWS == 0);
	FUZZ_CHECK(n <= e->nrows - at);
	if (e->whole)
		FUZZ_CHECK(memcmp(rows, e->whole->rows + at, (size_t)n * sizeof(*rows)) == 0);
	e->n += n;
	return 0;
}

static void stream(struct elf_file *f, int fd, const struct ehframe_table *whole)
{
	struct expected e = { .whole = whole };
	struct ehframe_stream *s;
	uint64_t base;
	int err = ehframe_stream_open(f, fd, MAX_HDR_BYTES, &s);

	if (err)
		return;
	if (ehframe_stream_count(s, MAX_ROWS, &e.nrows, &base) == 0) {
		if (whole)
			FUZZ_CHECK(e.nrows == whole->nrows && base == whole->base);
		if (ehframe_stream_write(s, compare, &e) == 0)
			FUZZ_CHECK(e.n == e.nrows);
	}
	ehframe_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ehframe_table whole;
	struct elf_file *f;
	int fd = fuzz_memfd("fuzz_ehframe_stream", data, size);

	if (fd < 0)
		return 0;
	if (elf_file_open(fd, MAX_BYTES, &f) == 0) {
		bool built = ehframe_table_from_elf(f, MAX_ROWS, &whole) == 0;

		stream(f, fd, built ? &whole : NULL);
		if (built)
			ehframe_table_free(&whole);
		elf_file_close(f);
	}
	close(fd);
	return 0;
}
