/* Gzip'd request bodies: inflated whole within the bound; past the bound, truncated, corrupted, trailing
 * bytes or not gzip are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include "exporter/web/gunzip.h"

/* gzip (windowBits 16 + 15) or, with zlib_format, a zlib stream. */
static size_t compress_to(const void *in, size_t len, uint8_t *out, size_t cap, bool zlib_format)
{
	z_stream zs = { 0 };

	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, zlib_format ? 15 : 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (uint8_t *)in;
	zs.avail_in = (unsigned)len;
	zs.next_out = out;
	zs.avail_out = (unsigned)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	size_t n = zs.total_out;
	deflateEnd(&zs);
	return n;
}

static uint8_t gz[1 << 16];

static void test_round_trip_and_bound(void **state)
{
	(void)state;
	uint8_t body[4096];
	void *out;
	size_t outlen, n;

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7 % 251);
	n = compress_to(body, sizeof(body), gz, sizeof(gz), false);
	assert_int_equal(gunzip_bounded(gz, n, sizeof(body), &out, &outlen), 0);
	assert_int_equal(outlen, sizeof(body));
	assert_memory_equal(out, body, sizeof(body));
	free(out);
	/* One byte over the bound. */
	assert_int_equal(gunzip_bounded(gz, n, sizeof(body) - 1, &out, &outlen), -EFBIG);

	/* An empty message is a valid body. */
	n = compress_to("", 0, gz, sizeof(gz), false);
	assert_int_equal(gunzip_bounded(gz, n, 16, &out, &outlen), 0);
	assert_int_equal(outlen, 0);
	free(out);
}

static void test_bomb(void **state)
{
	(void)state;
	const size_t big = 16 << 20;
	uint8_t *zeros = calloc(big, 1);
	void *out;
	size_t outlen, n;

	assert_non_null(zeros);
	n = compress_to(zeros, big, gz, sizeof(gz), false);
	assert_true(n < 32 * 1024);
	assert_int_equal(gunzip_bounded(gz, n, 1 << 20, &out, &outlen), -EFBIG);
	free(zeros);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char text[] = "querier.v1.QuerierService/LabelNames";
	void *out;
	size_t outlen, n;

	n = compress_to(text, sizeof(text), gz, sizeof(gz), false);
	assert_int_equal(gunzip_bounded(gz, n - 1, 1024, &out, &outlen), -EINVAL); /* truncated */
	assert_int_equal(gunzip_bounded(gz, 5, 1024, &out, &outlen), -EINVAL);
	gz[n] = 'x';
	assert_int_equal(gunzip_bounded(gz, n + 1, 1024, &out, &outlen), -EINVAL); /* trailing bytes */
	gz[n - 8] ^= 1; /* the CRC-32 */
	assert_int_equal(gunzip_bounded(gz, n, 1024, &out, &outlen), -EINVAL);
	assert_int_equal(gunzip_bounded(text, sizeof(text), 1024, &out, &outlen), -EINVAL); /* not compressed */
	assert_int_equal(gunzip_bounded("", 0, 1024, &out, &outlen), -EINVAL);
	n = compress_to(text, sizeof(text), gz, sizeof(gz), true);
	assert_int_equal(gunzip_bounded(gz, n, 1024, &out, &outlen), -EINVAL); /* zlib, not gzip */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_bound),
		cmocka_unit_test(test_bomb),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
