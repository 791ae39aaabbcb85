/*
 * Debug files from debuginfod servers (elfutils' libdebuginfod), for binaries with no .symtab and no
 * local debug file. Fetches run on worker threads; callers only ever look at the on-disk cache and
 * queue a request, so symbolization never waits for the network. Only build ids leave the node.
 */
#ifndef ANORAK_DEBUGINFOD_H
#define ANORAK_DEBUGINFOD_H

#include <stdint.h>

struct metrics_buf;
struct debuginfod;

struct debuginfod_opts {
	const char *urls;          /* space-separated server URLs, as DEBUGINFOD_URLS; NULL: that variable */
	const char *cache_dir;     /* fetched debug files, bounded by cache_max_bytes */
	uint64_t cache_max_bytes;
	uint64_t elf_max_bytes;    /* larger answers are refused, as every ELF file the daemon reads */
	unsigned timeout_seconds;  /* one fetch, from request to last byte */
	unsigned max_fetches;      /* in flight at once, one worker thread each */
};

/* *out is NULL (and 0 returned) when no server is configured. Sets libdebuginfod's environment
 * variables (it reads no other configuration), so it must run before other threads start. */
int debuginfod_new(const struct debuginfod_opts *opts, struct debuginfod **out);
/* Cancels fetches in flight and waits for the workers. */
void debuginfod_free(struct debuginfod *d);

/* Read-only fd of build_id's debug file when it is in the cache (verified when it was fetched);
 * otherwise queues a fetch, unless the servers answered recently, and returns -EAGAIN. *stamp (0 at
 * first) lets repeated calls return -EAGAIN at once until a fetch has ended or a minute has passed. */
int debuginfod_poll(struct debuginfod *d, const char *build_id, uint64_t *stamp);

/* anorak_debuginfod_*: fetches by result, bytes fetched, cache size, hits and evictions. */
void debuginfod_write_metrics(struct metrics_buf *b, void *debuginfod);

#endif
