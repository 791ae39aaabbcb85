/* What elf_file.c shares with elf_find.c: the open file and its symbol table sections. */
#ifndef ANORAK_ELF_FILE_INTERNAL_H
#define ANORAK_ELF_FILE_INTERNAL_H

#include <gelf.h>

#include "exporter/proc/elf_file.h"

struct elf_file {
	Elf *elf;
	uint64_t size; /* every section we read must lie inside */
	int fd;        /* -1 for an image in memory */
};

/* The headers of the symbol table of type sh_type and of its string table, checked against the file.
 * The count is checked before anything is read: it bounds the memory a caller's table can take. */
int elf_symbol_headers(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, uint64_t max_strtab,
		       Elf_Scn **scn, GElf_Shdr *symsh, Elf_Scn **strscn, GElf_Shdr *strsh, size_t *count);
/* elf_symbol_headers, and the symbol table read. */
int elf_symbol_sections(struct elf_file *f, uint32_t sh_type, uint32_t max_symbols, uint64_t max_strtab,
			Elf_Data **syms, Elf_Scn **strscn, GElf_Shdr *strsh, size_t *count);
/* Section contents, after checking the header against the file size. */
Elf_Data *elf_section_data(const struct elf_file *f, Elf_Scn *scn, const GElf_Shdr *sh);

#endif
