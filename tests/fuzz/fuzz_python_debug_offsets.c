/* The _Py_DebugOffsets a 3.13 interpreter's _PyRuntime starts with (exporter/symbols/python_offsets.c),
 * read from any python3.13 or libpython3.13 file on the node. The fuzzed bytes are those first bytes of
 * _PyRuntime; a layout taken from them must stay within what the BPF walker and the code object reader
 * read in one go. Seed: the first 584 bytes of 3.13.0's .PyRuntime section. */
#include "fuzz_common.h"
#include "exporter/symbols/python_offsets.h"

#define FIELD_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct python_layout l;

	if (python_layout_debug_offsets(13, data, size, &l))
		return 0;
	FUZZ_CHECK(l.minor == 13 && l.runtime_tss == 2160 && l.frames_kind == PYTHON_FRAMES_OWNER);
	FUZZ_CHECK(l.tstate_frame <= FIELD_MAX && l.frame_previous <= FIELD_MAX && l.frame_code <= FIELD_MAX &&
		   l.frame_instr <= FIELD_MAX && l.frame_owner <= FIELD_MAX && l.code_filename <= FIELD_MAX &&
		   l.code_name <= FIELD_MAX && l.code_qualname <= FIELD_MAX && l.code_linetable <= FIELD_MAX &&
		   l.code_firstlineno <= FIELD_MAX && l.code_adaptive <= FIELD_MAX && l.code_size <= FIELD_MAX &&
		   l.bytes_size <= FIELD_MAX && l.bytes_data <= FIELD_MAX && l.str_state <= FIELD_MAX &&
		   l.str_length <= FIELD_MAX && l.str_ascii_data <= FIELD_MAX);
	return 0;
}
