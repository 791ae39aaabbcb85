#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_BUF_MIN 4096

void metrics_buf_free(struct metrics_buf *b)
{
	free(b->data);
	*b = (struct metrics_buf){ 0 };
}

static bool buf_reserve(struct metrics_buf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;

	size_t cap = b->cap ? b->cap : METRICS_BUF_MIN;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *data = realloc(b->data, cap);
	if (!data) {
		b->failed = true;
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

static void metrics_vprintf(struct metrics_buf *b, const char *fmt, va_list ap)
{
	va_list again;
	int n;

	if (!buf_reserve(b, 0))
		return;
	va_copy(again, ap);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	if (n >= 0 && (size_t)n >= b->cap - b->len) {
		/* Did not fit: grow to the exact size and format again. */
		if (buf_reserve(b, n))
			vsnprintf(b->data + b->len, b->cap - b->len, fmt, again);
	}
	va_end(again);
	if (n < 0)
		b->failed = true;
	else if (!b->failed)
		b->len += n;
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	metrics_vprintf(b, fmt, ap);
	va_end(ap);
}

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, histogram). */
static void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	/* HELP text escapes only backslash and newline (text format 0.0.4). */
	metrics_printf(b, "# HELP %s ", name);
	for (const char *p = help; *p;) {
		size_t n = strcspn(p, "\\\n");

		metrics_printf(b, "%.*s", (int)n, p);
		p += n;
		if (*p) {
			metrics_printf(b, "%s", *p == '\\' ? "\\\\" : "\\n");
			p++;
		}
	}
	metrics_printf(b, "\n# TYPE %s %s\n", name, type);
}

/*
 * Integers print without an exponent while a double holds them exactly (2^53), as people and
 * tests expect "1048576" rather than "1.048576e+06"; anything else prints in the shortest form that
 * parses back to the same double.
 */
static void format_value(double v, char *out, size_t len)
{
	if (isnan(v)) {
		snprintf(out, len, "NaN");
	} else if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
	} else if (v == trunc(v) && fabs(v) <= 9007199254740992.0) {
		snprintf(out, len, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, len, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
}

/* name + suffix{labels} value: suffix is "_sum" and such for histograms. */
static void write_sample(struct metrics_buf *b, const char *name, const char *suffix,
			 const char *labels, double value)
{
	char num[32];

	format_value(value, num, sizeof(num));
	if (labels && *labels)
		metrics_printf(b, "%s%s{%s} %s\n", name, suffix, labels, num);
	else
		metrics_printf(b, "%s%s %s\n", name, suffix, num);
}

/* "name{labels} value"; labels is preformatted (k="v",k2="v2") or NULL. */
static void metrics_value(struct metrics_buf *b, const char *name, const char *labels, double value)
{
	write_sample(b, name, "", labels, value);
}

void metrics_counter(struct metrics_buf *b, const char *name, const char *help, double value)
{
	metrics_family(b, name, "counter", help);
	metrics_value(b, name, NULL, value);
}

void metrics_gauge(struct metrics_buf *b, const char *name, const char *help, double value)
{
	metrics_family(b, name, "gauge", help);
	metrics_value(b, name, NULL, value);
}

struct metrics_series metrics_series_begin(struct metrics_buf *b, const char *name, const char *type,
					   const char *help)
{
	metrics_family(b, name, type, help);
	return (struct metrics_series){ .b = b, .name = name };
}

void metrics_series_value(struct metrics_series s, const char *labels, double value)
{
	metrics_value(s.b, s.name, labels, value);
}

void metrics_series_valuef(struct metrics_series s, double value, const char *labels_fmt, ...)
{
	char num[32];
	va_list ap;

	format_value(value, num, sizeof(num));
	metrics_printf(s.b, "%s{", s.name);
	va_start(ap, labels_fmt);
	metrics_vprintf(s.b, labels_fmt, ap);
	va_end(ap);
	metrics_printf(s.b, "} %s\n", num);
}

char *metrics_escape_label(const char *value, char *out, size_t outlen)
{
	size_t n = 0;

	if (outlen == 0)
		return out;
	for (const char *p = value; *p; p++) {
		char esc = *p == '\\' ? '\\' : *p == '"' ? '"' : *p == '\n' ? 'n' : 0;
		size_t need = esc ? 2 : 1;

		/* Truncate rather than split an escape sequence. */
		if (n + need >= outlen)
			break;
		if (esc) {
			out[n++] = '\\';
			out[n++] = esc;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	return out;
}

int metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds)
{
	int err;

	*h = (struct metrics_histogram){ .bounds = bounds, .nbounds = nbounds };
	h->buckets = calloc(nbounds + 1, sizeof(*h->buckets));
	if (!h->buckets)
		return -ENOMEM;
	err = pthread_mutex_init(&h->lock, NULL);
	if (err) {
		free(h->buckets);
		h->buckets = NULL;
		return -err;
	}
	return 0;
}

void metrics_histogram_destroy(struct metrics_histogram *h)
{
	if (!h->buckets)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->buckets);
	h->buckets = NULL;
}

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
	size_t i = 0;

	/* Prometheus buckets are "less than or equal"; NaN lands in +Inf only. */
	while (i < h->nbounds && !(v <= h->bounds[i]))
		i++;
	pthread_mutex_lock(&h->lock);
	h->buckets[i]++;
	h->sum += v;
	h->count++;
	pthread_mutex_unlock(&h->lock);
}

