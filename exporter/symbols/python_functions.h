/*
 * The Python functions stacks name, for every encoder: a resolved Python frame
 * (PYTHON_FRAME_RESOLVED, bpf/python.h) holds a function id of this table and its line. The table is
 * process-wide and append-only (ids stay valid for the history ring's lifetime), bounded by its
 * capacity; id 0 is the function of the frames that could not be resolved.
 */
#ifndef ANORAK_PYTHON_FUNCTIONS_H
#define ANORAK_PYTHON_FUNCTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/python.h"

#define PYTHON_FUNCTION_ID_BITS 24
#define PYTHON_UNRESOLVED_NAME "[python: unresolved frame]"

/* Sets the capacity (at most 2^24 functions); once, before any other call. -ENOMEM. */
int python_functions_init(uint32_t capacity);
/* The id of (qualname, filename), added when new; -ENOSPC when the table is full, -ENOMEM. */
int python_functions_intern(const char *qualname, const char *filename, uint32_t *id);
/* Functions in the table. */
uint32_t python_functions_count(void);

static inline bool python_frame_is(uint64_t frame)
{
	return (frame >> PYTHON_FRAME_TAG_SHIFT) == PYTHON_FRAME_RESOLVED;
}

static inline uint64_t python_frame_resolved(uint32_t function, uint32_t line)
{
	return (PYTHON_FRAME_RESOLVED << PYTHON_FRAME_TAG_SHIFT) |
	       ((uint64_t)(function & ((1u << PYTHON_FUNCTION_ID_BITS) - 1)) << 32) | line;
}

static inline uint32_t python_frame_line(uint64_t frame)
{
	return python_frame_is(frame) ? (uint32_t)frame : 0;
}

/* The qualified name and file of a resolved frame's function; false when it is not one. */
bool python_frame_function(uint64_t frame, const char **qualname, const char **filename);

#endif
