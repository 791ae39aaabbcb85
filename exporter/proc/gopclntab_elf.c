/*
 * Finding pclntab in a Go binary. Section headers name it (.gopclntab; .data.rel.ro.gopclntab in PIE
 * files); without them the runtime.pclntab symbol does, and without any symbols its header is found by
 * a scan of the loaded data. FUNCDATA offsets (1.18+) are relative to moduledata.gofunc: the
 * go:func.* symbol, else the moduledata record found in the data by its first word (the pcHeader).
 */
#include "exporter/proc/gopclntab.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"

#define NOTE_SCAN_BYTES 4096
#define GO_NOTE_BUILDID 4
#define MAX_SYMTAB_SCAN (4u << 20) /* symbols looked through for runtime.pclntab and go:func.* */
/* moduledata, in pointer-sized words: pcHeader, six slices of three words (funcnametab .. ftab),
 * findfunctab, minpc, maxpc, then text. gofunc follows rodata: 1.20 added covctrs/ecovctrs before it. */
#define MODULEDATA_TEXT 22
#define MODULEDATA_GOFUNC_GO118 38
#define MODULEDATA_GOFUNC_GO120 40

/* How inline trees are read: pread at the file offsets of the PT_LOAD segments. */
struct file_reader {
	int fd;
	struct elf_load loads[ELF_MAX_LOADS];
	size_t nloads;
};

static int read_vaddr(void *ctx, uint64_t vaddr, void *buf, size_t len)
{
	const struct file_reader *r = ctx;

	for (size_t i = 0; i < r->nloads; i++) {
		const struct elf_load *l = &r->loads[i];

		if (vaddr < l->vaddr || vaddr - l->vaddr >= l->filesz || len > l->filesz - (vaddr - l->vaddr))
			continue;
		ssize_t n = pread(r->fd, buf, len, (off_t)(l->offset + (vaddr - l->vaddr)));
		return n == (ssize_t)len ? 0 : -EIO;
	}
	return -ENOENT;
}

static bool has_go_note(struct elf_file *ef)
{
	const uint8_t *p;
	size_t len, off = 0;
	uint64_t vaddr;

	if (elf_file_segment_head(ef, PT_NOTE, NOTE_SCAN_BYTES, (const void **)&p, &len, &vaddr))
		return false;
	while (len - off >= 12) {
		uint32_t namesz, descsz, type;

		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		if (namesz > len || descsz > len)
			return false;
		/* the Go linker's note: name "Go" padded with NULs, type 4 */
		if ((namesz == 3 || namesz == 4) && type == GO_NOTE_BUILDID && len - off - 12 >= 3 &&
		    memcmp(p + off + 12, "Go", 3) == 0)
			return true;
		off += 12 + ((namesz + 3) & ~3u) + ((descsz + 3) & ~3u);
		if (off > len)
			return false;
	}
	return false;
}

int gopclntab_elf_is_go(struct elf_file *ef)
{
	uint64_t vaddr, size;

	return elf_file_section_addr(ef, ".gopclntab", &vaddr, &size) == 0 ||
	       elf_file_section_addr(ef, ".data.rel.ro.gopclntab", &vaddr, &size) == 0 ||
	       elf_file_section_addr(ef, ".note.go.buildid", &vaddr, &size) == 0 || has_go_note(ef);
}

/* --- locating the table ---------------------------------------------------------------------------- */

struct found {
	const void *data;
	size_t len;
	uint64_t vaddr;
};

static int by_section(struct elf_file *ef, uint64_t max_bytes, struct found *fd)
{
	int err = elf_file_section(ef, ".gopclntab", max_bytes, &fd->data, &fd->len, &fd->vaddr);

	if (err == -ENOENT)
		err = elf_file_section(ef, ".data.rel.ro.gopclntab", max_bytes, &fd->data, &fd->len, &fd->vaddr);
	return err;
}

static int by_symbol(struct elf_file *ef, uint64_t max_bytes, struct found *fd)
{
	struct elf_symbol start, end;
	int err;

	err = elf_file_find_symbol(ef, SHT_SYMTAB, "runtime.pclntab", MAX_SYMTAB_SCAN, &start);
	if (err)
		return -ENOENT; /* no symbol table, or one too large to search: scan instead */
	err = elf_file_vaddr_data(ef, start.value, max_bytes, &fd->data, &fd->len);
	if (err)
		return err;
	fd->vaddr = start.value;
	if (elf_file_find_symbol(ef, SHT_SYMTAB, "runtime.epclntab", MAX_SYMTAB_SCAN, &end) == 0 &&
	    end.value > start.value && end.value - start.value < fd->len)
		fd->len = (size_t)(end.value - start.value);
	return 0;
}

/* A pcHeader's first eight bytes: a known magic, two zero pads, a PC quantum and a pointer size. */
static bool looks_like_header(const uint8_t *p)
{
	uint32_t magic;

	memcpy(&magic, p, 4);
	magic = le32toh(magic);
	return (magic == 0xfffffffau || magic == 0xfffffff0u || magic == 0xfffffff1u) && p[4] == 0 && p[5] == 0 &&
	       (p[6] == 1 || p[6] == 2 || p[6] == 4) && (p[7] == 4 || p[7] == 8);
}

