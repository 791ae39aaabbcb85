#include "exporter/sampling/ehframe_stream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/proc/elf_file.h"
#include "exporter/sampling/ehframe.h"

struct ehframe_stream {
	uint8_t *data, *hdr;           /* copies of .eh_frame and .eh_frame_hdr */
	size_t len, hdr_len;
	uint64_t vaddr, hdr_vaddr;
	const uint8_t *table;          /* in hdr: count pairs (pc, FDE) */
	uint32_t count;
	uint32_t nrows;                /* of the first pass */
	struct unwind_row buf[EHFRAME_STREAM_BATCH + 1];
};

/* One pass over the FDEs: the rows of ehframe_table.c's assemble() for FDEs in pc order, and a batch
 * of them that keeps its last row (the next one may replace it). */
struct pass {
	struct ehframe_stream *s;
	uint64_t want_pc;              /* the header's pc of the FDE parsed */
	uint64_t to;                   /* the end of the FDEs taken so far */
	uint64_t base;                 /* the first row's pc */
	bool started;
	uint32_t n;                    /* rows in s->buf */
	uint64_t flushed;              /* rows handed out before them */
	struct unwind_row flushed_last;
	uint32_t max_rows;
	ehframe_sink_fn sink;
	void *ctx;
};

static uint64_t table_at(const struct ehframe_stream *s, uint32_t i, int half)
{
	int32_t v;

	memcpy(&v, s->table + (size_t)i * 8 + (size_t)half * 4, sizeof(v));
	return s->hdr_vaddr + (uint64_t)(int64_t)v;
}

static int flush(struct pass *p, uint32_t n)
{
	int err = p->sink ? p->sink(p->ctx, (uint32_t)p->flushed, p->s->buf, n) : 0;

	if (err)
		return err;
	p->flushed_last = p->s->buf[n - 1];
	p->flushed += n;
	memmove(p->s->buf, p->s->buf + n, (p->n - n) * sizeof(p->s->buf[0]));
	p->n -= n;
	return 0;
}

/* ehframe_table.c's append(): a row at the same pc replaces the last one, a row with the rule of the
 * one before it is not needed. */
static int append(struct pass *p, uint64_t pc, struct unwind_row row)
{
	struct unwind_row *buf = p->s->buf;

	row.pc = (uint32_t)(pc - p->base);
	if (p->n && buf[p->n - 1].pc == row.pc)
		p->n--;
	const struct unwind_row *last = p->n ? &buf[p->n - 1] : p->flushed ? &p->flushed_last : NULL;
	if (last && ehframe_same_rule(last, &row))
		return 0;
	if (p->flushed + p->n >= p->max_rows)
		return -E2BIG;
	if (p->n == EHFRAME_STREAM_BATCH + 1) {
		int err = flush(p, EHFRAME_STREAM_BATCH);
		if (err)
			return err;
	}
	buf[p->n++] = row;
	return 0;
}

static int on_fde(void *ctx, const struct ehframe_fde *fde)
{
	struct pass *p = ctx;

	if (fde->pc_begin != p->want_pc)
		return -EOPNOTSUPP;
	/* Overlapping FDEs: the whole build's rule for them is not a streaming one. */
	if (p->started && fde->pc_begin != fde->pc_end && fde->pc_begin < p->to)
		return -EOPNOTSUPP;
	return 0;
}

/* take_row() for FDEs in order: a gap row where one FDE ends before the next begins. */
static int on_row(void *ctx, const struct ehframe_fde *fde, const struct ehframe_row *r)
{
	struct pass *p = ctx;
	int err = 0;

	if (!p->started) {
		p->started = true;
		p->base = p->to = r->pc;
	}
	if (r->pc > p->to)
		err = append(p, p->to, (struct unwind_row){ .cfa = UNWIND_CFA_NONE });
	if (!err)
		err = append(p, r->pc, ehframe_compact(r));
	if (fde->pc_end > p->to)
		p->to = fde->pc_end;
	return err;
}

