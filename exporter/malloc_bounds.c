#include "exporter/malloc_bounds.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "common/metrics.h"

static atomic_uint_fast64_t trims, trimmed_bytes, free_bytes;
static atomic_uint_fast64_t free_at_trim; /* free bytes right after the last trim, or the fewest since */

/* glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB), and its trim
 * threshold to twice that: after libbpf frees the kernel BTF (5 MiB) at load, the unwind table and
 * kallsyms buffers would come from the heap and stay resident once freed. A fixed threshold keeps big
 * temporary buffers in their own mappings, which free() unmaps. */
void malloc_bounds_init(void)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, MALLOC_ARENAS);
}

/* Resident bytes of this process; 0 when unreadable. */
static uint64_t resident_bytes(void)
{
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void malloc_bounds_trim(void)
{
	struct mallinfo2 mi = mallinfo2();
	uint64_t base = atomic_load(&free_at_trim);

	atomic_store(&free_bytes, mi.fordblks);
	if (mi.fordblks < base)
		atomic_store(&free_at_trim, mi.fordblks); /* reused: what the next drains free counts anew */
	if (mi.fordblks <= base + MALLOC_TRIM_SLACK)
		return;
	/* Trimmed pages still count as free: the next trim waits for as much freed again. */
	atomic_store(&free_at_trim, mi.fordblks);
	uint64_t before = resident_bytes();
	malloc_trim(0);
	uint64_t after = resident_bytes();
	atomic_fetch_add(&trims, 1);
	if (before > after)
		atomic_fetch_add(&trimmed_bytes, before - after);
}

void malloc_bounds_write_metrics(struct metrics_buf *b, void *unused)
{
	(void)unused;
	metrics_gauge(b, "anorak_malloc_arenas_max", "Arenas malloc may use (fixed).", MALLOC_ARENAS);
	metrics_gauge(b, "anorak_malloc_free_bytes",
		      "Bytes free in malloc's heaps after the last drain (resident until trimmed or reused).",
		      atomic_load(&free_bytes));
	metrics_counter(b, "anorak_malloc_trims_total",
			"Trims after drains that freed more than 1 MiB in malloc's heaps since the last (the bound hit).",
			atomic_load(&trims));
	metrics_counter(b, "anorak_malloc_trimmed_bytes_total", "Resident bytes those trims gave back.",
			atomic_load(&trimmed_bytes));
}
