#include "exporter/web/query.h"

#include <civetweb.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/text.h"

#define PROFILE_DEFAULT_SECONDS 30
#define VALUE_MAX 4096

/* --- ?seconds= -------------------------------------------------------------------------------- */

/* Next byte of a form-encoded string: '+' is a space, %XX a byte; -1 at end, -2 on a bad escape. */
static int next_byte(const char **p, const char *end)
{
	const char *s = *p;
	int b;

	if (s >= end)
		return -1;
	if (*s != '%') {
		*p = s + 1;
		return *s == '+' ? ' ' : (unsigned char)*s;
	}
	if (end - s < 3 || (b = text_hex_byte(s + 1)) < 0)
		return -2;
	*p = s + 3;
	return b;
}

/* Whether the encoded key [p, end) decodes to exactly name; a bad escape never matches (Go skips
 * such a pair). */
static bool key_is(const char *p, const char *end, const char *name)
{
	int c;

	while ((c = next_byte(&p, end)) >= 0) {
		if (*name == '\0' || c != (unsigned char)*name)
			return false;
		name++;
	}
	return c == -1 && *name == '\0';
}

/* Decodes the seconds value [p, end); 0 for empty (missing), 1 for a number, negative errno. */
static int parse_seconds(const char *p, const char *end, unsigned max, unsigned *out, char *err,
			 size_t errlen)
{
	uint64_t v = 0;
	bool empty = true;
	int c;

	while ((c = next_byte(&p, end)) >= 0) {
		if (c < '0' || c > '9') {
			snprintf(err, errlen, "invalid seconds: not a positive integer");
			return -EINVAL;
		}
		/* Saturate: anything above max is rejected anyway, and this cannot overflow. */
		v = v > max ? v : v * 10 + (c - '0');
		empty = false;
	}
	if (c == -2) {
		snprintf(err, errlen, "invalid seconds: bad percent-encoding");
		return -EINVAL;
	}
	if (empty)
		return 0;
	if (v == 0) {
		snprintf(err, errlen, "invalid seconds: must be at least 1");
		return -EINVAL;
	}
	if (v > max) {
		snprintf(err, errlen, "invalid seconds: longer than the maximum of %u (--storage.retention)",
			 max);
		return -EINVAL;
	}
	*out = v;
	return 1;
}

int http_parse_profile_query(const char *query, unsigned max_seconds, unsigned *seconds,
			     char *err, size_t errlen)
{
	const char *p = query;

	*seconds = PROFILE_DEFAULT_SECONDS < max_seconds ? PROFILE_DEFAULT_SECONDS : max_seconds;
	while (p && *p) {
		const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', end - p);
		const char *key_end = eq ? eq : end;

		/* Only the first seconds counts, as with Go's FormValue. */
		if (key_is(p, key_end, "seconds")) {
			int ret = parse_seconds(eq ? eq + 1 : end, end, max_seconds, seconds, err, errlen);

			return ret < 0 ? ret : 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* --- ?start=&end=&match[]= -------------------------------------------------------------------- */

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* Nanoseconds of a fraction ".123" at *p (none: 0). */
static int64_t parse_fraction(const char **p)
{
	int64_t ns = 0, scale = 100000000;

	if (**p != '.')
		return 0;
	(*p)++;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		ns += (**p - '0') * scale;
		scale /= 10;
	}
	return ns;
}

static int parse_rfc3339(const char *s, int64_t *ns)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	const char *p = s;

	if (parse_digits(&p, 4, &year) || *p++ != '-' || parse_digits(&p, 2, &mon) || *p++ != '-' ||
	    parse_digits(&p, 2, &day) || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
	    parse_digits(&p, 2, &hour) || *p++ != ':' || parse_digits(&p, 2, &min) || *p++ != ':' ||
	    parse_digits(&p, 2, &sec))
		return -EINVAL;
	int64_t frac = parse_fraction(&p);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	/* int64 nanoseconds span 1677 to 2262: years outside would overflow. */
	if (*p || year < 1678 || year > 2261 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60 || oh > 23 || om > 59)
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	*ns = ((int64_t)t - sign * (oh * 3600 + om * 60)) * 1000000000LL + frac;
	return 0;
}

int history_parse_time(const char *s, int64_t *ns)
{
	const char *p = s;
	int64_t secs = 0;

	if (strchr(s, '-') || strchr(s, 'T'))
		return parse_rfc3339(s, ns);
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (secs > 9223372035LL / 10) /* past year 2262: int64 nanoseconds end there */
			return -EINVAL;
		secs = secs * 10 + (*p - '0');
	}
	int64_t frac = parse_fraction(&p);
	if (*p)
		return -EINVAL;
	*ns = secs * 1000000000LL + frac;
	return 0;
}

