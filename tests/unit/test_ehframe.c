/*
 * The CFI interpreter and compact tables against `readelf --debug-dump=frames-interp` on real binaries
 * (Debian's libc, libstdc++ when present, the test fixtures, the no-frame-pointer workload), hand-made
 * .eh_frame bytes with known rows, and malformed input (truncated, corrupted, crafted).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <elf.h>

#include "exporter/sampling/ehframe.h"
#include "exporter/proc/elf_file.h"

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define LIBSTDCXX "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
#define PIE FIXTURES_DIR "/fixture_pie"
#define LIB FIXTURES_DIR "/libanorak_fixture.so"
#define NOFP FIXTURES_DIR "/../workload/weights_nofp"
#define MAX_ROWS (1u << 23)

static void load(const char *path, struct ehframe_table *t)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *f;

	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, 1ull << 30, &f), 0);
	assert_int_equal(ehframe_table_from_elf(f, MAX_ROWS, t), 0);
	elf_file_close(f);
	close(fd);
}

/* The compact rule a readelf row stands for; *alt is a second acceptable answer (an "exp" CFA is
 * either the PLT expression or unsupported). */
static struct unwind_row expect_from_readelf(const char *cfa, const char *rbp, const char *ra,
					     uint8_t *alt)
{
	struct unwind_row r = { .cfa = UNWIND_CFA_UNSUPPORTED };
	char reg[16];
	long off;

	*alt = UNWIND_CFA_UNSUPPORTED;
	if (strcmp(ra, "u") == 0) {
		r.cfa = UNWIND_CFA_END;
		*alt = UNWIND_CFA_END;
		return r;
	}
	if (strcmp(ra, "c-8") != 0)
		return r;
	if (strcmp(cfa, "exp") == 0) {
		*alt = UNWIND_CFA_PLT;
		return r;
	}
	if (sscanf(cfa, "%15[a-z0-9]%ld", reg, &off) != 2 || off < 0 || off > UINT16_MAX)
		return r;
	if (rbp && strcmp(rbp, "u") && strcmp(rbp, "s")) {
		long roff;
		if (sscanf(rbp, "c%ld", &roff) != 1 || roff % 8 || roff / 8 < -128 || roff / 8 > 127 || roff == 0)
			return r;
		r.rbp_off = (int8_t)(roff / 8);
	}
	if (strcmp(reg, "rsp") == 0)
		r.cfa = UNWIND_CFA_RSP;
	else if (strcmp(reg, "rbp") == 0)
		r.cfa = UNWIND_CFA_RBP;
	else
		return (struct unwind_row){ .cfa = UNWIND_CFA_UNSUPPORTED };
	r.cfa_off = (uint16_t)off;
	*alt = r.cfa;
	return r;
}

struct readelf_stats {
	size_t rows, fdes, checked_gaps, plt, end, unsupported;
};

static void check_row(const struct ehframe_table *t, uint64_t pc, const char *cfa, const char *rbp,
		      const char *ra, const char *file, struct readelf_stats *st)
{
	uint8_t alt;
	struct unwind_row want = expect_from_readelf(cfa, rbp, ra, &alt);
	const struct unwind_row *got = ehframe_table_find(t, pc);

	if (!got || (got->cfa != want.cfa && got->cfa != alt) ||
	    (got->cfa <= UNWIND_CFA_RBP && (got->cfa_off != want.cfa_off || got->rbp_off != want.rbp_off)))
		fail_msg("%s pc 0x%llx: readelf says CFA %s rbp %s ra %s; table has cfa %d off %u rbp %d",
			 file, (unsigned long long)pc, cfa, rbp ? rbp : "-", ra, got ? got->cfa : -1,
			 got ? got->cfa_off : 0, got ? got->rbp_off : 0);
	st->rows++;
	st->plt += got->cfa == UNWIND_CFA_PLT;
	st->end += got->cfa == UNWIND_CFA_END;
	st->unsupported += got->cfa == UNWIND_CFA_UNSUPPORTED;
}

#define MAX_COLS 24

/* Checks every row readelf prints for file against the table, and that the end of each FDE that no
 * other FDE continues is a gap. */
