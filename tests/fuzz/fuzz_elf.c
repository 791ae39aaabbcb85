/* The ELF reader (exporter/proc/elf_file.c) on arbitrary bytes, through both ways the daemon opens files: a
 * file descriptor read lazily with pread (binaries of containers) and an image in memory (the vdso).
 * Every query the symbolizer and the trace-context discovery make is run on whatever opens. */
#include <elf.h>
#include <errno.h>

#include "exporter/proc/elf_file.h"
#include "fuzz_common.h"

#define MAX_BYTES (64u << 20)
#define MAX_SYMBOLS 100000
#define MAX_RELOCS 100000

static void lookups(const struct elf_symtab *t, const uint8_t *data, size_t size)
{
	FUZZ_CHECK(elf_symtab_bytes(t) > 0 && elf_symtab_count(t) <= MAX_SYMBOLS);
	/* Addresses taken from the input itself hit symbols, gaps and the ends of the table. */
	for (size_t i = 0; i + 8 <= size && i < 256; i += 8) {
		uint64_t a;
		char buf[64];
		const char *name;

		memcpy(&a, data + i, 8);
		name = elf_symtab_lookup(t, a, buf, sizeof(buf));
		if (name)
			FUZZ_CHECK(strlen(name) < size && (name != buf || strlen(name) < sizeof(buf)));
	}
}

static void symtab(struct elf_file *f, uint32_t type, const uint8_t *data, size_t size)
{
	struct elf_symtab *t = NULL;
	int err = elf_symtab_load(f, type, MAX_SYMBOLS, &t);

	FUZZ_CHECK(err == 0 || err == -ENOENT || err == -E2BIG || err == -ENOEXEC || err == -ENOMEM);
	if (err)
		return;
	lookups(t, data, size);
	elf_symtab_free(t);
}

static void queries(struct elf_file *f, const uint8_t *data, size_t size)
{
	char hex[ELF_BUILD_ID_HEX], link[ELF_DEBUGLINK_MAX];
	struct elf_load loads[ELF_MAX_LOADS];
	struct elf_symbol sym;
	struct elf_tls tls;
	uint64_t vaddr, r_offset;
	uint32_t crc;
	int n;

	n = elf_file_build_id(f, hex, sizeof(hex));
	if (n > 0)
		FUZZ_CHECK((size_t)n == strlen(hex) && n % 2 == 0);
	if (elf_file_debuglink(f, link, sizeof(link), &crc) == 0)
		FUZZ_CHECK(strlen(link) > 0 && strlen(link) < sizeof(link));
	elf_file_has_symtab(f);
	n = elf_file_loads(f, loads, ELF_MAX_LOADS);
	FUZZ_CHECK(n == -ENOEXEC || (n > 0 && n <= ELF_MAX_LOADS));
	if (n > 0) {
		elf_loads_vaddr(loads, (size_t)n, 0, &vaddr);
		elf_loads_vaddr(loads, (size_t)n, loads[0].offset + loads[0].filesz / 2, &vaddr);
	}
	elf_file_type(f);
	elf_file_tls(f, &tls);
	symtab(f, SHT_SYMTAB, data, size);
	symtab(f, SHT_DYNSYM, data, size);
	/* What trace-context discovery looks up (integrations/trace-context). */
	if (elf_file_find_symbol(f, SHT_DYNSYM, "otel_thread_ctx_v1", MAX_SYMBOLS, &sym) == 0)
		elf_file_find_rela(f, R_X86_64_TLSDESC, sym.index, sym.value, MAX_RELOCS, &r_offset);
	elf_file_find_symbol(f, SHT_SYMTAB, "main", MAX_SYMBOLS, &sym);
	elf_file_find_rela(f, R_X86_64_DTPMOD64, 0, 0, MAX_RELOCS, &r_offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_file *f;
	uint32_t crc;
	int fd;

	if (elf_file_open_mem(data, size, &f) == 0) {
		queries(f, data, size);
		elf_file_close(f);
	}
	fd = fuzz_memfd("fuzz_elf", data, size);
	if (fd < 0)
		return 0;
	if (elf_file_open(fd, MAX_BYTES, &f) == 0) {
		queries(f, data, size);
		elf_file_close(f);
	}
	FUZZ_CHECK(elf_fd_crc32(fd, MAX_BYTES, &crc) == 0);
	close(fd);
	return 0;
}
