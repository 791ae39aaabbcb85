#include "exporter/sampling/unwind_go.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/unwind.h"
#include "common/metrics.h"
#include "exporter/proc/elf_file.h"
#include "exporter/proc/gopclntab.h"

/* Functions read from one pclntab; `go tool` binaries have about 30000. */
#define MAX_FUNCS (1u << 22)

static const char *const failure_names[UNWIND_GO_FAILURES] = {
	[UNWIND_GO_NOT_FOUND] = "not_found",
	[UNWIND_GO_TOO_LARGE] = "too_large",
	[UNWIND_GO_CORRUPT] = "corrupt",
	[UNWIND_GO_UNSUPPORTED] = "unsupported",
};

/* Functions whose rows stop the walk, by name: Go 1.16 tables have no funcFlag, and the flags do not
 * say which switch it is. */
static const struct {
	const char *name;
	enum unwind_end end;
} stops[] = {
	{ "runtime.goexit", UNWIND_END_OUTERMOST },
	{ "runtime.mstart", UNWIND_END_OUTERMOST },
	{ "runtime.rt0_go", UNWIND_END_OUTERMOST },
	{ "runtime.systemstack", UNWIND_END_GO_STACK_SWITCH },
	{ "runtime.mcall", UNWIND_END_GO_STACK_SWITCH },
	{ "runtime.morestack", UNWIND_END_GO_STACK_SWITCH },
	{ "runtime.asmcgocall", UNWIND_END_GO_CGO },
	{ "runtime.cgocallback", UNWIND_END_GO_CGO },
};

struct builder {
	struct ehframe_table *t;
	uint32_t cap, max;
	const uint8_t *text;
	size_t text_len;
	uint64_t text_vaddr;
	uint64_t bp_pc;     /* BP is at CFA - 16 from this pc on while the delta is at least bp_frame; 0: never */
	int32_t bp_frame;
	uint64_t covered;   /* end of the last run of the function */
	struct unwind_go_stats *st;
};

static bool same_rule(const struct unwind_row *a, const struct unwind_row *b)
{
	return a->cfa == b->cfa && a->cfa_off == b->cfa_off && a->rbp_off == b->rbp_off;
}

/* Appends a row at file address pc: one at the same pc replaces the last, one with the rule of the
 * last is not needed. */
