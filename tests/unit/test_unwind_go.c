/* Unwind rows from .gopclntab (exporter/sampling/unwind_go.c) against the instructions themselves: `go tool
 * objdump` of functions of the workload tests/workload/gowork (Go 1.19: frameless leaves, frames set up by
 * SUBQ/MOVQ BP/LEAQ, standard-library assembly) gives the SP delta at each instruction up to the first
 * epilogue, which the row in effect there must turn into its CFA; stops, merging with the .eh_frame rows
 * of a cgo binary (tests/workload/gocgo), bounds and corrupt pcsp tables. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/types.h>

#include "bpf/unwind.h"
#include "exporter/proc/elf_file.h"
#include "exporter/sampling/unwind_go.h"
#include "exporter/proc/gopclntab.h"

#define WORKLOAD_DIR FIXTURES_DIR "/../workload"
#define GOWORK WORKLOAD_DIR "/gowork"
#define GOWORK_STRIPPED WORKLOAD_DIR "/gowork_stripped"
#define GOCGO WORKLOAD_DIR "/gocgo"
#define GO_ENV "GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOPROXY=off GOCACHE=" WORKLOAD_DIR "/gocache "
#define MAX_BYTES (256ull << 20)
#define MAX_ROWS (1u << 23)

struct built {
	int fd;
	struct elf_file *ef;
	struct ehframe_table t;
	struct unwind_go_stats st;
};

static void build(const char *path, struct built *b)
{
	memset(b, 0, sizeof(*b));
	b->fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(b->fd >= 0);
	assert_int_equal(elf_file_open(b->fd, MAX_BYTES, &b->ef), 0);
	assert_int_equal(unwind_go_from_elf(b->ef, MAX_BYTES, MAX_ROWS, &b->t, &b->st), 1);
	assert_int_equal(b->st.tables, 1);
	assert_int_equal(b->st.funcs_refused, 0);
	assert_true(b->t.nrows > 1000);
}

static void release(struct built *b)
{
	ehframe_table_free(&b->t);
	elf_file_close(b->ef);
	close(b->fd);
}

/* The row at pc: CFA = RSP + delta + 8, and BP saved at CFA - 16 or not. */
static void expect_row(const struct ehframe_table *t, uint64_t pc, unsigned delta, int rbp_off, const char *insn)
{
	const struct unwind_row *r = ehframe_table_find(t, pc);

	if (!r || r->cfa != UNWIND_CFA_RSP || r->cfa_off != (int)delta + 8 || r->rbp_off != rbp_off)
		fail_msg("%#lx (%s): row cfa=%d off=%d rbp=%d, objdump says SP+%u+8 rbp %d", pc, insn, r ? r->cfa : -1,
			 r ? r->cfa_off : -1, r ? r->rbp_off : 0, delta, rbp_off);
}

/* Walks one objdump listing: the SP delta before each instruction, from the entry to the first
 * epilogue (the ADDQ that frees the frame, or the RET of a frameless function). Returns the
 * instructions checked. */
static unsigned check_listing(const struct ehframe_table *t, FILE *p)
{
	char line[512], insn[256];
	unsigned delta = 0, frame = 0, checked = 0, n;
	int rbp = 0, done = 1;
	uint64_t pc;

	while (fgets(line, sizeof(line), p)) {
		if (strncmp(line, "TEXT ", 5) == 0) {
			delta = frame = 0, rbp = 0, done = 0;
			continue;
		}
		if (done || sscanf(line, " %*s %lx %*s %255[^\n]", &pc, insn) != 2)
			continue;
		expect_row(t, pc, delta, rbp, insn);
		checked++;
		if (sscanf(insn, "SUBQ $0x%x, SP", &n) == 1 && !frame)
			delta += frame = n;
		else if (frame && strncmp(insn, "MOVQ BP, ", 9) == 0)
			rbp = -2;
		else if (strncmp(insn, "PUSHQ", 5) == 0)
			delta += 8;
		else if (strncmp(insn, "POPQ", 4) == 0)
			delta -= 8;
		else if (strncmp(insn, "ADDQ $", 6) == 0 && strstr(insn, ", SP"))
			done = 1;
		else if (strncmp(insn, "RET", 3) == 0)
			done = 1;
	}
	return checked;
}

static void test_objdump(void **state)
{
	static const char *const bins[] = { GOWORK, GOWORK_STRIPPED };
	char cmd[512];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct built b;
		FILE *p;
		unsigned checked;

		build(bins[i], &b);
		/* the stripped binary has no symbols for objdump: its functions are at the same addresses */
		snprintf(cmd, sizeof(cmd),
			 GO_ENV "go tool objdump -s '^(main[.](leaf|middle|hash|weighted|work5|main)|"
				"crypto/sha256[.]block[.]abi0|runtime[.]mallocgc)$' " GOWORK);
		p = popen(cmd, "r");
		assert_non_null(p);
		checked = check_listing(&b.t, p);
		assert_int_equal(pclose(p), 0);
		assert_true(checked > 200);
		release(&b);
	}
}

