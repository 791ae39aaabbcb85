/*
 * What both paths of /debug/pprof/profile serve, live (?seconds=, from the drain slices) and past
 * (?start=&end=, from the history ring), on top of the pprof builder: one sample shape (sample types,
 * period, target labels, trace ids, pid/tid, weight), and a symbolized frame's Lines and mapping
 * (symbols/frames.h) as profile ids, whichever endpoint asks.
 */
#ifndef ANORAK_PPROF_SAMPLES_H
#define ANORAK_PPROF_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/profiler.h"
#include "exporter/encode/pprof.h"
#include "exporter/symbols/frames.h"

struct label;

/* Target labels a sample keeps: Pyroscope's limit of label names per series. */
#define PPROF_MAX_TARGET_LABELS 30
#define PPROF_TRACE_ID_BYTES 16
#define PPROF_SPAN_ID_BYTES 8

/* --- frames ---------------------------------------------------------------------------------- */

/* The profile's Lines of the frame's lines (function ids, line numbers) into out; -ENOMEM. */
int pprof_frame_lines(struct pprof_builder *b, const struct pprof_frame_line *lines, size_t n,
		      struct pprof_line *out);

/* The profile's id of the mapping, numbered the first time (*id 0) and kept in *id: has_functions
 * must be final by then (every frame in it symbolized). 0 when memory ran out. */
uint64_t pprof_frame_mapping_id(struct pprof_builder *b, const struct pprof_frame_mapping *m,
				bool has_functions, uint64_t *id);

/* --- samples --------------------------------------------------------------------------------- */

struct pprof_sample {
	const uint64_t *locations; /* location ids, leaf first */
	size_t nlocations;
	const struct label *labels; /* the target's; past PPROF_MAX_TARGET_LABELS dropped */
	size_t nlabels;
	const uint8_t *trace_id;   /* PPROF_TRACE_ID_BYTES, all zero when untraced */
	const uint8_t *span_id;    /* PPROF_SPAN_ID_BYTES, all zero when none */
	uint32_t pid, tid;
	uint64_t count;
	unsigned frequency;        /* Hz the samples were taken at */
	uint8_t kind;              /* enum sample_kind: the count is samples, or off-CPU waits or ns */
};

/* A builder with the sample types of a CPU profile (samples/count, cpu/nanoseconds) and a period of
 * 1/base_frequency seconds, or of an off-CPU profile (samples/count: waits, offcpu/nanoseconds: their
 * time off the CPU); NULL when memory ran out. */
struct pprof_builder *pprof_samples_builder(unsigned base_frequency, bool offcpu);

/* Whether a sample of this kind belongs in the CPU (offcpu false) or the off-CPU profile. */
bool pprof_samples_kind_in(uint8_t kind, bool offcpu);

/* Adds the sample: labels target labels, trace_id and span_id (lowercase hex), pid and tid; values
 * count and count/frequency seconds of CPU, or off-CPU waits or nanoseconds (the pprof builder adds
 * the two samples of a stack into one). Negative errno on failure. */
int pprof_samples_add(struct pprof_builder *b, const struct pprof_sample *s);

#endif
