/*
 * Unwind rows for Go code, from .gopclntab (Go binaries have no .eh_frame for it): each function's
 * pcsp table gives the SP delta from its entry at every pc, so CFA = SP + delta + 8 with the return
 * address at CFA - 8 (amd64); functions whose prologue saves BP (at CFA - 16) say so from the
 * instruction after the save. Functions the runtime marks TOPFRAME (goexit, mstart, rt0_go) end the
 * stack; those marked SPWRITE (systemstack, mcall, morestack, asmcgocall, gogo) switch stacks, so the
 * walk stops there, counted by reason (enum unwind_end). C code of cgo binaries keeps its .eh_frame rows.
 */
#ifndef ANORAK_UNWIND_GO_H
#define ANORAK_UNWIND_GO_H

#include <stddef.h>
#include <stdint.h>

#include "exporter/sampling/ehframe.h"

struct elf_file;
struct gopclntab;
struct metrics_buf;

enum unwind_go_failure {
	UNWIND_GO_NOT_FOUND = 0, /* a Go binary without a pclntab we can find */
	UNWIND_GO_TOO_LARGE,     /* pclntab, its functions or its rows above the bounds */
	UNWIND_GO_CORRUPT,
	UNWIND_GO_UNSUPPORTED,   /* an unknown pclntab version, or not amd64 */
	UNWIND_GO_FAILURES,
};

struct unwind_go_stats {
	uint64_t tables;                        /* Go binaries given rows */
	uint64_t rows;                          /* rows built from pclntab */
	uint64_t funcs_refused;                 /* functions with a corrupt pcsp: no rows, frame pointers there */
	uint64_t rows_unsupported;              /* frames over 64 KiB, SP above the entry's: frame pointers there */
	uint64_t failed[UNWIND_GO_FAILURES];
};

/* Rows of the Go functions of t, each run of pcsp a row; text holds the bytes at text_vaddr (the
 * prologues' BP saves are checked there; NULL: no BP rule). -E2BIG above max_rows rows or a 4 GiB
 * span, -ENOEXEC when no function has rows, -ENOMEM. Functions with a corrupt pcsp get none and are
 * counted in st. */
int unwind_go_build(const struct gopclntab *t, const uint8_t *text, size_t text_len, uint64_t text_vaddr,
		    uint32_t max_rows, struct ehframe_table *out, struct unwind_go_stats *st);

/* Rows of a: those of b replace a's over b's range (a may be empty). -E2BIG, -ENOMEM. */
int unwind_go_merge(struct ehframe_table *a, const struct ehframe_table *b, uint32_t max_rows);

/* For a Go binary: its pclntab rows merged into eh (its .eh_frame rows, or empty). 1 when rows were
 * added, 0 when ef is not a Go binary, else a negative errno (counted in st by reason). */
int unwind_go_from_elf(struct elf_file *ef, uint64_t max_bytes, uint32_t max_rows, struct ehframe_table *eh,
		       struct unwind_go_stats *st);

/* anorak_unwind_go_* families. */
void unwind_go_write_metrics(struct metrics_buf *b, const struct unwind_go_stats *st);

#endif
