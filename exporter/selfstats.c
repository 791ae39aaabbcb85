#include "exporter/selfstats.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/metrics.h"

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
}

/* RSS pages and start time (in clock ticks after boot) from /proc/self/stat. */
static int read_stat(long *rss_pages, unsigned long long *start_ticks)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the comm, which may hold spaces: start after its closing parenthesis. */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu "
			 "%*u %ld", start_ticks, rss_pages) != 2)
		return -1;
	return 0;
}

static double boot_time_seconds(void)
{
	struct timespec real, boot;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (real.tv_sec - boot.tv_sec) + (real.tv_nsec - boot.tv_nsec) / 1e9;
}

void selfstats_write_metrics(struct metrics_buf *b, void *unused)
{
	struct rusage ru;
	long rss_pages;
	unsigned long long start_ticks;

	(void)unused;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		metrics_counter(b, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
				ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
					(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
		metrics_gauge(b, "process_max_resident_memory_bytes", "Peak resident memory size in bytes.",
			      ru.ru_maxrss * 1024.0);
	}
	if (read_stat(&rss_pages, &start_ticks) == 0) {
		metrics_gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
			      (double)rss_pages * sysconf(_SC_PAGESIZE));
		metrics_gauge(b, "process_start_time_seconds",
			      "Start time of the process since unix epoch in seconds.",
			      boot_time_seconds() + (double)start_ticks / sysconf(_SC_CLK_TCK));
	}
	long fds = open_fds();
	if (fds >= 0)
		metrics_gauge(b, "process_open_fds", "Number of open file descriptors.", fds);
}
