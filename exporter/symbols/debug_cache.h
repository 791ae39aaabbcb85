/*
 * Debug files fetched from debuginfod, kept on disk as DIR/<build id>.debug under a byte bound; the
 * least recently used go first. A file's mtime is its last use, so the order survives a restart.
 * Thread-safe.
 */
#ifndef ANORAK_DEBUG_CACHE_H
#define ANORAK_DEBUG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct debug_cache;

struct debug_cache_stats {
	uint64_t bytes, max_bytes, hits, misses, evictions, refused_too_large;
	size_t files;
};

/* Creates dir (mode 0700) and its parents when missing, takes in the debug files already there (oldest use first) and
 * evicts down to max_bytes. Other names in dir are left alone and not counted. */
int debug_cache_open(const char *dir, uint64_t max_bytes, struct debug_cache **out);
void debug_cache_free(struct debug_cache *c);

/* Read-only fd of the debug file for build_id (lowercase hex), marked as just used; -ENOENT. */
int debug_cache_get(struct debug_cache *c, const char *build_id);

/* Moves the file at src (same file system as the cache, bytes long) in as build_id's debug file,
 * evicting least recently used files first. -EFBIG (src removed) when it alone exceeds the bound. */
int debug_cache_put(struct debug_cache *c, const char *build_id, const char *src, uint64_t bytes);

void debug_cache_stats(struct debug_cache *c, struct debug_cache_stats *out);

/* Whether build_id is one as the cache names files: 2 to 128 lowercase hex digits. */
bool debug_cache_valid_build_id(const char *build_id);

#endif
