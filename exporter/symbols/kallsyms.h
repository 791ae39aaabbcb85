/* Kernel text symbols from /proc/kallsyms, sorted for lookup. */
#ifndef ANORAK_KALLSYMS_H
#define ANORAK_KALLSYMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct kallsyms;

/* Reads text symbols (types t, T, w, W) of f, lines "ADDR TYPE NAME[\t[MODULE]]", keeping at most
 * max_symbols (-E2BIG beyond). Malformed and overlong lines are skipped. -EPERM when every address reads
 * as 0: the kernel hides them from readers without CAP_SYSLOG. -ENOENT when there is no text symbol. */
int kallsyms_parse(FILE *f, size_t max_symbols, struct kallsyms **out);
/* kallsyms_parse on the file at path. */
int kallsyms_load(const char *path, size_t max_symbols, struct kallsyms **out);
void kallsyms_free(struct kallsyms *k);
size_t kallsyms_count(const struct kallsyms *k);

/* Symbol containing addr (up to the next symbol), or NULL; *module gets the module name, "" for the
 * core kernel. */
const char *kallsyms_lookup(const struct kallsyms *k, uint64_t addr, const char **module);

#endif
