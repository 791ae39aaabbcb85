#include "exporter/proc/elf_file.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/text.h"
#include "exporter/proc/elf_file_internal.h"

#define NOTE_MAX_BYTES (64 * 1024) /* build-id notes are tiny; do not read big note blobs */
#define CRC_CHUNK (64 * 1024)
#define NAME_CHUNK 256             /* most symbol names are shorter: one read each */


struct elf_sym {
	uint64_t addr;
	uint32_t size;
	uint32_t name; /* offset in names */
};

/* The names of a file's table stay in the file, read at lookup (the string tables of C++ libraries
 * are megabytes, of which few names are ever looked up); an image in memory has them copied. */
struct elf_symtab {
	struct elf_sym *syms;
	size_t count;
	char *names; /* image: the names of syms, each ending in a NUL */
	size_t names_len;
	int fd;      /* file: a duplicate of its descriptor, else -1 */
	uint64_t strtab_off, strtab_size;
};

static pthread_once_t libelf_once = PTHREAD_ONCE_INIT;

static void libelf_init(void)
{
	elf_version(EV_CURRENT);
}

static int wrap_elf(Elf *e, uint64_t size, struct elf_file **out)
{
	GElf_Ehdr ehdr;
	struct elf_file *f;

	if (!e)
		return -ENOEXEC;
	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &ehdr)) {
		elf_end(e);
		return -ENOEXEC;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		elf_end(e);
		return -ENOMEM;
	}
	f->elf = e;
	f->size = size;
	f->fd = -1;
	*out = f;
	return 0;
}

int elf_file_open(int fd, uint64_t max_bytes, struct elf_file **out)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOEXEC;
	if ((uint64_t)st.st_size > max_bytes)
		return -EFBIG;
	pthread_once(&libelf_once, libelf_init);
	/* ELF_C_READ reads with pread on demand: no mmap, so a file truncated under us cannot SIGBUS. */
	int err = wrap_elf(elf_begin(fd, ELF_C_READ, NULL), st.st_size, out);

	if (!err)
		(*out)->fd = fd;
	return err;
}

int elf_file_open_mem(const void *buf, size_t len, struct elf_file **out)
{
	pthread_once(&libelf_once, libelf_init);
	/* elf_memory does not write to the image when only reading. */
	return wrap_elf(elf_memory((char *)buf, len), len, out);
}

void elf_file_close(struct elf_file *f)
{
	if (!f)
		return;
	elf_end(f->elf);
	free(f);
}

/* Section contents, after checking the header against the file size (libelf trusts it less than we'd
 * like for lazily read files). */
Elf_Data *elf_section_data(const struct elf_file *f, Elf_Scn *scn, const GElf_Shdr *sh)
{
	if (sh->sh_type == SHT_NOBITS || sh->sh_offset > f->size || sh->sh_size > f->size - sh->sh_offset)
		return NULL;
	Elf_Data *d = elf_getdata(scn, NULL);
	if (!d || !d->d_buf || d->d_size != sh->sh_size)
		return NULL;
	return d;
}

static Elf_Scn *find_section_type(const struct elf_file *f, uint32_t type, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(f->elf, scn))) {
		if (gelf_getshdr(scn, sh) && sh->sh_type == type)
			return scn;
	}
	return NULL;
}

static Elf_Scn *find_section_name(const struct elf_file *f, const char *name, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(f->elf, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(f->elf, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, sh))
			continue;
		n = elf_strptr(f->elf, shstrndx, sh->sh_name);
		if (n && strcmp(n, name) == 0)
			return scn;
	}
	return NULL;
}

static int note_build_id(Elf_Data *d, char *hex, size_t len)
{
	size_t off = 0, next, name_off, desc_off;
	GElf_Nhdr nh;

	/* gelf_getnote checks every note against d_size. */
	while ((next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		const unsigned char *buf = d->d_buf;

		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == sizeof(ELF_NOTE_GNU) &&
		    memcmp(buf + name_off, ELF_NOTE_GNU, sizeof(ELF_NOTE_GNU)) == 0 && nh.n_descsz > 0 &&
		    nh.n_descsz <= ELF_BUILD_ID_MAX) {
			if (len < nh.n_descsz * 2 + 1)
				return -ENOSPC;
			text_hex_encode(buf + desc_off, nh.n_descsz, hex);
			return (int)(nh.n_descsz * 2);
		}
		off = next;
	}
	return -ENOENT;
}

