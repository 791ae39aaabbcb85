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

/* What assembling needs of an FDE (half of struct ehframe_fde). */
struct fde_span {
	uint64_t pc_begin, pc_end;
};

/* Rows as parsed: raw rows (the general case), or compact ones (8 bytes instead of 24) whose pc is
 * relative to the start of their FDE, with where each FDE's rows start, and their FDEs in pc order. */
struct builder {
	struct raw_row *rows;
	struct unwind_row *compact;
	size_t n, cap;
	struct fde_span *fdes;
	uint32_t *first, *order;
	size_t nfdes, fdes_cap, first_cap, norder;
	size_t max;
	bool broken; /* compact: a row the compact form cannot hold, parse again with raw rows */
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
	b->fdes[b->nfdes++] = (struct fde_span){ fde->pc_begin, fde->pc_end };
	return 0;
}

static int on_compact_fde(void *ctx, const struct ehframe_fde *fde)
{
	struct builder *b = ctx;
	int err = grow((void **)&b->first, &b->first_cap, b->nfdes + 2, sizeof(*b->first), b->max + 1);

	if (!err)
		err = on_fde(ctx, fde);
	if (!err) {
		b->first[b->nfdes - 1] = (uint32_t)b->n;
		b->first[b->nfdes] = (uint32_t)b->n;
	}
	return err;
}

static int on_compact_row(void *ctx, const struct ehframe_fde *fde, const struct ehframe_row *r)
{
	struct builder *b = ctx;
	int err = grow((void **)&b->compact, &b->cap, b->n + 1, sizeof(*b->compact), b->max);

	if (err)
		return err;
	if (r->pc < fde->pc_begin || r->pc - fde->pc_begin > UINT32_MAX) {
		b->broken = true;
		return -ERANGE;
	}
	b->compact[b->n] = ehframe_compact(r);
	b->compact[b->n].pc = (uint32_t)(r->pc - fde->pc_begin);
	b->first[b->nfdes] = (uint32_t)++b->n;
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

bool ehframe_same_rule(const struct unwind_row *a, const struct unwind_row *b)
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
	if (t->nrows && ehframe_same_rule(&t->rows[t->nrows - 1], &row))
		return;
	t->rows[t->nrows++] = row;
}

static int cmp_fde(const void *a, const void *b, void *fdes)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	uint64_t px = ((const struct fde_span *)fdes)[x].pc_begin;
	uint64_t py = ((const struct fde_span *)fdes)[y].pc_begin;

	if (px != py)
		return px < py ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* The FDEs with compact rows in pc order, when taking their rows FDE by FDE gives the rows in (pc,
 * parse order): FDEs that are not empty and do not overlap, rows that ascend inside their FDE. That
 * is what compilers emit. NULL otherwise (or out of memory). */
static uint32_t *fdes_in_order(const struct builder *b, size_t *nsorted)
{
	uint32_t *order = malloc((b->nfdes ? b->nfdes : 1) * sizeof(*order));
	size_t n = 0;

	if (!order)
		return NULL;
	for (uint32_t f = 0; f < b->nfdes; f++)
		if (b->first[f + 1] > b->first[f])
			order[n++] = f;
	qsort_r(order, n, sizeof(*order), cmp_fde, b->fdes);
	for (size_t i = 0; i < n; i++) {
		const struct fde_span *f = &b->fdes[order[i]];
		uint32_t at = 0;

		if (f->pc_begin >= f->pc_end || (i + 1 < n && f->pc_end > b->fdes[order[i + 1]].pc_begin))
			goto unordered;
		for (uint32_t r = b->first[order[i]]; r < b->first[order[i] + 1]; at = b->compact[r++].pc)
			if (b->compact[r].pc < at || b->compact[r].pc >= f->pc_end - f->pc_begin)
				goto unordered;
	}
	*nsorted = n;
	return order;
unordered:
	free(order);
	return NULL;
}

struct cover {
	uint64_t to;      /* the end of the FDEs taken so far */
	uint32_t current; /* the FDE of the last row taken */
};

/* Takes the next row in pc order; where an FDE ends and no row follows at once, a gap row.
 * Overlapping FDEs (broken input) are cut: a row never takes effect before the end of the previous FDE. */
