/* The .gopclntab reader against Go's own answers: `go tool addr2line` on the workload tests/workload/gowork
 * built with symbols and with -ldflags='-s -w', and the same stripped binary without section headers. */
#include <errno.h>
#include <fcntl.h>
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
#include "exporter/proc/gopclntab.h"

#define WORKLOAD_DIR FIXTURES_DIR "/../workload"
#define GOWORK WORKLOAD_DIR "/gowork"
#define GOWORK_STRIPPED WORKLOAD_DIR "/gowork_stripped"
#define GOWORK_SRC FIXTURES_SRC_DIR "/../workload/gowork/main.go"
#define GO_ENV "GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOPROXY=off GOCACHE=" WORKLOAD_DIR "/gocache "
#define MAX_BYTES (256ull << 20)
#define MAX_FUNCS (1u << 20)
#define NPCS 64

struct pc_answer {
	uint64_t pc;
	char name[256], file[1024];
	unsigned line;
};

/* First line of a shell command's output. */
static void run(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");

	assert_non_null(p);
	assert_non_null(fgets(out, (int)len, p));
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

/* Address and size of a function, from the unstripped binary. */
static void go_nm(const char *sym, uint64_t *addr, uint64_t *size)
{
	char cmd[512], out[128];

	snprintf(cmd, sizeof(cmd), GO_ENV "go tool nm -size " GOWORK " | awk '$4 == \"%s\" { print $1, $2 }'", sym);
	run(cmd, out, sizeof(out));
	assert_int_equal(sscanf(out, "%lx %lu", addr, size), 2);
}

/* PCs spread over a few functions of the main package and the runtime. */
static size_t pick_pcs(struct pc_answer *a)
{
	static const char *const funcs[] = { "main.leaf", "main.middle", "main.main", "runtime.mallocgc" };
	size_t n = 0;

	for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
		uint64_t addr, size;

		go_nm(funcs[i], &addr, &size);
		for (size_t k = 0; k < NPCS / 4; k++)
			a[n++].pc = addr + size * k / (NPCS / 4);
	}
	return n;
}

/* What `go tool addr2line` says of each PC: the physical function, and the innermost file:line. */
static void addr2line(const char *bin, struct pc_answer *a, size_t n)
{
	char path[] = "/tmp/test_gopclntab.XXXXXX", cmd[512], line[1024];
	int fd = mkstemp(path);
	FILE *in, *p;

	assert_true(fd >= 0);
	in = fdopen(fd, "w");
	for (size_t i = 0; i < n; i++)
		fprintf(in, "0x%lx\n", a[i].pc);
	fclose(in);
	snprintf(cmd, sizeof(cmd), GO_ENV "go tool addr2line %s < %s", bin, path);
	p = popen(cmd, "r");
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		char *colon;

		assert_non_null(fgets(a[i].name, sizeof(a[i].name), p));
		a[i].name[strcspn(a[i].name, "\n")] = '\0';
		assert_non_null(fgets(line, sizeof(line), p));
		colon = strrchr(line, ':');
		assert_non_null(colon);
		*colon = '\0';
		snprintf(a[i].file, sizeof(a[i].file), "%s", line);
		a[i].line = (unsigned)atoi(colon + 1);
	}
	pclose(p);
	unlink(path);
}

static struct gopclntab *load_fd(int fd)
{
	struct gopclntab *t = NULL;
	struct elf_file *ef;

	assert_int_equal(elf_file_open(fd, MAX_BYTES, &ef), 0);
	assert_true(gopclntab_elf_is_go(ef));
	assert_int_equal(gopclntab_elf_load(ef, fd, MAX_BYTES, MAX_FUNCS, &t), 0);
	elf_file_close(ef);
	return t;
}

/* Each PC: the outermost frame is addr2line's function, the innermost has its file:line. */
static void check_answers(const struct gopclntab *t, const struct pc_answer *a, size_t n)
{
	struct gopclntab_frame fr[GOPCLNTAB_MAX_FRAMES];

	for (size_t i = 0; i < n; i++) {
		int k = gopclntab_lookup(t, a[i].pc, fr, GOPCLNTAB_MAX_FRAMES);

		assert_true(k >= 1);
		assert_string_equal(fr[k - 1].name, a[i].name);
		assert_string_equal(fr[0].file, a[i].file);
		assert_int_equal(fr[0].line, a[i].line);
	}
}

/* Somewhere in main.middle, main.mix is inlined: two frames, the call site's line in the caller. */
static void check_inlined(const struct gopclntab *t)
{
	struct gopclntab_frame fr[GOPCLNTAB_MAX_FRAMES];
	uint64_t addr, size;
	char want[32];
	bool seen = false;

	go_nm("main.middle", &addr, &size);
	run("grep -n 's += mix(leaf(i))' " GOWORK_SRC " | cut -d: -f1", want, sizeof(want));
	for (uint64_t pc = addr; pc < addr + size && !seen; pc++) {
		int k = gopclntab_lookup(t, pc, fr, GOPCLNTAB_MAX_FRAMES);

		if (k == 2 && strcmp(fr[0].name, "main.mix") == 0) {
			assert_string_equal(fr[1].name, "main.middle");
			assert_int_equal(fr[1].line, atoi(want));
			assert_non_null(strstr(fr[1].file, "gowork/main.go"));
			seen = true;
		}
	}
	assert_true(seen);
}

