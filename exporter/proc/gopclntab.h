/*
 * Go's own symbol table, .gopclntab: function names, file:line and inlined calls for any Go binary,
 * stripped or not (`-ldflags=-s -w` drops .symtab and DWARF, never pclntab: the runtime needs it).
 * Formats of Go 1.16-1.17 (magic 0xfffffffa), 1.18-1.19 (0xfffffff0) and 1.20+ (0xfffffff1); layouts
 * from the Go sources (runtime/symtab.go, runtime2.go `_func`, debug/gosym/pclntab.go).
 * Inputs are untrusted: every offset is checked, a table that does not add up is refused.
 */
#ifndef ANORAK_GOPCLNTAB_H
#define ANORAK_GOPCLNTAB_H

#include <stddef.h>
#include <stdint.h>

struct elf_file;

#define GOPCLNTAB_MAX_FRAMES 16 /* inlined calls reported per PC, the physical function included */

enum gopclntab_version { GOPCLNTAB_GO116 = 116, GOPCLNTAB_GO118 = 118, GOPCLNTAB_GO120 = 120 };

/* One source frame at a PC. Strings point into the table and live as long as it. */
struct gopclntab_frame {
	const char *name;
	const char *file; /* "" when the PC has no file */
	uint32_t line;
};

/* Reads len bytes at virtual address vaddr of the binary into buf; 0 or a negative errno. Inline
 * trees live outside pclntab (go:func.*), so they are read through this. */
typedef int (*gopclntab_read_fn)(void *ctx, uint64_t vaddr, void *buf, size_t len);

struct gopclntab;

/* Parses a copy of the len bytes of pclntab found at virtual address vaddr. text_start is used
 * when the header has none (1.16, PIE files whose header is relocated at run time, 1.26). -ENOEXEC
 * for a corrupt or truncated table, -EPROTONOSUPPORT for an unknown magic, -E2BIG for more than
 * max_funcs functions, -ENOMEM. */
int gopclntab_parse(const void *data, size_t len, uint64_t vaddr, uint64_t text_start, uint32_t max_funcs,
		    struct gopclntab **out);
void gopclntab_free(struct gopclntab *t);
/* Where FUNCDATA offsets point (moduledata.gofunc, 1.18+) and how to read the binary's memory; until
 * this is called, lookups report no inlined calls. ctx is freed with ctx_free (may be NULL) with t. */
void gopclntab_set_funcdata(struct gopclntab *t, uint64_t gofunc, gopclntab_read_fn read, void *ctx,
			    void (*ctx_free)(void *));

/* Frames at pc (a link-time address), innermost inlined call first, the physical function last; at
 * most max. 0 when pc is outside Go's functions, -ENOEXEC when the tables for pc are corrupt. */
int gopclntab_lookup(const struct gopclntab *t, uint64_t pc, struct gopclntab_frame *frames, size_t max);

/* funcFlag bits (1.17+; 0 in 1.16 tables). */
#define GOPCLNTAB_FLAG_TOPFRAME 0x1 /* outermost frame of a stack: goexit, mstart, rt0_go */
#define GOPCLNTAB_FLAG_SPWRITE 0x2  /* writes SP in a way pcsp does not follow (stack switches) */

/* A function of the table, for unwinding: [entry, end) reaches the next function's entry. */
struct gopclntab_func {
	uint64_t entry, end;
	const char *name;
	uint8_t flag;
	uint32_t pcsp; /* pctab offset of its SP-delta table, 0 when it has none */
};

/* Function i of gopclntab_nfuncs (in address order). -ENOEXEC when its record is corrupt (entry and
 * end are still set for i below the count). */
int gopclntab_func(const struct gopclntab *t, uint32_t i, struct gopclntab_func *f);

/* Called for each run of a pc-value table: the value over [pc, end). Nonzero stops the walk. */
typedef int (*gopclntab_run_fn)(void *ctx, uint64_t pc, uint64_t end, int32_t value);
/* Walks f's pcsp table (the SP delta from the entry SP, in bytes, at each pc), runs in pc order,
 * none past f->end. -ENOEXEC when it runs off the table, past f->end or longer than f has bytes;
 * else the callback's nonzero return, or 0. */
int gopclntab_pcsp(const struct gopclntab *t, const struct gopclntab_func *f, gopclntab_run_fn fn, void *ctx);

enum gopclntab_version gopclntab_version(const struct gopclntab *t);
uint32_t gopclntab_nfuncs(const struct gopclntab *t);
uint64_t gopclntab_text_start(const struct gopclntab *t);
unsigned gopclntab_ptrsize(const struct gopclntab *t);
size_t gopclntab_bytes(const struct gopclntab *t);
/* Link-time address of the pcHeader, which moduledata points at. */
uint64_t gopclntab_vaddr(const struct gopclntab *t);

/* --- ELF side (gopclntab_elf.c) --- */

/* Whether the file is a Go binary: a pclntab section or a Go build-id note. */
int gopclntab_elf_is_go(struct elf_file *ef);

/* Finds pclntab in ef (section .gopclntab or .data.rel.ro.gopclntab, else the runtime.pclntab symbol,
 * else a scan of the loaded data for its header), at most max_bytes, and parses it. Inline trees are
 * then read from fd (kept open by the caller as long as the table) at its PT_LOAD offsets.
 * -ENOENT when there is none, -EFBIG when larger than max_bytes, else as gopclntab_parse. */
int gopclntab_elf_load(struct elf_file *ef, int fd, uint64_t max_bytes, uint32_t max_funcs,
		       struct gopclntab **out);

#endif
