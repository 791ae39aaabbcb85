/*
 * Prometheus text exposition. Each module keeps its own counters (atomics) and registers a writer
 * that prints its families into a buffer when /metrics is scraped.
 */
#ifndef ANORAK_METRICS_H
#define ANORAK_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_buf {
	char *data;
	size_t len, cap;
	bool failed; /* an allocation failed: the text is incomplete */
};

void metrics_buf_free(struct metrics_buf *b);
void metrics_printf(struct metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Escapes a label value (\\, \", \n) into out; returns out. */
char *metrics_escape_label(const char *value, char *out, size_t outlen);

/* A family of one unlabelled series, its name written once: HELP, TYPE and the value. */
void metrics_counter(struct metrics_buf *b, const char *name, const char *help, double value);
void metrics_gauge(struct metrics_buf *b, const char *name, const char *help, double value);

/* A family of labelled series, its name written once: metrics_series_begin writes HELP and TYPE and
 * returns the handle each series of the family is then written through. */
struct metrics_series {
	struct metrics_buf *b;
	const char *name;
};
struct metrics_series metrics_series_begin(struct metrics_buf *b, const char *name, const char *type,
					   const char *help);
/* One series: "name{labels} value"; labels is preformatted (k="v",k2="v2") or NULL. */
void metrics_series_value(struct metrics_series s, const char *labels, double value);
/* One series whose labels are formatted (values escaped by the caller). */
void metrics_series_valuef(struct metrics_series s, double value, const char *labels_fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A histogram with fixed upper bounds (seconds, bytes...). */
struct metrics_histogram {
	const double *bounds; /* ascending, without +Inf */
	size_t nbounds;
	uint64_t *buckets;    /* nbounds + 1, not cumulative */
	double sum;
	uint64_t count;
	pthread_mutex_t lock;
};
int metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds);
void metrics_histogram_destroy(struct metrics_histogram *h);
void metrics_histogram_observe(struct metrics_histogram *h, double v);
/* Writes the _bucket/_sum/_count series, with HELP/TYPE. */
void metrics_histogram_write(struct metrics_buf *b, const char *name, const char *help,
			     struct metrics_histogram *h);
/* One histogram of a family begun with metrics_series_begin(..., "histogram", ...). */
void metrics_series_histogram(struct metrics_series s, const char *labels, struct metrics_histogram *h);

/* Registry of writers, called in registration order by metrics_render. */
typedef void (*metrics_writer_fn)(struct metrics_buf *b, void *ctx);
int metrics_register(metrics_writer_fn fn, void *ctx);
/* Removes the writer registered with fn and ctx; once it returns, that writer is not running and will
 * not be called again, so ctx may be freed. -ENOENT if it was not registered. */
int metrics_unregister(metrics_writer_fn fn, void *ctx);
void metrics_unregister_all(void);
/* Appends every registered writer's text to b (start from a zeroed buf); the caller frees b->data.
 * -ENOMEM if an allocation failed (b is then freed). Writers run under the registry lock, so they
 * must not register or unregister. */
int metrics_render(struct metrics_buf *b);

#endif
