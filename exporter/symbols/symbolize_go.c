#include "exporter/symbols/symbolize_go.h"

#include <errno.h>

#include "common/log.h"
#include "common/metrics.h"
#include "exporter/proc/elf_file.h"

static const char *const go_failure_names[GO_FAILURE_NR] = { "not_found", "too_large", "too_many_functions",
							     "corrupt", "unsupported_version" };

static enum go_failure go_failure_of(int err)
{
	switch (err) {
	case -ENOENT:
		return GO_NOT_FOUND;
	case -EFBIG:
		return GO_TOO_LARGE;
	case -E2BIG:
		return GO_TOO_MANY_FUNCTIONS;
	case -EPROTONOSUPPORT:
		return GO_UNSUPPORTED;
	default:
		return GO_CORRUPT;
	}
}

struct gopclntab *go_symbols_load(struct go_stats *st, int fd, uint64_t max_bytes, uint32_t max_funcs,
				  const char *path, const char *build_id)
{
	struct gopclntab *t = NULL;
	struct elf_file *ef;
	int err;

	err = elf_file_open(fd, max_bytes, &ef);
	if (!err) {
		err = gopclntab_elf_load(ef, fd, max_bytes, max_funcs, &t);
		elf_file_close(ef);
	}
	if (err == -ENOMEM)
		return NULL;
	if (err) {
		st->failed[go_failure_of(err)]++;
		log_warn("cannot read Go symbol table (.gopclntab)", "path=\"%s\" build_id=%s err=%d reason=%s", path,
			 build_id, err, go_failure_names[go_failure_of(err)]);
		return NULL;
	}
	st->loaded++;
	return t;
}

void go_stats_write(struct metrics_buf *b, const struct go_stats *st)
{
	struct metrics_series failures;

	metrics_counter(b, "anorak_symbol_go_binaries_total", "Go binaries mapped by sampled processes.",
			(double)st->binaries);
	metrics_counter(b, "anorak_symbol_go_pclntab_loads_total",
			"Go symbol tables (.gopclntab) read, each load of a file's tables once.", (double)st->loaded);
	failures = metrics_series_begin(b, "anorak_symbol_go_pclntab_failures_total", "counter",
					"Go binaries whose .gopclntab was not used, by reason (ELF symbols still are).");
	for (size_t i = 0; i < GO_FAILURE_NR; i++)
		metrics_series_valuef(failures, (double)st->failed[i], "reason=\"%s\"", go_failure_names[i]);
	metrics_counter(b, "anorak_symbol_go_frames_total", "Addresses symbolized through a Go .gopclntab.",
			(double)st->frames);
	metrics_counter(b, "anorak_symbol_go_lookup_errors_total",
			"Addresses whose .gopclntab entries did not add up (left to ELF symbols).",
			(double)st->lookup_errors);
}
