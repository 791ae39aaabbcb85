/*
 * .eh_frame call frame information (CFI) of x86-64 binaries, interpreted into compact unwind tables
 * for the BPF unwinder (bpf/unwind.h).
 *
 * The CFI interpreter is our own: Debian packages libunwind and libdw, but both unwind one live
 * process from inside a ptrace/own context and neither exports the interpreted table of a whole
 * binary in a form that can be flattened into sorted rows; libdw's dwarf_cfi_addrframe answers one pc
 * at a time (an expression per register), which is far too slow to enumerate every row of libc.
 * Only what the BPF side can apply is kept: the CFA as rsp/rbp + offset or the PLT expression, rbp as
 * unchanged or saved at CFA + offset, the return address at CFA - 8; anything else is marked
 * unsupported (the BPF side then tries the frame pointer).
 *
 * Input is untrusted (any binary of any container): every read is bounds-checked, malformed input
 * gives -EINVAL (never a crash), and the number of rows is bounded by the caller.
 */
#ifndef ANORAK_EHFRAME_H
#define ANORAK_EHFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/unwind.h"

struct elf_file;

enum ehframe_rule {
	EHFRAME_SAME = 0,  /* unchanged (also: not mentioned) */
	EHFRAME_AT_CFA,    /* saved at CFA + off */
	EHFRAME_UNDEFINED, /* DW_CFA_undefined */
	EHFRAME_OTHER,     /* another register, an expression, a value rule */
};

/* The rules in effect from pc on, within one FDE, as DWARF defines them (not yet compacted). */
struct ehframe_row {
	uint64_t pc;                /* file virtual address */
	enum unwind_cfa cfa;        /* RSP, RBP, PLT or UNSUPPORTED */
	int64_t cfa_off;
	uint8_t plt_threshold;      /* PLT: CFA + 8 when (rip & 15) >= this */
	enum ehframe_rule rbp, ra;
	int64_t rbp_off, ra_off;    /* EHFRAME_AT_CFA */
};

struct ehframe_fde {
	uint64_t pc_begin, pc_end;  /* file virtual addresses */
	uint64_t offset;            /* of the FDE in the section */
	int signal_frame;           /* CIE augmentation "S" */
};

/* Called for every FDE before its rows, then for each row; a nonzero return stops the parse and is
 * returned. */
struct ehframe_visitor {
	int (*fde)(void *ctx, const struct ehframe_fde *fde);
	int (*row)(void *ctx, const struct ehframe_fde *fde, const struct ehframe_row *row);
	void *ctx;
};

/* Walks the .eh_frame bytes data[0..len) loaded at file virtual address vaddr. -EINVAL on malformed
 * input (the visitor may have seen part of it). */
int ehframe_parse(const uint8_t *data, size_t len, uint64_t vaddr, const struct ehframe_visitor *v);

/* .eh_frame bytes read piecewise: n bytes from section offset off into *p, valid until the next read
 * of the same slot (0 for FDEs, 1 for CIEs). A negative errno (-EINVAL outside the section) is
 * returned by the parse. */
struct ehframe_reader {
	int (*read)(void *ctx, int slot, size_t off, size_t n, const uint8_t **p);
	void *ctx;
	size_t len;      /* of the section */
	uint64_t vaddr;  /* of its first byte */
};

/* Parses the one FDE at section offset off (-EINVAL when there is none there), as ehframe_parse would. */
int ehframe_parse_fde_at(const struct ehframe_reader *r, size_t off, const struct ehframe_visitor *v);
/* The number of FDEs up to the terminator (or the end), and where that is: what ehframe_parse walks. */
int ehframe_count_fdes_at(const struct ehframe_reader *r, uint32_t *nfdes, size_t *parsed_len);

/* A binary's compact table: rows sorted by pc, equal neighbours merged, gaps between FDEs as
 * UNWIND_CFA_NONE rows. */
struct ehframe_table {
	uint64_t base;              /* file virtual address of row pc 0 */
	struct unwind_row *rows;
	uint32_t nrows;
	uint32_t nfdes;
	uint32_t unsupported;       /* rows marked UNWIND_CFA_UNSUPPORTED */
};

/* The compact row for a DWARF row. */
struct unwind_row ehframe_compact(const struct ehframe_row *r);

/* Builds the table of .eh_frame bytes. -E2BIG when it would have more than max_rows rows or span
 * more than 4 GiB, -EINVAL when malformed, -ENOENT when there are no FDEs, -ENOMEM. */
int ehframe_table_build(const uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows,
			struct ehframe_table *out);
/* The same for a malloc'd copy of the bytes, freed as soon as they are parsed (before the table is
 * allocated: the peak of a build is then the larger of the two, not their sum), and on any error. */
int ehframe_table_build_owned(uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows,
			      struct ehframe_table *out);
/* The address of .eh_frame from .eh_frame_hdr bytes at hdr_vaddr. -EINVAL when malformed. */
int ehframe_hdr_eh_frame(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, uint64_t *eh_frame_vaddr);
/* The binary search table of .eh_frame_hdr bytes at hdr_vaddr: count pairs of 4-byte signed offsets
 * from hdr_vaddr (an FDE's initial pc, the FDE), sorted by pc as linkers write them. -EOPNOTSUPP for
 * other encodings, -EINVAL when malformed. */
int ehframe_hdr_table(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, const uint8_t **table,
		      uint32_t *count);
/* Whether two compact rows unwind alike (a row equal to the one before it is not needed). */
bool ehframe_same_rule(const struct unwind_row *a, const struct unwind_row *b);
/* The same for the .eh_frame of an ELF file: its section, or without section headers the one
 * PT_GNU_EH_FRAME (.eh_frame_hdr) points to. -ENOENT when it has neither. */
int ehframe_table_from_elf(struct elf_file *f, uint32_t max_rows, struct ehframe_table *out);
void ehframe_table_free(struct ehframe_table *t);

/* The row in effect at file virtual address pc, or NULL outside the table. */
const struct unwind_row *ehframe_table_find(const struct ehframe_table *t, uint64_t pc);

#endif
