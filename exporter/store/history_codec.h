/* A closed window of the history ring as it is kept: its records as varints, one after another, then
 * snappy-compressed (which finds the repetition between records). */
#ifndef ANORAK_HISTORY_CODEC_H
#define ANORAK_HISTORY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "exporter/store/history.h"
#include "exporter/store/history_dict.h"

/* A record of the open window: samples with equal keys add their counts. */
struct rec_key {
	uint32_t stack, labels, pid, tid, frequency, traced, kind;
	uint8_t trace_id[16], span_id[8];
};

/* records holds rec_key blobs, counts their counts; *out is malloc'd. */
int history_window_encode(const struct dict *records, const uint64_t *counts, char **out, size_t *outlen);
/* The nrecords records of data (malloc'd); -EIO when data is not what encode made. */
int history_window_decode(const char *data, size_t datalen, uint32_t nrecords, struct history_record **out);

#endif