/* Scans the loaded data (at most max_bytes in all) for a header that parses. */
static int by_scan(struct elf_file *ef, uint64_t max_bytes, uint64_t text_start, uint32_t max_funcs,
		   struct gopclntab **out)
{
	struct elf_load loads[ELF_MAX_LOADS];
	uint64_t budget = max_bytes;
	int n = elf_file_loads(ef, loads, ELF_MAX_LOADS);
	int err = -ENOENT;

	for (int i = 0; i < n && budget; i++) {
		const uint8_t *d;
		size_t len;

		if (elf_file_vaddr_data(ef, loads[i].vaddr, budget, (const void **)&d, &len))
			continue;
		budget -= len;
		for (size_t off = 0; off + 16 <= len; off += 8) {
			if (!looks_like_header(d + off))
				continue;
			err = gopclntab_parse(d + off, len - off, loads[i].vaddr + off, text_start, max_funcs, out);
			if (err == 0 || err == -E2BIG || err == -ENOMEM)
				return err;
		}
	}
	return err == -ENOENT ? err : -ENOEXEC;
}

/* Where entry offsets count from when the header does not say (1.16 needs none). */
static uint64_t text_start_of(struct elf_file *ef)
{
	struct elf_symbol sym;
	uint64_t vaddr, size;

	/* runtime.text is exact; .text starts there too unless an external linker put C code first */
	if (elf_file_find_symbol(ef, SHT_SYMTAB, "runtime.text", MAX_SYMTAB_SCAN, &sym) == 0)
		return sym.value;
	if (elf_file_section_addr(ef, ".text", &vaddr, &size) == 0)
		return vaddr;
	return 0;
}

/* --- gofunc --------------------------------------------------------------------------------------- */

static uint64_t word_at(const uint8_t *p, unsigned ptrsize)
{
	uint64_t v = 0;
	uint32_t v32;

	if (ptrsize == 4) {
		memcpy(&v32, p, 4);
		return le32toh(v32);
	}
	memcpy(&v, p, 8);
	return le64toh(v);
}

/* moduledata.gofunc from the record whose first word is the pcHeader's address and whose text word
 * is the table's text start; 0 when there is none (PIE files hold these words as relocations). */
static uint64_t gofunc_from_moduledata(struct elf_file *ef, const struct gopclntab *t, unsigned ptrsize,
				       uint64_t max_bytes)
{
	size_t gofunc_word = gopclntab_version(t) == GOPCLNTAB_GO120 ? MODULEDATA_GOFUNC_GO120 : MODULEDATA_GOFUNC_GO118;
	size_t need = (gofunc_word + 1) * ptrsize;
	struct elf_load loads[ELF_MAX_LOADS];
	int n = elf_file_loads(ef, loads, ELF_MAX_LOADS);

	for (int i = 0; i < n; i++) {
		const uint8_t *d;
		size_t len;

		if (elf_file_vaddr_data(ef, loads[i].vaddr, max_bytes, (const void **)&d, &len))
			continue;
		for (size_t off = 0; off + need <= len; off += ptrsize) {
			if (word_at(d + off, ptrsize) == gopclntab_vaddr(t) &&
			    word_at(d + off + MODULEDATA_TEXT * ptrsize, ptrsize) == gopclntab_text_start(t))
				return word_at(d + off + gofunc_word * ptrsize, ptrsize);
		}
	}
	return 0;
}

static uint64_t find_gofunc(struct elf_file *ef, const struct gopclntab *t, unsigned ptrsize, uint64_t max_bytes)
{
	struct elf_symbol sym;

	if (gopclntab_version(t) == GOPCLNTAB_GO116)
		return 0; /* FUNCDATA are pointers */
	if (elf_file_find_symbol(ef, SHT_SYMTAB, "go:func.*", MAX_SYMTAB_SCAN, &sym) == 0 ||
	    elf_file_find_symbol(ef, SHT_SYMTAB, "go.func.*", MAX_SYMTAB_SCAN, &sym) == 0)
		return sym.value;
	return gofunc_from_moduledata(ef, t, ptrsize, max_bytes);
}

static void attach_reader(struct elf_file *ef, int fd, struct gopclntab *t, unsigned ptrsize, uint64_t max_bytes)
{
	struct file_reader *r;
	uint64_t gofunc = find_gofunc(ef, t, ptrsize, max_bytes);
	int n;

	if (gopclntab_version(t) != GOPCLNTAB_GO116 && !gofunc)
		return; /* names and lines without inlined calls */
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	n = elf_file_loads(ef, r->loads, ELF_MAX_LOADS);
	if (n < 0) {
		free(r);
		return;
	}
	r->fd = fd;
	r->nloads = (size_t)n;
	gopclntab_set_funcdata(t, gofunc, read_vaddr, r, free);
}

int gopclntab_elf_load(struct elf_file *ef, int fd, uint64_t max_bytes, uint32_t max_funcs,
		       struct gopclntab **out)
{
	uint64_t text_start = text_start_of(ef);
	struct found f;
	int err;

	err = by_section(ef, max_bytes, &f);
	if (err == -ENOENT)
		err = by_symbol(ef, max_bytes, &f);
	if (err == 0)
		err = gopclntab_parse(f.data, f.len, f.vaddr, text_start, max_funcs, out);
	else if (err == -ENOENT)
		err = by_scan(ef, max_bytes, text_start, max_funcs, out);
	if (err)
		return err;
	attach_reader(ef, fd, *out, gopclntab_ptrsize(*out), max_bytes);
	return 0;
}
