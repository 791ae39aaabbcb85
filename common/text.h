/* Text helpers both sides share: UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF) and hex. Strings are NUL-terminated, so a decoder may look at the byte after any non-NUL. */
#ifndef ANORAK_TEXT_H
#define ANORAK_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* U+FFFD, what an invalid byte decodes as (Go's utf8.RuneError). */
#define TEXT_REPLACEMENT 0xfffdu
#define TEXT_REPLACEMENT_UTF8 "\xef\xbf\xbd"
/* Most bytes text_utf8_encode writes. */
#define TEXT_UTF8_MAX 4

/* Length (1..4) of the valid UTF-8 sequence at s, 0 when s does not start one (or is at the NUL). */
size_t text_utf8_seq_len(const char *s);

/* The code point at s and its length in *len; an invalid byte is U+FFFD of length 1, as Go decodes it. */
uint32_t text_utf8_decode(const char *s, size_t *len);

/* Bytes text_utf8_decode consumes at s: the sequence's, or 1 for an invalid byte (or the NUL). */
static inline size_t text_utf8_char_len(const char *s)
{
	return text_utf8_seq_len(s) ?: 1;
}

/* Bytes of the longest valid UTF-8 prefix of s: s is valid when s[result] is the NUL. */
size_t text_utf8_valid_prefix(const char *s);

static inline bool text_utf8_valid(const char *s)
{
	return !s[text_utf8_valid_prefix(s)];
}

/* Writes cp (at most U+10FFFF) as 1..4 bytes to out, no NUL; returns how many. */
size_t text_utf8_encode(uint32_t cp, char *out);

/* The value of one hex digit of either case, -1 when c is not one. */
int text_hex_digit(int c);

/* The byte two hex digits at s spell, -1 when they do not. */
int text_hex_byte(const char *s);

/* Lowercase hex of n bytes into out (2 * n + 1 bytes, NUL-terminated). */
void text_hex_encode(const void *bytes, size_t n, char *out);

#endif
