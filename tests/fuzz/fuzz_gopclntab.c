/* The .gopclntab reader (exporter/proc/gopclntab.c) on arbitrary bytes taken as a table at 0x400000,
 * its text at 0x401000 unless the header says otherwise. Inline trees are read from the same bytes
 * (gofunc = the table's own address, as in the seeds of tests/fuzz/seeds/gopclntab_seeds.py). Inputs
 * that start like an ELF file go through the daemon's way in instead (gopclntab_elf.c): Go detection,
 * section, symbol and header scan, moduledata, inline trees read with pread. Every table that parses is
 * also turned into unwind rows (exporter/sampling/unwind_go.c: pcsp decoding, the prologue check on the
 * input's own bytes, merging with an .eh_frame table), whose shape is checked. */
#include <errno.h>

#include <linux/types.h>

#include "bpf/unwind.h"
#include "exporter/proc/elf_file.h"
#include "exporter/sampling/unwind_go.h"
#include "exporter/proc/gopclntab.h"
#include "fuzz_common.h"

#define VADDR 0x400000ull
#define TEXT 0x401000ull
#define MAX_FUNCS 100000
#define MAX_BYTES (64u << 20)
#define MAX_ROWS (1u << 16)

struct input {
	const uint8_t *data;
	size_t size;
};

static int read_input(void *ctx, uint64_t vaddr, void *buf, size_t len)
{
	const struct input *in = ctx;

	if (vaddr < VADDR || vaddr - VADDR > in->size || len > in->size - (vaddr - VADDR))
		return -ENOENT;
	memcpy(buf, in->data + (vaddr - VADDR), len);
	return 0;
}

static void lookup(const struct gopclntab *t, uint64_t pc, size_t size)
{
	struct gopclntab_frame fr[GOPCLNTAB_MAX_FRAMES];
	int n = gopclntab_lookup(t, pc, fr, GOPCLNTAB_MAX_FRAMES);

	FUZZ_CHECK(n == -ENOEXEC || (n >= 0 && n <= GOPCLNTAB_MAX_FRAMES));
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(fr[i].name && strlen(fr[i].name) < size);
		FUZZ_CHECK(fr[i].file && strlen(fr[i].file) < size);
	}
}

static void lookups(const struct gopclntab *t, const uint8_t *data, size_t size)
{
	uint64_t words[64], text = gopclntab_text_start(t);
	size_t n;

	FUZZ_CHECK(gopclntab_nfuncs(t) > 0);
	/* The first instructions of the text, then addresses taken from the input itself. */
	for (uint64_t off = 0; off < 0x100; off += 3)
		lookup(t, text + off, size);
	n = fuzz_addresses(data, size, words, sizeof(words) / sizeof(words[0]));
	for (size_t i = 0; i < n; i++) {
		lookup(t, words[i], size);
		lookup(t, text + (words[i] & 0xffff), size);
	}
}

/* Rows sorted by pc, of the kinds pcsp gives: CFA = RSP + delta + 8, ends, gaps, unsupported. */
static void check_rows(const struct ehframe_table *et)
{
	for (uint32_t i = 0; i < et->nrows; i++) {
		const struct unwind_row *r = &et->rows[i];

		FUZZ_CHECK(i == 0 || r->pc > et->rows[i - 1].pc);
		FUZZ_CHECK(r->cfa != UNWIND_CFA_RBP && r->cfa != UNWIND_CFA_PLT && r->cfa <= UNWIND_CFA_UNSUPPORTED);
		FUZZ_CHECK(r->cfa != UNWIND_CFA_RSP || (r->cfa_off >= 8 && (r->rbp_off == 0 || r->rbp_off == -2)));
		FUZZ_CHECK(r->cfa != UNWIND_CFA_END || (r->rbp_off >= 0 && r->rbp_off <= UNWIND_END_GO_SPWRITE));
	}
}

static void unwind_rows(const struct gopclntab *t, const uint8_t *data, size_t size)
{
	struct unwind_row eh_rows[] = { { 0, 8, UNWIND_CFA_RSP, 0 }, { 0x40, 0, UNWIND_CFA_NONE, 0 } };
	/* an .eh_frame table overlapping the Go text's start, as C code linked before it would be */
	uint64_t text = gopclntab_text_start(t);
	struct ehframe_table go, eh = { .base = text >= 0x20 ? text - 0x20 : text, .nrows = 2 };
	struct unwind_go_stats st = { 0 };
	int err = unwind_go_build(t, data, size, gopclntab_text_start(t), MAX_ROWS, &go, &st);

	FUZZ_CHECK(err == 0 || err == -ENOEXEC || err == -E2BIG || err == -ENOMEM);
	if (err)
		return;
	FUZZ_CHECK(go.nrows <= MAX_ROWS);
	check_rows(&go);
	eh.rows = malloc(sizeof(eh_rows));
	if (eh.rows) {
		memcpy(eh.rows, eh_rows, sizeof(eh_rows));
		err = unwind_go_merge(&eh, &go, MAX_ROWS);
		FUZZ_CHECK(err == 0 || err == -E2BIG || err == -ENOMEM);
		check_rows(&eh);
		ehframe_table_free(&eh);
	}
	ehframe_table_free(&go);
}

static void elf_unwind_rows(struct elf_file *ef)
{
	struct ehframe_table et = { 0 };
	struct unwind_go_stats st = { 0 };
	int err = unwind_go_from_elf(ef, MAX_BYTES, MAX_ROWS, &et, &st);

	FUZZ_CHECK(err == 0 || err == 1 || err == -ENOENT || err == -EFBIG || err == -ENOEXEC ||
		   err == -EPROTONOSUPPORT || err == -E2BIG || err == -ENOMEM);
	FUZZ_CHECK(err == 1 || et.nrows == 0);
	check_rows(&et);
	ehframe_table_free(&et);
}

static void elf_input(const uint8_t *data, size_t size)
{
	struct gopclntab *t;
	struct elf_file *ef;
	int fd = fuzz_memfd("fuzz_gopclntab", data, size), err;

	if (fd < 0)
		return;
	if (elf_file_open(fd, MAX_BYTES, &ef) == 0) {
		gopclntab_elf_is_go(ef);
		elf_unwind_rows(ef);
		err = gopclntab_elf_load(ef, fd, MAX_BYTES, MAX_FUNCS, &t);
		FUZZ_CHECK(err == 0 || err == -ENOENT || err == -EFBIG || err == -ENOEXEC || err == -EPROTONOSUPPORT ||
			   err == -E2BIG || err == -ENOMEM);
		elf_file_close(ef);
		if (!err) {
			lookups(t, data, size);
			gopclntab_free(t);
		}
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct gopclntab *t;
	int err;

	if (size >= 4 && memcmp(data, "\x7f" "ELF", 4) == 0) {
		elf_input(data, size);
		return 0;
	}
	err = gopclntab_parse(data, size, VADDR, TEXT, MAX_FUNCS, &t);
	FUZZ_CHECK(err == 0 || err == -ENOEXEC || err == -EPROTONOSUPPORT || err == -E2BIG || err == -ENOMEM);
	if (err)
		return 0;
	FUZZ_CHECK(gopclntab_bytes(t) > size);
	gopclntab_set_funcdata(t, VADDR, read_input, &in, NULL);
	lookups(t, data, size);
	unwind_rows(t, data, size);
	gopclntab_free(t);
	return 0;
}
