#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/proc/elf_file.h"

#define PIE FIXTURES_DIR "/fixture_pie"
#define LIB FIXTURES_DIR "/libanorak_fixture.so"
#define STRIPPED FIXTURES_DIR "/fixture_stripped"
#define DEBUG FIXTURES_DIR "/fixture_stripped.debug"

static char name_buf[4096];
#define LOOKUP(t, a) elf_symtab_lookup((t), (a), name_buf, sizeof(name_buf))

static int open_elf(const char *path, int *fd, struct elf_file **f)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(*fd >= 0);
	return elf_file_open(*fd, 1ull << 30, f);
}

/* First line of a shell command's output, e.g. the answer of readelf or nm. */
static void run(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");

	assert_non_null(p);
	assert_non_null(fgets(out, (int)len, p));
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

static uint64_t nm_addr(const char *file, const char *sym)
{
	char cmd[512], out[128];

	snprintf(cmd, sizeof(cmd), "nm %s | awk '$3 == \"%s\" { print $1 }'", file, sym);
	run(cmd, out, sizeof(out));
	return strtoull(out, NULL, 16);
}

static void test_build_id_matches_readelf(void **state)
{
	char hex[ELF_BUILD_ID_HEX], want[256];
	struct elf_file *f;
	int fd;

	(void)state;
	run("readelf -n " PIE " | awk '/Build ID:/ { print $3 }'", want, sizeof(want));
	assert_int_equal(strlen(want), 40);
	assert_int_equal(open_elf(PIE, &fd, &f), 0);
	assert_int_equal(elf_file_build_id(f, hex, sizeof(hex)), 40);
	assert_string_equal(hex, want);
	elf_file_close(f);
	close(fd);
}

static void test_pie_symbols(void **state)
{
	uint64_t alpha = nm_addr(PIE, "fixture_alpha"), beta = nm_addr(PIE, "fixture_beta");
	struct elf_load loads[ELF_MAX_LOADS];
	struct elf_symtab *t;
	struct elf_file *f;
	uint64_t vaddr;
	int fd, n;

	(void)state;
	assert_true(alpha && beta);
	assert_int_equal(open_elf(PIE, &fd, &f), 0);
	assert_true(elf_file_has_symtab(f));
	n = elf_file_loads(f, loads, ELF_MAX_LOADS);
	assert_true(n >= 2);
	/* In this PIE layout file offsets equal vaddrs for the text segment. */
	assert_int_equal(elf_loads_vaddr(loads, (size_t)n, alpha, &vaddr), 0);
	assert_true(vaddr == alpha);
	assert_int_equal(elf_symtab_load(f, SHT_SYMTAB, 100000, &t), 0);
	assert_string_equal(LOOKUP(t, alpha), "fixture_alpha");
	assert_string_equal(LOOKUP(t, alpha + 3), "fixture_alpha");
	assert_string_equal(LOOKUP(t, beta), "fixture_beta");
	assert_true(!LOOKUP(t, alpha - 1) || strcmp(LOOKUP(t, alpha - 1), "fixture_alpha"));
	assert_null(LOOKUP(t, 0));
	assert_true(elf_symtab_bytes(t) > elf_symtab_count(t) * 8);
	elf_symtab_free(t);
	/* The symbol count limit applies before the table is read. */
	assert_int_equal(elf_symtab_load(f, SHT_SYMTAB, 3, &t), -E2BIG);
	elf_file_close(f);
	close(fd);
}

static void test_shared_library(void **state)
{
	uint64_t alpha = nm_addr(LIB, "fixture_lib_alpha"), hidden = nm_addr(LIB, "fixture_lib_hidden");
	struct elf_symtab *t;
	struct elf_file *f;
	int fd;

	(void)state;
	assert_int_equal(open_elf(LIB, &fd, &f), 0);
	assert_int_equal(elf_symtab_load(f, SHT_DYNSYM, 100000, &t), 0);
	assert_string_equal(LOOKUP(t, alpha + 1), "fixture_lib_alpha");
	/* A static function is only in .symtab. */
	assert_true(!LOOKUP(t, hidden) || strcmp(LOOKUP(t, hidden), "fixture_lib_hidden"));
	elf_symtab_free(t);
	assert_int_equal(elf_symtab_load(f, SHT_SYMTAB, 100000, &t), 0);
	assert_string_equal(LOOKUP(t, hidden), "fixture_lib_hidden");
	elf_symtab_free(t);
	elf_file_close(f);
	close(fd);
}

/* A file's table reads names from the file at lookup, through a descriptor of its own, into the
 * caller's buffer (cut to fit); an image in memory has them copied. */
static void test_symbol_names(void **state)
{
	uint64_t alpha = nm_addr(LIB, "fixture_lib_alpha");
	struct elf_symtab *t, *m;
	struct elf_file *f;
	char small[8];
	struct stat st;
	void *image;
	int fd;

	(void)state;
	assert_int_equal(open_elf(LIB, &fd, &f), 0);
	assert_int_equal(elf_symtab_load(f, SHT_DYNSYM, 100000, &t), 0);
	elf_file_close(f);
	assert_int_equal(fstat(fd, &st), 0);
	image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(image != MAP_FAILED);
	close(fd);
	assert_string_equal(LOOKUP(t, alpha), "fixture_lib_alpha");
	assert_ptr_equal(LOOKUP(t, alpha), name_buf);
	assert_string_equal(elf_symtab_lookup(t, alpha, small, sizeof(small)), "fixture");
	assert_null(elf_symtab_lookup(t, alpha, small, 1));
	assert_int_equal(elf_file_open_mem(image, (size_t)st.st_size, &f), 0);
	assert_int_equal(elf_symtab_load(f, SHT_DYNSYM, 100000, &m), 0);
	elf_file_close(f);
	assert_string_equal(elf_symtab_lookup(m, alpha, NULL, 0), "fixture_lib_alpha");
	assert_true(elf_symtab_bytes(m) > elf_symtab_bytes(t));
	elf_symtab_free(m);
	elf_symtab_free(t);
	munmap(image, (size_t)st.st_size);
}

/* A file's symbols are found through a window on its tables: the same answers as from the whole
 * tables of the same image in memory, for every name the table has and one it has not. */
static void test_find_symbol_streamed(void **state)
{
	static const char *const files[] = { LIB, PIE };
	static const uint32_t types[] = { SHT_DYNSYM, SHT_SYMTAB };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct elf_file *f, *m;
		char cmd[512], name[512];
		struct stat st;
		void *image;
		FILE *p;
		int fd, n = 0;

		assert_int_equal(open_elf(files[i], &fd, &f), 0);
		assert_int_equal(fstat(fd, &st), 0);
		image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		assert_true(image != MAP_FAILED);
		assert_int_equal(elf_file_open_mem(image, (size_t)st.st_size, &m), 0);
		snprintf(cmd, sizeof(cmd), "nm %s %s | awk '{ print $NF }'; echo no_such_symbol_here",
			 types[i] == SHT_DYNSYM ? "-D" : "", files[i]);
		p = popen(cmd, "r");
		assert_non_null(p);
		while (fgets(name, sizeof(name), p)) {
			struct elf_symbol a = { 0 }, b = { 0 };

			name[strcspn(name, "\n")] = '\0';
			assert_int_equal(elf_file_find_symbol(f, types[i], name, 100000, &a),
					 elf_file_find_symbol(m, types[i], name, 100000, &b));
			assert_memory_equal(&a, &b, sizeof(a));
			n++;
		}
		pclose(p);
		assert_true(n > 3);
		elf_file_close(m);
		elf_file_close(f);
		munmap(image, (size_t)st.st_size);
		close(fd);
	}
}

