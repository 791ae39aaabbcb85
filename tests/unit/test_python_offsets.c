/*
 * The CPython layouts (exporter/symbols/python_offsets.c) against each interpreter's own headers (a
 * probe compiled against them prints offsetof of every field), discovery of live interpreters
 * (exporter/symbols/python_proc.c), and code objects read from their memory (python_code.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter/symbols/python_code.h"
#include "exporter/symbols/python_functions.h"
#include "exporter/symbols/python_offsets.h"
#include "exporter/symbols/python_proc.h"

#include "fixture_child.h"
#include "python_interpreters.h"

#define ELF_MAX (1ull << 30)

/* Prints "name offset" for the fields the layout has, from the headers it is compiled against. */
static const char probe_src[] =
	"#define Py_BUILD_CORE 1\n"
	"#include <Python.h>\n"
	"#include <stddef.h>\n"
	"#include <stdio.h>\n"
	"#include \"internal/pycore_runtime.h\"\n"
	"#if PY_MINOR_VERSION >= 11\n"
	"#include \"internal/pycore_frame.h\"\n"
	"#else\n"
	"#include \"frameobject.h\"\n"
	"#endif\n"
	"#define P(n, e) printf(\"%s %zu\\n\", n, (size_t)(e))\n"
	"int main(void) {\n"
	"#if PY_MINOR_VERSION >= 12\n"
	"P(\"runtime_tss\", offsetof(_PyRuntimeState, autoTSSkey));\n"
	"#elif PY_MINOR_VERSION <= 11\n"
	"P(\"runtime_tss\", offsetof(_PyRuntimeState, gilstate.autoTSSkey));\n"
	"#endif\n"
	"#if PY_MINOR_VERSION == 10\n"
	"P(\"tstate_frame\", offsetof(PyThreadState, frame));\n"
	"P(\"frame_code\", offsetof(PyFrameObject, f_code));\n"
	"P(\"frame_previous\", offsetof(PyFrameObject, f_back));\n"
	"P(\"frame_instr\", offsetof(PyFrameObject, f_lasti));\n"
	"P(\"code_qualname\", offsetof(PyCodeObject, co_name));\n"
	"#else\n"
	"#if PY_MINOR_VERSION <= 12\n"
	"P(\"tstate_frame\", offsetof(PyThreadState, cframe));\n"
	"P(\"cframe_frame\", offsetof(_PyCFrame, current_frame));\n"
	"P(\"frame_instr\", offsetof(_PyInterpreterFrame, prev_instr));\n"
	"#else\n"
	"P(\"tstate_frame\", offsetof(PyThreadState, current_frame));\n"
	"P(\"frame_instr\", offsetof(_PyInterpreterFrame, instr_ptr));\n"
	"#endif\n"
	"#if PY_MINOR_VERSION == 11\n"
	"P(\"frame_owner\", offsetof(_PyInterpreterFrame, is_entry));\n"
	"#else\n"
	"P(\"frame_owner\", offsetof(_PyInterpreterFrame, owner));\n"
	"P(\"owner_cstack\", FRAME_OWNED_BY_CSTACK);\n"
	"#endif\n"
	"#if PY_MINOR_VERSION >= 13\n"
	"P(\"frame_code\", offsetof(_PyInterpreterFrame, f_executable));\n"
	"#else\n"
	"P(\"frame_code\", offsetof(_PyInterpreterFrame, f_code));\n"
	"#endif\n"
	"P(\"frame_previous\", offsetof(_PyInterpreterFrame, previous));\n"
	"P(\"code_qualname\", offsetof(PyCodeObject, co_qualname));\n"
	"P(\"code_adaptive\", offsetof(PyCodeObject, co_code_adaptive));\n"
	"#endif\n"
	"P(\"code_filename\", offsetof(PyCodeObject, co_filename));\n"
	"P(\"code_name\", offsetof(PyCodeObject, co_name));\n"
	"P(\"code_linetable\", offsetof(PyCodeObject, co_linetable));\n"
	"P(\"code_firstlineno\", offsetof(PyCodeObject, co_firstlineno));\n"
	"P(\"str_ascii_data\", sizeof(PyASCIIObject));\n"
	"P(\"str_compact_data\", sizeof(PyCompactUnicodeObject));\n"
	"P(\"str_length\", offsetof(PyASCIIObject, length));\n"
	"P(\"bytes_data\", offsetof(PyBytesObject, ob_sval));\n"
	"P(\"bytes_size\", offsetof(PyVarObject, ob_size));\n"
	"return 0; }\n";