/* Address of a function of an unstripped workload. */
static uint64_t nm_of(const char *bin, const char *sym)
{
	char cmd[512], out[64] = "";
	uint64_t addr = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), GO_ENV "go tool nm %s | awk '$3 == \"%s\" { print $1 }'", bin, sym);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	assert_int_equal(sscanf(out, "%lx", &addr), 1);
	return addr;
}

static void test_stops(void **state)
{
	static const struct {
		const char *sym;
		enum unwind_end end;
	} stops[] = {
		{ "runtime.goexit.abi0", UNWIND_END_OUTERMOST },
		{ "runtime.mstart.abi0", UNWIND_END_OUTERMOST },
		{ "runtime.rt0_go.abi0", UNWIND_END_OUTERMOST },
		{ "runtime.systemstack.abi0", UNWIND_END_GO_STACK_SWITCH },
		{ "runtime.mcall", UNWIND_END_GO_STACK_SWITCH },
		{ "runtime.morestack.abi0", UNWIND_END_GO_STACK_SWITCH },
		{ "runtime.asmcgocall.abi0", UNWIND_END_GO_CGO },
		{ "gogo", UNWIND_END_GO_SPWRITE }, /* gogo<>: SPWRITE, found by its flag */
		{ "runtime.nanotime1.abi0", UNWIND_END_GO_SPWRITE },
	};
	struct built b;

	(void)state;
	build(GOWORK, &b);
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		uint64_t pc = nm_of(GOWORK, stops[i].sym);
		const struct unwind_row *r = ehframe_table_find(&b.t, pc + 1);

		assert_non_null(r);
		if (r->cfa != UNWIND_CFA_END || r->rbp_off != (int8_t)stops[i].end)
			fail_msg("%s: row cfa=%d rbp_off=%d, want END %d", stops[i].sym, r->cfa, r->rbp_off, stops[i].end);
	}
	release(&b);
}

/* C code keeps its .eh_frame rows around and beside the Go text; cgo calls stop at asmcgocall. */
static void test_cgo(void **state)
{
	struct built b = { .fd = open(GOCGO, O_RDONLY | O_CLOEXEC) };
	const struct unwind_row *r;
	uint32_t eh_rows;

	(void)state;
	assert_true(b.fd >= 0);
	assert_int_equal(elf_file_open(b.fd, MAX_BYTES, &b.ef), 0);
	assert_int_equal(ehframe_table_from_elf(b.ef, MAX_ROWS, &b.t), 0);
	eh_rows = b.t.nrows;
	assert_int_equal(unwind_go_from_elf(b.ef, MAX_BYTES, MAX_ROWS, &b.t, &b.st), 1);
	assert_true(b.t.nrows > eh_rows + 1000);
	r = ehframe_table_find(&b.t, nm_of(GOCGO, "burn_c"));
	assert_true(r && r->cfa == UNWIND_CFA_RSP && r->cfa_off == 8);
	r = ehframe_table_find(&b.t, nm_of(GOCGO, "_start") + 1);
	assert_true(r && r->cfa != UNWIND_CFA_NONE);
	r = ehframe_table_find(&b.t, nm_of(GOCGO, "main.callC"));
	assert_true(r && r->cfa == UNWIND_CFA_RSP && r->cfa_off == 8);
	r = ehframe_table_find(&b.t, nm_of(GOCGO, "runtime.asmcgocall.abi0") + 1);
	assert_true(r && r->cfa == UNWIND_CFA_END && r->rbp_off == UNWIND_END_GO_CGO);
	for (uint32_t i = 1; i < b.t.nrows; i++)
		assert_true(b.t.rows[i].pc > b.t.rows[i - 1].pc);
	release(&b);
}

static void test_not_go(void **state)
{
	struct ehframe_table t = { 0 };
	struct unwind_go_stats st = { 0 };
	struct elf_file *ef;
	int fd = open(WORKLOAD_DIR "/weights", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, MAX_BYTES, &ef), 0);
	assert_int_equal(unwind_go_from_elf(ef, MAX_BYTES, MAX_ROWS, &t, &st), 0);
	assert_int_equal(t.nrows, 0);
	elf_file_close(ef);
	close(fd);
}

/* Go rows replace .eh_frame rows over their range; .eh_frame rows around it stay, the one in effect at
 * the Go range's end resumes there. */
