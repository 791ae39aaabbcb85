/* The line-table decoders against the interpreters' own answers (code.co_lines()) for real code. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/symbols/python_linetable.h"

#include "python_interpreters.h"

/* Prints, per code object of a sample module: "T firstline hex-table", then "R start end line" per
 * range of co_lines() (line -1: none). */
static const char dump_script[] =
	"import sys\n"
	"src = '''\n"
	"def f(a, b):\n"
	"    x = a + b\n"
	"\n"
	"    for i in range(3):\n"
	"        x += i * (a\n"
	"              + b)\n"
	"    try:\n"
	"        y = [j for j in range(x)]\n"
	"    except ValueError:\n"
	"        pass\n"
	"    return (x,\n"
	"            y)\n"
	"class C:\n"
	"    def m(self):\n"
	"        return lambda q: q + 1\n"
	"''' + '\\n' * 300 + 'def far():\\n    return 1\\n'\n"
	"code = compile(src, 'sample.py', 'exec')\n"
	"def walk(c):\n"
	"    yield c\n"
	"    for k in c.co_consts:\n"
	"        if hasattr(k, 'co_lines'):\n"
	"            yield from walk(k)\n"
	"for c in walk(code):\n"
	"    t = c.co_linetable if sys.version_info >= (3, 10) else c.co_lnotab\n"
	"    print('T', c.co_firstlineno, t.hex() or '-')\n"
	"    for s, e, l in c.co_lines():\n"
	"        print('R', s, e, -1 if l is None else l)\n";

static int decode(int minor, const uint8_t *t, size_t n, int first, uint32_t lasti)
{
	return minor == 10 ? python_line_310(t, n, first, lasti) : python_line_311(t, n, first, lasti);
}

static size_t unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = 0;
	unsigned b;

	while (n < max && sscanf(hex + 2 * n, "%2x", &b) == 1)
		out[n++] = (uint8_t)b;
	return n;
}

/* Checks every instruction of every code object the interpreter dumps; returns the code objects seen. */
static int check_interpreter(const struct test_python *py)
{
	char cmd[512], line[8192], hex[8192];
	static uint8_t table[4096];
	size_t n = 0;
	int first = 0, objects = 0, s, e, l;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s -c \"$ANORAK_PY_SCRIPT\"", py->path);
	setenv("ANORAK_PY_SCRIPT", dump_script, 1);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "T %d %8191s", &first, hex) == 2) {
			n = hex[0] == '-' ? 0 : unhex(hex, table, sizeof(table));
			objects++;
			continue;
		}
		if (sscanf(line, "R %d %d %d", &s, &e, &l) == 3) {
			for (int a = s; a < e; a += 2) {
				int got = decode(py->minor, table, n, first, (uint32_t)a / 2);

				if (l < 0)
					assert_int_equal(got, -ENOENT);
				else if (got != l)
					fail_msg("%s: offset %d: line %d, decoded %d", py->path, a, l, got);
			}
		}
	}
	assert_int_equal(pclose(f), 0);
	return objects;
}

static void test_against_interpreters(void **state)
{
	int used = 0;

	(void)state;
	for (size_t i = 0; i < TEST_PYTHONS; i++) {
		if (!test_python_present(&test_pythons[i]))
			continue;
		assert_true(check_interpreter(&test_pythons[i]) >= 5);
		used++;
	}
	if (!used)
		fail_msg("no CPython 3.10+ interpreter found (tests/unit/python_interpreters.h)");
}

/* 3.10: (byte delta, line delta) pairs; -128: no line. */
static void test_310_pairs(void **state)
{
	const uint8_t t[] = { 4, 0, 6, 2, 2, 0x80, 4, (uint8_t)-1 };

	(void)state;
	assert_int_equal(python_line_310(t, sizeof(t), 10, 0), 10);
	assert_int_equal(python_line_310(t, sizeof(t), 10, 1), 10);
	assert_int_equal(python_line_310(t, sizeof(t), 10, 2), 12);
	assert_int_equal(python_line_310(t, sizeof(t), 10, 5), -ENOENT);
	assert_int_equal(python_line_310(t, sizeof(t), 10, 6), 11);
	assert_int_equal(python_line_310(t, sizeof(t), 10, 8), -ENOENT);
	assert_int_equal(python_line_310(t, 3, 10, 8), -EINVAL);
}

/* 3.11+: every entry kind, and truncated or headerless tables. */
static void test_311_kinds(void **state)
{
	const uint8_t t[] = {
		0x80 | (0 << 3) | 1, 5,            /* short, 2 units, line 20 */
		0x80 | (11 << 3) | 0, 1, 2,        /* one-line +1, 1 unit: 21 */
		0x80 | (13 << 3) | 2, 0x03,        /* no column, -1 (svarint 3), 3 units: 20 */
		0x80 | (14 << 3) | 0, 0x48, 0x01, 0, 1, 2, /* long, +68... */
		0x80 | (15 << 3) | 1,              /* none, 2 units */
	};

	(void)state;
	assert_int_equal(python_line_311(t, sizeof(t), 20, 0), 20);
	assert_int_equal(python_line_311(t, sizeof(t), 20, 1), 20);
	assert_int_equal(python_line_311(t, sizeof(t), 20, 2), 21);
	assert_int_equal(python_line_311(t, sizeof(t), 20, 5), 20);
	/* 0x48 0x01: varint 8 | 1 << 6 = 72, svarint +36 */
	assert_int_equal(python_line_311(t, sizeof(t), 20, 6), 56);
	assert_int_equal(python_line_311(t, sizeof(t), 20, 7), -ENOENT);
	assert_int_equal(python_line_311(t, sizeof(t), 20, 9), -ENOENT);
	assert_int_equal(python_line_311(t, 8, 20, 6), -EINVAL);
	const uint8_t bad[] = { 0x01 };
	assert_int_equal(python_line_311(bad, 1, 1, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_310_pairs),
		cmocka_unit_test(test_311_kinds),
		cmocka_unit_test(test_against_interpreters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