/* Compiles and runs the probe against py's headers; checks each printed field against l. */
static void check_against_headers(const struct test_python *py, const struct python_layout *l)
{
	char dir[] = "/tmp/anorak-pyprobe-XXXXXX", cmd[1024], line[256], name[64];
	unsigned long v;
	int checked = 0;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "%s/probe.c", dir);
	f = fopen(cmd, "w");
	assert_non_null(f);
	fputs(probe_src, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -I%s -o %s/probe %s/probe.c && %s/probe; rm -rf %s", py->include, dir,
		 dir, dir, dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		const struct { const char *name; unsigned long value; } fields[] = {
			{ "runtime_tss", l->runtime_tss }, { "tstate_frame", l->tstate_frame },
			{ "cframe_frame", l->cframe_frame }, { "frame_code", l->frame_code },
			{ "frame_previous", l->frame_previous }, { "frame_instr", l->frame_instr },
			{ "frame_owner", l->frame_owner }, { "owner_cstack", l->owner_cstack },
			{ "code_filename", l->code_filename }, { "code_name", l->code_name },
			{ "code_qualname", l->code_qualname }, { "code_linetable", l->code_linetable },
			{ "code_firstlineno", l->code_firstlineno }, { "code_adaptive", l->code_adaptive },
			{ "str_ascii_data", l->str_ascii_data }, { "str_compact_data", l->str_compact_data },
			{ "str_length", l->str_length }, { "bytes_data", l->bytes_data },
			{ "bytes_size", l->bytes_size },
		};

		assert_int_equal(sscanf(line, "%63s %lu", name, &v), 2);
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (strcmp(fields[i].name, name) == 0) {
				if (fields[i].value != v)
					fail_msg("3.%d %s: layout %lu, headers %lu", py->minor, name, fields[i].value, v);
				checked++;
			}
		}
	}
	assert_int_equal(pclose(f), 0);
	assert_true(checked >= 15);
}

/* A live interpreter that prints a code object's address and first line, then waits on stdin. */
struct child {
	struct fixture_child proc;
	uint64_t code;      /* id(leaf.__code__) */
	int line;           /* line of its first instruction, by co_lines() */
	char filename[256];
};

static void spawn(const struct test_python *py, struct child *c)
{
	static const char script[] =
		"import sys\n"
		"class Outer:\n"
		"    def leaf(self):\n"
		"        return 1\n"
		"co = Outer.leaf.__code__\n"
		"print(id(co), next(l for s, e, l in co.co_lines() if s == 0), co.co_filename, flush=True)\n"
		"sys.stdin.read()\n";
	char *const argv[] = { (char *)py->path, "-c", (char *)script, NULL };
	char line[512];

	fixture_spawn_argv(argv, &c->proc, line, sizeof(line));
	assert_int_equal(sscanf(line, "%" SCNu64 " %d %255s", &c->code, &c->line, c->filename), 3);
}

static void check_live(const struct test_python *py)
{
	struct python_target t;
	struct python_code *code = python_code_new("/proc", 16, 1 << 20, 4);
	const char *qualname, *filename;
	uint32_t function, line;
	struct child c;

	assert_non_null(code);
	spawn(py, &c);
	assert_int_equal(python_discover("/proc", c.proc.pid, ELF_MAX, NULL, &t), 0);
	if (t.failure != PYTHON_FAIL_NONE || t.minor != py->minor)
		fail_msg("%s: minor %d, failure %d", py->path, t.minor, t.failure);
	assert_true(t.proc.eval_start && t.proc.eval_end > t.proc.eval_start);
	assert_int_equal(python_code_add_process(code, (uint32_t)c.proc.pid, &t.layout), 0);
	assert_int_equal(python_code_lookup(code, (uint32_t)c.proc.pid, c.code, 0, &function, &line), 0);
	fixture_reap(&c.proc);
	assert_true(python_frame_function(python_frame_resolved(function, line), &qualname, &filename));
	assert_string_equal(qualname, py->minor == 10 ? "leaf" : "Outer.leaf");
	assert_string_equal(filename, c.filename);
	assert_int_equal(line, c.line);
	if (py->include)
		check_against_headers(py, &t.layout);
	python_code_free(code);
}

static void test_interpreters(void **state)
{
	int used = 0;

	(void)state;
	for (size_t i = 0; i < TEST_PYTHONS; i++) {
		if (!test_python_present(&test_pythons[i]))
			continue;
		check_live(&test_pythons[i]);
		used++;
	}
	if (!used)
		fail_msg("no CPython 3.10+ interpreter found (tests/unit/python_interpreters.h)");
}

