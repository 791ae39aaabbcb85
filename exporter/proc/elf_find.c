#include "exporter/proc/elf_find.h"
#include "exporter/proc/elf_file_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW (64 * 1024)
#define MAX_PLACES 64 /* offsets of name in the string table: one, or a few with suffixes shared */
#define MAX_NAME 1024

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELFDATA ELFDATA2LSB
#else
#define HOST_ELFDATA ELFDATA2MSB
#endif

struct places {
	uint64_t off[MAX_PLACES];
	size_t n;
};

/* Every offset of the string table where "name\0" starts (a symbol may point into the tail of a
 * longer string), reading it a window at a time; windows overlap by the needle's length. */
static int find_places(const struct elf_find_tables *t, const char *name, size_t len, struct places *p,
		       char *buf)
{
	size_t needle = len + 1, step = WINDOW - needle;

	for (uint64_t at = 0; at < t->str_size; at += step) {
		size_t want = t->str_size - at < WINDOW ? (size_t)(t->str_size - at) : WINDOW;
		ssize_t r = pread(t->fd, buf, want, (off_t)(t->str_off + at));
		const char *hit = buf;

		if (r != (ssize_t)want)
			return -EIO;
		/* A match wholly in the overlap was found by the window before. */
		while ((hit = memmem(hit, want - (size_t)(hit - buf), name, needle))) {
			uint64_t off = at + (uint64_t)(hit - buf);

			if (at == 0 || off > at) {
				if (p->n == MAX_PLACES)
					return -EAGAIN;
				p->off[p->n++] = off;
			}
			hit++;
		}
		if (want < WINDOW)
			break;
	}
	return p->n ? 0 : -ENOENT;
}

static bool placed(const struct places *p, uint64_t off)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->off[i] == off)
			return true;
	return false;
}

/* Symbol i of a window of raw entries, in the host's byte order. */
static void raw_sym(const struct elf_find_tables *t, const char *buf, size_t i, GElf_Sym *s)
{
	if (t->elf64) {
		Elf64_Sym e;

		memcpy(&e, buf + i * sizeof(e), sizeof(e));
		*s = (GElf_Sym){ .st_name = e.st_name, .st_info = e.st_info, .st_shndx = e.st_shndx,
				 .st_value = e.st_value, .st_size = e.st_size };
	} else {
		Elf32_Sym e;

		memcpy(&e, buf + i * sizeof(e), sizeof(e));
		*s = (GElf_Sym){ .st_name = e.st_name, .st_info = e.st_info, .st_shndx = e.st_shndx,
				 .st_value = e.st_value, .st_size = e.st_size };
	}
}

/* The first defined symbol whose name lies at one of the places. */
static int scan_symbols(const struct elf_find_tables *t, const struct places *p, char *buf, struct elf_symbol *sym)
{
	size_t entsize = t->elf64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym), per = WINDOW / entsize;

	for (uint64_t first = 0; first < t->sym_count; first += per) {
		size_t n = t->sym_count - first < per ? (size_t)(t->sym_count - first) : per;
		ssize_t r = pread(t->fd, buf, n * entsize, (off_t)(t->sym_off + first * entsize));

		if (r != (ssize_t)(n * entsize))
			return -EIO;
		for (size_t i = first ? 0 : 1; i < n; i++) {
			GElf_Sym s;

			raw_sym(t, buf, i, &s);
			if (s.st_shndx == SHN_UNDEF || !placed(p, s.st_name))
				continue;
			*sym = (struct elf_symbol){ .value = s.st_value, .size = s.st_size,
						    .index = (uint32_t)(first + i), .type = GELF_ST_TYPE(s.st_info) };
			return 0;
		}
	}
	return -ENOENT;
}

int elf_find_symbol_streamed(const struct elf_find_tables *t, const char *name, struct elf_symbol *sym)
{
	size_t len = strlen(name);
	struct places p = { .n = 0 };
	char *buf;
	int err;

	if (len == 0 || len > MAX_NAME)
		return -EAGAIN; /* not worth a window: the whole tables answer */
	buf = malloc(WINDOW);
	if (!buf)
		return -ENOMEM;
	err = find_places(t, name, len, &p, buf);
	if (!err)
		err = scan_symbols(t, &p, buf, sym);
	free(buf);
	return err;
}

/* Whether the string at off of a string table is name; the table need not be NUL-terminated. */
static bool strtab_equals(const Elf_Data *strs, uint64_t off, const char *name, size_t len)
{
	const char *s = strs->d_buf;

	return off < strs->d_size && strs->d_size - off > len && memcmp(s + off, name, len) == 0 &&
	       s[off + len] == '\0';
}

/* A file's tables are searched through a window: libLLVM's are 4 MB, read for one name. */
static int find_streamed(struct elf_file *f, uint32_t sh_type, const char *name, uint32_t max_symbols,
			 struct elf_symbol *sym)
{
	GElf_Shdr symsh, strsh;
	Elf_Scn *scn, *strscn;
	GElf_Ehdr eh;
	size_t count;
	int err = elf_symbol_headers(f, sh_type, max_symbols, UINT64_MAX, &scn, &symsh, &strscn, &strsh, &count);

	if (err)
		return err;
	if (!gelf_getehdr(f->elf, &eh) || eh.e_ident[EI_DATA] != HOST_ELFDATA)
		return -EOPNOTSUPP;
	struct elf_find_tables t = {
		.fd = f->fd, .elf64 = eh.e_ident[EI_CLASS] == ELFCLASS64, .sym_off = symsh.sh_offset,
		.sym_count = count, .str_off = strsh.sh_offset, .str_size = strsh.sh_size,
	};
	return elf_find_symbol_streamed(&t, name, sym);
}

int elf_file_find_symbol(struct elf_file *f, uint32_t sh_type, const char *name, uint32_t max_symbols,
			 struct elf_symbol *sym)
{
	size_t count, len = strlen(name);
	Elf_Data *syms, *strs;
	Elf_Scn *strscn;
	GElf_Shdr strsh;
	int err;

	if (f->fd >= 0) {
		err = find_streamed(f, sh_type, name, max_symbols, sym);
		if (err != -EAGAIN && err != -EOPNOTSUPP && err != -EIO && err != -ENOMEM)
			return err;
	}
	err = elf_symbol_sections(f, sh_type, max_symbols, UINT64_MAX, &syms, &strscn, &strsh, &count);
	if (err)
		return err;
	strs = elf_section_data(f, strscn, &strsh);
	if (!strs)
		return -ENOEXEC;
	for (size_t i = 1; i < count; i++) {
		GElf_Sym s;

		if (!gelf_getsym(syms, (int)i, &s) || s.st_shndx == SHN_UNDEF ||
		    !strtab_equals(strs, s.st_name, name, len))
			continue;
		sym->value = s.st_value;
		sym->size = s.st_size;
		sym->index = (uint32_t)i;
		sym->type = GELF_ST_TYPE(s.st_info);
		return 0;
	}
	return -ENOENT;
}
