#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bpf/custom_labels.h"
#include "exporter/proc/elf_file.h"
#include "exporter/sampling/tracectx.h"

#include "fixture_child.h"

#define FX(name) FIXTURES_DIR "/" name
#define ELF_MAX (1ull << 30)

struct child {
	struct fixture_child proc;
	/* TLS pointer address and fs base, of the main thread and of a second thread */
	uint64_t slot[2], fs[2];
};

/* Starts a fixture; tracectx fixtures print "slot fs slot fs" and wait for stdin to close. The line
 * is printed after start-up: relocations are done. */
static void spawn(const char *path, struct child *c)
{
	char line[256];

	fixture_spawn(path, &c->proc, line, sizeof(line));
	memset(c->slot, 0, sizeof(c->slot));
	sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64, &c->slot[0], &c->fs[0], &c->slot[1],
	       &c->fs[1]);
}

static void reap(struct child *c)
{
	fixture_reap(&c->proc);
}

/* Discovers a live fixture and returns the result; checks tpoff against both threads. */
static struct tracectx_result discover(const char *fixture)
{
	struct tracectx_result r;
	struct child c;

	spawn(fixture, &c);
	assert_int_equal(tracectx_discover("/proc", c.proc.pid, ELF_MAX, &r), 0);
	reap(&c);
	for (int i = 0; i < 2; i++) {
		const struct tracectx_slot *s = i ? &r.custom : &r.otel;

		if (s->kind == TRACECTX_NONE || s->tls == TRACECTX_TLS_DYNAMIC)
			continue;
		assert_int_equal(s->tpoff, (int64_t)(c.slot[0] - c.fs[0]));
		assert_int_equal(s->tpoff, (int64_t)(c.slot[1] - c.fs[1]));
		assert_true(s->tpoff < 0);
	}
	return r;
}

static void test_otel_in_pie(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_exe"));

	(void)state;
	assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
	assert_int_equal(r.otel.tls, TRACECTX_TLS_STATIC_EXE);
	assert_int_equal(r.custom.kind, TRACECTX_NONE);
}

static void test_otel_in_static_exe_symtab_only(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_static"));

	(void)state;
	assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
	assert_int_equal(r.otel.tls, TRACECTX_TLS_STATIC_EXE);
}

static void test_otel_in_tlsdesc_dso(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_tlsdesc_exe"));

	(void)state;
	assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
	assert_int_equal(r.otel.tls, TRACECTX_TLS_TLSDESC_DSO);
	assert_int_equal(r.custom.kind, TRACECTX_NONE);
}

static void test_otel_general_dynamic_is_unsupported(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_gd_exe"));

	(void)state;
	assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
	assert_int_equal(r.otel.tls, TRACECTX_TLS_DYNAMIC);
}

static void test_custom_labels_in_exe(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_custom"));

	(void)state;
	assert_int_equal(r.custom.kind, TRACECTX_CUSTOM_LABELS_V1);
	assert_int_equal(r.custom.tls, TRACECTX_TLS_STATIC_EXE);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
}

static void test_custom_labels_in_libcustomlabels(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_custom_dso"));

	(void)state;
	assert_int_equal(r.custom.kind, TRACECTX_CUSTOM_LABELS_V1);
	assert_int_equal(r.custom.tls, TRACECTX_TLS_TLSDESC_DSO);
}

static void test_custom_labels_in_other_dso_ignored(void **state)
{
	struct tracectx_result r = discover(FX("tracectx_fx_custom_wrong"));

	(void)state;
	assert_int_equal(r.custom.kind, TRACECTX_NONE);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
}

static void test_process_without_context(void **state)
{
	struct tracectx_result r = discover(FX("fixture_pie"));

	(void)state;
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
	assert_int_equal(r.custom.kind, TRACECTX_NONE);
}

static struct tracectx_result discover_cached(const char *fixture, struct tracectx_files *files)
{
	struct tracectx_result r;
	struct child c;

	spawn(fixture, &c);
	assert_int_equal(tracectx_discover_files("/proc", c.proc.pid, ELF_MAX, files, &r), 0);
	reap(&c);
	return r;
}

/* Files found to define neither variable (libc, the loader) are skipped for the next processes, and
 * the files that do define one are still found, the same way, every time. */