static void test_minor_of_path(void **state)
{
	(void)state;
	assert_int_equal(python_minor_of_path("/usr/bin/python3.11"), 11);
	assert_int_equal(python_minor_of_path("/x/lib/libpython3.13.so.1.0"), 13);
	assert_int_equal(python_minor_of_path("/x/lib/libpython3.13t.so.1.0"), 13);
	assert_int_equal(python_minor_of_path("/usr/bin/python3.9"), 0);
	assert_int_equal(python_minor_of_path("/usr/bin/python3"), 0);
	assert_int_equal(python_minor_of_path("/usr/bin/python3.11-config"), 0);
	assert_int_equal(python_minor_of_path("/opt/mypython3.11"), 0);
}

/* _Py_DebugOffsets: a missing cookie, another minor, a free-threaded build. */
static void test_debug_offsets_refused(void **state)
{
	uint8_t rt[PYTHON_DEBUG_OFFSETS_BYTES] = { 0 };
	struct python_layout l;
	uint64_t version = 0x030d00f0, one = 1;

	(void)state;
	assert_int_equal(python_layout_debug_offsets(13, rt, sizeof(rt), &l), -EBADMSG);
	memcpy(rt, PYTHON_DEBUG_COOKIE, 8);
	memcpy(rt + 8, &version, 8);
	assert_int_equal(python_layout_debug_offsets(14, rt, sizeof(rt), &l), -EPROTONOSUPPORT);
	assert_int_equal(python_layout_debug_offsets(13, rt, sizeof(rt) - 1, &l), -EBADMSG);
	memcpy(rt + 16, &one, 8);
	assert_int_equal(python_layout_debug_offsets(13, rt, sizeof(rt), &l), -EPROTONOSUPPORT);
	assert_int_equal(python_layout_table(13, &l), -EPROTONOSUPPORT);
}

static void test_pthread_specific(void **state)
{
	uint32_t off = 0;

	(void)state;
	assert_int_equal(python_pthread_specific_offset(&off), 0);
	assert_true(off > 0 && off < 4096);
}

/* A code object whose names are str headers no live str has (a freed or reused object read while the
 * interpreter runs): refused, never decoded past the name buffers. Forged in this process's own memory,
 * which the reader takes through /proc/self/mem like any other process's. */
static void forge_str(uint8_t *obj, const struct python_layout *l, uint32_t state, int64_t length, uint8_t fill)
{
	memcpy(obj + l->str_state, &state, 4);
	memcpy(obj + l->str_length, &length, 8);
	memset(obj + l->str_ascii_data, fill, 2048);
}

static int lookup_forged(const struct python_layout *l, uint32_t state, int64_t length, uint8_t fill)
{
	static uint8_t code[1024], name[4096];
	struct python_code *c = python_code_new("/proc", 16, 1 << 20, 4);
	uint64_t name_addr = (uint64_t)(uintptr_t)name;
	uint32_t function = 0, line = 0;
	int32_t first = 1;
	int err;

	assert_non_null(c);
	assert_true(l->code_size <= sizeof(code));
	memset(code, 0, sizeof(code));
	memcpy(code + l->code_qualname, &name_addr, 8);
	memcpy(code + l->code_filename, &name_addr, 8);
	memcpy(code + l->code_firstlineno, &first, 4);
	forge_str(name, l, state, length, fill);
	assert_int_equal(python_code_add_process(c, (uint32_t)getpid(), l), 0);
	err = python_code_lookup(c, (uint32_t)getpid(), (uint64_t)(uintptr_t)code, 0, &function, &line);
	python_code_free(c);
	return err;
}

static void test_forged_str_headers(void **state)
{
	const uint32_t compact = 1u << 5, ascii = 1u << 6;
	struct python_layout l;

	(void)state;
	assert_int_equal(python_layout_table(11, &l), 0);
	assert_int_equal(lookup_forged(&l, compact | ascii | 1u << 2, 40, 'a'), 0);
	/* ASCII with a wider kind: its characters would be read as two or four bytes each. */
	assert_int_equal(lookup_forged(&l, compact | ascii | 2u << 2, 1000, 'a'), -ENOENT);
	assert_int_equal(lookup_forged(&l, compact | ascii | 4u << 2, 1000, 'a'), -ENOENT);
	/* ASCII that is not: each byte above 0x7f would take two bytes of a buffer sized for one. */
	assert_int_equal(lookup_forged(&l, compact | ascii | 1u << 2, 1000, 0xc3), -ENOENT);
	/* Latin-1 (not ASCII) of the same bytes is a valid name, cut to the buffer. */
	assert_int_equal(lookup_forged(&l, compact | 1u << 2, 1000, 0xc3), 0);
}

static int setup(void **state)
{
	(void)state;
	return python_functions_init(1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minor_of_path),
		cmocka_unit_test(test_debug_offsets_refused),
		cmocka_unit_test(test_pthread_specific),
		cmocka_unit_test(test_interpreters),
		cmocka_unit_test(test_forged_str_headers),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
