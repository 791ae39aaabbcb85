/*
 * .gopclntab reader. The table starts with a pcHeader: magic, two zero pads, the PC quantum, the
 * pointer size, then pointer-sized words: function and file counts, (1.18+) the text start, and the
 * offsets of funcnametab, cutab, filetab, pctab and the function table, all from the header. The
 * function table is nfunc+1 (entry, funcoff) pairs sorted by entry, then the `_func` records they point
 * at. pc-value tables are varint pairs (zigzag value delta, pc delta in quanta) ending in a zero value
 * delta. Facts from Go's runtime/symtab.go and debug/gosym/pclntab.go; no Go code is copied.
 */
#include "exporter/proc/gopclntab.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_GO116 0xfffffffau
#define MAGIC_GO118 0xfffffff0u
#define MAGIC_GO120 0xfffffff1u

#define PCDATA_INLTREE_INDEX 2
#define FUNCDATA_INLTREE 3
#define MAX_PCDATA 1024        /* Go emits 4; a larger count is corrupt */
#define MAX_INLTREE_INDEX (1 << 20)
#define MAX_INLINE_DEPTH 256   /* call sites followed per PC; a corrupt tree may loop */

struct gopclntab {
	uint8_t *data;
	size_t len;
	uint64_t vaddr, text_start;
	enum gopclntab_version version;
	uint8_t ptrsize, quantum;
	uint32_t nfunc;
	size_t ncu; /* uint32 entries of cutab: per compilation unit file lists, up to filetab */
	size_t funcname, cutab, filetab, pctab, pcln; /* table offsets in data */
	size_t field;    /* bytes per functab field: 4 (1.18+) or the pointer size */
	size_t func_hdr; /* bytes of `_func` before its pcdata offsets */
	uint64_t gofunc;
	gopclntab_read_fn read;
	void *read_ctx;
	void (*read_ctx_free)(void *);
};

/* The function a PC falls in. */
struct go_func {
	size_t off; /* of its `_func` in data */
	uint64_t entry, end;
	int32_t nameoff;
	uint32_t pcfile, pcln, npcdata, cu;
	uint8_t nfuncdata;
};

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t rd_ptr(const struct gopclntab *t, size_t off)
{
	uint64_t v = 0;

	if (t->ptrsize == 4)
		return rd32(t->data + off);
	memcpy(&v, t->data + off, sizeof(v));
	return le64toh(v);
}

/* Whether [off, off + n) lies inside the table. */
static bool fits(const struct gopclntab *t, size_t off, size_t n)
{
	return off <= t->len && n <= t->len - off;
}

static uint64_t functab_word(const struct gopclntab *t, size_t idx)
{
	size_t off = t->pcln + idx * t->field;

	return t->field == 4 ? rd32(t->data + off) : rd_ptr(t, off);
}

static uint64_t func_entry(const struct gopclntab *t, uint32_t i)
{
	uint64_t v = functab_word(t, 2 * (size_t)i);

	return t->version == GOPCLNTAB_GO116 ? v : t->text_start + v;
}

/* --- header --------------------------------------------------------------------------------------- */

