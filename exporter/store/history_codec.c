#include "exporter/store/history_codec.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX_BYTES (7 * 10 + 24)

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -EIO;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -EIO;
}

int history_window_encode(const struct dict *records, const uint64_t *counts, char **out, size_t *outlen)
{
	size_t raw_cap = (size_t)records->n * RECORD_MAX_BYTES + 10, len = 0;
	uint8_t *raw = malloc(raw_cap);
	int err = 0;

	if (!raw)
		return -ENOMEM;
	len += put_varint(raw, records->n);
	for (uint32_t i = 0; i < records->n; i++) {
		const struct rec_key *k = dict_blob(records, i).data;

		len += put_varint(raw + len, k->stack);
		len += put_varint(raw + len, k->labels);
		len += put_varint(raw + len, k->pid);
		len += put_varint(raw + len, k->tid);
		len += put_varint(raw + len, k->frequency);
		len += put_varint(raw + len, counts[i]);
		/* The kind shares the traced varint: CPU records keep their size. */
		len += put_varint(raw + len, k->traced | k->kind << 1);
		if (k->traced) {
			memcpy(raw + len, k->trace_id, sizeof(k->trace_id));
			memcpy(raw + len + sizeof(k->trace_id), k->span_id, sizeof(k->span_id));
			len += sizeof(k->trace_id) + sizeof(k->span_id);
		}
	}
	size_t clen = snappy_max_compressed_length(len);
	char *c = malloc(clen);
	if (!c || snappy_compress((const char *)raw, len, c, &clen) != SNAPPY_OK) {
		free(c);
		err = -ENOMEM;
	} else {
		char *shrunk = realloc(c, clen);

		*out = shrunk ? shrunk : c;
		*outlen = clen;
	}
	free(raw);
	return err;
}

int history_window_decode(const char *data, size_t datalen, uint32_t nrecords, struct history_record **out)
{
	size_t rawlen;
	uint8_t *raw;
	struct history_record *recs = NULL;
	uint64_t n = 0, v[7];
	int err = -EIO;

	if (snappy_uncompressed_length(data, datalen, &rawlen) != SNAPPY_OK)
		return -EIO;
	raw = malloc(rawlen ? rawlen : 1);
	if (!raw)
		return -ENOMEM;
	if (snappy_uncompress(data, datalen, (char *)raw, &rawlen) != SNAPPY_OK)
		goto out;
	const uint8_t *p = raw, *end = raw + rawlen;
	if (get_varint(&p, end, &n) || n != nrecords)
		goto out;
	recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs) {
		err = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		struct history_record *r = &recs[i];

		for (int f = 0; f < 7; f++)
			if (get_varint(&p, end, &v[f]))
				goto out;
		*r = (struct history_record){ .stack = v[0], .labels = v[1], .pid = v[2], .tid = v[3],
					      .frequency = v[4], .count = v[5], .traced = (v[6] & 1) != 0,
					      .kind = (uint8_t)(v[6] >> 1) };
		if (r->traced) {
			if (end - p < (ptrdiff_t)(sizeof(r->trace_id) + sizeof(r->span_id)))
				goto out;
			memcpy(r->trace_id, p, sizeof(r->trace_id));
			memcpy(r->span_id, p + sizeof(r->trace_id), sizeof(r->span_id));
			p += sizeof(r->trace_id) + sizeof(r->span_id);
		}
	}
	err = 0;
	*out = recs;
	recs = NULL;
out:
	free(recs);
	free(raw);
	return err;
}