static void check_binary(const char *bin)
{
	struct pc_answer a[NPCS];
	struct gopclntab *t;
	size_t n = pick_pcs(a);
	int fd = open(bin, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	addr2line(bin, a, n);
	t = load_fd(fd);
	assert_int_equal(gopclntab_version(t), GOPCLNTAB_GO118); /* Go 1.19 writes the 1.18 format */
	check_answers(t, a, n);
	check_inlined(t);
	gopclntab_free(t);
	close(fd);
}

static void test_unstripped(void **state)
{
	(void)state;
	check_binary(GOWORK);
}

static void test_stripped(void **state)
{
	(void)state;
	check_binary(GOWORK_STRIPPED);
}

/* The stripped binary in memory, its section headers gone: only the header scan and the moduledata
 * scan can find the tables. */
static int no_section_headers(void)
{
	int src = open(GOWORK_STRIPPED, O_RDONLY | O_CLOEXEC), fd = memfd_create("gowork_noshdr", MFD_CLOEXEC);
	struct stat st;
	char *buf;

	assert_true(src >= 0 && fd >= 0);
	assert_int_equal(fstat(src, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(src, buf, (size_t)st.st_size), st.st_size);
	memset(buf + 0x28, 0, 8); /* e_shoff */
	memset(buf + 0x3c, 0, 4); /* e_shnum, e_shstrndx */
	assert_int_equal(write(fd, buf, (size_t)st.st_size), st.st_size);
	free(buf);
	close(src);
	return fd;
}

static void test_no_section_headers(void **state)
{
	struct pc_answer a[NPCS];
	struct gopclntab *t;
	size_t n = pick_pcs(a);
	int fd = no_section_headers();

	(void)state;
	addr2line(GOWORK_STRIPPED, a, n);
	t = load_fd(fd);
	assert_int_equal(gopclntab_version(t), GOPCLNTAB_GO118);
	check_answers(t, a, n);
	check_inlined(t);
	gopclntab_free(t);
	close(fd);
}

/* The .gopclntab bytes of the stripped binary, copied. */
static void *section_bytes(size_t *len, uint64_t *vaddr)
{
	int fd = open(GOWORK_STRIPPED, O_RDONLY | O_CLOEXEC);
	struct elf_file *ef;
	const void *data;
	void *copy;

	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, MAX_BYTES, &ef), 0);
	assert_int_equal(elf_file_section(ef, ".gopclntab", MAX_BYTES, &data, len, vaddr), 0);
	copy = malloc(*len);
	assert_non_null(copy);
	memcpy(copy, data, *len);
	elf_file_close(ef);
	close(fd);
	return copy;
}

static void test_refusals(void **state)
{
	struct gopclntab *t = NULL;
	uint64_t vaddr;
	size_t len;
	uint8_t *d = section_bytes(&len, &vaddr);

	(void)state;
	assert_int_equal(gopclntab_parse(d, len, vaddr, 0, MAX_FUNCS, &t), 0);
	assert_true(gopclntab_nfuncs(t) > 1000);
	gopclntab_free(t);
	assert_int_equal(gopclntab_parse(d, len, vaddr, 0, 100, &t), -E2BIG);
	assert_int_equal(gopclntab_parse(d, len / 2, vaddr, 0, MAX_FUNCS, &t), -ENOEXEC);
	assert_int_equal(gopclntab_parse(d, 40, vaddr, 0, MAX_FUNCS, &t), -ENOEXEC);
	d[0] ^= 0x0f;
	assert_int_equal(gopclntab_parse(d, len, vaddr, 0, MAX_FUNCS, &t), -EPROTONOSUPPORT);
	d[0] ^= 0x0f;
	d[6] = 3; /* no architecture has a 3-byte instruction quantum */
	assert_int_equal(gopclntab_parse(d, len, vaddr, 0, MAX_FUNCS, &t), -ENOEXEC);
	free(d);
}

/* Every byte of the pc-value tables flipped in turn: lookups answer or refuse, never read outside. */
static void test_corrupt_tables(void **state)
{
	struct gopclntab_frame fr[GOPCLNTAB_MAX_FRAMES];
	struct gopclntab *t;
	uint64_t vaddr, addr, size;
	size_t len;
	uint8_t *d = section_bytes(&len, &vaddr);

	(void)state;
	go_nm("main.middle", &addr, &size);
	for (size_t off = 64; off < len; off += len / 4096 + 1) {
		d[off] ^= 0xa5;
		if (gopclntab_parse(d, len, vaddr, 0, MAX_FUNCS, &t) == 0) {
			for (uint64_t pc = addr; pc < addr + size; pc += 7)
				assert_true(gopclntab_lookup(t, pc, fr, GOPCLNTAB_MAX_FRAMES) >= -ENOEXEC);
			gopclntab_free(t);
		}
		d[off] ^= 0xa5;
	}
	free(d);
}

