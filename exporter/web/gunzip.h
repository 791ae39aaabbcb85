/* Request bodies sent gzip'd (Connect's Content-Encoding: gzip), inflated within a bound. */
#ifndef ANORAK_GUNZIP_H
#define ANORAK_GUNZIP_H

#include <stddef.h>

/* Inflates the gzip stream in[0..len) into *out (malloc'd, *outlen bytes). -EFBIG when it inflates to
 * more than max bytes (nothing more is inflated), -EINVAL when it is not one whole gzip stream (bad
 * header or checksum, truncated, or bytes after its end), -ENOMEM. */
int gunzip_bounded(const void *in, size_t len, size_t max, void **out, size_t *outlen);

#endif
