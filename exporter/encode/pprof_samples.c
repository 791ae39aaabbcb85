#include "exporter/encode/pprof_samples.h"

#include <stdio.h>

#include "common/text.h"
#include "exporter/encode/pprof.h"
#include "exporter/symbols/python_functions.h"
#include "exporter/symbols/symbolize.h"
#include "labels/labelset.h"

#define KERNEL_START 0xffff800000000000ULL

/* --- frames ---------------------------------------------------------------------------------- */

void pprof_frame_mapping_of(const struct sym_mapping *map, struct pprof_frame_mapping *out)
{
	if (map)
		*out = (struct pprof_frame_mapping){ .start = map->start, .limit = map->end, .offset = map->offset,
						     .path = map->path, .build_id = map->build_id };
	else
		*out = (struct pprof_frame_mapping){ .start = KERNEL_START, .limit = UINT64_MAX,
						     .path = "[kernel.kallsyms]", .build_id = "" };
}

/* A resolved Python frame: its function's qualified name and file (the line is in its address). */
static bool python_frame_symbolize(uint64_t addr, struct pprof_frame_function *out)
{
	const char *qualname, *filename;

	if (!python_frame_function(addr, &qualname, &filename))
		return false;
	snprintf(out->name, sizeof(out->name), "%s", qualname);
	snprintf(out->filename, sizeof(out->filename), "%s", filename);
	return true;
}

bool pprof_frame_symbolize(struct symbolizer *sym, const struct proc_maps *maps, const struct sym_mapping *map,
			   bool kernel, uint64_t addr, bool leaf, struct pprof_frame_function *out)
{
	uint64_t lookup = leaf ? addr : addr - 1;
	size_t n = 0;

	out->module[0] = '\0';
	out->filename[0] = '\0';
	if (!kernel && python_frame_symbolize(addr, out))
		return true;
	if (sym && kernel)
		n = symbolizer_kernel(sym, lookup, out->name, sizeof(out->name), out->module, sizeof(out->module));
	else if (sym && map)
		n = symbolizer_user(sym, maps, map, lookup, out->name, sizeof(out->name));
	if (n == 0)
		return false;
	if (out->module[0])
		snprintf(out->filename, sizeof(out->filename), "[%s]", out->module);
	return true;
}

uint64_t pprof_frame_function_id(struct pprof_builder *b, const char *name, const char *filename)
{
	return name ? pprof_function(b, name, name, filename) : 0;
}

uint64_t pprof_frame_mapping_id(struct pprof_builder *b, const struct pprof_frame_mapping *m,
				bool has_functions, uint64_t *id)
{
	if (!*id)
		*id = pprof_mapping(b, m->start, m->limit, m->offset, m->path, m->build_id, has_functions);
	return *id;
}

/* --- samples --------------------------------------------------------------------------------- */

struct pprof_builder *pprof_samples_builder(unsigned base_frequency)
{
	static const struct pprof_value_type types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };

	return pprof_builder_new(types, 2, (struct pprof_value_type){ "cpu", "nanoseconds" },
				 1000000000LL / base_frequency);
}

/* Lowercase hex of the bytes in order, as Pyroscope expects; false when they are all zero. */
static bool hex_if_set(const uint8_t *bytes, size_t n, char *out)
{
	bool set = false;

	text_hex_encode(bytes, n, out);
	for (size_t i = 0; i < n; i++)
		set |= bytes[i] != 0;
	return set;
}

int pprof_samples_add(struct pprof_builder *b, const struct pprof_sample *s)
{
	struct pprof_label labels[PPROF_MAX_TARGET_LABELS + 4];
	size_t nlabels = 0;
	char trace_hex[2 * PPROF_TRACE_ID_BYTES + 1], span_hex[2 * PPROF_SPAN_ID_BYTES + 1];

	for (size_t i = 0; i < s->nlabels && nlabels < PPROF_MAX_TARGET_LABELS; i++)
		labels[nlabels++] = (struct pprof_label){ .key = s->labels[i].name, .str = s->labels[i].value };
	if (hex_if_set(s->trace_id, PPROF_TRACE_ID_BYTES, trace_hex)) {
		labels[nlabels++] = (struct pprof_label){ .key = "trace_id", .str = trace_hex };
		if (hex_if_set(s->span_id, PPROF_SPAN_ID_BYTES, span_hex))
			labels[nlabels++] = (struct pprof_label){ .key = "span_id", .str = span_hex };
	}
	labels[nlabels++] = (struct pprof_label){ .key = "pid", .num = s->pid };
	labels[nlabels++] = (struct pprof_label){ .key = "tid", .num = s->tid };

	/* A sample stands for 1/Hz seconds of CPU at the rate it was taken at. */
	int64_t values[2] = { (int64_t)s->count, (int64_t)s->count * (1000000000LL / s->frequency) };
	return pprof_add_sample(b, s->locations, s->nlocations, values, labels, nlabels);
}
