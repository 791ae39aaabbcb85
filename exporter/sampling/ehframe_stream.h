/*
 * A binary's .eh_frame table (the rows ehframe_table_from_elf builds, byte for byte) produced in pc
 * order a batch at a time, so that a large library's table never lies whole in the daemon's memory,
 * nor its .eh_frame: the FDEs are taken in the order of .eh_frame_hdr's search table and each is read
 * from the file and parsed alone. A first
 * pass counts the rows (the caller then finds room for them), a second hands them out. Binaries
 * whose FDEs the header does not list in order, one each and without overlap (not what linkers
 * write) are refused with -EOPNOTSUPP: ehframe_table_from_elf builds theirs whole.
 */
#ifndef ANORAK_EHFRAME_STREAM_H
#define ANORAK_EHFRAME_STREAM_H

#include <stdint.h>

#include <linux/types.h>
#include "bpf/unwind.h"

/* Rows handed out at a time (whole blocks of the row array, so each batch starts a block). */
#define EHFRAME_STREAM_BATCH 4096
_Static_assert(EHFRAME_STREAM_BATCH % UNWIND_BLOCK_ROWS == 0, "batches of whole blocks");

struct elf_file;
struct ehframe_stream;

/* Takes rows[0..n), rows at..at + n of the table. Nonzero stops the stream and is returned. */
typedef int (*ehframe_sink_fn)(void *ctx, uint32_t at, const struct unwind_row *rows, uint32_t n);

/* Reads .eh_frame of f from fd (the file f reads) piecewise, copies .eh_frame_hdr (at most max_bytes,
 * else -EFBIG) and checks that the header lists every FDE in pc order. -EOPNOTSUPP when the table must
 * be built whole (no section headers, no header, an unusual header, an image in memory: fd < 0),
 * -EINVAL when malformed, -ENOMEM. */
int ehframe_stream_open(struct elf_file *f, int fd, uint64_t max_bytes, struct ehframe_stream **out);
/* The first pass: the number of rows and the file virtual address of row pc 0. -E2BIG above max_rows
 * or a span over 4 GiB, -ENOENT without rows, -EOPNOTSUPP (FDEs that overlap), -EINVAL. */
int ehframe_stream_count(struct ehframe_stream *s, uint32_t max_rows, uint32_t *nrows, uint64_t *base);
/* The second pass: every row to sink, in batches of EHFRAME_STREAM_BATCH (the last one shorter). */
int ehframe_stream_write(struct ehframe_stream *s, ehframe_sink_fn sink, void *ctx);
void ehframe_stream_free(struct ehframe_stream *s);

#endif