/* The occurrence-th value of key in the query, decoded (keys are decoded too: "match%5B%5D" is
 * "match[]", as Go reads it): 1, 0 when absent, -EINVAL when too long or badly encoded. */
static int query_var(const char *query, const char *key, int occurrence, char *buf, size_t len)
{
	char name[64];

	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', end - p), *key_end = eq ? eq : end;
		int n = mg_url_decode(p, (int)(key_end - p), name, sizeof(name), 1);

		if (n >= 0 && strcmp(name, key) == 0 && occurrence-- == 0) {
			if (!eq) {
				buf[0] = '\0';
				return 1;
			}
			n = mg_url_decode(eq + 1, (int)(end - eq - 1), buf, (int)len, 1);
			return n < 0 ? -EINVAL : 1; /* -1: longer than the buffer */
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

static int parse_edge(const char *query, const char *key, int64_t *ns, char *err, size_t errlen)
{
	char value[64];
	int ret = query_var(query, key, 0, value, sizeof(value));

	if (ret == 0) {
		snprintf(err, errlen, "invalid query: %s is missing (start and end go together)", key);
		return -EINVAL;
	}
	if (ret < 0 || history_parse_time(value, ns)) {
		snprintf(err, errlen, "invalid %s: not unix seconds or an RFC 3339 time", key);
		return -EINVAL;
	}
	return 0;
}

int history_parse_range_query(const char *query, struct history_range_query *q, char *err, size_t errlen)
{
	char value[VALUE_MAX], why[256];
	int ret;

	memset(q, 0, sizeof(*q));
	if (!query || (query_var(query, "start", 0, value, sizeof(value)) == 0 &&
		       query_var(query, "end", 0, value, sizeof(value)) == 0))
		return 0;
	if (parse_edge(query, "start", &q->start_ns, err, errlen) ||
	    parse_edge(query, "end", &q->end_ns, err, errlen))
		return -EINVAL;
	if (q->end_ns <= q->start_ns) {
		snprintf(err, errlen, "invalid query: end must be after start");
		return -EINVAL;
	}
	for (int i = 0;; i++) {
		ret = query_var(query, "match[]", i, value, sizeof(value));
		if (ret == 0)
			break;
		if (ret < 0) {
			snprintf(err, errlen, "invalid match[]: longer than %d bytes", VALUE_MAX - 1);
			goto fail;
		}
		if (q->nselectors == HISTORY_MAX_MATCHES) {
			snprintf(err, errlen, "invalid query: more than %d match[]", HISTORY_MAX_MATCHES);
			goto fail;
		}
		if (selector_parse(value, &q->selectors[q->nselectors], why, sizeof(why))) {
			snprintf(err, errlen, "invalid match[] %.100s: %s", value, why);
			goto fail;
		}
		q->nselectors++;
	}
	return 1;
fail:
	history_range_query_free(q);
	return -EINVAL;
}

void history_range_query_free(struct history_range_query *q)
{
	for (size_t i = 0; i < q->nselectors; i++)
		selector_free(&q->selectors[i]);
	q->nselectors = 0;
}
