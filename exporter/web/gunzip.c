#include "exporter/web/gunzip.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

int gunzip_bounded(const void *in, size_t len, size_t max, void **out, size_t *outlen)
{
	z_stream zs = { 0 };
	/* One byte past the bound tells a body of exactly max bytes from a longer one. */
	unsigned char *buf = malloc(max + 1);
	int ret, err = 0;

	if (!buf)
		return -ENOMEM;
	if (len > UINT_MAX || max + 1 > UINT_MAX || inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		free(buf);
		return len > UINT_MAX ? -EFBIG : -ENOMEM;
	}
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (unsigned)len;
	zs.next_out = buf;
	zs.avail_out = (unsigned)(max + 1);
	ret = inflate(&zs, Z_FINISH);
	if (zs.total_out > max)
		err = -EFBIG;
	else if (ret == Z_STREAM_END && zs.avail_in == 0)
		err = 0;
	else if (ret == Z_MEM_ERROR)
		err = -ENOMEM;
	else
		err = -EINVAL; /* Z_DATA_ERROR, truncated (Z_BUF_ERROR with room left) or trailing bytes */
	if (!err) {
		*out = buf;
		*outlen = zs.total_out;
	} else {
		free(buf);
	}
	inflateEnd(&zs);
	return err;
}
