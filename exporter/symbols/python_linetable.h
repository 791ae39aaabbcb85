/*
 * CPython line tables: which source line an instruction of a code object belongs to.
 * 3.10: co_linetable, pairs of (bytecode byte delta, signed line delta), -128 meaning "no line"
 * (Objects/lnotab_notes.txt of 3.10). 3.11+: the location table (Objects/locations.md): entries of
 * 1..8 code units, each a header byte (bit 7 set, code in bits 3-6, length - 1 in bits 0-2) and the
 * code's varint payload. Tables come from other processes' memory: every read is bounded by len.
 */
#ifndef ANORAK_PYTHON_LINETABLE_H
#define ANORAK_PYTHON_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Line of the instruction at code unit lasti (2-byte units from the start of the bytecode), from the
 * table of a code object whose first line is firstline. -ENOENT when the table gives it no line (or
 * ends before it), -EINVAL when the table is malformed before it.
 */
int python_line_310(const uint8_t *table, size_t len, int32_t firstline, uint32_t lasti);
int python_line_311(const uint8_t *table, size_t len, int32_t firstline, uint32_t lasti);

#endif