static void histogram_bucket(struct metrics_buf *b, const char *name, const char *labels,
			     double le, uint64_t cumulative)
{
	bool more = labels && *labels;
	char lebuf[32];

	format_value(le, lebuf, sizeof(lebuf));
	metrics_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, more ? labels : "", more ? "," : "",
		       lebuf, (unsigned long long)cumulative);
}

/* The _bucket/_sum/_count series without HELP/TYPE, with extra labels (k="v" or NULL). */
static void metrics_histogram_series(struct metrics_buf *b, const char *name, const char *labels,
				     struct metrics_histogram *h)
{
	uint64_t *buckets = calloc(h->nbounds + 1, sizeof(*buckets));
	uint64_t cumulative = 0, count;
	double sum;

	if (!buckets) {
		b->failed = true;
		return;
	}
	/* Copy under the lock so the buckets, _sum and _count are from the same moment. */
	pthread_mutex_lock(&h->lock);
	memcpy(buckets, h->buckets, (h->nbounds + 1) * sizeof(*buckets));
	sum = h->sum;
	count = h->count;
	pthread_mutex_unlock(&h->lock);

	for (size_t i = 0; i < h->nbounds; i++) {
		cumulative += buckets[i];
		histogram_bucket(b, name, labels, h->bounds[i], cumulative);
	}
	histogram_bucket(b, name, labels, INFINITY, count);
	free(buckets);

	write_sample(b, name, "_sum", labels, sum);
	write_sample(b, name, "_count", labels, (double)count);
}

void metrics_series_histogram(struct metrics_series s, const char *labels, struct metrics_histogram *h)
{
	metrics_histogram_series(s.b, s.name, labels, h);
}

void metrics_histogram_write(struct metrics_buf *b, const char *name, const char *help,
			     struct metrics_histogram *h)
{
	metrics_family(b, name, "histogram", help);
	metrics_histogram_series(b, name, NULL, h);
}

/* --- registry --------------------------------------------------------------------------------- */

struct writer {
	metrics_writer_fn fn;
	void *ctx;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct writer *writers;
static size_t nwriters, writers_cap;

int metrics_register(metrics_writer_fn fn, void *ctx)
{
	int err = 0;

	pthread_mutex_lock(&registry_lock);
	if (nwriters == writers_cap) {
		size_t cap = writers_cap ? writers_cap * 2 : 8;
		struct writer *w = realloc(writers, cap * sizeof(*w));

		if (!w) {
			err = -ENOMEM;
			goto out;
		}
		writers = w;
		writers_cap = cap;
	}
	writers[nwriters++] = (struct writer){ fn, ctx };
out:
	pthread_mutex_unlock(&registry_lock);
	return err;
}

int metrics_unregister(metrics_writer_fn fn, void *ctx)
{
	int err = -ENOENT;

	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < nwriters; i++) {
		if (writers[i].fn == fn && writers[i].ctx == ctx) {
			memmove(&writers[i], &writers[i + 1], (nwriters - i - 1) * sizeof(*writers));
			nwriters--;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return err;
}

void metrics_unregister_all(void)
{
	pthread_mutex_lock(&registry_lock);
	free(writers);
	writers = NULL;
	nwriters = writers_cap = 0;
	pthread_mutex_unlock(&registry_lock);
}

int metrics_render(struct metrics_buf *b)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < nwriters; i++)
		writers[i].fn(b, writers[i].ctx);
	pthread_mutex_unlock(&registry_lock);

	/* An empty registry still yields a valid (empty) string. */
	buf_reserve(b, 0);
	if (b->failed) {
		metrics_buf_free(b);
		return -ENOMEM;
	}
	b->data[b->len] = '\0';
	return 0;
}
