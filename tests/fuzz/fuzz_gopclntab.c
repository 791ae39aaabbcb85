/* The .gopclntab reader (exporter/symbols/gopclntab.c) on arbitrary bytes taken as a table at 0x400000,
 * its text at 0x401000 unless the header says otherwise. Inline trees are read from the same bytes
 * (gofunc = the table's own address, as in the seeds of tests/fuzz/seeds/gopclntab_seeds.py). Inputs
 * that start like an ELF file go through the daemon's way in instead (gopclntab_elf.c): Go detection,
 * section, symbol and header scan, moduledata, inline trees read with pread. */
#include <errno.h>

#include "exporter/proc/elf_file.h"
#include "exporter/symbols/gopclntab.h"
#include "fuzz_common.h"

#define VADDR 0x400000ull
#define TEXT 0x401000ull
#define MAX_FUNCS 100000
#define MAX_BYTES (64u << 20)

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

static void elf_input(const uint8_t *data, size_t size)
{
	struct gopclntab *t;
	struct elf_file *ef;
	int fd = fuzz_memfd("fuzz_gopclntab", data, size), err;

	if (fd < 0)
		return;
	if (elf_file_open(fd, MAX_BYTES, &ef) == 0) {
		gopclntab_elf_is_go(ef);
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
	gopclntab_free(t);
	return 0;
}
