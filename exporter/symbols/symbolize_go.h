/* The symbolizer's use of Go's .gopclntab: loading it for a Go binary, counting and logging refusals,
 * and the anorak_symbol_go_* metrics. Not thread-safe: the symbolizer calls it under its lock. */
#ifndef ANORAK_SYMBOLIZE_GO_H
#define ANORAK_SYMBOLIZE_GO_H

#include <stdint.h>

#include "exporter/proc/gopclntab.h"

struct metrics_buf;

/* Why a Go binary's pclntab was not used (its ELF symbols, if any, still are). */
enum go_failure { GO_NOT_FOUND, GO_TOO_LARGE, GO_TOO_MANY_FUNCTIONS, GO_CORRUPT, GO_UNSUPPORTED, GO_FAILURE_NR };

struct go_stats {
	uint64_t binaries;      /* Go binaries seen */
	uint64_t loaded;        /* pclntab loads */
	uint64_t failed[GO_FAILURE_NR];
	uint64_t frames;        /* addresses answered from pclntab */
	uint64_t lookup_errors; /* addresses whose pclntab entries did not add up */
};

/* pclntab of the Go binary behind fd (path and build_id name it in the log line of a refusal, which
 * is counted in st); NULL when it has none usable. */
struct gopclntab *go_symbols_load(struct go_stats *st, int fd, uint64_t max_bytes, uint32_t max_funcs,
				  const char *path, const char *build_id);

void go_stats_write(struct metrics_buf *b, const struct go_stats *st);

#endif
