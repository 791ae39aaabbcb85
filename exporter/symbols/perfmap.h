/* JIT symbols from perf map files (/tmp/perf-PID.map): lines "START SIZE name", START and SIZE hex. */
#ifndef ANORAK_PERFMAP_H
#define ANORAK_PERFMAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PERFMAP_LINE_MAX 4096 /* longer lines are skipped */

struct perfmap;

/* Reads at most max_entries entries (the rest of the file is ignored); malformed lines are skipped.
 * When regions overlap, the later line wins, as JITs reuse freed code memory. */
int perfmap_parse(FILE *f, size_t max_entries, struct perfmap **out);
void perfmap_free(struct perfmap *p);
size_t perfmap_count(const struct perfmap *p);
size_t perfmap_bytes(const struct perfmap *p);
/* Name of the region holding addr, or NULL. */
const char *perfmap_lookup(const struct perfmap *p, uint64_t addr);

#endif