static int append(struct builder *b, uint64_t pc, struct unwind_row row)
{
	struct ehframe_table *t = b->t;

	row.pc = (uint32_t)(pc - t->base);
	if (t->nrows && t->rows[t->nrows - 1].pc == row.pc)
		t->nrows--;
	if (t->nrows && same_rule(&t->rows[t->nrows - 1], &row))
		return 0;
	if (t->nrows == b->cap) {
		uint32_t ncap = b->cap ? b->cap * 2 : 4096;
		struct unwind_row *r;

		if (b->cap >= b->max)
			return -E2BIG;
		ncap = ncap > b->max ? b->max : ncap;
		r = realloc(t->rows, (size_t)ncap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		t->rows = r;
		b->cap = ncap;
	}
	t->rows[t->nrows++] = row;
	return 0;
}

/* --- one function --------------------------------------------------------------------------------- */

static int stop_reason(const struct gopclntab_func *f)
{
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
		if (strcmp(f->name, stops[i].name) == 0)
			return stops[i].end;
	if (f->flag & GOPCLNTAB_FLAG_TOPFRAME)
		return UNWIND_END_OUTERMOST;
	if (f->flag & GOPCLNTAB_FLAG_SPWRITE)
		return UNWIND_END_GO_SPWRITE;
	return -1;
}

static bool text_is(const struct builder *b, uint64_t pc, const uint8_t *bytes, size_t n)
{
	return b->text && pc >= b->text_vaddr && pc - b->text_vaddr <= b->text_len &&
	       n <= b->text_len - (pc - b->text_vaddr) && memcmp(b->text + (pc - b->text_vaddr), bytes, n) == 0;
}

/* The prologue's BP save, from the first run with a frame (at pc, delta v): Go up to 1.20 allocates
 * the frame, then `MOVQ BP, v-8(SP)` (disp8 or disp32); 1.21+ starts with `PUSHQ BP`. */
static void find_bp_save(struct builder *b, uint64_t pc, int32_t v)
{
	uint32_t slot = (uint32_t)v - 8;
	uint8_t disp8[5] = { 0x48, 0x89, 0x6c, 0x24, (uint8_t)slot };
	uint8_t disp32[8] = { 0x48, 0x89, 0xac, 0x24, (uint8_t)slot, (uint8_t)(slot >> 8), (uint8_t)(slot >> 16),
			      (uint8_t)(slot >> 24) };
	const uint8_t push_bp = 0x55;

	b->bp_frame = v;
	if (slot < 0x80 && text_is(b, pc, disp8, sizeof(disp8)))
		b->bp_pc = pc + sizeof(disp8);
	else if (text_is(b, pc, disp32, sizeof(disp32)))
		b->bp_pc = pc + sizeof(disp32);
	else if (v == 8 && pc > 0 && text_is(b, pc - 1, &push_bp, 1))
		b->bp_pc = pc;
}

static int first_frame(void *ctx, uint64_t pc, uint64_t end, int32_t v)
{
	(void)end;
	if (v <= 0)
		return 0;
	find_bp_save(ctx, pc, v);
	return 1;
}

static int on_run(void *ctx, uint64_t pc, uint64_t end, int32_t v)
{
	struct builder *b = ctx;
	struct unwind_row row = { .cfa = UNWIND_CFA_RSP, .cfa_off = (uint16_t)((int64_t)v + 8) };
	bool saved = b->bp_pc && v >= b->bp_frame && end > b->bp_pc;
	int err;

	/* SP above the entry's: the return address was popped (syscall.rawVforkSyscall) */
	if (v < 0 || (int64_t)v + 8 > UINT16_MAX) {
		row = (struct unwind_row){ .cfa = UNWIND_CFA_UNSUPPORTED };
		b->st->rows_unsupported++;
		saved = false;
	}
	b->covered = end;
	if (saved && pc < b->bp_pc) {
		/* the instruction that saves BP */
		err = append(b, pc, row);
		if (err)
			return err;
		pc = b->bp_pc;
	}
	row.rbp_off = saved ? -2 : 0;
	return append(b, pc, row);
}

/* Rows of function i, then a gap row where its pcsp ends (the next function's first row replaces it).
 * A function whose pcsp is corrupt gets a gap row only, and is counted. */
static int add_func(struct builder *b, const struct gopclntab *t, uint32_t i)
{
	const struct unwind_row none = { .cfa = UNWIND_CFA_NONE };
	struct gopclntab_func f;
	uint32_t kept = b->t->nrows;
	struct unwind_row last = kept ? b->t->rows[kept - 1] : none;
	int end, err = gopclntab_func(t, i, &f);

	if (!err) {
		end = stop_reason(&f);
		if (end >= 0)
			return append(b, f.entry, (struct unwind_row){ .cfa = UNWIND_CFA_END, .rbp_off = (int8_t)end }) ?:
			       append(b, f.end, none);
		b->bp_pc = 0;
		b->covered = f.entry;
		err = gopclntab_pcsp(t, &f, first_frame, b);
		err = err < 0 ? err : gopclntab_pcsp(t, &f, on_run, b);
		if (!err)
			return append(b, b->covered, none);
	}
	if (err != -ENOEXEC)
		return err;
	/* Undo its rows; the first may have replaced the row before it. */
	b->t->nrows = kept;
	if (kept)
		b->t->rows[kept - 1] = last;
	b->st->funcs_refused++;
	return append(b, f.entry, none);
}

int unwind_go_build(const struct gopclntab *t, const uint8_t *text, size_t text_len, uint64_t text_vaddr,
		    uint32_t max_rows, struct ehframe_table *out, struct unwind_go_stats *st)
{
	struct builder b = { .t = out, .max = max_rows, .text = text, .text_len = text_len,
			     .text_vaddr = text_vaddr, .st = st };
	uint32_t n = gopclntab_nfuncs(t);
	struct gopclntab_func first, last;
	int err = 0;

	memset(out, 0, sizeof(*out));
	gopclntab_func(t, 0, &first);
	gopclntab_func(t, n - 1, &last);
	if (last.end - first.entry > UINT32_MAX)
		return -E2BIG;
	out->base = first.entry;
	for (uint32_t i = 0; i < n && !err; i++)
		err = add_func(&b, t, i);
	if (!err && out->nrows <= 1)
		err = -ENOEXEC; /* not one function with rows */
	if (err) {
		ehframe_table_free(out);
		return err;
	}
	for (uint32_t i = 0; i < out->nrows; i++)
		out->unsupported += out->rows[i].cfa == UNWIND_CFA_UNSUPPORTED;
	return 0;
}

/* --- merging with .eh_frame rows ------------------------------------------------------------------ */

static uint64_t table_end(const struct ehframe_table *t)
{
	return t->base + t->rows[t->nrows - 1].pc;
}

int unwind_go_merge(struct ehframe_table *a, const struct ehframe_table *go, uint32_t max_rows)
{
	struct ehframe_table out = { 0 };
	struct builder b = { .t = &out, .max = max_rows };
	uint64_t lo = go->base, hi = table_end(go), end;
	const struct unwind_row *at_hi;
	int err = 0;

	if (!a->nrows)
		out.base = lo, end = hi;
	else
		out.base = a->base < lo ? a->base : lo, end = table_end(a) > hi ? table_end(a) : hi;
	if (end - out.base > UINT32_MAX)
		return -E2BIG;
	for (uint32_t i = 0; i < a->nrows && !err && a->base + a->rows[i].pc < lo; i++)
		err = append(&b, a->base + a->rows[i].pc, a->rows[i]);
	for (uint32_t i = 0; i < go->nrows && !err; i++)
		err = append(&b, go->base + go->rows[i].pc, go->rows[i]);
	at_hi = a->nrows ? ehframe_table_find(a, hi) : NULL;
	if (at_hi && !err)
		err = append(&b, hi, *at_hi);
	for (uint32_t i = 0; i < a->nrows && !err; i++)
		if (a->base + a->rows[i].pc > hi)
			err = append(&b, a->base + a->rows[i].pc, a->rows[i]);
	if (err) {
		ehframe_table_free(&out);
		return err;
	}
	out.nfdes = a->nfdes;
	out.unsupported = a->unsupported + go->unsupported;
	ehframe_table_free(a);
	*a = out;
	return 0;
}

/* --- ELF files ------------------------------------------------------------------------------------ */

static enum unwind_go_failure failure_of(int err)
{
	switch (err) {
	case -ENOENT:
		return UNWIND_GO_NOT_FOUND;
	case -EFBIG:
	case -E2BIG:
		return UNWIND_GO_TOO_LARGE;
	case -EPROTONOSUPPORT:
		return UNWIND_GO_UNSUPPORTED;
	default:
		return UNWIND_GO_CORRUPT;
	}
}

static int build_from_elf(struct elf_file *ef, uint64_t max_bytes, uint32_t max_rows, struct ehframe_table *go,
			  struct unwind_go_stats *st)
{
	struct gopclntab *t;
	const void *text = NULL;
	size_t text_len = 0;
	uint64_t text_vaddr;
	int err = gopclntab_elf_load(ef, -1, max_bytes, MAX_FUNCS, &t);

	if (err)
		return err;
	if (gopclntab_ptrsize(t) != 8) {
		gopclntab_free(t);
		return -EPROTONOSUPPORT;
	}
	/* without the text, rows have no BP rule: still right for Go frames, which need none */
	text_vaddr = gopclntab_text_start(t);
	if (elf_file_vaddr_data(ef, text_vaddr, max_bytes, &text, &text_len))
		text = NULL;
	err = unwind_go_build(t, text, text_len, text_vaddr, max_rows, go, st);
	gopclntab_free(t);
	return err;
}

int unwind_go_from_elf(struct elf_file *ef, uint64_t max_bytes, uint32_t max_rows, struct ehframe_table *eh,
		       struct unwind_go_stats *st)
{
	struct ehframe_table go;
	int err;

	if (!gopclntab_elf_is_go(ef))
		return 0;
	err = build_from_elf(ef, max_bytes, max_rows, &go, st);
	if (!err) {
		err = unwind_go_merge(eh, &go, max_rows);
		if (!err)
			st->rows += go.nrows;
		ehframe_table_free(&go);
	}
	if (err == -ENOMEM)
		return err;
	if (err) {
		st->failed[failure_of(err)]++;
		return err;
	}
	st->tables++;
	return 1;
}

void unwind_go_write_metrics(struct metrics_buf *b, const struct unwind_go_stats *st)
{
	struct metrics_series failures;

	metrics_counter(b, "anorak_unwind_go_tables_total", "Go binaries given unwind rows from their .gopclntab.",
			(double)st->tables);
	metrics_counter(b, "anorak_unwind_go_rows_total", "Unwind rows built from Go pcsp tables.", (double)st->rows);
	metrics_counter(b, "anorak_unwind_go_functions_refused_total",
			"Go functions given no unwind rows: their pcsp table is corrupt (frame pointers there).",
			(double)st->funcs_refused);
	metrics_counter(b, "anorak_unwind_go_rows_unsupported_total",
			"Go unwind rows left to frame pointers: frames over 64 KiB, SP above its value at entry.",
			(double)st->rows_unsupported);
	failures = metrics_series_begin(b, "anorak_unwind_go_failures_total", "counter",
					"Go binaries given no rows from .gopclntab, by reason.");
	for (int i = 0; i < UNWIND_GO_FAILURES; i++)
		metrics_series_valuef(failures, (double)st->failed[i], "reason=\"%s\"", failure_names[i]);
}
