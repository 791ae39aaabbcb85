#include "exporter/symbols/python_offsets.h"

#include <errno.h>
#include <string.h>

/* Values of the headers of 3.10.13, 3.11.7 and 3.12.1 (x86-64, default build); 3.13 for reference in
 * the comments of the debug offsets below. The unit test compiles a probe against each one's headers. */
static const struct python_layout table[] = {
	{
		.minor = 10, .runtime_tss = 584, .frames_kind = PYTHON_FRAMES_310,
		.tstate_frame = 24, .cframe_frame = PYTHON_NO_CFRAME,
		.frame_code = 32, .frame_previous = 24, .frame_instr = 96, /* f_lasti */
		.code_filename = 104, .code_name = 112, .code_qualname = 112, /* no co_qualname */
		.code_linetable = 120, .code_firstlineno = 40, .code_size = 128,
		.str_state = 32, .str_length = 16, .str_ascii_data = 48, .str_compact_data = 72,
		.bytes_size = 16, .bytes_data = 32,
	},
	{
		.minor = 11, .runtime_tss = 592, .frames_kind = PYTHON_FRAMES_ENTRY,
		.tstate_frame = 56, .cframe_frame = 8,
		.frame_code = 32, .frame_previous = 48, .frame_instr = 56, .frame_owner = 68, /* is_entry */
		.code_filename = 112, .code_name = 120, .code_qualname = 128, .code_linetable = 136,
		.code_firstlineno = 72, .code_adaptive = 184, .code_size = 192,
		.str_state = 32, .str_length = 16, .str_ascii_data = 48, .str_compact_data = 72,
		.bytes_size = 16, .bytes_data = 32,
	},
	{
		.minor = 12, .runtime_tss = 1544, .frames_kind = PYTHON_FRAMES_OWNER, .owner_cstack = 3,
		.tstate_frame = 56, .cframe_frame = 0,
		.frame_code = 0, .frame_previous = 8, .frame_instr = 56, .frame_owner = 70,
		.code_filename = 112, .code_name = 120, .code_qualname = 128, .code_linetable = 136,
		.code_firstlineno = 68, .code_adaptive = 192, .code_size = 200,
		.str_state = 32, .str_length = 16, .str_ascii_data = 40, .str_compact_data = 56,
		.bytes_size = 16, .bytes_data = 32,
	},
};

int python_layout_table(int minor, struct python_layout *out)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].minor == minor) {
			*out = table[i];
			return 0;
		}
	}
	return -EPROTONOSUPPORT;
}

/* Where the fields used sit in _Py_DebugOffsets of one minor (Include/internal/pycore_runtime.h of
 * 3.13; the struct moved to pycore_debug_offsets.h and grew in 3.14). */
struct debug_fields {
	int minor;
	/* Not in _Py_DebugOffsets: offsetof(_PyRuntimeState, autoTSSkey) of the minor's pycore_runtime.h
	 * (the unit test's probe checks it), as PyGILState_GetThisThreadState reads it. */
	uint32_t runtime_tss;
	uint16_t version, free_threaded;
	uint16_t ts_current_frame;
	uint16_t frame_previous, frame_executable, frame_instr, frame_owner;
	uint16_t code_size, code_filename, code_name, code_qualname, code_linetable, code_firstlineno,
		code_adaptive;
	uint16_t bytes_size, bytes_data;
	uint16_t str_state, str_length, str_ascii_size;
};

static const struct debug_fields debug_fields[] = {
	{
		.minor = 13, .runtime_tss = 2160, .version = 8, .free_threaded = 16, .ts_current_frame = 184,
		.frame_previous = 232, .frame_executable = 240, .frame_instr = 248, .frame_owner = 264,
		.code_size = 272, .code_filename = 280, .code_name = 288, .code_qualname = 296,
		.code_linetable = 304, .code_firstlineno = 312, .code_adaptive = 344,
		.bytes_size = 520, .bytes_data = 528, .str_state = 544, .str_length = 552, .str_ascii_size = 560,
	},
};

static uint64_t field(const uint8_t *runtime, uint16_t at)
{
	uint64_t v;

	memcpy(&v, runtime + at, sizeof(v));
	return v;
}

/* Offsets the walker and the resolver read as 16-bit fields, within one read of the object. */
static int take(const uint8_t *runtime, uint16_t at, uint16_t *out)
{
	uint64_t v = field(runtime, at);

	if (v > 4096)
		return -ERANGE;
	*out = (uint16_t)v;
	return 0;
}

static int fill_from_debug(const struct debug_fields *d, const uint8_t *rt, struct python_layout *out)
{
	uint16_t ascii_size = 0, code_size = 0;
	int err;

	*out = (struct python_layout){ .minor = d->minor, .runtime_tss = d->runtime_tss,
				       .frames_kind = PYTHON_FRAMES_OWNER, .owner_cstack = 3,
				       .cframe_frame = PYTHON_NO_CFRAME };
	err = take(rt, d->ts_current_frame, &out->tstate_frame) ?:
	      take(rt, d->frame_previous, &out->frame_previous) ?:
	      take(rt, d->frame_executable, &out->frame_code) ?:
	      take(rt, d->frame_instr, &out->frame_instr) ?:
	      take(rt, d->frame_owner, &out->frame_owner) ?:
	      take(rt, d->code_filename, &out->code_filename) ?:
	      take(rt, d->code_name, &out->code_name) ?:
	      take(rt, d->code_qualname, &out->code_qualname) ?:
	      take(rt, d->code_linetable, &out->code_linetable) ?:
	      take(rt, d->code_firstlineno, &out->code_firstlineno) ?:
	      take(rt, d->code_adaptive, &out->code_adaptive) ?:
	      take(rt, d->code_size, &code_size) ?:
	      take(rt, d->bytes_size, &out->bytes_size) ?:
	      take(rt, d->bytes_data, &out->bytes_data) ?:
	      take(rt, d->str_state, &out->str_state) ?:
	      take(rt, d->str_length, &out->str_length) ?:
	      take(rt, d->str_ascii_size, &ascii_size);
	if (err)
		return err;
	out->code_size = code_size;
	out->str_ascii_data = ascii_size;
	/* PyCompactUnicodeObject adds utf8_length and utf8 to PyASCIIObject. */
	out->str_compact_data = ascii_size + 16;
	return 0;
}

int python_layout_debug_offsets(int minor, const void *runtime, size_t len, struct python_layout *out)
{
	const uint8_t *rt = runtime;

	if (len < PYTHON_DEBUG_OFFSETS_BYTES || memcmp(rt, PYTHON_DEBUG_COOKIE, 8) != 0)
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(debug_fields) / sizeof(debug_fields[0]); i++) {
		const struct debug_fields *d = &debug_fields[i];

		if (d->minor != minor)
			continue;
		/* PY_VERSION_HEX: 0x030d00f0 for 3.13.0 final. */
		if (((field(rt, d->version) >> 16) & 0xff) != (uint64_t)minor || field(rt, d->free_threaded))
			return -EPROTONOSUPPORT;
		return fill_from_debug(d, rt, out);
	}
	return -EPROTONOSUPPORT;
}