int elf_file_build_id(struct elf_file *f, char *hex, size_t len)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t phnum;

	/* Sections first: debug files keep the note section but not the bytes behind their PT_NOTE. */
	while ((scn = elf_nextscn(f->elf, scn))) {
		Elf_Data *d;
		int n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE || sh.sh_size > NOTE_MAX_BYTES)
			continue;
		d = elf_section_data(f, scn, &sh);
		if (d && (n = note_build_id(d, hex, len)) > 0)
			return n;
	}
	/* Program headers: fully stripped files (no section headers) still have them. */
	if (elf_getphdrnum(f->elf, &phnum))
		return -ENOENT;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		Elf_Data *d;
		int n;

		if (!gelf_getphdr(f->elf, i, &ph) || ph.p_type != PT_NOTE || ph.p_filesz > NOTE_MAX_BYTES ||
		    ph.p_offset > f->size || ph.p_filesz > f->size - ph.p_offset)
			continue;
		d = elf_getdata_rawchunk(f->elf, ph.p_offset, ph.p_filesz,
					 ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
		if (d && (n = note_build_id(d, hex, len)) > 0)
			return n;
	}
	return -ENOENT;
}

int elf_file_debuglink(struct elf_file *f, char *name, size_t len, uint32_t *crc)
{
	const unsigned char *b;
	size_t namelen, crc_off;
	GElf_Shdr sh;
	Elf_Scn *scn;
	Elf_Data *d;
	char *ident;

	scn = find_section_name(f, ".gnu_debuglink", &sh);
	if (!scn)
		return -ENOENT;
	if (sh.sh_size > ELF_DEBUGLINK_MAX + 8 || !(d = elf_section_data(f, scn, &sh)))
		return -ENOEXEC;
	/* NUL-terminated name, padding to 4 bytes, then the CRC32 in the file's byte order. */
	b = d->d_buf;
	namelen = strnlen((const char *)b, d->d_size);
	crc_off = (namelen + 1 + 3) & ~(size_t)3;
	if (namelen == 0 || namelen >= len || crc_off + 4 > d->d_size)
		return -ENOEXEC;
	ident = elf_getident(f->elf, NULL);
	if (ident && ident[EI_DATA] == ELFDATA2MSB)
		*crc = (uint32_t)b[crc_off] << 24 | (uint32_t)b[crc_off + 1] << 16 |
		       (uint32_t)b[crc_off + 2] << 8 | b[crc_off + 3];
	else
		*crc = (uint32_t)b[crc_off + 3] << 24 | (uint32_t)b[crc_off + 2] << 16 |
		       (uint32_t)b[crc_off + 1] << 8 | b[crc_off];
	memcpy(name, b, namelen);
	name[namelen] = '\0';
	return 0;
}

bool elf_file_has_symtab(struct elf_file *f)
{
	GElf_Shdr sh;

	/* Entry 0 is the null symbol: a table with only that has nothing. */
	return find_section_type(f, SHT_SYMTAB, &sh) && sh.sh_entsize && sh.sh_size / sh.sh_entsize > 1;
}

int elf_file_loads(struct elf_file *f, struct elf_load *loads, size_t max)
{
	size_t phnum, n = 0;

	if (elf_getphdrnum(f->elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum && n < max; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, i, &ph) || ph.p_type != PT_LOAD)
			continue;
		loads[n].offset = ph.p_offset;
		loads[n].vaddr = ph.p_vaddr;
		loads[n].filesz = ph.p_filesz;
		n++;
	}
	return n ? (int)n : -ENOEXEC;
}

