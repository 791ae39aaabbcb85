/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The trace_id and span_id labels of a custom-labels v1 label set (Polar Signals, read by Parca Agent):
 * which labels give the ids and when the set is invalid. Shared by the BPF reader (tracectx.bpf.c),
 * which reads the labels of the sampled thread one by one and hands them here, and the unit tests.
 *
 * On duplicate keys the first wins, whatever it holds: a first trace_id or span_id that is not hex of
 * its id's length (32 and 16 characters) makes the set invalid, and a valid duplicate after it does not
 * stand in for it. An invalid set gives neither id.
 */
#ifndef ANORAK_CUSTOM_LABELS_H
#define ANORAK_CUSTOM_LABELS_H

#ifndef __bpf__
#include <linux/types.h>
#include <stdbool.h>
#include <sys/cdefs.h>
#endif

#include "profiler.h"

/* custom-labels v1 layout, LP64: a label with key.buf NULL is ignored. */
struct custom_string {
	__u64 len;
	const __u8 *buf;
};

struct custom_label {
	struct custom_string key, value;
};

struct custom_label_set {
	const struct custom_label *storage;
	__u64 count, capacity;
};

enum custom_label_key {
	CUSTOM_LABEL_OTHER = 0,
	CUSTOM_LABEL_TRACE_ID,
	CUSTOM_LABEL_SPAN_ID,
};

/* "trace_id" and "span_id" as little-endian words, zero-padded to 8 bytes. */
#define CUSTOM_KEY_TRACE_ID_WORD 0x64695f6563617274ULL
#define CUSTOM_KEY_SPAN_ID_WORD 0x0064695f6e617073ULL

/* What a label set gave so far, label by label in order. */
struct custom_ids {
	__u8 trace_id[TRACE_ID_LEN];
	__u8 span_id[SPAN_ID_LEN];
	__u8 has_trace, has_span; /* the first label of the key was met: later ones are duplicates */
	__u8 invalid;             /* a first trace_id or span_id was not an id */
};

enum custom_ids_result {
	CUSTOM_IDS_NONE = 0, /* neither key: the thread publishes no trace context */
	CUSTOM_IDS_VALID,
	CUSTOM_IDS_INVALID,
};

/* A W3C trace id of all zeros means no trace. */
static __always_inline bool trace_id_is_zero(const __u8 *id)
{
	for (int i = 0; i < TRACE_ID_LEN; i++)
		if (id[i])
			return false;
	return true;
}

/* The key of a label from its length and its first bytes as a little-endian word, zero past len (the
 * reader only reads keys of 7 and 8 bytes: the lengths of the two it looks for). */
static __always_inline int custom_label_key(__u64 len, __u64 word)
{
	if (len == 8 && word == CUSTOM_KEY_TRACE_ID_WORD)
		return CUSTOM_LABEL_TRACE_ID;
	if (len == 7 && word == CUSTOM_KEY_SPAN_ID_WORD)
		return CUSTOM_LABEL_SPAN_ID;
	return CUSTOM_LABEL_OTHER;
}

/* The length of a valid value of key: two hex characters per byte of the id. */
static __always_inline __u32 custom_label_value_len(int key)
{
	return key == CUSTOM_LABEL_TRACE_ID ? 2 * TRACE_ID_LEN : 2 * SPAN_ID_LEN;
}

/* Whether a label of key is to be read: the first of its key decides, duplicates are not looked at. */
static __always_inline bool custom_ids_wants(const struct custom_ids *ids, int key)
{
	if (key == CUSTOM_LABEL_TRACE_ID)
		return !ids->has_trace;
	if (key == CUSTOM_LABEL_SPAN_ID)
		return !ids->has_span;
	return false;
}

/* Each hex character's value plus one; 0 for any other byte. A table, not comparisons: the reader's
 * decode then has no branch per character for the verifier to follow (it followed 3 per character and
 * the decode was half of the instructions it checked). */
static const __u8 custom_hex_value[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9,
	['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11,
	['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* Decodes 2 * n hex characters of text into out (n at most TRACE_ID_LEN); false on any other character.
 * Another character's value minus one is 0xff, which the high nibble of bad keeps. */
static __always_inline bool custom_hex_decode(const __u8 *text, __u8 *out, int n)
{
	__u8 bad = 0;

	for (int i = 0; i < TRACE_ID_LEN && i < n; i++) {
		__u8 hi = custom_hex_value[text[2 * i]] - 1, lo = custom_hex_value[text[2 * i + 1]] - 1;

		bad |= hi | lo;
		out[i] = (__u8)(hi << 4 | lo);
	}
	return !(bad & 0xf0);
}

/* Takes the label custom_ids_wants: its value is len bytes long, and text holds them when len is
 * custom_label_value_len(key) (otherwise text is not looked at). */
static __always_inline void custom_ids_take(struct custom_ids *ids, int key, __u64 len, const __u8 *text)
{
	bool ok;

	if (key == CUSTOM_LABEL_TRACE_ID) {
		ids->has_trace = 1;
		ok = len == 2 * TRACE_ID_LEN && custom_hex_decode(text, ids->trace_id, TRACE_ID_LEN);
	} else {
		ids->has_span = 1;
		ok = len == 2 * SPAN_ID_LEN && custom_hex_decode(text, ids->span_id, SPAN_ID_LEN);
	}
	if (!ok)
		ids->invalid = 1;
}

/* The verdict on the set once its labels are read. A span_id without a trace_id, or a zero trace id,
 * is invalid too. */
static __always_inline int custom_ids_result(const struct custom_ids *ids)
{
	if (!ids->has_trace && !ids->has_span)
		return CUSTOM_IDS_NONE;
	if (ids->invalid || !ids->has_trace || trace_id_is_zero(ids->trace_id))
		return CUSTOM_IDS_INVALID;
	return CUSTOM_IDS_VALID;
}

#endif