static void test_files_without_context_are_skipped(void **state)
{
	struct tracectx_files *files = calloc(1, sizeof(*files));
	struct tracectx_result r;

	(void)state;
	assert_non_null(files);
	r = discover_cached(FX("fixture_pie"), files);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
	assert_int_equal(files->skipped, 0);
	for (int i = 0; i < 2; i++) {
		uint64_t skipped = files->skipped, evictions = files->evictions;

		/* libc and the loader at least, unless another file took their slot (direct-mapped). */
		r = discover_cached(FX("tracectx_fx_tlsdesc_exe"), files);
		assert_true(files->skipped > skipped || files->evictions > evictions);
		assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
		assert_int_equal(r.otel.tls, TRACECTX_TLS_TLSDESC_DSO);
		r = discover_cached(FX("tracectx_fx_exe"), files);
		assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
		assert_int_equal(r.otel.tls, TRACECTX_TLS_STATIC_EXE);
		r = discover_cached(FX("tracectx_fx_custom_dso"), files);
		assert_int_equal(r.custom.kind, TRACECTX_CUSTOM_LABELS_V1);
	}
	free(files);
}

static void test_no_process(void **state)
{
	struct tracectx_result r;

	(void)state;
	/* Above any pid_max. */
	assert_int_equal(tracectx_discover("/proc", INT_MAX, ELF_MAX, &r), -ENOENT);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
	assert_int_equal(tracectx_discover("/nonexistent", 1, ELF_MAX, &r), -ENOENT);
	assert_int_equal(tracectx_discover("/proc/./././././././././././././././././././././././././././././.",
					   1, ELF_MAX, &r), -ENAMETOOLONG);
}

/* --- a fake proc root whose process maps files we write --------------------------------------- */

struct fake {
	char dir[64];       /* proc root; the process is pid 1 under it, its root is "/" */
	char files[4][128];
	int nfiles;
};

static void fake_init(struct fake *fk)
{
	char path[128];

	snprintf(fk->dir, sizeof(fk->dir), "/tmp/anorak-tracectx-XXXXXX");
	assert_non_null(mkdtemp(fk->dir));
	snprintf(path, sizeof(path), "%s/1", fk->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/1/root", fk->dir);
	assert_int_equal(symlink("/", path), 0);
	fk->nfiles = 0;
}

/* Adds a file with these bytes, mapped executable at start. */
static void fake_file(struct fake *fk, const void *buf, size_t len, uint64_t start)
{
	char *path = fk->files[fk->nfiles];
	char maps[256], line[512];
	struct stat st;
	FILE *f;

	char name[sizeof(fk->files[0])];

	/* Through a local buffer: GCC cannot tell that dir and files do not overlap. */
	snprintf(name, sizeof(name), "%s/file%d", fk->dir, fk->nfiles++);
	memcpy(path, name, sizeof(name));
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
	assert_int_equal(stat(path, &st), 0);
	snprintf(line, sizeof(line), "%" PRIx64 "-%" PRIx64 " r-xp 00000000 00:00 %llu %s\n", start,
		 start + 0x10000, (unsigned long long)st.st_ino, path);
	snprintf(maps, sizeof(maps), "%s/1/maps", fk->dir);
	f = fopen(maps, "a");
	assert_non_null(f);
	fputs(line, f);
	fclose(f);
}

static void fake_cleanup(struct fake *fk)
{
	char path[128];

	for (int i = 0; i < fk->nfiles; i++)
		unlink(fk->files[i]);
	snprintf(path, sizeof(path), "%s/1/maps", fk->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/1/root", fk->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/1", fk->dir);
	rmdir(path);
	rmdir(fk->dir);
}

static void *read_all(const char *path, size_t *len)
{
	struct stat st;
	void *buf;
	int fd;

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	*len = st.st_size;
	return buf;
}

static void test_fake_root_finds_exe_slot(void **state)
{
	struct tracectx_result r;
	struct fake fk;
	size_t len;
	void *exe = read_all(FX("tracectx_fx_exe"), &len);

	(void)state;
	/* Without /proc/PID/exe and map_files: the first file mapped is the main executable, opened
	 * through the process's root. Its slot needs no memory reads. */
	fake_init(&fk);
	fake_file(&fk, exe, len, 0x400000);
	assert_int_equal(tracectx_discover(fk.dir, 1, ELF_MAX, &r), 0);
	assert_int_equal(r.otel.kind, TRACECTX_OTEL_V1);
	assert_int_equal(r.otel.tls, TRACECTX_TLS_STATIC_EXE);
	/* Over the size limit: skipped. */
	assert_int_equal(tracectx_discover(fk.dir, 1, len - 1, &r), 0);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
	fake_cleanup(&fk);
	free(exe);
}

static void test_garbage_files_are_skipped(void **state)
{
	static const char junk_maps[] = "zzzz\n00400000-00401000 r-xp\n\n";
	unsigned char garbage[4096];
	struct tracectx_result r;
	char path[128];
	struct fake fk;
	size_t len;
	void *exe = read_all(FX("tracectx_fx_exe"), &len);
	FILE *f;

	(void)state;
	srand(1);
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)rand();
	fake_init(&fk);
	snprintf(path, sizeof(path), "%s/1/maps", fk.dir);
	f = fopen(path, "w");
	fputs(junk_maps, f);
	fclose(f);
	fake_file(&fk, garbage, sizeof(garbage), 0x400000);
	fake_file(&fk, "", 0, 0x500000);
	fake_file(&fk, exe, 200, 0x600000);             /* ELF header, nothing behind it */
	fake_file(&fk, exe, len / 2, 0x700000);         /* sections cut off */
	assert_int_equal(tracectx_discover(fk.dir, 1, ELF_MAX, &r), 0);
	assert_int_equal(r.otel.kind, TRACECTX_NONE);
	assert_int_equal(r.custom.kind, TRACECTX_NONE);
	fake_cleanup(&fk);
	free(exe);
}

