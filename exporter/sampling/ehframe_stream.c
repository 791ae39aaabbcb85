#include "exporter/sampling/ehframe_stream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/sampling/ehframe.h"

/* .eh_frame is read from the file through a window (the header lists FDEs in about the order they
 * lie in, so each byte is read about once a pass) and a few CIEs; the header is copied whole. */
#define WINDOW_BYTES (64u << 10)
#define CIE_BYTES 512
#define CIE_SLOTS 8
/* Bytes read per pass at most: the section READ_BUDGET times and READ_BUDGET_JUMPS windows (a jump
 * back, at a linker's .text.unlikely or .text.hot group); FDEs far out of order are not streamed. */
#define READ_BUDGET 4
#define READ_BUDGET_JUMPS 64

struct cie_slot {
	size_t off, len;
	uint8_t b[CIE_BYTES];
};

struct ehframe_stream {
	int fd;
	uint64_t file_off;             /* of .eh_frame */
	struct ehframe_reader reader;
	uint64_t bytes_read, budget;
	uint8_t window[WINDOW_BYTES];
	size_t win_off, win_len;
	struct cie_slot cies[CIE_SLOTS];
	uint32_t next_cie;
	uint8_t *hdr;                  /* a copy of .eh_frame_hdr */
	size_t hdr_len;
	uint64_t hdr_vaddr;
	const uint8_t *table;          /* in hdr: count pairs (pc, FDE) */
	uint32_t count;
	uint32_t nrows;                /* of the first pass */
	struct unwind_row buf[EHFRAME_STREAM_BATCH + 1];
};

static int pread_full(int fd, uint8_t *dst, size_t n, uint64_t off)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = pread(fd, dst + got, n - got, (off_t)(off + got));

		if (r <= 0)
			return r < 0 ? -errno : -EINVAL; /* the file is shorter than its headers say */
		got += (size_t)r;
	}
	return 0;
}

static int fill(struct ehframe_stream *s, uint8_t *dst, size_t off, size_t n)
{
	s->bytes_read += n;
	if (s->bytes_read > s->budget)
		return -EOPNOTSUPP;
	return pread_full(s->fd, dst, n, s->file_off + off);
}

static int read_at(void *ctx, int slot, size_t off, size_t n, const uint8_t **p)
{
	struct ehframe_stream *s = ctx;
	size_t len = s->reader.len;
	int err;

	if (off > len || n > len - off)
		return -EINVAL;
	if (slot == 0) {
		if (off < s->win_off || off + n > s->win_off + s->win_len) {
			size_t want = len - off < WINDOW_BYTES ? len - off : WINDOW_BYTES;

			if (n > WINDOW_BYTES)
				return -EOPNOTSUPP;
			s->win_len = 0;
			if ((err = fill(s, s->window, off, want)))
				return err;
			s->win_off = off;
			s->win_len = want;
		}
		*p = s->window + (off - s->win_off);
		return 0;
	}
	for (int i = 0; i < CIE_SLOTS; i++) {
		struct cie_slot *c = &s->cies[i];

		if (c->len && off >= c->off && off + n <= c->off + c->len) {
			*p = c->b + (off - c->off);
			return 0;
		}
	}
	if (n > CIE_BYTES)
		return -EOPNOTSUPP;
	struct cie_slot *c = &s->cies[s->next_cie++ % CIE_SLOTS];
	c->len = 0;
	c->off = off;
	if ((err = fill(s, c->b, off, len - off < CIE_BYTES ? len - off : CIE_BYTES)))
		return err;
	c->len = len - off < CIE_BYTES ? len - off : CIE_BYTES;
	*p = c->b;
	return 0;
}

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
		err = ehframe_parse_fde_at(&s->reader, (size_t)(table_at(s, i, 1) - s->reader.vaddr), &v);
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
	int err;

	s->bytes_read = 0;
	err = run_pass(&p);

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
	int err;

	s->bytes_read = 0;
	err = run_pass(&p);

	return err ? err : p.flushed == s->nrows ? 0 : -EIO;
}

/* Every FDE listed once, in pc order, inside the part of .eh_frame the whole build parses. */
static int check_table(const struct ehframe_stream *s)
{
	uint32_t nfdes;
	size_t parsed;
	int err = ehframe_count_fdes_at(&s->reader, &nfdes, &parsed);

	if (err)
		return err;
	if (nfdes != s->count)
		return -EOPNOTSUPP;
	for (uint32_t i = 0; i < s->count; i++) {
		uint64_t fde = table_at(s, i, 1);

		if (fde < s->reader.vaddr || fde - s->reader.vaddr >= parsed || (i && table_at(s, i, 0) <= table_at(s, i - 1, 0)))
			return -EOPNOTSUPP;
	}
	return 0;
}

/* The file offset of the section at vaddr, size bytes, from the PT_LOAD segment holding it. */
static int file_offset(struct elf_file *f, uint64_t vaddr, uint64_t size, uint64_t *off)
{
	struct elf_load loads[ELF_MAX_LOADS];
	int n = elf_file_loads(f, loads, ELF_MAX_LOADS);

	for (int i = 0; i < n; i++) {
		const struct elf_load *l = &loads[i];

		if (vaddr >= l->vaddr && vaddr - l->vaddr <= l->filesz && size <= l->filesz - (vaddr - l->vaddr)) {
			*off = l->offset + (vaddr - l->vaddr);
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

static int open_sections(struct elf_file *f, int fd, uint64_t max_bytes, struct ehframe_stream *s)
{
	uint64_t vaddr, size, hdr_off;
	int err;

	if (fd < 0 || elf_file_section_addr(f, ".eh_frame", &vaddr, &size) ||
	    elf_file_section_addr(f, ".eh_frame_hdr", &s->hdr_vaddr, &s->hdr_len) || !size ||
	    file_offset(f, vaddr, size, &s->file_off) || file_offset(f, s->hdr_vaddr, s->hdr_len, &hdr_off))
		return -EOPNOTSUPP;
	if (s->hdr_len > max_bytes)
		return -EFBIG;
	s->fd = fd;
	s->reader = (struct ehframe_reader){ .read = read_at, .ctx = s, .len = size, .vaddr = vaddr };
	s->budget = READ_BUDGET * size + READ_BUDGET_JUMPS * WINDOW_BYTES;
	s->hdr = malloc(s->hdr_len ? s->hdr_len : 1);
	if (!s->hdr)
		return -ENOMEM;
	err = pread_full(fd, s->hdr, s->hdr_len, hdr_off);
	return err == -EINVAL ? -EOPNOTSUPP : err;
}

int ehframe_stream_open(struct elf_file *f, int fd, uint64_t max_bytes, struct ehframe_stream **out)
{
	struct ehframe_stream *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	err = open_sections(f, fd, max_bytes, s);
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
	free(s->hdr);
	free(s);
}