static int run_pass(struct pass *p)
{
	struct ehframe_stream *s = p->s;
	struct ehframe_visitor v = { .fde = on_fde, .row = on_row, .ctx = p };
	int err = 0;

	for (uint32_t i = 0; i < s->count && !err; i++) {
		p->want_pc = table_at(s, i, 0);
		err = ehframe_parse_fde(s->data, s->len, s->vaddr, (size_t)(table_at(s, i, 1) - s->vaddr), &v);
	}
	if (!err && !p->started)
		return -ENOENT;
	if (!err && p->to - p->base > UINT32_MAX)
		return -E2BIG;
	if (!err)
		err = append(p, p->to, (struct unwind_row){ .cfa = UNWIND_CFA_NONE });
	if (!err && p->n)
		err = flush(p, p->n);
	return err;
}

int ehframe_stream_count(struct ehframe_stream *s, uint32_t max_rows, uint32_t *nrows, uint64_t *base)
{
	struct pass p = { .s = s, .max_rows = max_rows };
	int err = run_pass(&p);

	if (err)
		return err;
	s->nrows = (uint32_t)p.flushed;
	*nrows = s->nrows;
	*base = p.base;
	return 0;
}

int ehframe_stream_write(struct ehframe_stream *s, ehframe_sink_fn sink, void *ctx)
{
	struct pass p = { .s = s, .max_rows = s->nrows, .sink = sink, .ctx = ctx };
	int err = run_pass(&p);

	return err ? err : p.flushed == s->nrows ? 0 : -EIO;
}

/* Every FDE listed once, in pc order, inside the part of .eh_frame the whole build parses. */
static int check_table(const struct ehframe_stream *s)
{
	uint32_t nfdes;
	size_t parsed;
	int err = ehframe_count_fdes(s->data, s->len, &nfdes, &parsed);

	if (err)
		return err;
	if (nfdes != s->count)
		return -EOPNOTSUPP;
	for (uint32_t i = 0; i < s->count; i++) {
		uint64_t fde = table_at(s, i, 1);

		if (fde < s->vaddr || fde - s->vaddr >= parsed || (i && table_at(s, i, 0) <= table_at(s, i - 1, 0)))
			return -EOPNOTSUPP;
	}
	return 0;
}

static int copy_sections(struct elf_file *f, uint64_t max_bytes, struct ehframe_stream *s)
{
	uint64_t vaddr, size, hdr_size;
	int err;

	if (elf_file_section_addr(f, ".eh_frame", &vaddr, &size) ||
	    elf_file_section_addr(f, ".eh_frame_hdr", &vaddr, &hdr_size))
		return -EOPNOTSUPP;
	if (size > max_bytes || hdr_size > max_bytes - size)
		return -EFBIG;
	err = elf_file_section_copy(f, ".eh_frame", size, &s->data, &s->len, &s->vaddr);
	if (!err)
		err = elf_file_section_copy(f, ".eh_frame_hdr", hdr_size, &s->hdr, &s->hdr_len, &s->hdr_vaddr);
	return err == -ENOMEM || err == -EFBIG ? err : err ? -EOPNOTSUPP : 0;
}

int ehframe_stream_open(struct elf_file *f, uint64_t max_bytes, struct ehframe_stream **out)
{
	struct ehframe_stream *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	err = copy_sections(f, max_bytes, s);
	if (!err)
		err = ehframe_hdr_table(s->hdr, s->hdr_len, s->hdr_vaddr, &s->table, &s->count);
	if (!err)
		err = check_table(s);
	if (err) {
		ehframe_stream_free(s);
		return err == -EINVAL ? -EOPNOTSUPP : err;
	}
	*out = s;
	return 0;
}

void ehframe_stream_free(struct ehframe_stream *s)
{
	if (!s)
		return;
	free(s->data);
	free(s->hdr);
	free(s);
}
