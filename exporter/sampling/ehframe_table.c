#include "exporter/sampling/ehframe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct unwind_row ehframe_compact(const struct ehframe_row *r)
{
	struct unwind_row out = { .cfa = UNWIND_CFA_UNSUPPORTED };

	if (r->ra == EHFRAME_UNDEFINED) {
		out.cfa = UNWIND_CFA_END;
		return out;
	}
	if (r->ra != EHFRAME_AT_CFA || r->ra_off != -8)
		return out;
	switch (r->cfa) {
	case UNWIND_CFA_RSP:
	case UNWIND_CFA_RBP:
	case UNWIND_CFA_PLT:
		if (r->cfa_off < 0 || r->cfa_off > UINT16_MAX)
			return out;
		break;
	default:
		return out;
	}
	if (r->cfa == UNWIND_CFA_PLT) {
		out.rbp_off = (int8_t)r->plt_threshold;
	} else if (r->rbp == EHFRAME_AT_CFA) {
		if (r->rbp_off % 8 || r->rbp_off / 8 < INT8_MIN || r->rbp_off / 8 > INT8_MAX || r->rbp_off == 0)
			return out;
		out.rbp_off = (int8_t)(r->rbp_off / 8);
	} else if (r->rbp == EHFRAME_OTHER) {
		return out;
	}
	/* EHFRAME_UNDEFINED rbp: nothing to restore, the caller's value is lost; leave it as it is. */
	out.cfa = (uint8_t)r->cfa;
	out.cfa_off = (uint16_t)r->cfa_off;
	return out;
}

/* Rows as parsed, with the FDE they belong to, before sorting. */
struct raw_row {
	uint64_t pc;
	uint32_t fde;  /* index in fdes */
	uint32_t seq;  /* parse order, for a stable sort */
	struct unwind_row row;
};

struct builder {
	struct raw_row *rows;
	size_t n, cap;
	struct ehframe_fde *fdes;
	size_t nfdes, fdes_cap;
	size_t max;
};

static int grow(void **p, size_t *cap, size_t need, size_t size, size_t max)
{
	if (need <= *cap)
		return 0;
	if (need > max)
		return -E2BIG;
	size_t ncap = *cap ? *cap * 2 : 1024;
	while (ncap < need)
		ncap *= 2;
	void *q = realloc(*p, ncap * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = ncap;
	return 0;
}

static int on_fde(void *ctx, const struct ehframe_fde *fde)
{
	struct builder *b = ctx;
	int err = grow((void **)&b->fdes, &b->fdes_cap, b->nfdes + 1, sizeof(*b->fdes), b->max);

	if (err)
		return err;
	b->fdes[b->nfdes++] = *fde;
	return 0;
}

static int on_row(void *ctx, const struct ehframe_fde *fde, const struct ehframe_row *r)
{
	struct builder *b = ctx;
	int err = grow((void **)&b->rows, &b->cap, b->n + 1, sizeof(*b->rows), b->max);

	(void)fde;
	if (err)
		return err;
	b->rows[b->n] = (struct raw_row){
		.pc = r->pc, .fde = (uint32_t)(b->nfdes - 1), .seq = (uint32_t)b->n, .row = ehframe_compact(r),
	};
	b->n++;
	return 0;
}

static int cmp_raw(const void *a, const void *b)
{
	const struct raw_row *x = a, *y = b;

	if (x->pc != y->pc)
		return x->pc < y->pc ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool same_rule(const struct unwind_row *a, const struct unwind_row *b)
{
	return a->cfa == b->cfa && a->cfa_off == b->cfa_off && a->rbp_off == b->rbp_off;
}

/* Appends a row at file address pc; a row at the same pc replaces the last one, and a row with the
 * rule of the one before it is not needed. */
static void append(struct ehframe_table *t, uint64_t pc, struct unwind_row row)
{
	row.pc = (uint32_t)(pc - t->base);
	if (t->nrows && t->rows[t->nrows - 1].pc == row.pc)
		t->nrows--;
	if (t->nrows && same_rule(&t->rows[t->nrows - 1], &row))
		return;
	t->rows[t->nrows++] = row;
}

static int assemble(struct builder *b, struct ehframe_table *t)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (size_t i = 0; i < b->nfdes; i++) {
		if (b->fdes[i].pc_begin == b->fdes[i].pc_end)
			continue;
		lo = b->fdes[i].pc_begin < lo ? b->fdes[i].pc_begin : lo;
		hi = b->fdes[i].pc_end > hi ? b->fdes[i].pc_end : hi;
	}
	if (lo >= hi)
		return -ENOENT;
	if (hi - lo > UINT32_MAX)
		return -E2BIG;
	qsort(b->rows, b->n, sizeof(*b->rows), cmp_raw);
	/* At most one row per parsed row plus one gap row per FDE. */
	if (b->n + b->nfdes > b->max)
		return -E2BIG;
	t->rows = malloc((b->n + b->nfdes + 1) * sizeof(*t->rows));
	if (!t->rows)
		return -ENOMEM;
	t->base = lo;
	t->nrows = 0;
	t->nfdes = (uint32_t)b->nfdes;

	/* Rows in pc order; where an FDE ends and no row follows at once, a gap row. Overlapping FDEs
	 * (broken input) are cut: a row never takes effect before the end of the previous FDE. */
	uint64_t covered_to = lo;
	uint32_t current = UINT32_MAX; /* the FDE of the last row taken */
	const struct unwind_row none = { .cfa = UNWIND_CFA_NONE };
	for (size_t i = 0; i < b->n; i++) {
		const struct raw_row *r = &b->rows[i];
		const struct ehframe_fde *f = &b->fdes[r->fde];

		if (r->pc < covered_to && r->fde != current)
			continue;
		if (r->pc > covered_to)
			append(t, covered_to, none);
		append(t, r->pc, r->row);
		current = r->fde;
		if (f->pc_end > covered_to)
			covered_to = f->pc_end;
	}
	append(t, covered_to, none);
	for (uint32_t i = 0; i < t->nrows; i++)
		t->unsupported += t->rows[i].cfa == UNWIND_CFA_UNSUPPORTED;
	return 0;
}

int ehframe_table_build(const uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows,
			struct ehframe_table *out)
{
	struct builder b = { .max = max_rows };
	struct ehframe_visitor v = { .fde = on_fde, .row = on_row, .ctx = &b };
	int err;

	memset(out, 0, sizeof(*out));
	err = ehframe_parse(data, len, vaddr, &v);
	if (!err)
		err = assemble(&b, out);
	free(b.rows);
	free(b.fdes);
	if (err)
		ehframe_table_free(out);
	return err;
}

void ehframe_table_free(struct ehframe_table *t)
{
	free(t->rows);
	memset(t, 0, sizeof(*t));
}

const struct unwind_row *ehframe_table_find(const struct ehframe_table *t, uint64_t pc)
{
	uint32_t lo = 0, n = t->nrows;

	if (!n || pc < t->base || pc - t->base > UINT32_MAX)
		return NULL;
	uint32_t rel = (uint32_t)(pc - t->base);
	/* The same search as the BPF side: the last row with row.pc <= rel. */
	while (n > 1) {
		uint32_t half = n / 2;
		if (t->rows[lo + half].pc <= rel)
			lo += half;
		n -= half;
	}
	return t->rows[lo].pc <= rel ? &t->rows[lo] : NULL;
}
