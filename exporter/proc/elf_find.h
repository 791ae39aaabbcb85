/* A symbol found by name in a file's symbol table without holding the table or its strings: both are
 * read through a small window (elf_file_find_symbol, for files). */
#ifndef ANORAK_ELF_FIND_H
#define ANORAK_ELF_FIND_H

#include <gelf.h>
#include <stdbool.h>

#include "exporter/proc/elf_file.h"

/* Where a symbol table and its string table lie in the file fd, checked against its size. */
struct elf_find_tables {
	int fd;
	bool elf64; /* else ELF32; in the host's byte order */
	uint64_t sym_off, sym_count, str_off, str_size;
};

/* The first defined symbol (in table order) whose name is name. -ENOENT when there is none, -EIO when
 * the file cannot be read, -EAGAIN when name is found at more places in the string table than this
 * searches at once, or is empty or long (the caller reads the tables whole instead), -ENOMEM. */
int elf_find_symbol_streamed(const struct elf_find_tables *t, const char *name, struct elf_symbol *sym);

#endif