int elf_loads_vaddr(const struct elf_load *loads, size_t n, uint64_t off, uint64_t *vaddr)
{
	for (size_t i = 0; i < n; i++) {
		if (off >= loads[i].offset && off - loads[i].offset < loads[i].filesz) {
			*vaddr = off - loads[i].offset + loads[i].vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

/* A candidate symbol while loading: rank decides which alias of an address is kept. */
struct sym_tmp {
	uint64_t addr, size;
	uint32_t name;
	int rank;
};

static int bind_rank(int bind)
{
	return bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
}

static int cmp_sym_tmp(const void *a, const void *b)
{
	const struct sym_tmp *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

static size_t collect_functions(Elf_Data *syms, size_t count, size_t names_len, struct sym_tmp *out)
{
	size_t n = 0;

	for (size_t i = 1; i < count; i++) {
		GElf_Sym s;
		int type;

		if (!gelf_getsym(syms, (int)i, &s))
			continue;
		type = GELF_ST_TYPE(s.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_value == 0 ||
		    s.st_shndx == SHN_UNDEF || s.st_name == 0 || s.st_name >= names_len)
			continue;
		out[n].addr = s.st_value;
		out[n].size = s.st_size;
		out[n].name = s.st_name;
		out[n].rank = bind_rank(GELF_ST_BIND(s.st_info));
		n++;
	}
	return n;
}

/* Sorts, keeps one symbol per address, and gives size-less symbols the gap up to the next one. */
static size_t finish_symbols(struct sym_tmp *tmp, size_t n, struct elf_sym *out)
{
	size_t m = 0;

	qsort(tmp, n, sizeof(*tmp), cmp_sym_tmp);
	for (size_t i = 0; i < n; i++) {
		if (m && out[m - 1].addr == tmp[i].addr)
			continue;
		out[m].addr = tmp[i].addr;
		out[m].size = tmp[i].size > UINT32_MAX ? UINT32_MAX : (uint32_t)tmp[i].size;
		out[m].name = tmp[i].name;
		m++;
	}
	for (size_t i = 0; i + 1 < m; i++) {
		uint64_t gap = out[i + 1].addr - out[i].addr;

		if (out[i].size == 0)
			out[i].size = gap > UINT32_MAX ? UINT32_MAX : (uint32_t)gap;
	}
	return m;
}

/* Copies the names of the kept symbols out of the string table (which also names objects, sections
 * and versions: often as much again) and points the symbols at the copies. */
static int copy_names(const Elf_Data *strs, struct elf_symtab *t)
{
	const char *src = strs->d_buf;
	size_t total = 0, off = 0;

	for (size_t i = 0; i < t->count; i++)
		total += strnlen(src + t->syms[i].name, strs->d_size - t->syms[i].name) + 1;
	if (total > UINT32_MAX)
		return -E2BIG;
	t->names = malloc(total ? total : 1);
	if (!t->names)
		return -ENOMEM;
	for (size_t i = 0; i < t->count; i++) {
		size_t len = strnlen(src + t->syms[i].name, strs->d_size - t->syms[i].name);

		memcpy(t->names + off, src + t->syms[i].name, len);
		t->names[off + len] = '\0';
		t->syms[i].name = (uint32_t)off;
		off += len + 1;
	}
	t->names_len = total;
	return 0;
}

static int build_symtab(Elf_Data *syms, size_t count, size_t names_len, struct elf_symtab *t)
{
	struct sym_tmp *tmp;
	struct elf_sym *fit;
	size_t n;

	tmp = malloc((count ? count : 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	n = collect_functions(syms, count, names_len, tmp);
	t->syms = malloc((n ? n : 1) * sizeof(*t->syms));
	if (!t->syms) {
		free(tmp);
		return -ENOMEM;
	}
	t->count = finish_symbols(tmp, n, t->syms);
	free(tmp);
	/* One symbol per address: fewer than collected when aliases share one. */
	fit = realloc(t->syms, (t->count ? t->count : 1) * sizeof(*t->syms));
	if (fit)
		t->syms = fit;
	return 0;
}

/* The symbol table of type sh_type, its entry count and its string table's header, checked against
 * the file. The count is checked before anything is read: it bounds the memory a caller's table can
 * take. */
int elf_symbol_headers(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, uint64_t max_strtab,
			  Elf_Scn **scn, GElf_Shdr *symsh, Elf_Scn **strscn_out, GElf_Shdr *strsh_out, size_t *count)
{
	GElf_Shdr sh, strsh;
	Elf_Scn *strscn;
	size_t entsize;

	*scn = find_section_type(f, sh_type, &sh);
	if (!*scn)
		return -ENOENT;
	entsize = gelf_fsize(f->elf, ELF_T_SYM, 1, EV_CURRENT);
	if (!entsize || sh.sh_entsize != entsize)
		return -ENOEXEC;
	*count = sh.sh_size / entsize;
	if (*count > max_symbols || *count > INT32_MAX)
		return -E2BIG;
	strscn = elf_getscn(f->elf, sh.sh_link);
	if (!strscn || !gelf_getshdr(strscn, &strsh) || strsh.sh_type != SHT_STRTAB ||
	    strsh.sh_size > max_strtab)
		return -ENOEXEC;
	if (strsh.sh_offset > f->size || strsh.sh_size > f->size - strsh.sh_offset ||
	    sh.sh_offset > f->size || sh.sh_size > f->size - sh.sh_offset)
		return -ENOEXEC;
	*symsh = sh;
	*strscn_out = strscn;
	*strsh_out = strsh;
	return 0;
}

int elf_symbol_sections(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, uint64_t max_strtab,
			   Elf_Data **syms, Elf_Scn **strscn, GElf_Shdr *strsh, size_t *count)
{
	GElf_Shdr sh;
	Elf_Scn *scn;
	int err = elf_symbol_headers(f, sh_type, max_symbols, max_strtab, &scn, &sh, strscn, strsh, count);

	if (err)
		return err;
	*syms = elf_section_data(f, scn, &sh);
	return *syms ? 0 : -ENOEXEC;
}

/* Where lookups take the names from: the file (a descriptor of its own) or a copy for an image. */
static int symtab_names(struct elf_file *f, Elf_Scn *strscn, const GElf_Shdr *strsh, struct elf_symtab *t)
{
	Elf_Data *strs;

	if (f->fd >= 0) {
		t->fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
		t->strtab_off = strsh->sh_offset;
		t->strtab_size = strsh->sh_size;
		return t->fd < 0 ? -errno : 0;
	}
	strs = elf_section_data(f, strscn, strsh);
	return strs ? copy_names(strs, t) : -ENOEXEC;
}

int elf_symtab_load(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, struct elf_symtab **out)
{
	Elf_Data *syms;
	Elf_Scn *strscn;
	GElf_Shdr strsh;
	struct elf_symtab *t;
	size_t count;
	int err;

	/* The names' offsets are kept in 32 bits. */
	err = elf_symbol_sections(f, sh_type, max_symbols, UINT32_MAX, &syms, &strscn, &strsh, &count);
	if (err)
		return err;
	if (strsh.sh_size == 0)
		return -ENOEXEC;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	err = build_symtab(syms, count, strsh.sh_size, t);
	if (!err)
		err = symtab_names(f, strscn, &strsh, t);
	if (err) {
		elf_symtab_free(t);
		return err;
	}
	*out = t;
	return 0;
}

void elf_symtab_free(struct elf_symtab *t)
{
	if (!t)
		return;
	free(t->syms);
	free(t->names);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

size_t elf_symtab_bytes(const struct elf_symtab *t)
{
	return sizeof(*t) + t->count * sizeof(*t->syms) + t->names_len;
}

size_t elf_symtab_count(const struct elf_symtab *t)
{
	return t->count;
}

/* The name at offset name of the file's string table into buf, cut at len - 1 bytes; NULL when it
 * cannot be read (a file changed under us reads as whatever it holds now, bounded all the same). */
static const char *read_name(const struct elf_symtab *t, uint32_t name, char *buf, size_t len)
{
	uint64_t avail = t->strtab_size - name;
	size_t want = len - 1 < avail ? len - 1 : (size_t)avail, got = 0;

	while (got < want) {
		size_t n = want - got < NAME_CHUNK ? want - got : NAME_CHUNK;
		ssize_t r = pread(t->fd, buf + got, n, (off_t)(t->strtab_off + name + got));

		if (r <= 0)
			break;
		if (memchr(buf + got, '\0', (size_t)r))
			return buf[0] ? buf : NULL;
		got += (size_t)r;
	}
	buf[got] = '\0';
	return got ? buf : NULL;
}

const char *elf_symtab_lookup(const struct elf_symtab *t, uint64_t vaddr, char *buf, size_t len)
{
	size_t lo = 0, hi = t->count;
	const struct elf_sym *s;

	/* Last symbol starting at or below vaddr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[mid].addr <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	s = &t->syms[lo - 1];
	/* A size-less last symbol has no known end: only its exact address is its own. */
	if (vaddr - s->addr >= s->size && vaddr != s->addr)
		return NULL;
	if (t->names)
		return t->names + s->name;
	return len > 1 ? read_name(t, s->name, buf, len) : NULL;
}

int elf_file_type(struct elf_file *f)
{
	GElf_Ehdr ehdr;

	if (!gelf_getehdr(f->elf, &ehdr))
		return -ENOEXEC;
	return ehdr.e_type;
}

int elf_file_tls(struct elf_file *f, struct elf_tls *tls)
{
	size_t phnum;

	if (elf_getphdrnum(f->elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, i, &ph) || ph.p_type != PT_TLS)
			continue;
		tls->vaddr = ph.p_vaddr;
		tls->memsz = ph.p_memsz;
		tls->align = ph.p_align;
		return 0;
	}
	return -ENOENT;
}

static bool rela_matches(const GElf_Rela *r, uint32_t r_type, uint32_t sym_index, uint64_t addend)
{
	uint64_t sym = GELF_R_SYM(r->r_info);

	if (GELF_R_TYPE(r->r_info) != r_type)
		return false;
	return sym ? sym == sym_index : (uint64_t)r->r_addend == addend;
}

int elf_file_find_rela(struct elf_file *f, uint32_t r_type, uint32_t sym_index, uint64_t addend,
		       uint64_t max_relocs, uint64_t *r_offset)
{
	Elf_Scn *scn = NULL, *dynsym;
	uint64_t total = 0;
	size_t entsize, dynsym_ndx;
	GElf_Shdr sh;

	dynsym = find_section_type(f, SHT_DYNSYM, &sh);
	if (!dynsym)
		return -ENOENT;
	dynsym_ndx = elf_ndxscn(dynsym);
	entsize = gelf_fsize(f->elf, ELF_T_RELA, 1, EV_CURRENT);
	if (!entsize)
		return -ENOEXEC;
	while ((scn = elf_nextscn(f->elf, scn))) {
		size_t count;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || sh.sh_link != dynsym_ndx)
			continue;
		if (sh.sh_entsize != entsize)
			return -ENOEXEC;
		count = sh.sh_size / entsize;
		/* Checked before reading: the count bounds the bytes read and the time spent. */
		if (count > max_relocs - total || count > INT32_MAX)
			return -E2BIG;
		total += count;
		d = elf_section_data(f, scn, &sh);
		if (!d)
			return -ENOEXEC;
		for (size_t i = 0; i < count; i++) {
			GElf_Rela r;

			if (gelf_getrela(d, (int)i, &r) && rela_matches(&r, r_type, sym_index, addend)) {
				*r_offset = r.r_offset;
				return 0;
			}
		}
	}
	return -ENOENT;
}

int elf_fd_crc32(int fd, uint64_t max_bytes, uint32_t *crc)
{
	uLong c = crc32(0, Z_NULL, 0);
	uint64_t total = 0;
	unsigned char *buf;
	ssize_t n;
	int err = 0;

	buf = malloc(CRC_CHUNK);
	if (!buf)
		return -ENOMEM;
	while ((n = pread(fd, buf, CRC_CHUNK, (off_t)total)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		total += (uint64_t)n;
		if (total > max_bytes) {
			err = -EFBIG;
			break;
		}
		c = crc32(c, buf, (uInt)n);
	}
	free(buf);
	if (!err)
		*crc = (uint32_t)c;
	return err;
}

/* Bytes [offset, offset + size) of the file, read through libelf (freed by elf_file_close). */
static int raw_bytes(struct elf_file *f, uint64_t offset, uint64_t size, const void **data)
{
	Elf_Data *d;

	if (offset > f->size || size > f->size - offset || size == 0)
		return -ENOEXEC;
	d = elf_getdata_rawchunk(f->elf, (int64_t)offset, size, ELF_T_BYTE);
	if (!d || !d->d_buf || d->d_size != size)
		return -ENOEXEC;
	*data = d->d_buf;
	return 0;
}

int elf_file_segment_head(struct elf_file *f, uint32_t p_type, uint64_t max_bytes, const void **data,
			  size_t *len, uint64_t *vaddr)
{
	size_t phnum;

	if (elf_getphdrnum(f->elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != p_type)
			continue;
		uint64_t n = ph.p_filesz < max_bytes ? ph.p_filesz : max_bytes;
		int err = raw_bytes(f, ph.p_offset, n, data);
		if (err)
			return err;
		*len = n;
		*vaddr = ph.p_vaddr;
		return 0;
	}
	return -ENOENT;
}

int elf_file_vaddr_data(struct elf_file *f, uint64_t vaddr, uint64_t max_bytes, const void **data, size_t *len)
{
	size_t phnum;

	if (elf_getphdrnum(f->elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD || vaddr < ph.p_vaddr ||
		    vaddr - ph.p_vaddr >= ph.p_filesz)
			continue;
		uint64_t n = ph.p_filesz - (vaddr - ph.p_vaddr);
		if (n > max_bytes)
			n = max_bytes;
		int err = raw_bytes(f, ph.p_offset + (vaddr - ph.p_vaddr), n, data);
		if (err)
			return err;
		*len = n;
		return 0;
	}
	return -ENOENT;
}

/* A section with contents in the file: PROGBITS, or the type lld (and so LLVM's own libraries) gives
 * .eh_frame on x86-64. */
static bool has_file_contents(const GElf_Shdr *sh)
{
	return sh->sh_type == SHT_PROGBITS || sh->sh_type == SHT_X86_64_UNWIND;
}

int elf_file_section(struct elf_file *f, const char *name, uint64_t max_bytes, const void **data,
		     size_t *len, uint64_t *vaddr)
{
	GElf_Shdr sh;
	Elf_Scn *scn = find_section_name(f, name, &sh);
	Elf_Data *d;

	if (!scn)
		return -ENOENT;
	if (!has_file_contents(&sh))
		return -ENOEXEC;
	if (sh.sh_size > max_bytes)
		return -EFBIG;
	d = elf_section_data(f, scn, &sh);
	if (!d)
		return -ENOEXEC;
	*data = d->d_buf;
	*len = d->d_size;
	*vaddr = sh.sh_addr;
	return 0;
}

int elf_file_section_copy(struct elf_file *f, const char *name, uint64_t max_bytes, uint8_t **data,
			  size_t *len, uint64_t *vaddr)
{
	GElf_Shdr sh;
	size_t got = 0;
	uint8_t *buf;

	if (f->fd < 0)
		return -EOPNOTSUPP;
	if (!find_section_name(f, name, &sh))
		return -ENOENT;
	if (!has_file_contents(&sh))
		return -ENOEXEC;
	if (sh.sh_size > max_bytes)
		return -EFBIG;
	if (sh.sh_size == 0 || sh.sh_offset > f->size || sh.sh_size > f->size - sh.sh_offset)
		return -ENOEXEC;
	buf = malloc(sh.sh_size);
	if (!buf)
		return -ENOMEM;
	while (got < sh.sh_size) {
		ssize_t r = pread(f->fd, buf + got, sh.sh_size - got, (off_t)(sh.sh_offset + got));

		if (r <= 0) {
			free(buf);
			return r < 0 ? -errno : -ENOEXEC;
		}
		got += (size_t)r;
	}
	*data = buf;
	*len = sh.sh_size;
	*vaddr = sh.sh_addr;
	return 0;
}

int elf_file_section_addr(struct elf_file *f, const char *name, uint64_t *vaddr, uint64_t *size)
{
	GElf_Shdr sh;

	if (!find_section_name(f, name, &sh))
		return -ENOENT;
	*vaddr = sh.sh_addr;
	*size = sh.sh_size;
	return 0;
}