static void test_debuglink(void **state)
{
	uint32_t crc, want;
	struct elf_symtab *t;
	struct elf_file *f;
	char name[ELF_DEBUGLINK_MAX];
	int fd, dfd;

	(void)state;
	assert_int_equal(open_elf(STRIPPED, &fd, &f), 0);
	assert_false(elf_file_has_symtab(f));
	assert_int_equal(elf_file_debuglink(f, name, sizeof(name), &crc), 0);
	assert_string_equal(name, "fixture_stripped.debug");
	elf_file_close(f);
	close(fd);

	dfd = open(DEBUG, O_RDONLY);
	assert_true(dfd >= 0);
	assert_int_equal(elf_fd_crc32(dfd, 1ull << 30, &want), 0);
	assert_int_equal(crc, want);
	assert_int_equal(elf_fd_crc32(dfd, 100, &want), -EFBIG);
	assert_int_equal(elf_file_open(dfd, 1ull << 30, &f), 0);
	assert_int_equal(elf_symtab_load(f, SHT_SYMTAB, 100000, &t), 0);
	assert_string_equal(LOOKUP(t, nm_addr(DEBUG, "fixture_beta")), "fixture_beta");
	elf_symtab_free(t);
	elf_file_close(f);
	close(dfd);

	assert_int_equal(open_elf(PIE, &fd, &f), 0);
	assert_int_equal(elf_file_debuglink(f, name, sizeof(name), &crc), -ENOENT);
	elf_file_close(f);
	close(fd);
}