/* Tables of the formats Go 1.19 does not write, from tests/fuzz/seeds/gopclntab_seeds.py (its docstring
 * describes them); each holds its own inline tree, gofunc being its own address. */
#define SEED_VADDR 0x400000ull
#define SEED_TEXT 0x401000ull

struct seed {
	uint8_t data[4096];
	size_t len;
};

static int read_seed(void *ctx, uint64_t vaddr, void *buf, size_t len)
{
	const struct seed *sd = ctx;

	if (vaddr < SEED_VADDR || vaddr - SEED_VADDR > sd->len || len > sd->len - (vaddr - SEED_VADDR))
		return -ENOENT;
	memcpy(buf, sd->data + (vaddr - SEED_VADDR), len);
	return 0;
}

static void expect(const struct gopclntab *t, uint64_t off, const char *const *want, size_t n)
{
	struct gopclntab_frame fr[GOPCLNTAB_MAX_FRAMES];
	char got[64];

	assert_int_equal(gopclntab_lookup(t, SEED_TEXT + off, fr, GOPCLNTAB_MAX_FRAMES), n);
	for (size_t i = 0; i < n; i++) {
		snprintf(got, sizeof(got), "%s %s:%u", fr[i].name, fr[i].file, fr[i].line);
		assert_string_equal(got, want[i]);
	}
}

static void check_seed(const char *name, enum gopclntab_version version)
{
	static const char *const outer10[] = { "main.outer /src/a.go:10" };
	static const char *const outer20[] = { "main.outer /src/a.go:20" };
	static const char *const outer_b20[] = { "main.outer /src/b.go:20" };
	static const char *const inlined[] = { "main.inner /src/b.go:20", "main.outer /src/a.go:10" };
	static const char *const inner[] = { "main.inner /src/b.go:30" };
	struct gopclntab_frame fr[1];
	struct gopclntab *t;
	struct seed sd;
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/../fuzz/corpus/gopclntab/%s", FIXTURES_SRC_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	sd.len = fread(sd.data, 1, sizeof(sd.data), f);
	fclose(f);
	assert_int_equal(gopclntab_parse(sd.data, sd.len, SEED_VADDR, SEED_TEXT, MAX_FUNCS, &t), 0);
	assert_int_equal(gopclntab_version(t), version);
	assert_int_equal(gopclntab_nfuncs(t), 2);
	expect(t, 0x05, outer10, 1);
	expect(t, 0x15, outer20, 1);
	expect(t, 0x25, outer_b20, 1); /* no inline tree until its memory can be read: the position alone */
	gopclntab_set_funcdata(t, SEED_VADDR, read_seed, &sd, NULL);
	expect(t, 0x25, inlined, 2);
	expect(t, 0x45, inner, 1);
	assert_int_equal(gopclntab_lookup(t, SEED_TEXT + 0x80, fr, 1), 0);
	assert_int_equal(gopclntab_lookup(t, SEED_TEXT - 1, fr, 1), 0);
	/* Room for one frame: the function itself, at the outermost call site. */
	assert_int_equal(gopclntab_lookup(t, SEED_TEXT + 0x25, fr, 1), 1);
	assert_string_equal(fr[0].name, "main.outer");
	assert_int_equal(fr[0].line, 10);
	gopclntab_free(t);
}

static void test_formats(void **state)
{
	(void)state;
	check_seed("go116.bin", GOPCLNTAB_GO116);
	check_seed("go118.bin", GOPCLNTAB_GO118);
	check_seed("go120.bin", GOPCLNTAB_GO120);
}

/* The same tables in ELF files without section headers (the seeds' generator describes them): found by
 * the Go note and the header scan, their inline trees through the moduledata record, in the 1.18 and
 * the 1.20 layout of moduledata. */
static void check_elf_seed(const char *name, enum gopclntab_version version)
{
	static const char *const inlined[] = { "main.inner /src/b.go:20", "main.outer /src/a.go:10" };
	char path[512];
	struct gopclntab *t;
	int fd;

	snprintf(path, sizeof(path), "%s/../fuzz/corpus/gopclntab/%s", FIXTURES_SRC_DIR, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	t = load_fd(fd);
	assert_int_equal(gopclntab_version(t), version);
	expect(t, 0x25, inlined, 2);
	gopclntab_free(t);
	close(fd);
}

static void test_elf_without_sections(void **state)
{
	(void)state;
	check_elf_seed("elf-go118-noshdr", GOPCLNTAB_GO118);
	check_elf_seed("elf-go120-noshdr", GOPCLNTAB_GO120);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unstripped),
		cmocka_unit_test(test_stripped),
		cmocka_unit_test(test_no_section_headers),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_corrupt_tables),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_elf_without_sections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