static void compare_with_readelf(const char *file, struct readelf_stats *st)
{
	struct ehframe_table t;
	char cmd[512], line[1024];
	char cols[MAX_COLS][16];
	int ncols = 0;
	/* CIE initial rows by offset, for FDEs without instructions (readelf prints no rows for them). */
	struct { unsigned long off; char cfa[16], rbp[16], ra[16]; } cies[64];
	int ncies = 0, in_cie = -1, fde_rows = 0;
	unsigned long fde_cie = 0;
	uint64_t fde_lo = 0, fde_hi = 0;

	memset(st, 0, sizeof(*st));
	load(file, &t);
	snprintf(cmd, sizeof(cmd), "readelf --debug-dump=frames-interp %s", file);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);

	/* An FDE without rows gets its CIE's initial rule at its start. */
#define FLUSH_FDE()                                                                                  \
	do {                                                                                         \
		if (fde_hi > fde_lo && fde_rows == 0)                                                \
			for (int k = 0; k < ncies; k++)                                              \
				if (cies[k].off == fde_cie)                                          \
					check_row(&t, fde_lo, cies[k].cfa, cies[k].rbp, cies[k].ra,  \
						  file, st);                                         \
	} while (0)

	while (fgets(line, sizeof(line), p)) {
		unsigned long off, len, id, cie;
		unsigned long long lo, hi, loc;
		char rest[1024];

		if (sscanf(line, "%lx %lx %lx FDE cie=%lx pc=%llx..%llx", &off, &len, &id, &cie, &lo, &hi) == 6) {
			FLUSH_FDE();
			in_cie = -1;
			fde_cie = cie;
			fde_lo = lo;
			fde_hi = hi;
			fde_rows = 0;
			st->fdes++;
			continue;
		}
		if (sscanf(line, "%lx %lx %lx CIE", &off, &len, &id) == 3 && strstr(line, " CIE ")) {
			FLUSH_FDE();
			fde_hi = fde_lo = 0;
			assert_true(ncies < 64);
			in_cie = ncies++;
			cies[in_cie].off = off;
			continue;
		}
		if (strstr(line, "   LOC ")) {
			char *tok = strtok(line, " \n");
			ncols = 0;
			while ((tok = strtok(NULL, " \n")) && ncols < MAX_COLS)
				snprintf(cols[ncols++], sizeof(cols[0]), "%.15s", tok);
			continue;
		}
		if (sscanf(line, "%16llx %1023[^\n]", &loc, rest) != 2 || strlen(line) < 17 || line[16] != ' ')
			continue;
		char vals[MAX_COLS][16];
		int nv = 0;
		for (char *tok = strtok(rest, " "); tok && nv < MAX_COLS; tok = strtok(NULL, " ")) {
			if (tok[0] == '(' && nv > 0)
				continue; /* "r9 (r9)": a register rule with its name */
			snprintf(vals[nv++], sizeof(vals[0]), "%.15s", tok);
		}
		if (nv != ncols)
			fail_msg("%s: readelf row with %d values under %d columns: %s", file, nv, ncols, line);
		const char *cfa = NULL, *rbp = NULL, *ra = NULL;
		for (int k = 0; k < ncols; k++) {
			if (!strcmp(cols[k], "CFA"))
				cfa = vals[k];
			else if (!strcmp(cols[k], "rbp"))
				rbp = vals[k];
			else if (!strcmp(cols[k], "ra"))
				ra = vals[k];
		}
		assert_non_null(cfa);
		assert_non_null(ra);
		if (in_cie >= 0) {
			snprintf(cies[in_cie].cfa, 16, "%.15s", cfa ? cfa : "");
			snprintf(cies[in_cie].rbp, 16, "%.15s", rbp ? rbp : "u");
			snprintf(cies[in_cie].ra, 16, "%.15s", ra ? ra : "");
			continue;
		}
		if (loc < fde_lo || loc >= fde_hi)
			continue;
		fde_rows++;
		check_row(&t, loc, cfa, rbp, ra, file, st);
	}
	FLUSH_FDE();
