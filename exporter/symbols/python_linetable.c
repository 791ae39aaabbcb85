#include "exporter/symbols/python_linetable.h"

#include <errno.h>
#include <stdbool.h>

#define LNOTAB_NO_LINE (-128)

int python_line_310(const uint8_t *table, size_t len, int32_t firstline, uint32_t lasti)
{
	uint64_t target = (uint64_t)lasti * 2, start = 0;
	int64_t line = firstline;

	for (size_t i = 0; i + 1 < len; i += 2) {
		uint64_t end = start + table[i];
		int8_t delta = (int8_t)table[i + 1];

		if (delta != LNOTAB_NO_LINE)
			line += delta;
		if (target >= start && target < end) {
			if (delta == LNOTAB_NO_LINE || line < 0 || line > INT32_MAX)
				return -ENOENT;
			return (int)line;
		}
		start = end;
	}
	return len & 1 ? -EINVAL : -ENOENT;
}

/* The location table's entry kinds (Objects/locations.md). */
enum {
	LOC_SHORT_MAX = 9,   /* 0-9: short form, same line, one column byte */
	LOC_ONE_LINE_0 = 10, /* 10-12: line delta code - 10, two column bytes */
	LOC_ONE_LINE_2 = 12,
	LOC_NO_COLUMN = 13,  /* line delta svarint */
	LOC_LONG = 14,       /* line delta svarint, end line, column, end column varints */
	LOC_NONE = 15,       /* no location */
};

struct loc_reader {
	const uint8_t *p;
	size_t len, pos;
};

/* An unsigned varint: 6-bit chunks, least significant first, bit 6 set while more follow. */
static bool read_varint(struct loc_reader *r, uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 6) {
		if (r->pos >= r->len)
			return false;
		uint8_t b = r->p[r->pos++];

		v |= (uint64_t)(b & 63) << shift;
		if (!(b & 64)) {
			*out = v;
			return true;
		}
	}
	return false;
}

static bool read_svarint(struct loc_reader *r, int64_t *out)
{
	uint64_t v;

	if (!read_varint(r, &v))
		return false;
	*out = v & 1 ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
	return true;
}

static bool skip(struct loc_reader *r, size_t n)
{
	if (r->len - r->pos < n)
		return false;
	r->pos += n;
	return true;
}

/* Reads the payload of an entry of kind code, adding its line delta to *line; false when malformed. */
static bool read_entry(struct loc_reader *r, unsigned code, int64_t *line)
{
	int64_t delta = 0;
	uint64_t ignored;

	if (code <= LOC_SHORT_MAX)
		return skip(r, 1);
	if (code <= LOC_ONE_LINE_2) {
		*line += code - LOC_ONE_LINE_0;
		return skip(r, 2);
	}
	if (code == LOC_NONE)
		return true;
	if (!read_svarint(r, &delta))
		return false;
	/* Deltas beyond any real file only come from garbage: cap so the sum never overflows. */
	if (delta > INT32_MAX || delta < -(int64_t)INT32_MAX)
		return false;
	*line += delta;
	if (code == LOC_LONG)
		return read_varint(r, &ignored) && read_varint(r, &ignored) && read_varint(r, &ignored);
	return true;
}

int python_line_311(const uint8_t *table, size_t len, int32_t firstline, uint32_t lasti)
{
	struct loc_reader r = { .p = table, .len = len };
	int64_t line = firstline;
	uint64_t start = 0;

	while (r.pos < r.len) {
		uint8_t head = r.p[r.pos++];
		unsigned code = (head >> 3) & 15;
		uint64_t end = start + (head & 7) + 1;

		if (!(head & 0x80) || !read_entry(&r, code, &line))
			return -EINVAL;
		if (lasti >= start && lasti < end) {
			if (code == LOC_NONE || line < 0 || line > INT32_MAX)
				return -ENOENT;
			return (int)line;
		}
		start = end;
	}
	return -ENOENT;
}