/* Random byte flips in real fixtures (main executable and TLSDESC library): any answer but a crash or
 * a sanitizer report is fine. */
static void test_mutated_elf_does_not_crash(void **state)
{
	static const char *const files[] = { FX("tracectx_fx_exe"), FX("libtracectx_fx_tlsdesc.so"),
					     FX("tracectx_fx_custom") };
	struct tracectx_result r;

	(void)state;
	srand(42);
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		size_t len;
		unsigned char *orig = read_all(files[k], &len), *buf = malloc(len);

		assert_non_null(buf);
		for (int iter = 0; iter < 150; iter++) {
			struct fake fk;
			int err;

			memcpy(buf, orig, len);
			for (int i = 0; i < 16; i++) {
				/* Half the flips in the first page (headers), half anywhere. */
				size_t at = (size_t)rand() % (i % 2 || len < 4096 ? len : 4096);

				buf[at] ^= (unsigned char)(1 + rand() % 255);
			}
			fake_init(&fk);
			/* Without /proc/PID/exe the first file mapped is the main executable: put an empty
			 * one before the library. */
			if (strstr(files[k], ".so"))
				fake_file(&fk, "", 0, 0x400000);
			fake_file(&fk, buf, len, 0x7f0000000000);
			err = tracectx_discover(fk.dir, 1, ELF_MAX, &r);
			assert_true(err <= 0);
			assert_true(r.otel.kind == TRACECTX_NONE || r.otel.kind == TRACECTX_OTEL_V1);
			fake_cleanup(&fk);
		}
		free(buf);
		free(orig);
	}
}

/* --- elf_file additions --------------------------------------------------------------------------- */

