/*
 * What both paths of /debug/pprof/profile serve, live (?seconds=, from the drain slices) and past
 * (?start=&end=, from the history ring), on top of the pprof builder: one sample shape (sample types,
 * period, target labels, trace ids, pid/tid, weight) and one way a frame becomes a function and a
 * mapping, whichever endpoint asks (the history ring symbolizes its frames with it when they come in).
 */
#ifndef ANORAK_PPROF_SAMPLES_H
#define ANORAK_PPROF_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/profiler.h"

struct label;
struct pprof_builder;
struct proc_maps;
struct sym_mapping;
struct symbolizer;

/* A sample's frames: its kernel stack, then its user stack. */
#define PPROF_MAX_FRAMES (2 * PROFILER_MAX_STACK_DEPTH)
/* Target labels a sample keeps: Pyroscope's limit of label names per series. */
#define PPROF_MAX_TARGET_LABELS 30
#define PPROF_TRACE_ID_BYTES 16
#define PPROF_SPAN_ID_BYTES 8

/* --- frames ---------------------------------------------------------------------------------- */

/* The mapping a frame is in, as the profile has it. */
struct pprof_frame_mapping {
	uint64_t start, limit, offset;
	const char *path, *build_id;
};

/* map's fields; map NULL: the kernel's one mapping. */
void pprof_frame_mapping_of(const struct sym_mapping *map, struct pprof_frame_mapping *out);

#define PPROF_FRAME_NAME_MAX 1024
#define PPROF_FRAME_MODULE_MAX 64
#define PPROF_FRAME_FILENAME_MAX 512

/* The function a frame is in. */
struct pprof_frame_function {
	char name[PPROF_FRAME_NAME_MAX];
	char module[PPROF_FRAME_MODULE_MAX];       /* a kernel module's name, "" otherwise */
	char filename[PPROF_FRAME_FILENAME_MAX];   /* "[module]", a Python frame's file, "" otherwise */
};

/* Symbolizes the frame at addr, in the kernel or in map (NULL: outside every mapping) of the process
 * whose mappings are maps; a return address (not leaf) is looked up one byte back, in its call. False
 * when it stays unsymbolized (also without a symbolizer). */
bool pprof_frame_symbolize(struct symbolizer *sym, const struct proc_maps *maps, const struct sym_mapping *map,
			   bool kernel, uint64_t addr, bool leaf, struct pprof_frame_function *out);

/* The profile's id of the function name (NULL: unsymbolized, 0), whose file is filename. */
uint64_t pprof_frame_function_id(struct pprof_builder *b, const char *name, const char *filename);

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
};

/* A builder with the sample types of a CPU profile (samples/count, cpu/nanoseconds) and a period of
 * 1/base_frequency seconds; NULL when memory ran out. */
struct pprof_builder *pprof_samples_builder(unsigned base_frequency);

/* Adds the sample: labels target labels, trace_id and span_id (lowercase hex), pid and tid; values
 * count and count/frequency seconds of CPU. Negative errno on failure. */
int pprof_samples_add(struct pprof_builder *b, const struct pprof_sample *s);

#endif