static void take_row(const struct builder *b, struct ehframe_table *t, struct cover *c, uint64_t pc,
		     uint32_t fde, struct unwind_row row)
{
	const struct unwind_row none = { .cfa = UNWIND_CFA_NONE };

	if (pc < c->to && fde != c->current)
		return;
	if (pc > c->to)
		append(t, c->to, none);
	append(t, pc, row);
	c->current = fde;
	if (b->fdes[fde].pc_end > c->to)
		c->to = b->fdes[fde].pc_end;
}

/* Every row, in pc order: compact rows FDE by FDE (in b->order), raw rows sorted. */
static void take_rows(struct builder *b, struct ehframe_table *t, struct cover *c)
{
	if (!b->compact) {
		qsort(b->rows, b->n, sizeof(*b->rows), cmp_raw);
		for (size_t i = 0; i < b->n; i++)
			take_row(b, t, c, b->rows[i].pc, b->rows[i].fde, b->rows[i].row);
		return;
	}
	for (size_t i = 0; i < b->norder; i++) {
		uint32_t f = b->order[i];
		uint64_t begin = b->fdes[f].pc_begin;

		for (uint32_t r = b->first[f]; r < b->first[f + 1]; r++)
			take_row(b, t, c, begin + b->compact[r].pc, f, b->compact[r]);
	}
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
	/* At most one row per parsed row plus one gap row per FDE. */
	if (b->n + b->nfdes > b->max)
		return -E2BIG;
	t->rows = malloc((b->n + b->nfdes + 1) * sizeof(*t->rows));
	if (!t->rows)
		return -ENOMEM;
	t->base = lo;
	t->nrows = 0;
	t->nfdes = (uint32_t)b->nfdes;

	struct cover c = { .to = lo, .current = UINT32_MAX };

	take_rows(b, t, &c);
	append(t, c.to, (struct unwind_row){ .cfa = UNWIND_CFA_NONE });
	for (uint32_t i = 0; i < t->nrows; i++)
		t->unsupported += t->rows[i].cfa == UNWIND_CFA_UNSUPPORTED;
	return 0;
}

static void builder_free(struct builder *b)
{
	free(b->rows);
	free(b->compact);
	free(b->fdes);
	free(b->first);
	free(b->order);
}

/* One parse into rows of the form b asks for, and the table from them. Compact rows must come FDE by
 * FDE in pc order (-EAGAIN otherwise: parse again into raw rows). An owned input (*owned) is freed
 * once it cannot be parsed again, before the table is allocated. */
static int build(const uint8_t *data, size_t len, uint64_t vaddr, struct builder *b, uint8_t **owned,
		 struct ehframe_table *out)
{
	struct ehframe_visitor v = { .fde = on_fde, .row = on_row, .ctx = b };
	int err;

	if (b->compact) {
		v.fde = on_compact_fde;
		v.row = on_compact_row;
	}
	memset(out, 0, sizeof(*out));
	err = ehframe_parse(data, len, vaddr, &v);
	if (!err && b->compact && !(b->order = fdes_in_order(b, &b->norder)))
		err = -EAGAIN;
	if (!err && owned) {
		free(*owned);
		*owned = NULL;
	}
	if (!err)
		err = assemble(b, out);
	if (err)
		ehframe_table_free(out);
	return err;
}

/* Compact rows first (a third of the memory at the peak of each table built); input they cannot
 * take in order is parsed again into raw rows. */
static int table_build(const uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows, uint8_t **owned,
		       struct ehframe_table *out)
{
	struct builder b = { .max = max_rows };
	int err;

	b.compact = malloc(1024 * sizeof(*b.compact));
	b.cap = b.compact ? 1024 : 0;
	err = b.compact ? build(data, len, vaddr, &b, owned, out) : -EAGAIN;
	if (err == -EAGAIN || b.broken) {
		builder_free(&b);
		b = (struct builder){ .max = max_rows };
		err = build(data, len, vaddr, &b, owned, out);
	}
	builder_free(&b);
	return err;
}

int ehframe_table_build(const uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows,
			struct ehframe_table *out)
{
	return table_build(data, len, vaddr, max_rows, NULL, out);
}

int ehframe_table_build_owned(uint8_t *data, size_t len, uint64_t vaddr, uint32_t max_rows,
			      struct ehframe_table *out)
{
	int err = table_build(data, len, vaddr, max_rows, &data, out);

	free(data);
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
