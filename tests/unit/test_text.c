#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/text.h"

/* Every boundary of RFC 3629's table: the first and last code point of each length. */
static void test_utf8_round_trip_boundaries(void **state)
{
	static const uint32_t cps[] = { 0x01, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff,
					0x10000, 0x10ffff };
	(void)state;

	for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
		char buf[TEXT_UTF8_MAX + 1] = { 0 };
		size_t n = text_utf8_encode(cps[i], buf), len;

		assert_int_equal(n, cps[i] < 0x80 ? 1 : cps[i] < 0x800 ? 2 : cps[i] < 0x10000 ? 3 : 4);
		assert_int_equal(text_utf8_seq_len(buf), n);
		assert_int_equal(text_utf8_decode(buf, &len), cps[i]);
		assert_int_equal(len, n);
		assert_true(text_utf8_valid(buf));
	}
}

/* Each invalid form decodes as U+FFFD of one byte, as Go's utf8.DecodeRuneInString does. */
static void test_utf8_invalid_is_one_replacement_byte(void **state)
{
	static const char *const bad[] = {
		"\x80",             /* stray continuation byte */
		"\xbf",             /* another */
		"\xc0\x80",         /* overlong NUL */
		"\xc1\xbf",         /* overlong 0x7f */
		"\xe0\x9f\xbf",     /* overlong 0x7ff */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xed\xbf\xbf",     /* surrogate U+DFFF */
		"\xf0\x8f\xbf\xbf", /* overlong 0xffff */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80", /* lead byte past f4 */
		"\xff",
		"\xc3",             /* truncated by the NUL */
		"\xe2\x82",         /* truncated */
		"\xf0\x9f\x98",     /* truncated */
		"\xe2(\xa1",        /* continuation missing */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = 0;

		assert_int_equal(text_utf8_seq_len(bad[i]), 0);
		assert_int_equal(text_utf8_decode(bad[i], &len), TEXT_REPLACEMENT);
		assert_int_equal(len, 1);
		assert_int_equal(text_utf8_char_len(bad[i]), 1);
		assert_false(text_utf8_valid(bad[i]));
		assert_int_equal(text_utf8_valid_prefix(bad[i]), 0);
	}
}

static void test_utf8_valid_prefix(void **state)
{
	size_t len;
	(void)state;

	assert_int_equal(text_utf8_valid_prefix(""), 0);
	assert_true(text_utf8_valid(""));
	assert_int_equal(text_utf8_valid_prefix("abc"), 3);
	assert_int_equal(text_utf8_valid_prefix("h\xc3\xa9llo \xe2\x82\xac"), 10);
	assert_int_equal(text_utf8_valid_prefix("ab\xc3\xa9\xff" "cd"), 4);
	assert_int_equal(text_utf8_valid_prefix("\xf0\x9f\x98\x80\xed\xa0\x80"), 4);
	/* A real U+FFFD is valid, unlike the byte it stands in for. */
	assert_true(text_utf8_valid(TEXT_REPLACEMENT_UTF8));
	assert_int_equal(text_utf8_decode(TEXT_REPLACEMENT_UTF8, &len), TEXT_REPLACEMENT);
	assert_int_equal(len, 3);
	/* At the NUL: one byte, U+0000. */
	assert_int_equal(text_utf8_decode("", &len), 0);
	assert_int_equal(len, 1);
}

static void test_hex_digits_and_bytes(void **state)
{
	(void)state;

	for (int c = 0; c < 256; c++) {
		const char *lower = "0123456789abcdef", *upper = "0123456789ABCDEF";
		const char *l = c ? strchr(lower, c) : NULL, *u = c ? strchr(upper, c) : NULL;
		int want = l ? (int)(l - lower) : u ? (int)(u - upper) : -1;

		assert_int_equal(text_hex_digit(c), want);
	}
	assert_int_equal(text_hex_digit(-1), -1);
	assert_int_equal(text_hex_byte("00"), 0);
	assert_int_equal(text_hex_byte("fF"), 255);
	assert_int_equal(text_hex_byte("a5zz"), 0xa5);
	assert_int_equal(text_hex_byte("g0"), -1);
	assert_int_equal(text_hex_byte("0g"), -1);
	assert_int_equal(text_hex_byte("0"), -1); /* stops at the NUL */
	assert_int_equal(text_hex_byte(""), -1);
}

static void test_hex_encode_lowercase(void **state)
{
	static const unsigned char bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(bytes) + 1];
	(void)state;

	memset(out, 'x', sizeof(out));
	text_hex_encode(bytes, sizeof(bytes), out);
	assert_string_equal(out, "00017f80abff");
	text_hex_encode(bytes, 0, out);
	assert_string_equal(out, "");
	for (size_t i = 0; i < sizeof(bytes); i++) {
		char two[3];

		text_hex_encode(bytes + i, 1, two);
		assert_int_equal(text_hex_byte(two), bytes[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_round_trip_boundaries),
		cmocka_unit_test(test_utf8_invalid_is_one_replacement_byte),
		cmocka_unit_test(test_utf8_valid_prefix),
		cmocka_unit_test(test_hex_digits_and_bytes),
		cmocka_unit_test(test_hex_encode_lowercase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