#undef FLUSH_FDE
	/* readelf exits 1 on libc without printing why; the row counts below show it read the section. */
	int rc = pclose(p);
	assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) <= 1);
	assert_true(st->fdes > 0);

	/* Gaps: a pc right after a row span that no FDE covers finds a NONE row; every NONE row starts
	 * where the previous FDE ended. */
	for (uint32_t i = 0; i < t.nrows; i++) {
		if (t.rows[i].cfa != UNWIND_CFA_NONE)
			continue;
		const struct unwind_row *r = ehframe_table_find(&t, t.base + t.rows[i].pc);
		assert_ptr_equal(r, &t.rows[i]);
		st->checked_gaps++;
	}
	assert_int_equal(t.rows[t.nrows - 1].cfa, UNWIND_CFA_NONE);
	assert_null(ehframe_table_find(&t, t.base - 1));
	/* Rows strictly sorted, no two neighbours with the same rule. */
	for (uint32_t i = 1; i < t.nrows; i++) {
		assert_true(t.rows[i - 1].pc < t.rows[i].pc);
		assert_false(t.rows[i - 1].cfa == t.rows[i].cfa && t.rows[i - 1].cfa_off == t.rows[i].cfa_off &&
			     t.rows[i - 1].rbp_off == t.rows[i].rbp_off);
	}
	print_message("%s: %zu FDEs, %zu readelf rows checked, %u table rows (%zu bytes), %zu gaps, "
		      "%zu PLT, %zu END, %zu unsupported\n",
		      file, st->fdes, st->rows, t.nrows, (size_t)t.nrows * sizeof(struct unwind_row),
		      st->checked_gaps, st->plt, st->end, st->unsupported);
	ehframe_table_free(&t);
}

static void test_libc_matches_readelf(void **state)
{
	struct readelf_stats st;

	(void)state;
	compare_with_readelf(LIBC, &st);
	/* Debian's libc: thousands of FDEs, the PLT expression, outermost frames (clone3, _start is
	 * in the executable), and a signal trampoline the BPF side cannot apply. */
	assert_true(st.fdes > 2000);
	assert_true(st.rows > 10000);
	assert_true(st.plt >= 1);
	assert_true(st.end >= 1);
	assert_true(st.unsupported >= 1);
}

static void test_fixtures_match_readelf(void **state)
{
	struct readelf_stats st;

	(void)state;
	compare_with_readelf(PIE, &st);
	assert_true(st.fdes >= 3);
	assert_true(st.end >= 1); /* _start */
	compare_with_readelf(LIB, &st);
	assert_true(st.fdes >= 1);
}

static void test_workload_without_frame_pointers(void **state)
{
	struct readelf_stats st;

	(void)state;
	if (access(NOFP, R_OK) != 0)
		fail_msg("%s not built", NOFP);
	compare_with_readelf(NOFP, &st);
	assert_true(st.fdes >= 8);
}

static void test_libstdcxx_matches_readelf(void **state)
{
	struct readelf_stats st;

	(void)state;
	/* apt itself needs libstdc++, so every Debian system has it */
	if (access(LIBSTDCXX, R_OK) != 0)
		fail_msg("%s missing", LIBSTDCXX);
	compare_with_readelf(LIBSTDCXX, &st);
	assert_true(st.fdes > 1000);
}

/* --- hand-made input ----------------------------------------------------------------------------- */

