#include "exporter/encode/pprof_history.h"

#include <civetweb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/text.h"
#include "exporter/store/history.h"
#include "exporter/encode/pprof.h"

#define VALUE_MAX 4096
#define MAX_LABELS 30 /* Pyroscope's limit of label names per series, as the live encoder keeps */

/* --- query ------------------------------------------------------------------------------------- */

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

/* --- encoding ---------------------------------------------------------------------------------- */

struct encoder {
	struct pprof_builder *builder;
	struct history_filter filter;
	uint64_t epoch;
	uint64_t *loc_ids, *map_ids; /* per epoch: pprof ids, 0 not yet */
	int64_t first_ns, last_ns;
	bool any;
};

static int epoch_caches(struct encoder *e, const struct history_window *w)
{
	const struct history_dict_sizes n = w->sizes;

	if (e->epoch == history_epoch_id(w->epoch))
		return 0;
	free(e->loc_ids);
	free(e->map_ids);
	e->loc_ids = calloc(n.locations + 1, sizeof(*e->loc_ids));
	e->map_ids = calloc(n.mappings + 1, sizeof(*e->map_ids));
	if (!e->loc_ids || !e->map_ids)
		return -ENOMEM;
	e->epoch = history_epoch_id(w->epoch);
	return 0;
}

static uint64_t pprof_location_id(struct encoder *e, const struct history_epoch *ep, uint32_t id)
{
	struct history_location loc;
	uint64_t mapping = 0, function = 0;

	if (e->loc_ids[id])
		return e->loc_ids[id];
	history_location(ep, id, &loc);
	if (loc.mapping) {
		mapping = e->map_ids[loc.mapping - 1];
		if (!mapping) {
			struct history_mapping m;

			history_mapping(ep, loc.mapping - 1, &m);
			mapping = pprof_mapping(e->builder, m.start, m.limit, m.offset, m.path, m.build_id,
						m.has_functions);
			if (!mapping)
				return 0;
			e->map_ids[loc.mapping - 1] = mapping;
		}
	}
	if (loc.function) {
		function = pprof_function(e->builder, loc.function, loc.function, loc.filename);
		if (!function)
			return 0;
	}
	e->loc_ids[id] = pprof_location(e->builder, mapping, loc.address, function);
	return e->loc_ids[id];
}

static bool all_zero(const uint8_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bytes[i])
			return false;
	return true;
}

static int add_record(struct encoder *e, const struct history_epoch *ep, const struct history_record *r)
{
	const uint32_t *locs;
	size_t nlocs = history_stack(ep, r->stack, &locs);
	uint64_t ids[nlocs ? nlocs : 1];
	struct pprof_label labels[MAX_LABELS + 4];
	const struct label *ls;
	size_t nls = history_labels(ep, r->labels, &ls), nlabels = 0;
	char trace_hex[33], span_hex[17];

	for (size_t k = 0; k < nlocs; k++) {
		ids[k] = pprof_location_id(e, ep, locs[k]);
		if (!ids[k])
			return -ENOMEM;
	}
	for (size_t i = 0; i < nls && nlabels < MAX_LABELS; i++)
		labels[nlabels++] = (struct pprof_label){ .key = ls[i].name, .str = ls[i].value };
	if (r->traced) {
		text_hex_encode(r->trace_id, sizeof(r->trace_id), trace_hex);
		labels[nlabels++] = (struct pprof_label){ .key = "trace_id", .str = trace_hex };
		if (!all_zero(r->span_id, sizeof(r->span_id))) {
			text_hex_encode(r->span_id, sizeof(r->span_id), span_hex);
			labels[nlabels++] = (struct pprof_label){ .key = "span_id", .str = span_hex };
		}
	}
	labels[nlabels++] = (struct pprof_label){ .key = "pid", .num = r->pid };
	labels[nlabels++] = (struct pprof_label){ .key = "tid", .num = r->tid };

	int64_t values[2] = { (int64_t)r->count, (int64_t)r->count * (1000000000LL / r->frequency) };
	return pprof_add_sample(e->builder, ids, nlocs, values, labels, nlabels);
}

static int encode_window(void *ctx, const struct history_window *w)
{
	struct encoder *e = ctx;
	int err = epoch_caches(e, w);

	if (!e->any || w->start_ns < e->first_ns)
		e->first_ns = w->start_ns;
	if (!e->any || w->end_ns > e->last_ns)
		e->last_ns = w->end_ns;
	e->any = true;
	for (size_t i = 0; i < w->n && !err; i++)
		if (w->records[i].frequency && history_filter_match(&e->filter, w, w->records[i].labels))
			err = add_record(e, w->epoch, &w->records[i]);
	return err;
}

int history_profile_encode(struct history *h, const struct history_range_query *q, unsigned base_frequency,
			   void **out, size_t *outlen, int64_t *first_ns, int64_t *last_ns)
{
	static const struct pprof_value_type types[] = { { "samples", "count" }, { "cpu", "nanoseconds" } };
	struct encoder e = { .filter = { .selectors = q->selectors, .n = q->nselectors } };
	int err;

	e.builder = pprof_builder_new(types, 2, (struct pprof_value_type){ "cpu", "nanoseconds" },
				      1000000000LL / base_frequency);
	if (!e.builder)
		return -ENOMEM;
	err = history_query(h, q->start_ns, q->end_ns, encode_window, &e, first_ns, last_ns);
	if (!err)
		err = pprof_encode_gzip(e.builder, e.first_ns, e.last_ns - e.first_ns, out, outlen);
	pprof_builder_free(e.builder);
	history_filter_free(&e.filter);
	free(e.loc_ids);
	free(e.map_ids);
	return err;
}
