/*
 * One way a sampled frame becomes its Lines (function, file, line; several for inlined calls) and its
 * mapping, shared by the history ring (which symbolizes its frames when they come in and keeps the
 * Lines) and the pprof encoders (live and past profiles): in symbols/ so that store/ and encode/ both
 * take it from the stage before them.
 */
#ifndef ANORAK_SYMBOLS_FRAMES_H
#define ANORAK_SYMBOLS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/profiler.h"
#include "exporter/symbols/symbolize.h"

/* A sample's frames: its kernel stack, then its user stack. */
#define PPROF_MAX_FRAMES (2 * PROFILER_MAX_STACK_DEPTH)

/* The mapping a frame is in, as the profile has it. */
struct pprof_frame_mapping {
	uint64_t start, limit, offset;
	const char *path, *build_id;
};

/* map's fields; map NULL: the kernel's one mapping. */
void pprof_frame_mapping_of(const struct sym_mapping *map, struct pprof_frame_mapping *out);

#define PPROF_FRAME_NAME_MAX 1024
#define PPROF_FRAME_MODULE_MAX 64
/* Lines of one frame: inlined calls and the function they are in. */
#define PPROF_FRAME_LINES_MAX SYM_MAX_FRAMES

/* One Line of a frame: a function, and where in its source file when known. */
struct pprof_frame_line {
	const char *name;
	const char *filename; /* "[module]" for kernel modules, the source file where the binary says */
	uint32_t line;        /* 0 when unknown */
};

/* The Lines of a frame, innermost inlined call first, the function the code belongs to last (one Line
 * but for inlined Go calls); the strings are held in it until the next symbolization. */
struct pprof_frame_function {
	size_t n;
	struct pprof_frame_line lines[PPROF_FRAME_LINES_MAX];
	char name[PPROF_FRAME_NAME_MAX];           /* a kernel frame's */
	char module[PPROF_FRAME_MODULE_MAX];       /* a kernel module's name, "" otherwise */
	char filename[PPROF_FRAME_MODULE_MAX + 2]; /* "[module]", "" otherwise */
	struct sym_frames user;                    /* a user frame's */
};

/* Symbolizes the frame at addr, in the kernel or in map (NULL: outside every mapping) of the process
 * whose mappings are maps; a return address (not leaf) is looked up one byte back, in its call.
 * Returns out->n, 0 when it stays unsymbolized (also without a symbolizer). */
size_t pprof_frame_symbolize(struct symbolizer *sym, const struct proc_maps *maps, const struct sym_mapping *map,
			     bool kernel, uint64_t addr, bool leaf, struct pprof_frame_function *out);

#endif
