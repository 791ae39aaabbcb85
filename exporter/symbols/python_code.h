/*
 * Python code objects of the profiled processes: turns the raw Python frames BPF writes (code object
 * address, instruction offset) into resolved ones (function id, line) by reading the code object, its
 * names and its line table from the process's memory (/proc/PID/mem). Code objects are cached per
 * process, bounded in count and bytes; each resolve reads a bounded amount of memory.
 */
#ifndef ANORAK_PYTHON_CODE_H
#define ANORAK_PYTHON_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/symbols/python_offsets.h"

struct metrics_buf;
struct python_code;

#define PYTHON_NAME_MAX 512        /* bytes kept of a name or file name */
#define PYTHON_LINETABLE_MAX 65536 /* larger line tables are not read: the frame gets no line */

/* Why a code object could not be resolved (anorak_python_code_failed_total{reason}). */
enum python_code_failure {
	PYTHON_CODE_READ,      /* its memory could not be read */
	PYTHON_CODE_LAYOUT,    /* its fields do not hold what the layout says */
	PYTHON_CODE_FULL,      /* the function table is full */
	PYTHON_CODE_NO_PROCESS,/* the process is not known (any more) */
	PYTHON_CODE_FAILURES,
};

/* proc_root: normally "/proc". max_objects and max_bytes bound the cache. */
struct python_code *python_code_new(const char *proc_root, uint32_t max_objects, size_t max_bytes,
				    uint32_t max_processes);
void python_code_free(struct python_code *c);

/* The process tgid runs an interpreter of this layout (a new one after an exec). -ENOSPC when the
 * process table is full. */
int python_code_add_process(struct python_code *c, uint32_t tgid, const struct python_layout *l);
void python_code_forget(struct python_code *c, uint32_t tgid);

/* Whether frames[0..n) holds a raw Python frame. */
bool python_code_has_raw(const uint64_t *frames, size_t n);

/* Copies frames to out with every raw Python frame resolved (drain thread only). */
void python_code_resolve(struct python_code *c, uint32_t tgid, const uint64_t *frames, size_t n, uint64_t *out);

/* Resolves one code object at code of process tgid: its function id and the line of lasti. Exposed for
 * the tests and the benchmark. */
int python_code_lookup(struct python_code *c, uint32_t tgid, uint64_t code, uint32_t lasti,
		       uint32_t *function, uint32_t *line);

void python_code_write_metrics(struct metrics_buf *b, void *code);

#endif