struct buf {
	uint8_t b[512];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put32(struct buf *b, uint32_t v) { put(b, &v, 4); }

/* CIE "zR", code_align 1, data_align -8, ra 16, FDE encoding pcrel|sdata4, initial rsp+8, ra at c-8. */
static size_t put_cie(struct buf *b)
{
	static const uint8_t body[] = {
		0, 0, 0, 0,      /* CIE id */
		1, 'z', 'R', 0,  /* version, augmentation */
		1, 0x78, 16,     /* code align 1, data align -8, ra 16 */
		1, 0x1b,         /* aug data: FDE encoding */
		0x0c, 7, 8,      /* def_cfa rsp+8 */
		0x90, 1,         /* offset ra, 1 * -8 */
		0, 0,            /* padding */
	};
	size_t at = b->n;

	put32(b, sizeof(body));
	put(b, body, sizeof(body));
	return at;
}

/* An FDE for [pc, pc + range) with the given instructions; the section is at vaddr. */
static void put_fde(struct buf *b, size_t cie_at, uint64_t vaddr, uint64_t pc, uint32_t range,
		    const uint8_t *insns, size_t ninsns)
{
	size_t len = 4 + 4 + 4 + 1 + ninsns;
	size_t pad = (8 - (len + 4) % 8) % 8;

	put32(b, (uint32_t)(len + pad));
	put32(b, (uint32_t)(b->n - cie_at));
	int32_t rel = (int32_t)(pc - (vaddr + b->n));
	put(b, &rel, 4);
	put32(b, range);
	put(b, "\0", 1); /* aug data length */
	put(b, insns, ninsns);
	for (size_t i = 0; i < pad; i++)
		put(b, "\0", 1); /* DW_CFA_nop */
}

#define VADDR 0x2000

static void test_handmade_rows(void **state)
{
	struct buf b = { 0 };
	struct ehframe_table t;
	size_t cie = put_cie(&b);
	/* push rbp; mov rbp, rsp; ...; leave: the classic frame. */
	static const uint8_t fp_fn[] = {
		0x41,          /* advance 1 */
		0x0e, 16,      /* def_cfa_offset 16 */
		0x86, 2,       /* offset rbp at c-16 */
		0x43,          /* advance 3 */
		0x0d, 6,       /* def_cfa_register rbp */
		0x4a,          /* advance 10 */
		0x0c, 7, 8,    /* def_cfa rsp+8 */
	};
	/* The PLT expression, then an outermost frame. */
	static const uint8_t plt_fn[] = {
		0x0f, 11, 0x77, 8, 0x80, 0, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22,
		0x44,          /* advance 4 */
		0x07, 16,      /* undefined ra */
	};
	/* A CFA in rdi (unsupported), remember/restore. */
	static const uint8_t odd_fn[] = {
		0x0a,          /* remember_state */
		0x0c, 5, 8,    /* def_cfa rdi+8 */
		0x42,          /* advance 2 */
		0x0b,          /* restore_state */
	};

	(void)state;
	put_fde(&b, cie, VADDR, 0x1000, 0x20, fp_fn, sizeof(fp_fn));
	put_fde(&b, cie, VADDR, 0x1040, 0x10, plt_fn, sizeof(plt_fn));
	put_fde(&b, cie, VADDR, 0x1020, 0x08, odd_fn, sizeof(odd_fn)); /* out of order on purpose */
	put32(&b, 0);
	assert_int_equal(ehframe_table_build(b.b, b.n, VADDR, 1000, &t), 0);
	assert_int_equal(t.base, 0x1000);
	assert_int_equal(t.nfdes, 3);

	struct { uint64_t pc; uint8_t cfa; uint16_t off; int8_t rbp; } want[] = {
		{ 0x1000, UNWIND_CFA_RSP, 8, 0 },
		{ 0x1001, UNWIND_CFA_RSP, 16, -2 },
		{ 0x1003, UNWIND_CFA_RSP, 16, -2 },
		{ 0x1004, UNWIND_CFA_RBP, 16, -2 },
		{ 0x100d, UNWIND_CFA_RBP, 16, -2 },
		{ 0x100e, UNWIND_CFA_RSP, 8, -2 },
		{ 0x101f, UNWIND_CFA_RSP, 8, -2 },
		{ 0x1020, UNWIND_CFA_UNSUPPORTED, 0, 0 },
		{ 0x1022, UNWIND_CFA_RSP, 8, 0 },
		{ 0x1028, UNWIND_CFA_NONE, 0, 0 },
		{ 0x103f, UNWIND_CFA_NONE, 0, 0 },
		{ 0x1040, UNWIND_CFA_PLT, 8, 11 },
		{ 0x1044, UNWIND_CFA_END, 0, 0 },
		{ 0x104f, UNWIND_CFA_END, 0, 0 },
		{ 0x1050, UNWIND_CFA_NONE, 0, 0 },
		{ 0x9999, UNWIND_CFA_NONE, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct unwind_row *r = ehframe_table_find(&t, want[i].pc);
		assert_non_null(r);
		if (r->cfa != want[i].cfa || (want[i].cfa <= UNWIND_CFA_PLT &&
					      (r->cfa_off != want[i].off || r->rbp_off != want[i].rbp)))
			fail_msg("pc 0x%llx: cfa %d off %u rbp %d, want cfa %d off %u rbp %d",
				 (unsigned long long)want[i].pc, r->cfa, r->cfa_off, r->rbp_off, want[i].cfa,
				 want[i].off, want[i].rbp);
	}
	assert_null(ehframe_table_find(&t, 0xfff));
	ehframe_table_free(&t);
}

/* --- malformed input ----------------------------------------------------------------------------- */

static int build(const uint8_t *data, size_t len)
{
	struct ehframe_table t;
	int err = ehframe_table_build(data, len, VADDR, 100000, &t);

	if (!err)
		ehframe_table_free(&t);
	return err;
}

static void test_malformed_rejected(void **state)
{
	struct buf good = { 0 };
	size_t cie = put_cie(&good);
	static const uint8_t insns[] = { 0x41, 0x0e, 16 };

	(void)state;
	put_fde(&good, cie, VADDR, 0x1000, 0x20, insns, sizeof(insns));
	assert_int_equal(build(good.b, good.n), 0);

	struct buf b;
	/* Entry length past the end. */
	b = good;
	b.b[0] = 0xff;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* FDE length past the end. */
	b = good;
	b.b[24] = 0xf0;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* CIE pointer before the section. */
	b = good;
	b.b[28] = 0x80;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* CIE pointer at the FDE itself (not a CIE). */
	b = good;
	b.b[28] = 4;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* Bad CIE version. */
	b = good;
	b.b[8] = 9;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* Unknown augmentation character. */
	b = good;
	b.b[10] = 'Q';
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* Unknown CFA opcode in the FDE. */
	b = good;
	b.b[24 + 4 + 4 + 4 + 4 + 1 + 1] = 0x3f;
	assert_int_equal(build(b.b, b.n), -EINVAL);
	/* restore_state without remember_state. */
	{
		struct buf c = { 0 };
		size_t ci_ = put_cie(&c);
		static const uint8_t bad[] = { 0x0b };
		put_fde(&c, ci_, VADDR, 0x1000, 0x10, bad, sizeof(bad));
		assert_int_equal(build(c.b, c.n), -EINVAL);
	}
	/* remember_state nested too deep. */
	{
		struct buf c = { 0 };
		size_t ci_ = put_cie(&c);
		uint8_t deep[40];
		memset(deep, 0x0a, sizeof(deep));
		put_fde(&c, ci_, VADDR, 0x1000, 0x10, deep, sizeof(deep));
		assert_int_equal(build(c.b, c.n), -EINVAL);
	}
	/* A ULEB128 that never ends. */
	{
		struct buf c = { 0 };
		size_t ci_ = put_cie(&c);
		uint8_t endless[] = { 0x0e, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 };
		put_fde(&c, ci_, VADDR, 0x1000, 0x10, endless, sizeof(endless));
		assert_int_equal(build(c.b, c.n), -EINVAL);
	}
	/* Advancing backwards through set_loc. */
	{
		struct buf c = { 0 };
		size_t ci_ = put_cie(&c);
		uint8_t back[] = { 0x41, 0x01, 0x00, 0xef, 0xff, 0xff }; /* set_loc to pc - 0x1100 */
		put_fde(&c, ci_, VADDR, 0x1000, 0x10, back, sizeof(back));
		assert_int_equal(build(c.b, c.n), -EINVAL);
	}
	/* Row limit. */
	{
		struct ehframe_table t;
		assert_int_equal(ehframe_table_build(good.b, good.n, VADDR, 1, &t), -E2BIG);
	}
	/* Nothing at all, and only a terminator. */
	assert_int_equal(build(good.b, 0), -ENOENT);
	uint8_t term[4] = { 0 };
	assert_int_equal(build(term, sizeof(term)), -ENOENT);
}

static void read_section(const char *path, uint8_t **copy, size_t *len, uint64_t *vaddr)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *f;
	const void *data;

	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, 1ull << 30, &f), 0);
	assert_int_equal(elf_file_section(f, ".eh_frame", 1 << 28, &data, len, vaddr), 0);
	*copy = malloc(*len);
	assert_non_null(*copy);
	memcpy(*copy, data, *len);
	elf_file_close(f);
	close(fd);
}