static void test_merge(void **state)
{
	struct unwind_row eh_rows[] = {
		{ 0x0, 8, UNWIND_CFA_RSP, 0 }, { 0x10, 0, UNWIND_CFA_NONE, 0 },
		{ 0x1800, 16, UNWIND_CFA_RSP, -2 }, { 0x5000, 0, UNWIND_CFA_NONE, 0 },
	};
	struct unwind_row go_rows[] = {
		{ 0x0, 8, UNWIND_CFA_RSP, 0 }, { 0x20, 40, UNWIND_CFA_RSP, -2 }, { 0x1000, 0, UNWIND_CFA_NONE, 0 },
	};
	struct ehframe_table eh = { .base = 0x1000, .nrows = 4, .nfdes = 2 };
	struct ehframe_table go = { .base = 0x2000, .rows = go_rows, .nrows = 3 };
	const struct unwind_row *r;

	(void)state;
	eh.rows = malloc(sizeof(eh_rows));
	assert_non_null(eh.rows);
	memcpy(eh.rows, eh_rows, sizeof(eh_rows));
	assert_int_equal(unwind_go_merge(&eh, &go, 5), -E2BIG);
	assert_int_equal(unwind_go_merge(&eh, &go, 100), 0);
	assert_int_equal(eh.base, 0x1000);
	r = ehframe_table_find(&eh, 0x1008);
	assert_true(r && r->cfa == UNWIND_CFA_RSP && r->cfa_off == 8);
	r = ehframe_table_find(&eh, 0x1f00);
	assert_true(r && r->cfa == UNWIND_CFA_NONE);
	r = ehframe_table_find(&eh, 0x2100);
	assert_true(r && r->cfa == UNWIND_CFA_RSP && r->cfa_off == 40 && r->rbp_off == -2);
	r = ehframe_table_find(&eh, 0x3000); /* in the .eh_frame FDE that began under the Go range */
	assert_true(r && r->cfa == UNWIND_CFA_RSP && r->cfa_off == 16);
	r = ehframe_table_find(&eh, 0x6000);
	assert_true(r && r->cfa == UNWIND_CFA_NONE);
	for (uint32_t i = 1; i < eh.nrows; i++)
		assert_true(eh.rows[i].pc > eh.rows[i - 1].pc);
	ehframe_table_free(&eh);
}

static struct gopclntab *stripped_table(uint8_t **data, size_t *len, uint64_t *vaddr)
{
	int fd = open(GOWORK_STRIPPED, O_RDONLY | O_CLOEXEC);
	struct gopclntab *t;
	struct elf_file *ef;
	const void *d;

	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, MAX_BYTES, &ef), 0);
	assert_int_equal(elf_file_section(ef, ".gopclntab", MAX_BYTES, &d, len, vaddr), 0);
	*data = malloc(*len);
	assert_non_null(*data);
	memcpy(*data, d, *len);
	elf_file_close(ef);
	close(fd);
	assert_int_equal(gopclntab_parse(*data, *len, *vaddr, 0, 1u << 20, &t), 0);
	return t;
}

static void test_bounds(void **state)
{
	struct ehframe_table t;
	struct unwind_go_stats st = { 0 };
	uint8_t *d;
	size_t len;
	uint64_t vaddr;
	struct gopclntab *g = stripped_table(&d, &len, &vaddr);

	(void)state;
	assert_int_equal(unwind_go_build(g, NULL, 0, 0, 1000, &t, &st), -E2BIG);
	assert_null(t.rows);
	/* without the text, no BP rule: the CFA rows are the same */
	assert_int_equal(unwind_go_build(g, NULL, 0, 0, MAX_ROWS, &t, &st), 0);
	for (uint32_t i = 0; i < t.nrows; i++)
		assert_true(t.rows[i].cfa == UNWIND_CFA_END || t.rows[i].rbp_off == 0);
	ehframe_table_free(&t);
	gopclntab_free(g);
	free(d);
}

/* Every byte of the pc-value tables flipped in turn: the build answers sorted rows of known kinds or
 * refuses, and corrupt pcsp tables are refused function by function. */
static void test_corrupt_pcsp(void **state)
{
	struct unwind_go_stats st = { 0 };
	struct ehframe_table t;
	struct gopclntab *g;
	uint8_t *d;
	size_t len;
	uint64_t vaddr;

	(void)state;
	gopclntab_free(stripped_table(&d, &len, &vaddr));
	for (size_t off = 64; off < len; off += len / 2048 + 1) {
		d[off] ^= 0xa5;
		if (gopclntab_parse(d, len, vaddr, 0, 1u << 20, &g) == 0) {
			int err = unwind_go_build(g, NULL, 0, 0, MAX_ROWS, &t, &st);

			assert_true(err == 0 || err == -ENOEXEC || err == -E2BIG);
			for (uint32_t i = 0; !err && i < t.nrows; i++) {
				assert_true(i == 0 || t.rows[i].pc > t.rows[i - 1].pc);
				assert_true(t.rows[i].cfa <= UNWIND_CFA_UNSUPPORTED && t.rows[i].cfa != UNWIND_CFA_PLT);
				assert_true(t.rows[i].cfa != UNWIND_CFA_END || t.rows[i].rbp_off <= UNWIND_END_GO_SPWRITE);
			}
			if (!err)
				ehframe_table_free(&t);
			gopclntab_free(g);
		}
		d[off] ^= 0xa5;
	}
	assert_true(st.funcs_refused > 0);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_objdump),
		cmocka_unit_test(test_stops),
		cmocka_unit_test(test_cgo),
		cmocka_unit_test(test_not_go),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_corrupt_pcsp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
