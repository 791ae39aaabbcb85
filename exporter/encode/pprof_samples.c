#include "exporter/encode/pprof_samples.h"

#include <errno.h>

#include "common/text.h"
#include "exporter/encode/pprof.h"
#include "labels/labelset.h"

/* --- frames ---------------------------------------------------------------------------------- */

int pprof_frame_lines(struct pprof_builder *b, const struct pprof_frame_line *lines, size_t n,
		      struct pprof_line *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct pprof_line){ .function_id = pprof_function(b, lines[i].name, lines[i].name,
									    lines[i].filename),
					      .line = lines[i].line };
		if (!out[i].function_id)
			return -ENOMEM;
	}
	return 0;
}

uint64_t pprof_frame_mapping_id(struct pprof_builder *b, const struct pprof_frame_mapping *m,
				bool has_functions, uint64_t *id)
{
	if (!*id)
		*id = pprof_mapping(b, m->start, m->limit, m->offset, m->path, m->build_id, has_functions);
	return *id;
}

/* --- samples --------------------------------------------------------------------------------- */

struct pprof_builder *pprof_samples_builder(unsigned base_frequency, bool offcpu)
{
	static const struct pprof_value_type types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };
	static const struct pprof_value_type offcpu_types[] = { { "samples", "count" },
								 { "offcpu", "nanoseconds" } };

	/* Waits are not taken at a period: one nanosecond, as Go's block profile has a period of 1. */
	if (offcpu)
		return pprof_builder_new(offcpu_types, 2, offcpu_types[1], 1);
	return pprof_builder_new(types, 2, types[1], 1000000000LL / base_frequency);
}

bool pprof_samples_kind_in(uint8_t kind, bool offcpu)
{
	return offcpu ? kind == SAMPLE_KIND_OFFCPU_WAITS || kind == SAMPLE_KIND_OFFCPU_NS : kind == SAMPLE_KIND_CPU;
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

	if (s->kind == SAMPLE_KIND_OFFCPU_WAITS)
		values[1] = 0;
	else if (s->kind == SAMPLE_KIND_OFFCPU_NS)
		values[0] = 0, values[1] = (int64_t)s->count;
	return pprof_add_sample(b, s->locations, s->nlocations, values, labels, nlabels);
}
