#include "exporter/sampling/ehframe.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/proc/elf_file.h"

/* DWARF register numbers on x86-64. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RIP 16

/* DW_CFA_remember_state nesting kept; real code uses one or two levels. */
#define REMEMBER_MAX 16
/* .eh_frame sections larger than this are not read (Chromium's is ~10 MiB). */
#define EHFRAME_MAX_BYTES (256u << 20)

#define DW_EH_PE_omit 0xff
#define DW_EH_PE_indirect 0x80
#define DW_EH_PE_udata4 0x03
#define DW_EH_PE_sdata4 0x0b
#define DW_EH_PE_datarel 0x30

/* A bounds-checked reader: any read past the end sets err and returns 0. */
struct cursor {
	const uint8_t *p, *end;
	bool err;
};

static bool need(struct cursor *c, size_t n)
{
	if (c->err || (size_t)(c->end - c->p) < n) {
		c->err = true;
		return false;
	}
	return true;
}

static uint64_t read_le(struct cursor *c, size_t n)
{
	uint64_t v = 0;

	if (!need(c, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += n;
	return v;
}

static uint64_t uleb(struct cursor *c)
{
	uint64_t v = 0;

	for (unsigned shift = 0;; shift += 7) {
		if (!need(c, 1))
			return 0;
		uint8_t b = *c->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		else if (b & 0x7f)
			c->err = true; /* does not fit 64 bits */
		if (!(b & 0x80))
			return v;
		if (shift > 70) {
			c->err = true;
			return 0;
		}
	}
}

static int64_t sleb(struct cursor *c)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		if (!need(c, 1) || shift > 63) {
			c->err = true;
			return 0;
		}
		b = *c->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~0ULL << shift;
	return (int64_t)v;
}

/* A pointer in encoding enc at the cursor; at_vaddr is the virtual address of the cursor (pcrel). */
static uint64_t read_encoded(struct cursor *c, uint8_t enc, uint64_t at_vaddr)
{
	uint64_t v;

	if (enc == DW_EH_PE_omit || (enc & DW_EH_PE_indirect)) {
		c->err = true;
		return 0;
	}
	switch (enc & 0x0f) {
	case 0x00: v = read_le(c, 8); break;                      /* absptr */
	case 0x01: v = uleb(c); break;
	case 0x02: v = read_le(c, 2); break;
	case 0x03: v = read_le(c, 4); break;
	case 0x04: v = read_le(c, 8); break;
	case 0x09: v = (uint64_t)sleb(c); break;
	case 0x0a: v = (uint64_t)(int64_t)(int16_t)read_le(c, 2); break;
	case 0x0b: v = (uint64_t)(int64_t)(int32_t)read_le(c, 4); break;
	case 0x0c: v = read_le(c, 8); break;
	default: c->err = true; return 0;
	}
	switch (enc & 0x70) {
	case 0x00: return v;
	case 0x10: return v + at_vaddr; /* pcrel */
	default: c->err = true; return 0; /* textrel/datarel/funcrel: not used for x86-64 FDE pcs */
	}
}

/* uleb as a signed value; above INT64_MAX the input is malformed. */
static int64_t uleb_signed(struct cursor *c)
{
	uint64_t v = uleb(c);

	if (v > INT64_MAX) {
		c->err = true;
		return 0;
	}
	return (int64_t)v;
}

/* A factored offset (v x the CIE's data alignment); one that does not fit is malformed input. */
static int64_t factored(struct cursor *c, int64_t v, int64_t align)
{
	int64_t r;

	if (__builtin_mul_overflow(v, align, &r)) {
		c->err = true;
		return 0;
	}
	return r;
}

struct cie {
	uint64_t code_align;
	int64_t data_align;
	uint64_t ra_reg;
	uint8_t fde_enc;
	bool has_aug_data; /* "z" */
	bool signal_frame; /* "S" */
	const uint8_t *insns, *insns_end;
};

/* Parses the CIE whose content (after the length) spans [p, end); section_vaddr is the virtual address
 * of data[0], base the section start. */
static int parse_cie(const uint8_t *p, const uint8_t *end, const uint8_t *base, uint64_t section_vaddr,
		     struct cie *cie)
{
	struct cursor c = { p, end, false };
	const char *aug;
	size_t auglen;

	memset(cie, 0, sizeof(*cie));
	cie->fde_enc = 0; /* absptr by default */
	if (read_le(&c, 4) != 0)
		return -EINVAL; /* not a CIE */
	uint8_t version = (uint8_t)read_le(&c, 1);
	if (c.err || (version != 1 && version != 3 && version != 4))
		return -EINVAL;
	aug = (const char *)c.p;
	auglen = strnlen(aug, (size_t)(c.end - c.p));
	if (auglen == (size_t)(c.end - c.p))
		return -EINVAL;
	c.p += auglen + 1;
	if (strcmp(aug, "eh") == 0)
		read_le(&c, 8); /* old GCC's eh_ptr */
	if (version == 4) {
		uint8_t addr_size = (uint8_t)read_le(&c, 1), seg_size = (uint8_t)read_le(&c, 1);
		if (addr_size != 8 || seg_size != 0)
			return -EINVAL;
	}
	cie->code_align = uleb(&c);
	cie->data_align = sleb(&c);
	cie->ra_reg = version == 1 ? read_le(&c, 1) : uleb(&c);
	if (c.err || cie->code_align == 0)
		return -EINVAL;
	if (aug[0] == 'z') {
		uint64_t n = uleb(&c);
		if (c.err || n > (uint64_t)(c.end - c.p))
			return -EINVAL;
		struct cursor a = { c.p, c.p + n, false };
		cie->has_aug_data = true;
		for (const char *s = aug + 1; *s; s++) {
			switch (*s) {
			case 'R':
				cie->fde_enc = (uint8_t)read_le(&a, 1);
				break;
			case 'L':
				read_le(&a, 1); /* LSDA encoding: the FDE's aug data is skipped whole */
				break;
			case 'P': {
				uint8_t enc = (uint8_t)read_le(&a, 1);
				/* The personality pointer may be indirect: only its size matters here. */
				read_encoded(&a, enc & 0x7f, section_vaddr + (uint64_t)(a.p - base));
				break;
			}
			case 'S':
				cie->signal_frame = true;
				break;
			case 'B': /* AArch64 BTI marker, no data */
			case 'G': /* MTE, no data */
				break;
			default:
				return -EINVAL;
			}
			if (a.err)
				return -EINVAL;
		}
		c.p += n;
	} else if (aug[0] && strcmp(aug, "eh") != 0) {
		return -EINVAL; /* unknown augmentation without a size: cannot skip it */
	}
	cie->insns = c.p;
	cie->insns_end = c.end;
	return 0;
}

/* The rules the interpreter tracks. */
struct cfi_state {
	enum unwind_cfa cfa;
	uint64_t cfa_reg;
	int64_t cfa_off;
	uint8_t plt_threshold;
	enum ehframe_rule rbp, ra;
	int64_t rbp_off, ra_off;
};

struct interp {
	const struct cie *cie;
	const struct ehframe_visitor *v;
	const struct ehframe_fde *fde;
	const uint8_t *base;
	uint64_t section_vaddr;
	uint8_t fde_enc;
	struct cfi_state st, initial;
	struct cfi_state remembered[REMEMBER_MAX];
	int nremembered;
	uint64_t loc;
};

static void set_cfa_reg(struct cfi_state *s, uint64_t reg)
{
	s->cfa_reg = reg;
	s->cfa = reg == REG_RSP ? UNWIND_CFA_RSP : reg == REG_RBP ? UNWIND_CFA_RBP : UNWIND_CFA_UNSUPPORTED;
}

/* The expression the linker emits for .plt entries: rsp + N + (((rip & 15) >= K) << 3). */
static bool match_plt(const uint8_t *e, uint64_t len, struct cfi_state *s)
{
	/* DW_OP_breg7 N; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_litK; DW_OP_ge; DW_OP_lit3;
	 * DW_OP_shl; DW_OP_plus */
	if (len != 11 || e[0] != 0x77 || e[1] > 0x3f || e[2] != 0x80 || e[3] != 0x00 || e[4] != 0x3f ||
	    e[5] != 0x1a || e[6] < 0x30 || e[6] > 0x3f || e[7] != 0x2a || e[8] != 0x33 || e[9] != 0x24 ||
	    e[10] != 0x22)
		return false;
	s->cfa = UNWIND_CFA_PLT;
	s->cfa_off = e[1];
	s->plt_threshold = (uint8_t)(e[6] - 0x30);
	return true;
}

static void set_reg(struct cfi_state *s, const struct cie *cie, uint64_t reg, enum ehframe_rule rule,
		    int64_t off)
{
	if (reg == REG_RBP) {
		s->rbp = rule;
		s->rbp_off = off;
	}
	if (reg == cie->ra_reg) {
		s->ra = rule;
		s->ra_off = off;
	}
}

static void restore_reg(struct interp *in, uint64_t reg)
{
	if (reg == REG_RBP) {
		in->st.rbp = in->initial.rbp;
		in->st.rbp_off = in->initial.rbp_off;
	}
	if (reg == in->cie->ra_reg) {
		in->st.ra = in->initial.ra;
		in->st.ra_off = in->initial.ra_off;
	}
}

static int emit(struct interp *in)
{
	struct ehframe_row row = {
		.pc = in->loc,
		.cfa = in->st.cfa,
		.cfa_off = in->st.cfa_off,
		.plt_threshold = in->st.plt_threshold,
		.rbp = in->st.rbp,
		.ra = in->st.ra,
		.rbp_off = in->st.rbp_off,
		.ra_off = in->st.ra_off,
	};

	if (!in->fde || !in->v->row || in->loc >= in->fde->pc_end)
		return 0;
	return in->v->row(in->v->ctx, in->fde, &row);
}

/* Moves the location; the rules so far hold from the old location on. */
static int advance(struct interp *in, uint64_t to)
{
	int err;

	if (!in->fde)
		return 0; /* CIE initial instructions do not advance */
	if (to < in->loc)
		return -EINVAL;
	if (to == in->loc)
		return 0;
	err = emit(in);
	in->loc = to;
	return err;
}

/* The CFA rule: def_cfa and its variants. */
static int cfa_op(struct interp *in, struct cursor *c, uint8_t op)
{
	const struct cie *cie = in->cie;
	struct cfi_state *s = &in->st;
	uint64_t reg, n;

	switch (op) {
	case 0x0c: /* def_cfa */
		reg = uleb(c);
		set_cfa_reg(s, reg);
		s->cfa_off = (int64_t)uleb(c);
		break;
	case 0x0d: /* def_cfa_register */
		set_cfa_reg(s, uleb(c));
		break;
	case 0x0e: /* def_cfa_offset */
		s->cfa_off = (int64_t)uleb(c);
		if (s->cfa == UNWIND_CFA_PLT)
			s->cfa = UNWIND_CFA_UNSUPPORTED;
		break;
	case 0x0f: /* def_cfa_expression */
		n = uleb(c);
		if (!need(c, n))
			break;
		if (!match_plt(c->p, n, s))
			s->cfa = UNWIND_CFA_UNSUPPORTED;
		c->p += n;
		break;
	case 0x12: /* def_cfa_sf */
		reg = uleb(c);
		set_cfa_reg(s, reg);
		s->cfa_off = factored(c, sleb(c), cie->data_align);
		break;
	case 0x13: /* def_cfa_offset_sf */
		s->cfa_off = factored(c, sleb(c), cie->data_align);
		if (s->cfa == UNWIND_CFA_PLT)
			s->cfa = UNWIND_CFA_UNSUPPORTED;
		break;
	}
	return 0;
}

/* The other registers' rules; an unknown opcode is malformed input. */
static int register_op(struct interp *in, struct cursor *c, uint8_t op)
{
	const struct cie *cie = in->cie;
	struct cfi_state *s = &in->st;
	uint64_t reg, n;
	int64_t off;

	switch (op) {
	case 0x05: /* offset_extended */
		reg = uleb(c);
		off = factored(c, uleb_signed(c), cie->data_align);
		set_reg(s, cie, reg, EHFRAME_AT_CFA, off);
		break;
	case 0x06: /* restore_extended */
		restore_reg(in, uleb(c));
		break;
	case 0x07: /* undefined */
		set_reg(s, cie, uleb(c), EHFRAME_UNDEFINED, 0);
		break;
	case 0x08: /* same_value */
		set_reg(s, cie, uleb(c), EHFRAME_SAME, 0);
		break;
	case 0x09: /* register */
	case 0x14: /* val_offset */
		reg = uleb(c);
		uleb(c);
		set_reg(s, cie, reg, EHFRAME_OTHER, 0);
		break;
	case 0x10: /* expression */
	case 0x16: /* val_expression */
		reg = uleb(c);
		n = uleb(c);
		if (!need(c, n))
			break;
		c->p += n;
		set_reg(s, cie, reg, EHFRAME_OTHER, 0);
		break;
	case 0x11: /* offset_extended_sf */
		reg = uleb(c);
		off = factored(c, sleb(c), cie->data_align);
		set_reg(s, cie, reg, EHFRAME_AT_CFA, off);
		break;
	case 0x15: /* val_offset_sf */
		reg = uleb(c);
		sleb(c);
		set_reg(s, cie, reg, EHFRAME_OTHER, 0);
		break;
	case 0x2e: /* GNU_args_size */
		uleb(c);
		break;
	case 0x2f: /* GNU_negative_offset_extended */
		reg = uleb(c);
		off = factored(c, -uleb_signed(c), cie->data_align);
		set_reg(s, cie, reg, EHFRAME_AT_CFA, off);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* An opcode whose operands follow it (the two high bits clear). */
static int extended_op(struct interp *in, struct cursor *c, uint8_t op)
{
	const struct cie *cie = in->cie;
	uint64_t to;

	switch (op) {
	case 0x00: /* nop */
		return 0;
	case 0x01: /* set_loc */
		to = read_encoded(c, in->fde_enc, in->section_vaddr + (uint64_t)(c->p - in->base));
		return c->err ? 0 : advance(in, to);
	case 0x02: return advance(in, in->loc + read_le(c, 1) * cie->code_align);
	case 0x03: return advance(in, in->loc + read_le(c, 2) * cie->code_align);
	case 0x04: return advance(in, in->loc + read_le(c, 4) * cie->code_align);
	case 0x0a: /* remember_state */
		if (in->nremembered == REMEMBER_MAX)
			return -EINVAL;
		in->remembered[in->nremembered++] = in->st;
		return 0;
	case 0x0b: /* restore_state: the whole row, CFA included, as GCC's unwinder and readelf do */
		if (in->nremembered == 0)
			return -EINVAL;
		in->st = in->remembered[--in->nremembered];
		return 0;
	case 0x0c: case 0x0d: case 0x0e: case 0x0f: case 0x12: case 0x13:
		return cfa_op(in, c, op);
	default:
		return register_op(in, c, op);
	}
}

/* Runs the instructions in [p, end). For the CIE (in->fde NULL) only the state changes. */
static int run(struct interp *in, const uint8_t *p, const uint8_t *end)
{
	struct cursor c = { p, end, false };
	const struct cie *cie = in->cie;
	int err = 0;

	while (!err && c.p < c.end && !c.err) {
		uint8_t op = *c.p++;
		int64_t off;

		/* The two high bits name the three opcodes whose operand is in the low six. */
		switch (op >> 6) {
		case 1: /* DW_CFA_advance_loc */
			err = advance(in, in->loc + (op & 0x3f) * cie->code_align);
			break;
		case 2: /* DW_CFA_offset */
			off = factored(&c, uleb_signed(&c), cie->data_align);
			set_reg(&in->st, cie, op & 0x3f, EHFRAME_AT_CFA, off);
			break;
		case 3: /* DW_CFA_restore */
			restore_reg(in, op & 0x3f);
			break;
		default:
			err = extended_op(in, &c, op);
		}
	}
	if (c.err)
		return -EINVAL;
	return err;
}

/* The FDE whose content (from its CIE pointer on) spans [p, end), at p_vaddr and section offset entry,
 * of the CIE whose content spans [cie, cie_end). */
static int parse_fde_with(const uint8_t *p, const uint8_t *end, uint64_t p_vaddr, size_t entry,
			  const uint8_t *cie_p, const uint8_t *cie_end, const struct ehframe_visitor *v)
{
	struct cursor c = { p + 4, end, false };
	struct cie cie;
	/* The CIE's own address matters to no rule kept (a personality pointer is skipped). */
	int err = parse_cie(cie_p, cie_end, cie_p, 0, &cie);

	if (err)
		return err;

	struct ehframe_fde fde = { .offset = entry, .signal_frame = cie.signal_frame };
	fde.pc_begin = read_encoded(&c, cie.fde_enc, p_vaddr + (uint64_t)(c.p - p));
	uint64_t range = read_encoded(&c, cie.fde_enc & 0x0f, 0);
	if (c.err || range > UINT64_MAX - fde.pc_begin)
		return -EINVAL;
	fde.pc_end = fde.pc_begin + range;
	if (cie.has_aug_data) {
		uint64_t n = uleb(&c);
		if (c.err || n > (uint64_t)(c.end - c.p))
			return -EINVAL;
		c.p += n;
	}
	if (v->fde && (err = v->fde(v->ctx, &fde)))
		return err;

	struct interp in = {
		.cie = &cie, .v = v, .base = p, .section_vaddr = p_vaddr, .fde_enc = cie.fde_enc,
		/* Before any instruction: nothing known (a CIE without rules is unusable). */
		.st = { .cfa = UNWIND_CFA_UNSUPPORTED, .ra = EHFRAME_SAME },
	};
	err = run(&in, cie.insns, cie.insns_end);
	if (err)
		return err;
	in.initial = in.st;
	in.nremembered = 0;
	in.fde = &fde;
	in.loc = fde.pc_begin;
	err = run(&in, c.p, c.end);
	if (!err)
		err = emit(&in);
	return err;
}

static int parse_fde(const uint8_t *data, size_t len, uint64_t vaddr, size_t entry, const uint8_t *p,
		     const uint8_t *end, const struct ehframe_visitor *v)
{
	struct cursor c = { p, end, false };
	size_t id_off = (size_t)(p - data);
	uint32_t cie_ptr = (uint32_t)read_le(&c, 4);

	if (c.err)
		return -EINVAL;
	/* The CIE pointer counts back from itself to an earlier CIE. */
	if (cie_ptr > id_off)
		return -EINVAL;
	size_t cie_off = id_off - cie_ptr;
	if (cie_off + 4 > len)
		return -EINVAL;
	uint64_t cie_len = read_le(&(struct cursor){ data + cie_off, data + len, false }, 4);
	size_t cie_content = cie_off + 4;
	if (cie_len == 0xffffffffu) {
		struct cursor lc = { data + cie_content, data + len, false };
		cie_len = read_le(&lc, 8);
		if (lc.err)
			return -EINVAL;
		cie_content += 8;
	}
	if (cie_len < 4 || cie_content > len || cie_len > len - cie_content || cie_content + cie_len > entry)
		return -EINVAL;
	return parse_fde_with(p, end, vaddr + id_off, entry, data + cie_content, data + cie_content + cie_len, v);
}

/* The entry at off: its content (after the length) and end, and its id (0: a CIE). 1 at the
 * terminator, -EINVAL when malformed. */
static int entry_at(const uint8_t *data, size_t len, size_t off, const uint8_t **content, const uint8_t **end,
		    uint32_t *id)
{
	struct cursor c = { data + off, data + len, false };
	uint64_t length = read_le(&c, 4);

	if (c.err)
		return -EINVAL;
	if (length == 0)
		return 1;
	if (length == 0xffffffffu) {
		length = read_le(&c, 8);
		if (c.err)
			return -EINVAL;
	}
	if (length < 4 || length > (uint64_t)(c.end - c.p))
		return -EINVAL;
	*content = c.p;
	*end = c.p + length;
	*id = (uint32_t)read_le(&c, 4);
	return 0;
}

int ehframe_parse(const uint8_t *data, size_t len, uint64_t vaddr, const struct ehframe_visitor *v)
{
	size_t off = 0;

	if (len > EHFRAME_MAX_BYTES)
		return -E2BIG;
	while (off < len) {
		const uint8_t *content, *end;
		uint32_t id;
		int err = entry_at(data, len, off, &content, &end, &id);

		if (err)
			return err > 0 ? 0 : err;
		if (id != 0) {
			err = parse_fde(data, len, vaddr, off, content, end, v);
			if (err)
				return err;
		}
		off = (size_t)(end - data);
	}
	return 0;
}

/* The entry at off through r: where its content starts and its length. 1 at the terminator. */
static int read_entry(const struct ehframe_reader *r, int slot, size_t off, size_t *content, uint64_t *length)
{
	const uint8_t *p;
	size_t n = r->len - off < 12 ? r->len - off : 12;
	int err = off < r->len ? r->read(r->ctx, slot, off, n, &p) : -EINVAL;

	if (err)
		return err;
	struct cursor c = { p, p + n, false };
	*length = read_le(&c, 4);
	if (!c.err && *length == 0)
		return 1;
	if (!c.err && *length == 0xffffffffu)
		*length = read_le(&c, 8);
	*content = off + (size_t)(c.p - p);
	if (c.err || *length < 4 || *length > r->len - *content)
		return -EINVAL;
	return 0;
}

int ehframe_parse_fde_at(const struct ehframe_reader *r, size_t off, const struct ehframe_visitor *v)
{
	size_t content, cie_content;
	uint64_t length, cie_len;
	const uint8_t *p, *cie;
	int err = read_entry(r, 0, off, &content, &length);

	if (!err)
		err = r->read(r->ctx, 0, content, length, &p);
	if (err)
		return err > 0 ? -EINVAL : err;
	uint32_t cie_ptr = (uint32_t)read_le(&(struct cursor){ p, p + length, false }, 4);
	/* The CIE pointer counts back from itself to an earlier CIE (0: this is a CIE). */
	if (cie_ptr == 0 || cie_ptr > content)
		return -EINVAL;
	err = read_entry(r, 1, content - cie_ptr, &cie_content, &cie_len);
	if (!err && cie_content + cie_len > off)
		err = -EINVAL;
	if (!err)
		err = r->read(r->ctx, 1, cie_content, cie_len, &cie);
	if (err)
		return err > 0 ? -EINVAL : err;
	return parse_fde_with(p, p + length, r->vaddr + content, off, cie, cie + cie_len, v);
}

int ehframe_count_fdes_at(const struct ehframe_reader *r, uint32_t *nfdes, size_t *parsed_len)
{
	size_t off = 0, content;
	uint64_t length;
	uint32_t n = 0;

	while (off < r->len) {
		const uint8_t *p;
		int err = read_entry(r, 0, off, &content, &length);

		if (err > 0)
			break;
		if (!err)
			err = r->read(r->ctx, 0, content, 4, &p);
		if (err)
			return err;
		n += read_le(&(struct cursor){ p, p + 4, false }, 4) != 0;
		off = content + length;
	}
	*nfdes = n;
	*parsed_len = off;
	return 0;
}

int ehframe_hdr_eh_frame(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, uint64_t *eh_frame_vaddr)
{
	struct cursor c = { hdr, hdr + len, false };
	uint8_t version = (uint8_t)read_le(&c, 1), enc = (uint8_t)read_le(&c, 1);

	read_le(&c, 2); /* the encodings of fde_count and of the search table */
	uint64_t v = read_encoded(&c, enc, hdr_vaddr + 4);
	if (c.err || version != 1)
		return -EINVAL;
	*eh_frame_vaddr = v;
	return 0;
}

int ehframe_hdr_table(const uint8_t *hdr, size_t len, uint64_t hdr_vaddr, const uint8_t **table,
		      uint32_t *count)
{
	struct cursor c = { hdr, hdr + len, false };
	uint8_t version = (uint8_t)read_le(&c, 1), enc = (uint8_t)read_le(&c, 1);
	uint8_t count_enc = (uint8_t)read_le(&c, 1), table_enc = (uint8_t)read_le(&c, 1);

	read_encoded(&c, enc, hdr_vaddr + 4);
	if (c.err || version != 1)
		return -EINVAL;
	/* What linkers write: a 4-byte count, pairs of 4-byte offsets from the header. */
	if (count_enc != DW_EH_PE_udata4 || table_enc != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
		return -EOPNOTSUPP;
	uint64_t n = read_le(&c, 4);
	if (c.err || n > (uint64_t)(c.end - c.p) / 8)
		return -EINVAL;
	*table = c.p;
	*count = (uint32_t)n;
	return 0;
}

/* .eh_frame found through PT_GNU_EH_FRAME, for binaries without section headers: it runs from the
 * address in .eh_frame_hdr to its zero terminator, which lies within the same PT_LOAD segment. */
static int eh_frame_from_phdr(struct elf_file *f, const void **data, size_t *len, uint64_t *vaddr)
{
	const void *hdr;
	size_t hdr_len;
	uint64_t hdr_vaddr;
	int err = elf_file_segment_head(f, PT_GNU_EH_FRAME, 16, &hdr, &hdr_len, &hdr_vaddr);

	if (err)
		return err;
	err = ehframe_hdr_eh_frame(hdr, hdr_len, hdr_vaddr, vaddr);
	if (err)
		return err;
	return elf_file_vaddr_data(f, *vaddr, EHFRAME_MAX_BYTES, data, len) == 0 ? 0 : -EINVAL;
}

int ehframe_table_from_elf(struct elf_file *f, uint32_t max_rows, struct ehframe_table *out)
{
	const void *data;
	uint8_t *copy;
	size_t len;
	uint64_t vaddr;
	int err = elf_file_section_copy(f, ".eh_frame", EHFRAME_MAX_BYTES, &copy, &len, &vaddr);

	/* A copy of the file's section is freed once parsed: libelf's would live as long as f. */
	if (!err)
		return ehframe_table_build_owned(copy, len, vaddr, max_rows, out);
	if (err == -EOPNOTSUPP)
		err = elf_file_section(f, ".eh_frame", EHFRAME_MAX_BYTES, &data, &len, &vaddr);
	if (err == -ENOENT)
		err = eh_frame_from_phdr(f, &data, &len, &vaddr);
	if (err)
		return err;
	return ehframe_table_build(data, len, vaddr, max_rows, out);
}
