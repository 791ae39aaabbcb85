/* The .gopclntab reader (exporter/symbols/gopclntab.c) on arbitrary bytes taken as a table at 0x400000,
 * its text at 0x401000 unless the header says otherwise. Inline trees are read from the same bytes
 * (gofunc = the table's own address, as in the seeds of tests/fuzz/seeds/gopclntab_seeds.py). */
#include <errno.h>

#include "exporter/symbols/gopclntab.h"
#include "fuzz_common.h"

#define VADDR 0x400000ull
#define TEXT 0x401000ull
#define MAX_FUNCS 100000

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct gopclntab *t;
	uint64_t words[64], text;
	size_t n;
	int err = gopclntab_parse(data, size, VADDR, TEXT, MAX_FUNCS, &t);

	FUZZ_CHECK(err == 0 || err == -ENOEXEC || err == -EPROTONOSUPPORT || err == -E2BIG || err == -ENOMEM);
	if (err)
		return 0;
	FUZZ_CHECK(gopclntab_nfuncs(t) > 0 && gopclntab_bytes(t) > size);
	gopclntab_set_funcdata(t, VADDR, read_input, &in, NULL);
	/* The first instructions of the text, then addresses taken from the input itself. */
	text = gopclntab_text_start(t);
	for (uint64_t off = 0; off < 0x100; off += 3)
		lookup(t, text + off, size);
	n = fuzz_addresses(data, size, words, sizeof(words) / sizeof(words[0]));
	for (size_t i = 0; i < n; i++) {
		lookup(t, words[i], size);
		lookup(t, text + (words[i] & 0xffff), size);
	}
	gopclntab_free(t);
	return 0;
}