static void test_elf_symbol_tls_and_relocations(void **state)
{
	struct elf_symbol sym;
	struct elf_tls tls;
	struct elf_file *f;
	uint64_t r_offset;
	int fd;

	(void)state;
	fd = open(FX("libtracectx_fx_tlsdesc.so"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, ELF_MAX, &f), 0);
	assert_int_equal(elf_file_type(f), ET_DYN);
	assert_int_equal(elf_file_tls(f, &tls), 0);
	assert_true(tls.memsz >= 8);
	assert_int_equal(elf_file_find_symbol(f, SHT_DYNSYM, "otel_thread_ctx_v1", 1 << 20, &sym), 0);
	assert_int_equal(sym.type, STT_TLS);
	assert_int_equal(sym.size, 8);
	assert_int_equal(elf_file_find_symbol(f, SHT_DYNSYM, "otel_thread_ctx_v", 1 << 20, &sym), -ENOENT);
	assert_int_equal(elf_file_find_symbol(f, SHT_DYNSYM, "otel_thread_ctx_v1", 2, &sym), -E2BIG);
	/* Undefined symbols are not found. */
	assert_int_equal(elf_file_find_symbol(f, SHT_DYNSYM, "memcpy", 1 << 20, &sym), -ENOENT);
	assert_int_equal(elf_file_find_symbol(f, SHT_DYNSYM, "otel_thread_ctx_v1", 1 << 20, &sym), 0);
	assert_int_equal(elf_file_find_rela(f, R_X86_64_TLSDESC, sym.index, sym.value, 1 << 20, &r_offset), 0);
	assert_true(r_offset > 0);
	assert_int_equal(elf_file_find_rela(f, R_X86_64_TLSDESC, sym.index, sym.value, 1, &r_offset), -E2BIG);
	assert_int_equal(elf_file_find_rela(f, R_X86_64_TPOFF64, sym.index, sym.value, 1 << 20, &r_offset),
			 -ENOENT);
	elf_file_close(f);
	close(fd);

	fd = open(FX("fixture_pie"), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(elf_file_open(fd, ELF_MAX, &f), 0);
	assert_int_equal(elf_file_tls(f, &tls), -ENOENT);
	elf_file_close(f);
	close(fd);
}

/* --- the custom-labels reader's rule (bpf/custom_labels.h, applied by tracectx.bpf.c) -------------- */

#define TRACE_HEX "0102030405060708090a0b0c0d0e0f10"
#define SPAN_HEX "a1a2a3a4a5a6a7a8"
#define OTHER_TRACE_HEX "1112131415161718191a1b1c1d1e1f20"

struct text_label {
	const char *key, *value;
};

/* Hands the labels to the rule in order, the way the BPF reader does: the key from its length and first
 * bytes, then the value of the first label of each key only. */
static int read_labels(const struct text_label *labels, size_t n, struct custom_ids *ids)
{
	memset(ids, 0, sizeof(*ids));
	for (size_t i = 0; i < n; i++) {
		size_t key_len = strlen(labels[i].key);
		__u64 word = 0;
		int key;

		if (key_len == 7 || key_len == 8)
			memcpy(&word, labels[i].key, key_len);
		key = custom_label_key(key_len, word);
		if (!custom_ids_wants(ids, key))
			continue;
		custom_ids_take(ids, key, strlen(labels[i].value), (const __u8 *)labels[i].value);
	}
	return custom_ids_result(ids);
}

static void assert_ids(const struct custom_ids *ids, const char *trace_hex, const char *span_hex)
{
	char trace[2 * TRACE_ID_LEN + 1], span[2 * SPAN_ID_LEN + 1];

	for (int i = 0; i < TRACE_ID_LEN; i++)
		sprintf(trace + 2 * i, "%02x", ids->trace_id[i]);
	for (int i = 0; i < SPAN_ID_LEN; i++)
		sprintf(span + 2 * i, "%02x", ids->span_id[i]);
	assert_string_equal(trace, trace_hex);
	assert_string_equal(span, span_hex);
}

static void test_custom_labels_ids(void **state)
{
	const struct text_label set[] = { { "thread", "main" }, { "trace_id", TRACE_HEX }, { "span_id", SPAN_HEX } };
	const struct text_label upper[] = { { "trace_id", "0102030405060708090A0B0C0D0E0F10" },
					    { "span_id", "A1A2A3A4A5A6A7A8" } };
	const struct text_label trace_only[] = { { "trace_id", TRACE_HEX } };
	struct custom_ids ids;

	(void)state;
	assert_int_equal(read_labels(set, 3, &ids), CUSTOM_IDS_VALID);
	assert_ids(&ids, TRACE_HEX, SPAN_HEX);
	assert_int_equal(read_labels(upper, 2, &ids), CUSTOM_IDS_VALID);
	assert_ids(&ids, TRACE_HEX, SPAN_HEX);
	assert_int_equal(read_labels(trace_only, 1, &ids), CUSTOM_IDS_VALID);
	assert_ids(&ids, TRACE_HEX, "0000000000000000");
}

/* On duplicate keys the first wins, whatever it holds: a bad first id is not replaced by a later one. */
static void test_custom_labels_first_duplicate_wins(void **state)
{
	const struct text_label valid_twice[] = { { "trace_id", TRACE_HEX }, { "span_id", SPAN_HEX },
						  { "trace_id", OTHER_TRACE_HEX }, { "span_id", "b1b2b3b4b5b6b7b8" } };
	const struct text_label short_trace[] = { { "trace_id", "0102030405060708090a0b0c0d0e0f" },
						  { "trace_id", TRACE_HEX }, { "span_id", SPAN_HEX } };
	const struct text_label short_span[] = { { "trace_id", TRACE_HEX }, { "span_id", "a1a2a3a4a5a6a7" },
						 { "span_id", SPAN_HEX } };
	const struct text_label long_trace[] = { { "trace_id", TRACE_HEX "00" }, { "trace_id", TRACE_HEX } };
	const struct text_label bad_char[] = { { "trace_id", "0102030405060708090a0b0c0d0e0f1g" },
					       { "trace_id", TRACE_HEX } };
	const struct text_label bad_span_char[] = { { "span_id", "a1a2a3a4a5a6a7x8" }, { "trace_id", TRACE_HEX },
						    { "span_id", SPAN_HEX } };
	struct custom_ids ids;

	(void)state;
	assert_int_equal(read_labels(valid_twice, 4, &ids), CUSTOM_IDS_VALID);
	assert_ids(&ids, TRACE_HEX, SPAN_HEX);
	/* A first trace_id of 30 characters: no trace id, even with a valid duplicate after it. */
	assert_int_equal(read_labels(short_trace, 3, &ids), CUSTOM_IDS_INVALID);
	assert_int_equal(read_labels(short_span, 3, &ids), CUSTOM_IDS_INVALID);
	assert_int_equal(read_labels(long_trace, 2, &ids), CUSTOM_IDS_INVALID);
	assert_int_equal(read_labels(bad_char, 2, &ids), CUSTOM_IDS_INVALID);
	assert_int_equal(read_labels(bad_span_char, 3, &ids), CUSTOM_IDS_INVALID);
}

/* Every byte in every position of a span id: the hex digits of either case decode, any other byte
 * makes the id invalid. */
static void test_custom_labels_every_byte(void **state)
{
	(void)state;
	for (int pos = 0; pos < 2 * SPAN_ID_LEN; pos++) {
		for (int c = 0; c < 256; c++) {
			struct custom_ids ids = { 0 };
			__u8 text[2 * SPAN_ID_LEN];
			bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

			memset(text, '0', sizeof(text));
			text[pos] = (__u8)c;
			custom_ids_take(&ids, CUSTOM_LABEL_SPAN_ID, sizeof(text), text);
			assert_int_equal(ids.invalid, !hex);
			if (!hex)
				continue;
			int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
			assert_int_equal(ids.span_id[pos / 2], pos % 2 ? v : v << 4);
		}
	}
}

static void test_custom_labels_without_ids(void **state)
{
	const struct text_label others[] = { { "trace_i", TRACE_HEX }, { "trace_idx", TRACE_HEX },
					     { "span_i", SPAN_HEX }, { "Trace_id", TRACE_HEX } };
	const struct text_label span_only[] = { { "span_id", SPAN_HEX } };
	const struct text_label zero_trace[] = { { "trace_id", "00000000000000000000000000000000" },
						 { "span_id", SPAN_HEX } };
	struct custom_ids ids;

	(void)state;
	assert_int_equal(read_labels(others, 4, &ids), CUSTOM_IDS_NONE);
	assert_int_equal(read_labels(others, 0, &ids), CUSTOM_IDS_NONE);
	assert_int_equal(read_labels(span_only, 1, &ids), CUSTOM_IDS_INVALID);
	assert_int_equal(read_labels(zero_trace, 2, &ids), CUSTOM_IDS_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_otel_in_pie),
		cmocka_unit_test(test_otel_in_static_exe_symtab_only),
		cmocka_unit_test(test_otel_in_tlsdesc_dso),
		cmocka_unit_test(test_otel_general_dynamic_is_unsupported),
		cmocka_unit_test(test_custom_labels_in_exe),
		cmocka_unit_test(test_custom_labels_in_libcustomlabels),
		cmocka_unit_test(test_custom_labels_in_other_dso_ignored),
		cmocka_unit_test(test_process_without_context),
		cmocka_unit_test(test_files_without_context_are_skipped),
		cmocka_unit_test(test_no_process),
		cmocka_unit_test(test_fake_root_finds_exe_slot),
		cmocka_unit_test(test_garbage_files_are_skipped),
		cmocka_unit_test(test_mutated_elf_does_not_crash),
		cmocka_unit_test(test_elf_symbol_tls_and_relocations),
		cmocka_unit_test(test_custom_labels_ids),
		cmocka_unit_test(test_custom_labels_first_duplicate_wins),
		cmocka_unit_test(test_custom_labels_without_ids),
		cmocka_unit_test(test_custom_labels_every_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