static int read_magic(struct gopclntab *t, uint32_t magic)
{
	switch (magic) {
	case MAGIC_GO116:
		t->version = GOPCLNTAB_GO116;
		return 0;
	case MAGIC_GO118:
		t->version = GOPCLNTAB_GO118;
		return 0;
	case MAGIC_GO120:
		t->version = GOPCLNTAB_GO120;
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

/* Header words as offsets into the table; each must land inside it. */
static int read_offsets(struct gopclntab *t)
{
	size_t *const dst[] = { &t->funcname, &t->cutab, &t->filetab, &t->pctab, &t->pcln };
	size_t first = t->version == GOPCLNTAB_GO116 ? 2 : 3;

	for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++) {
		uint64_t v = rd_ptr(t, 8 + (first + i) * t->ptrsize);

		if (v >= t->len)
			return -ENOEXEC;
		*dst[i] = (size_t)v;
	}
	return 0;
}

static int read_header(struct gopclntab *t, uint64_t text_start, uint32_t max_funcs)
{
	const uint8_t *d = t->data;
	uint64_t nfunc, hdr_text = 0;
	int err;

	if (t->len < 8)
		return -ENOEXEC;
	err = read_magic(t, rd32(d));
	if (err)
		return err;
	t->quantum = d[6];
	t->ptrsize = d[7];
	if (d[4] || d[5] || (t->quantum != 1 && t->quantum != 2 && t->quantum != 4) ||
	    (t->ptrsize != 4 && t->ptrsize != 8) || t->len < 8 + 8 * (size_t)t->ptrsize)
		return -ENOEXEC;
	nfunc = rd_ptr(t, 8);
	if (t->version != GOPCLNTAB_GO116)
		hdr_text = rd_ptr(t, 8 + 2 * (size_t)t->ptrsize);
	if (nfunc == 0)
		return -ENOEXEC;
	if (nfunc > max_funcs)
		return -E2BIG;
	t->nfunc = (uint32_t)nfunc;
	t->text_start = hdr_text ? hdr_text : text_start;
	t->field = t->version == GOPCLNTAB_GO116 ? t->ptrsize : 4;
	/* entry (pointer or uint32), eight uint32 fields, (1.20+) startLine, four bytes ending in nfuncdata */
	t->func_hdr = (t->version == GOPCLNTAB_GO116 ? t->ptrsize : 4) + 32 +
		      (t->version == GOPCLNTAB_GO120 ? 4 : 0) + 4;
	err = read_offsets(t);
	if (err)
		return err;
	/* cutab is followed by filetab in every writer's layout; anything else ends it at the table's end */
	t->ncu = ((t->filetab > t->cutab ? t->filetab : t->len) - t->cutab) / 4;
	if (!fits(t, t->pcln, (2 * (size_t)t->nfunc + 1) * t->field))
		return -ENOEXEC;
	return 0;
}

/* Entries must be sorted and every `_func` record inside the table: lookups then only check what the
 * record itself says. */
static int check_functab(struct gopclntab *t)
{
	uint64_t prev = func_entry(t, 0);

	for (uint32_t i = 0; i < t->nfunc; i++) {
		uint64_t next = func_entry(t, i + 1), off = functab_word(t, 2 * (size_t)i + 1);

		if (next < prev || off > t->len - t->pcln || !fits(t, t->pcln + (size_t)off, t->func_hdr))
			return -ENOEXEC;
		prev = next;
	}
	return 0;
}

int gopclntab_parse(const void *data, size_t len, uint64_t vaddr, uint64_t text_start, uint32_t max_funcs,
		    struct gopclntab **out)
{
	struct gopclntab *t;
	uint8_t *copy;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* Checked in place, copied only once it holds together. */
	t->data = (uint8_t *)data;
	t->len = len;
	t->vaddr = vaddr;
	err = read_header(t, text_start, max_funcs) ?: check_functab(t);
	copy = err ? NULL : malloc(len);
	if (!err && !copy)
		err = -ENOMEM;
	if (err) {
		free(t);
		return err;
	}
	memcpy(copy, data, len);
	t->data = copy;
	*out = t;
	return 0;
}

void gopclntab_free(struct gopclntab *t)
{
	if (!t)
		return;
	if (t->read_ctx_free)
		t->read_ctx_free(t->read_ctx);
	free(t->data);
	free(t);
}

void gopclntab_set_funcdata(struct gopclntab *t, uint64_t gofunc, gopclntab_read_fn read, void *ctx,
			    void (*ctx_free)(void *))
{
	if (t->read_ctx_free)
		t->read_ctx_free(t->read_ctx);
	t->gofunc = gofunc;
	t->read = read;
	t->read_ctx = ctx;
	t->read_ctx_free = ctx_free;
}

enum gopclntab_version gopclntab_version(const struct gopclntab *t)
{
	return t->version;
}

uint32_t gopclntab_nfuncs(const struct gopclntab *t)
{
	return t->nfunc;
}

uint64_t gopclntab_text_start(const struct gopclntab *t)
{
	return t->version == GOPCLNTAB_GO116 ? func_entry(t, 0) : t->text_start;
}

unsigned gopclntab_ptrsize(const struct gopclntab *t)
{
	return t->ptrsize;
}

size_t gopclntab_bytes(const struct gopclntab *t)
{
	return sizeof(*t) + t->len;
}

uint64_t gopclntab_vaddr(const struct gopclntab *t)
{
	return t->vaddr;
}

/* --- functions ------------------------------------------------------------------------------------ */

/* Index of the function holding pc, or -1. */
static int64_t find_func(const struct gopclntab *t, uint64_t pc)
{
	uint32_t lo = 0, hi = t->nfunc;

	if (pc < func_entry(t, 0) || pc >= func_entry(t, t->nfunc))
		return -1;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (func_entry(t, mid) <= pc)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int read_func(const struct gopclntab *t, uint32_t i, struct go_func *f)
{
	size_t base;
	const uint8_t *p;

	f->off = t->pcln + (size_t)functab_word(t, 2 * (size_t)i + 1); /* checked by check_functab */
	f->entry = func_entry(t, i);
	f->end = func_entry(t, i + 1);
	base = f->off + (t->version == GOPCLNTAB_GO116 ? t->ptrsize : 4);
	p = t->data + base;
	f->nameoff = (int32_t)rd32(p);
	f->pcfile = rd32(p + 16);
	f->pcln = rd32(p + 20);
	f->npcdata = rd32(p + 24);
	f->cu = rd32(p + 28);
	f->nfuncdata = t->data[f->off + t->func_hdr - 1];
	if (f->npcdata > MAX_PCDATA || !fits(t, f->off + t->func_hdr, (size_t)f->npcdata * 4))
		return -ENOEXEC;
	return 0;
}

/* A NUL-terminated string at off of the table starting at table, or NULL. */
static const char *string_at(const struct gopclntab *t, size_t table, int64_t off)
{
	const uint8_t *s;

	if (off < 0 || (uint64_t)off >= t->len - table)
		return NULL;
	s = t->data + table + (size_t)off;
	return memchr(s, '\0', t->len - table - (size_t)off) ? (const char *)s : NULL;
}

/* --- pc-value tables ------------------------------------------------------------------------------ */

static bool read_varint(const struct gopclntab *t, size_t *pos, uint32_t *v)
{
	uint32_t r = 0;

	for (unsigned shift = 0; shift < 35; shift += 7) {
		uint8_t b;

		if (*pos >= t->len)
			return false;
		b = t->data[(*pos)++];
		r |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* Value of the table at pctab offset tab for pc in f: -1 when the table is absent or ends before pc,
 * -ENOEXEC (returned, *val untouched) when it runs off the end of pclntab. */
static int pcvalue(const struct gopclntab *t, const struct go_func *f, uint32_t tab, uint64_t pc, int32_t *val)
{
	size_t pos = t->pctab + tab;
	uint64_t at = f->entry;
	uint32_t v = UINT32_MAX; /* -1 */

	if (tab == 0 || tab >= t->len - t->pctab) {
		*val = -1;
		return tab == 0 ? 0 : -ENOEXEC;
	}
	for (;;) {
		uint32_t uv, pcdelta;

		if (!read_varint(t, &pos, &uv))
			return -ENOEXEC;
		if (uv == 0 && at != f->entry)
			break;
		v += (uint32_t)-(int32_t)(uv & 1) ^ (uv >> 1);
		if (!read_varint(t, &pos, &pcdelta))
			return -ENOEXEC;
		at += (uint64_t)pcdelta * t->quantum;
		if (pc < at) {
			*val = (int32_t)v;
			return 0;
		}
		if (at >= f->end)
			break;
	}
	*val = -1;
	return 0;
}

static int file_line(const struct gopclntab *t, const struct go_func *f, uint64_t pc, struct gopclntab_frame *fr)
{
	int32_t fileno, line;
	uint64_t idx;
	uint32_t off;
	int err;

	err = pcvalue(t, f, f->pcfile, pc, &fileno) ?: pcvalue(t, f, f->pcln, pc, &line);
	if (err)
		return err;
	fr->file = "";
	fr->line = line > 0 ? (uint32_t)line : 0;
	if (fileno < 0)
		return 0;
	idx = (uint64_t)f->cu + (uint32_t)fileno;
	if (idx >= t->ncu)
		return -ENOEXEC;
	off = rd32(t->data + t->cutab + idx * 4);
	if (off == UINT32_MAX)
		return 0;
	fr->file = string_at(t, t->filetab, off);
	return fr->file ? 0 : -ENOEXEC;
}

/* --- inlined calls -------------------------------------------------------------------------------- */

/* Address of f's inline tree, 0 when it has none or it cannot be read. */
static uint64_t inltree_addr(const struct gopclntab *t, const struct go_func *f)
{
	size_t pos = f->off + t->func_hdr + (size_t)f->npcdata * 4;

	if (!t->read || f->npcdata <= PCDATA_INLTREE_INDEX || f->nfuncdata <= FUNCDATA_INLTREE)
		return 0;
	if (t->version != GOPCLNTAB_GO116) {
		pos += FUNCDATA_INLTREE * 4;
		if (!fits(t, pos, 4) || rd32(t->data + pos) == UINT32_MAX || !t->gofunc)
			return 0;
		return t->gofunc + rd32(t->data + pos);
	}
	/* 1.16: pointers, aligned in memory to the pointer size */
	if (t->ptrsize == 8 && ((t->vaddr + pos) & 4))
		pos += 4;
	pos += FUNCDATA_INLTREE * (size_t)t->ptrsize;
	return fits(t, pos, t->ptrsize) ? rd_ptr(t, pos) : 0;
}

/* pctab offset of f's PCDATA_InlTreeIndex table; inltree_addr checked that f has one. */
static uint32_t inl_index_table(const struct gopclntab *t, const struct go_func *f)
{
	return rd32(t->data + f->off + t->func_hdr + PCDATA_INLTREE_INDEX * 4);
}

/* The inlined call at index ix: its name offset and the offset from entry of its call site. */
static bool read_inlined(const struct gopclntab *t, uint64_t tree, int32_t ix, int32_t *nameoff, int32_t *parent_pc)
{
	size_t size = t->version == GOPCLNTAB_GO120 ? 16 : 20;
	size_t name_at = t->version == GOPCLNTAB_GO120 ? 4 : 12;
	uint8_t e[20];

	if (ix >= MAX_INLTREE_INDEX || t->read(t->read_ctx, tree + (uint64_t)ix * size, e, size))
		return false;
	*nameoff = (int32_t)rd32(e + name_at);
	*parent_pc = (int32_t)rd32(e + name_at + 4);
	return true;
}

/* Fills frames with the inlined calls at pc, innermost first, up to max; *pc becomes the outermost
 * call site even when there are more. Returns how many frames were filled, or -ENOEXEC. */
static int inlined_frames(const struct gopclntab *t, const struct go_func *f, uint64_t *pc,
			  struct gopclntab_frame *frames, size_t max)
{
	uint64_t tree = inltree_addr(t, f);
	size_t n = 0;
	int32_t ix;
	int err;

	if (!tree)
		return 0;
	err = pcvalue(t, f, inl_index_table(t, f), *pc, &ix);
	for (unsigned depth = 0; !err && ix >= 0 && depth < MAX_INLINE_DEPTH; depth++) {
		int32_t nameoff, parent_pc;

		if (!read_inlined(t, tree, ix, &nameoff, &parent_pc))
			break;
		if (parent_pc < 0 || f->entry + (uint32_t)parent_pc >= f->end)
			return -ENOEXEC;
		if (n < max) {
			frames[n].name = string_at(t, t->funcname, nameoff);
			err = frames[n].name ? file_line(t, f, *pc, &frames[n]) : -ENOEXEC;
			n += !err;
		}
		*pc = f->entry + (uint32_t)parent_pc;
		if (!err)
			err = pcvalue(t, f, inl_index_table(t, f), *pc, &ix);
	}
	return err ? err : (int)n;
}

/* --- unwinding ------------------------------------------------------------------------------------ */

int gopclntab_func(const struct gopclntab *t, uint32_t i, struct gopclntab_func *out)
{
	struct go_func f;

	if (i >= t->nfunc)
		return -ENOEXEC;
	out->entry = func_entry(t, i);
	out->end = func_entry(t, i + 1);
	if (read_func(t, i, &f))
		return -ENOEXEC;
	out->name = string_at(t, t->funcname, f.nameoff);
	/* funcID, flag, a pad byte and nfuncdata end the fixed part (1.16 has a pad where 1.17 put flag) */
	out->flag = t->data[f.off + t->func_hdr - 3];
	out->pcsp = rd32(t->data + f.off + (t->version == GOPCLNTAB_GO116 ? t->ptrsize : 4) + 12);
	return out->name ? 0 : -ENOEXEC;
}

int gopclntab_pcsp(const struct gopclntab *t, const struct gopclntab_func *f, gopclntab_run_fn fn, void *ctx)
{
	size_t pos = t->pctab + f->pcsp;
	uint64_t at = f->entry;
	uint32_t v = UINT32_MAX; /* -1 */

	if (f->pcsp == 0)
		return 0;
	if (f->pcsp >= t->len - t->pctab)
		return -ENOEXEC;
	/* Each run takes at least two bytes and one quantum: more runs than that is corrupt. */
	for (uint64_t runs = 0; runs <= f->end - f->entry; runs++) {
		uint32_t uv, pcdelta;
		uint64_t next;
		int err;

		if (!read_varint(t, &pos, &uv))
			return -ENOEXEC;
		if (uv == 0 && at != f->entry)
			return 0;
		v += (uint32_t)-(int32_t)(uv & 1) ^ (uv >> 1);
		if (!read_varint(t, &pos, &pcdelta))
			return -ENOEXEC;
		next = at + (uint64_t)pcdelta * t->quantum;
		if (next > f->end || (pcdelta == 0 && at != f->entry))
			return -ENOEXEC;
		err = next > at ? fn(ctx, at, next, (int32_t)v) : 0;
		if (err)
			return err;
		at = next;
	}
	return -ENOEXEC;
}

int gopclntab_lookup(const struct gopclntab *t, uint64_t pc, struct gopclntab_frame *frames, size_t max)
{
	struct go_func f;
	int64_t i = find_func(t, pc);
	int n;

	if (i < 0 || max == 0)
		return 0;
	if (read_func(t, (uint32_t)i, &f))
		return -ENOEXEC;
	n = inlined_frames(t, &f, &pc, frames, max - 1);
	if (n < 0)
		return n;
	frames[n].name = string_at(t, t->funcname, f.nameoff);
	if (!frames[n].name || file_line(t, &f, pc, &frames[n]))
		return -ENOEXEC;
	return n + 1;
}