/* Every prefix of a real section and random corruptions of it: an answer, never a crash (the
 * sanitizer build checks every read). */
static void test_truncated_and_corrupted(void **state)
{
	uint8_t *sec, *mut;
	size_t len;
	uint64_t vaddr;
	unsigned seed = 12345;
	size_t ok = 0, rejected = 0;

	(void)state;
	read_section(PIE, &sec, &len, &vaddr);
	for (size_t n = 0; n < len; n++) {
		struct ehframe_table t;
		int err = ehframe_table_build(sec, n, vaddr, 100000, &t);
		assert_true(err == 0 || err == -EINVAL || err == -ENOENT);
		if (!err)
			ehframe_table_free(&t);
	}
	mut = malloc(len);
	assert_non_null(mut);
	for (int round = 0; round < 3000; round++) {
		memcpy(mut, sec, len);
		int flips = 1 + (int)(rand_r(&seed) % 4);
		for (int i = 0; i < flips; i++)
			mut[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
		struct ehframe_table t, o;
		uint8_t *copy = malloc(len);
		int err = ehframe_table_build(mut, len, vaddr, 100000, &t);
		assert_true(err == 0 || err == -EINVAL || err == -ENOENT || err == -E2BIG);
		/* An owned copy, freed as soon as it is parsed, gives the same answer. */
		assert_non_null(copy);
		memcpy(copy, mut, len);
		assert_int_equal(ehframe_table_build_owned(copy, len, vaddr, 100000, &o), err);
		if (!err) {
			ok++;
			assert_int_equal(o.nrows, t.nrows);
			assert_int_equal(o.base, t.base);
			assert_memory_equal(o.rows, t.rows, t.nrows * sizeof(*t.rows));
			ehframe_table_free(&o);
			ehframe_table_free(&t);
		} else {
			rejected++;
		}
	}
	print_message("corrupted: %zu accepted, %zu rejected\n", ok, rejected);
	assert_true(rejected > 0);
	free(mut);
	free(sec);
}

/* A copy of path with the section header table gone (e_shoff, e_shnum, e_shstrndx zeroed), as some
 * packers and stripped release builds ship; the caller unlinks it. */
static void copy_without_sections(const char *path, char *copy, size_t len)
{
	int in = open(path, O_RDONLY | O_CLOEXEC), out;
	char buf[65536];
	ssize_t n;
	Elf64_Ehdr eh;

	snprintf(copy, len, "/tmp/anorak-test-noshdr-XXXXXX");
	out = mkstemp(copy);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	assert_int_equal(pread(out, &eh, sizeof(eh), 0), sizeof(eh));
	eh.e_shoff = 0;
	eh.e_shnum = 0;
	eh.e_shstrndx = 0;
	assert_int_equal(pwrite(out, &eh, sizeof(eh), 0), sizeof(eh));
	close(in);
	close(out);
}

static void same_table_without_sections(const char *path)
{
	struct ehframe_table with, without;
	char copy[64];
	const void *data;
	size_t len;
	uint64_t vaddr;
	struct elf_file *f;

	copy_without_sections(path, copy, sizeof(copy));
	int fd = open(copy, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, 1ull << 30, &f), 0);
	/* Really no sections: only the program headers can lead to .eh_frame. */
	assert_int_equal(elf_file_section(f, ".eh_frame", 1ull << 30, &data, &len, &vaddr), -ENOENT);
	assert_int_equal(ehframe_table_from_elf(f, MAX_ROWS, &without), 0);
	elf_file_close(f);
	close(fd);
	unlink(copy);

	load(path, &with);
	print_message("%s without section headers: %u rows (%u with)\n", path, without.nrows, with.nrows);
	assert_true(with.nrows > 1);
	assert_int_equal(without.base, with.base);
	assert_int_equal(without.nrows, with.nrows);
	assert_int_equal(without.nfdes, with.nfdes);
	assert_memory_equal(without.rows, with.rows, with.nrows * sizeof(*with.rows));
	ehframe_table_free(&with);
	ehframe_table_free(&without);
}

