/*
 * Bounds on what glibc's malloc keeps of freed memory: one arena per thread at most by default (8 x
 * CPUs of them; civetweb alone runs a worker per connection), a trim threshold that grows with the
 * largest block ever freed, and free holes between live blocks that stay resident until trimmed.
 */
#ifndef ANORAK_MALLOC_BOUNDS_H
#define ANORAK_MALLOC_BOUNDS_H

struct metrics_buf;

/* Arenas the daemon's threads share: the drain and event threads do nearly all the allocating and
 * the web workers serve one scrape at a time; more arenas only keep more freed memory apart. */
#define MALLOC_ARENAS 2
/* Growth of the free bytes in malloc's heaps since the last trim above which a drain ends with a trim
 * (the top of a heap free() already returns): a trim walks every free chunk, below this it gains
 * little. */
#define MALLOC_TRIM_SLACK (1u << 20)

/* At start, before any thread: the arena count and fixed mmap and trim thresholds. */
void malloc_bounds_init(void);
/* After a drain: gives free pages back when the drains since the last trim freed more than
 * MALLOC_TRIM_SLACK. Thread-safe. */
void malloc_bounds_trim(void);
/* anorak_malloc_arenas_max, anorak_malloc_free_bytes, anorak_malloc_trims_total,
 * anorak_malloc_trimmed_bytes_total. */
void malloc_bounds_write_metrics(struct metrics_buf *b, void *unused);

#endif
