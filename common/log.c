#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_msg(enum log_level level, const char *msg, const char *kvfmt, ...)
{
	if (level < min_level)
		return;

	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

	/* One fprintf per line keeps lines from different threads whole (stdio locks the stream). */
	char line[2048];
	int n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s msg=\"%s\"", when,
			 ts.tv_nsec / 1000000, level_names[level], msg);
	if (kvfmt && n > 0 && (size_t)n < sizeof(line) - 1) {
		va_list ap;
		line[n++] = ' ';
		va_start(ap, kvfmt);
		vsnprintf(line + n, sizeof(line) - n, kvfmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "%s\n", line);
}
