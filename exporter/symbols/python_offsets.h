/*
 * Where CPython keeps what the profiler reads, per minor version: a small table for 3.10-3.12 (checked
 * against each version's headers by tests/unit/test_python_offsets.c), and for 3.13+ the
 * _Py_DebugOffsets that _PyRuntime starts with (cookie "xdebugpy"), read from the interpreter's file.
 */
#ifndef ANORAK_PYTHON_OFFSETS_H
#define ANORAK_PYTHON_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/python.h"

#define PYTHON_MINOR_MIN 10
/* _Py_DebugOffsets of these minors have a known layout; later ones are refused until added. */
#define PYTHON_MINOR_MAX 13
#define PYTHON_DEBUG_COOKIE "xdebugpy"

struct python_layout {
	int minor;
	uint32_t runtime_tss;    /* _PyRuntime -> autoTSSkey (Py_tss_t: {int initialized; key}) */
	uint8_t frames_kind;     /* enum python_frames_kind */
	uint8_t owner_cstack;
	uint16_t tstate_frame, cframe_frame;
	uint16_t frame_code, frame_previous, frame_instr, frame_owner;
	/* code objects */
	uint16_t code_filename, code_name, code_qualname, code_linetable, code_firstlineno, code_adaptive;
	uint16_t code_size;       /* bytes read to have every field above */
	/* str and bytes objects */
	uint16_t str_state, str_length, str_ascii_data, str_compact_data;
	uint16_t bytes_size, bytes_data;
};

/* The table's layout for minor 10-12; -EPROTONOSUPPORT for others (3.13+ read _Py_DebugOffsets). */
int python_layout_table(int minor, struct python_layout *out);

/* The layout from the first len bytes of _PyRuntime of a 3.13+ interpreter of minor minor:
 * -EBADMSG when the cookie is missing, -EPROTONOSUPPORT for a minor or a free-threaded build whose
 * _Py_DebugOffsets layout is unknown, -ERANGE when an offset is out of the bounds the walker reads. */
int python_layout_debug_offsets(int minor, const void *runtime, size_t len, struct python_layout *out);

/* Bytes of _PyRuntime python_layout_debug_offsets needs. */
#define PYTHON_DEBUG_OFFSETS_BYTES 584

#endif
