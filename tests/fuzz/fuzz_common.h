/* Helpers shared by the fuzz targets: the parsers read FILE streams, fds and paths, so the fuzzed bytes
 * are handed to them the same way. */
#ifndef ANORAK_FUZZ_COMMON_H
#define ANORAK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A read-only stream over the bytes (NUL bytes included), or NULL. fmemopen refuses size 0. */
static inline FILE *fuzz_stream(const uint8_t *data, size_t size)
{
	static const char empty[1];

	return size ? fmemopen((void *)data, size, "r") : fmemopen((void *)empty, 1, "r");
}

/* The bytes as a NUL-terminated string (embedded NULs end it early, as in a C API); free it. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* A memfd holding the bytes, at offset 0; -1 on failure. */
static inline int fuzz_memfd(const char *name, const uint8_t *data, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (size && pwrite(fd, data, size, 0) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Up to max numbers for lookups: the hex number that starts each line of the input (symbol and region
 * starts, as written), then 8-byte words of the raw input. Returns how many. */
static inline size_t fuzz_addresses(const uint8_t *data, size_t size, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < size && n < max; i++) {
		char num[20];
		size_t len = 0;

		if (i && data[i - 1] != '\n')
			continue;
		if (size - i > 2 && data[i] == '0' && (data[i + 1] | 0x20) == 'x')
			i += 2;
		while (i + len < size && len < sizeof(num) - 1 &&
		       strchr("0123456789abcdefABCDEF", data[i + len]) && data[i + len])
			len++;
		if (!len)
			continue;
		memcpy(num, data + i, len);
		num[len] = '\0';
		out[n++] = strtoull(num, NULL, 16);
	}
	for (size_t i = 0; i + 8 <= size && n < max; i += 8)
		memcpy(&out[n++], data + i, 8);
	return n;
}

/* Invariants are checked with this rather than assert(), which NDEBUG builds drop. */
#define FUZZ_CHECK(cond)                                                                      \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                              \
		}                                                                             \
	} while (0)

#endif