static void test_without_section_headers(void **state)
{
	(void)state;
	same_table_without_sections(LIBC);
	same_table_without_sections(PIE);
	same_table_without_sections(LIB);
}

static void test_eh_frame_hdr(void **state)
{
	/* version 1, eh_frame_ptr pcrel|sdata4, fde_count udata4, table datarel|sdata4 */
	uint8_t hdr[12] = { 1, 0x1b, 0x03, 0x3b, 0xf0, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ehframe_hdr_eh_frame(hdr, sizeof(hdr), 0x2000, &v), 0);
	assert_int_equal(v, 0x2000 + 4 - 0x10);
	assert_int_equal(ehframe_hdr_eh_frame(hdr, 6, 0x2000, &v), -EINVAL);  /* truncated */
	hdr[0] = 2;
	assert_int_equal(ehframe_hdr_eh_frame(hdr, sizeof(hdr), 0x2000, &v), -EINVAL);
	hdr[0] = 1;
	hdr[1] = 0xff; /* omitted */
	assert_int_equal(ehframe_hdr_eh_frame(hdr, sizeof(hdr), 0x2000, &v), -EINVAL);
	hdr[1] = 0x9b; /* indirect */
	assert_int_equal(ehframe_hdr_eh_frame(hdr, sizeof(hdr), 0x2000, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_section_headers),
		cmocka_unit_test(test_eh_frame_hdr),
		cmocka_unit_test(test_handmade_rows),
		cmocka_unit_test(test_malformed_rejected),
		cmocka_unit_test(test_libc_matches_readelf),
		cmocka_unit_test(test_fixtures_match_readelf),
		cmocka_unit_test(test_workload_without_frame_pointers),
		cmocka_unit_test(test_libstdcxx_matches_readelf),
		cmocka_unit_test(test_truncated_and_corrupted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
