/*
 * Minimal ELF reader on top of libelf: build id, .gnu_debuglink, PT_LOAD and PT_TLS segments, function
 * symbols, single symbols by name and dynamic relocations.
 * Inputs are untrusted (any binary of any container): every size and count is checked before use.
 */
#ifndef ANORAK_ELF_FILE_H
#define ANORAK_ELF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELF_BUILD_ID_MAX 64                          /* bytes; GNU uses 20 (sha1) */
#define ELF_BUILD_ID_HEX (ELF_BUILD_ID_MAX * 2 + 1)
#define ELF_DEBUGLINK_MAX 256
#define ELF_MAX_LOADS 16                             /* PT_LOAD segments kept; real files have <= 4 */

struct elf_file;

/* One PT_LOAD segment: enough to turn a file offset into a virtual address. */
struct elf_load {
	uint64_t offset, vaddr, filesz;
};

/* Opens the ELF file behind fd (borrowed: it must stay open until elf_file_close). Reads lazily with
 * pread, so nothing but the headers is loaded here. -EFBIG when the file is larger than max_bytes,
 * -ENOEXEC when it is not a valid ELF file. */
int elf_file_open(int fd, uint64_t max_bytes, struct elf_file **out);
/* Same for an image in memory (the vdso); buf is borrowed. */
int elf_file_open_mem(const void *buf, size_t len, struct elf_file **out);
void elf_file_close(struct elf_file *f);

/* GNU build id as lowercase hex into hex (ELF_BUILD_ID_HEX bytes); returns its length, -ENOENT. */
int elf_file_build_id(struct elf_file *f, char *hex, size_t len);
/* .gnu_debuglink file name and CRC32; -ENOENT when absent, -ENOEXEC when malformed. */
int elf_file_debuglink(struct elf_file *f, char *name, size_t len, uint32_t *crc);
/* Whether the file has a .symtab with entries (a debug file or an unstripped binary). */
bool elf_file_has_symtab(struct elf_file *f);
/* PT_LOAD segments into loads (up to max); returns how many, -ENOEXEC when there are none. */
int elf_file_loads(struct elf_file *f, struct elf_load *loads, size_t max);

/* Virtual address of file offset off, from the PT_LOAD segment whose file bytes hold it; -ENOENT. */
int elf_loads_vaddr(const struct elf_load *loads, size_t n, uint64_t off, uint64_t *vaddr);

/* Function symbols (STT_FUNC, STT_GNU_IFUNC, nonzero value), sorted by address. */
struct elf_symtab;

/* Loads the section of type sh_type (SHT_SYMTAB or SHT_DYNSYM). -ENOENT when there is none, -E2BIG
 * when it has more than max_symbols entries, -ENOEXEC when malformed, -ENOMEM. */
int elf_symtab_load(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, struct elf_symtab **out);
void elf_symtab_free(struct elf_symtab *t);
/* Memory held by the table, for cache accounting. */
size_t elf_symtab_bytes(const struct elf_symtab *t);
size_t elf_symtab_count(const struct elf_symtab *t);
/* Name of the function containing vaddr, or NULL. A file's table reads it from the file into buf (cut
 * at len - 1 bytes): it lives until buf is reused. */
const char *elf_symtab_lookup(const struct elf_symtab *t, uint64_t vaddr, char *buf, size_t len);

/* ELF type of the file (ET_EXEC, ET_DYN, ...). */
int elf_file_type(struct elf_file *f);

/* The PT_TLS segment: the module's TLS template. */
struct elf_tls {
	uint64_t vaddr, memsz, align;
};

/* -ENOENT when the file has no PT_TLS. */
int elf_file_tls(struct elf_file *f, struct elf_tls *tls);

/* A symbol found by name. */
struct elf_symbol {
	uint64_t value, size;
	uint32_t index;   /* in its table: dynamic relocations name .dynsym entries by index */
	uint8_t type;     /* STT_OBJECT, STT_TLS, ... */
};

/* The defined symbol called name in the section of type sh_type (SHT_DYNSYM or SHT_SYMTAB). -ENOENT
 * when there is none, -E2BIG when the table has more than max_symbols entries, -ENOEXEC when malformed. */
int elf_file_find_symbol(struct elf_file *f, uint32_t sh_type, const char *name, uint32_t max_symbols,
			 struct elf_symbol *sym);

/* r_offset of the first dynamic relocation (SHT_RELA sections applying to .dynsym: .rela.dyn,
 * .rela.plt) of type r_type that names .dynsym entry sym_index, or that names no symbol and has addend
 * addend (what the linker emits for a symbol bound inside its module). -ENOENT when there is none,
 * -E2BIG when the sections hold more than max_relocs entries, -ENOEXEC when malformed. */
int elf_file_find_rela(struct elf_file *f, uint32_t r_type, uint32_t sym_index, uint64_t addend,
		       uint64_t max_relocs, uint64_t *r_offset);

/* Contents of the section called name (SHT_PROGBITS, inside the file, at most max_bytes) and its
 * virtual address; valid until elf_file_close. -ENOENT when absent, -EFBIG, -ENOEXEC when malformed. */
int elf_file_section(struct elf_file *f, const char *name, uint64_t max_bytes, const void **data,
		     size_t *len, uint64_t *vaddr);

/* elf_file_section into a malloc'd copy the caller frees, read from the file (-EOPNOTSUPP for an image
 * in memory): a large section need not live as long as the file is open. */
int elf_file_section_copy(struct elf_file *f, const char *name, uint64_t max_bytes, uint8_t **data,
			  size_t *len, uint64_t *vaddr);
/* Address and size of the section called name, whatever its type; -ENOENT when absent. */
int elf_file_section_addr(struct elf_file *f, const char *name, uint64_t *vaddr, uint64_t *size);

/* The first bytes (at most max_bytes) of the first segment of type p_type, and its virtual address;
 * valid until elf_file_close. -ENOENT when there is none, -ENOEXEC when it lies outside the file. */
int elf_file_segment_head(struct elf_file *f, uint32_t p_type, uint64_t max_bytes, const void **data,
			  size_t *len, uint64_t *vaddr);

/* The file's bytes from virtual address vaddr to the end of the file part of the PT_LOAD segment
 * holding it, at most max_bytes; valid until elf_file_close. -ENOENT when no segment holds it. */
int elf_file_vaddr_data(struct elf_file *f, uint64_t vaddr, uint64_t max_bytes, const void **data, size_t *len);

/* CRC32 (zlib, as .gnu_debuglink uses) of the whole file; -EFBIG above max_bytes. */
int elf_fd_crc32(int fd, uint64_t max_bytes, uint32_t *crc);

#endif