static void *slurp(const char *path, size_t *len)
{
	struct stat st;
	void *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	buf = malloc(st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	*len = st.st_size;
	return buf;
}

/* Everything the symbolizer calls, on one (possibly broken) image: must fail cleanly, never crash. */
static void exercise(const void *buf, size_t len)
{
	char hex[ELF_BUILD_ID_HEX], name[ELF_DEBUGLINK_MAX];
	struct elf_load loads[ELF_MAX_LOADS];
	struct elf_symtab *t;
	struct elf_file *f;
	uint32_t crc;
	int fd = memfd_create("elf", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	if (elf_file_open(fd, 1ull << 30, &f) == 0) {
		elf_file_build_id(f, hex, sizeof(hex));
		elf_file_debuglink(f, name, sizeof(name), &crc);
		elf_file_has_symtab(f);
		elf_file_loads(f, loads, ELF_MAX_LOADS);
		for (uint32_t type = SHT_SYMTAB; type <= SHT_DYNSYM; type += SHT_DYNSYM - SHT_SYMTAB) {
			if (elf_symtab_load(f, type, 100000, &t) == 0) {
				LOOKUP(t, 0x1000);
				elf_symtab_free(t);
			}
		}
		elf_file_close(f);
	}
	close(fd);
}

static void test_truncated_and_corrupt(void **state)
{
	size_t len;
	unsigned char *buf = slurp(LIB, &len), *copy = malloc(len);
	struct elf_symtab *t;
	struct elf_file *f;
	int fd;

	(void)state;
	assert_non_null(copy);
	/* Truncations: the section headers sit at the end, so most cut them off. */
	for (size_t n = 0; n < len; n += n < 128 ? 1 : 97)
		exercise(buf, n);

	/* A file cut in the middle is refused or parsed without the lost parts, never read past. */
	fd = memfd_create("cut", MFD_CLOEXEC);
	assert_int_equal(write(fd, buf, len / 2), (ssize_t)(len / 2));
	if (elf_file_open(fd, 1ull << 30, &f) == 0) {
		assert_int_not_equal(elf_symtab_load(f, SHT_SYMTAB, 100000, &t), 0);
		elf_file_close(f);
	}
	close(fd);

	/* Random byte corruption at many positions, with a fixed seed so failures reproduce. */
	srand(42);
	for (int round = 0; round < 300; round++) {
		memcpy(copy, buf, len);
		for (int k = 0; k < 8; k++)
			copy[(size_t)rand() % len] = (unsigned char)rand();
		/* Often hit the ELF and section headers, where the sizes and offsets are. */
		copy[(size_t)rand() % 64] = (unsigned char)rand();
		exercise(copy, len);
	}
	free(copy);
	free(buf);
}

/* lld gives .eh_frame the type X86_64_UNWIND, not PROGBITS: LLVM's own library (installed with clang)
 * is linked so, and its unwind table must be read like any other. */
static void test_eh_frame_of_lld_output(void **state)
{
	const char *lib = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1";
	char out[128];
	struct elf_file *f;
	uint8_t *data;
	uint64_t vaddr;
	size_t len;
	int fd;

	(void)state;
	if (access(lib, R_OK) != 0)
		fail_msg("%s, linked by lld, is not installed (package libllvm14, a dependency of clang)", lib);
	run("readelf -SW /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1 | awk '$2 == \".eh_frame\" { print $3, $6 }'",
	    out, sizeof(out));
	assert_string_equal(strtok(out, " "), "X86_64_UNWIND");
	assert_int_equal(open_elf(lib, &fd, &f), 0);
	assert_int_equal(elf_file_section_copy(f, ".eh_frame", 1ull << 30, &data, &len, &vaddr), 0);
	assert_int_equal(len, strtoull(strtok(NULL, " "), NULL, 16));
	free(data);
	elf_file_close(f);
	close(fd);
}

static void test_refusals(void **state)
{
	struct elf_file *f;
	int fd = memfd_create("text", MFD_CLOEXEC);

	(void)state;
	assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
	assert_int_equal(elf_file_open(fd, 1ull << 30, &f), -ENOEXEC);
	close(fd);
	fd = open(PIE, O_RDONLY);
	assert_int_equal(elf_file_open(fd, 1000, &f), -EFBIG);
	close(fd);
	fd = open(FIXTURES_DIR, O_RDONLY | O_DIRECTORY);
	assert_int_equal(elf_file_open(fd, 1ull << 30, &f), -ENOEXEC);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_id_matches_readelf),
		cmocka_unit_test(test_pie_symbols),
		cmocka_unit_test(test_shared_library),
		cmocka_unit_test(test_symbol_names),
		cmocka_unit_test(test_find_symbol_streamed),
		cmocka_unit_test(test_debuglink),
		cmocka_unit_test(test_truncated_and_corrupt),
		cmocka_unit_test(test_eh_frame_of_lld_output),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
