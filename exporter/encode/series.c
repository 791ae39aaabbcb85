/*
 * SelectSeries of Pyroscope's query API: the selected records' values per step, one series per
 * combination of the group_by labels' values.
 */
#include "exporter/encode/series.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/htab.h"
#include "exporter/encode/pyroscope.h"
#include "exporter/encode/selection.h"

struct series {
	char **label_names, **label_values; /* the group_by labels the series has */
	size_t nlabels;
	double *sums;
	uint32_t *profiles;   /* windows that added to each point */
	uint64_t last_window; /* the window `in_window` is the value of */
	double in_window;
	double total;
};

struct share {
	size_t point;
	double fraction;
};

struct series_query {
	struct selection *sel;
	char **group_by;
	size_t ngroup_by;
	int64_t start_ms, step_ms;
	size_t npoints;
	struct strset keys;        /* series key -> index in series */
	struct series *series;
	size_t nseries;            /* made (keys may have one more after a failure) */
	uint64_t window;           /* count of windows visited, identifies the current one */
	uint32_t *touched;         /* series with samples in the current window */
	size_t ntouched, touched_cap;
	struct share *shares;      /* npoints */
	uint64_t epoch;
	int32_t *labels_series;    /* per label set of the epoch: series index + 1, 0 unknown */
	uint32_t labels_cap;
	bool too_many;
};

static int64_t find_series(struct series_query *q, const struct history_window *w, uint32_t labels_id)
{
	const struct history_epoch *ep = w->epoch;
	const struct label *ls;
	size_t nls = history_labels(ep, labels_id, &ls);
	char key[4096];
	size_t klen = 0;
	const char *vals[SERIES_MAX_GROUP_BY];

	if (q->epoch != history_epoch_id(ep)) {
		free(q->labels_series);
		q->labels_series = calloc(w->sizes.labelsets + 1, sizeof(*q->labels_series));
		if (!q->labels_series)
			return -ENOMEM;
		q->epoch = history_epoch_id(ep);
	}
	if (q->labels_series[labels_id])
		return q->labels_series[labels_id] - 1;
	for (size_t g = 0; g < q->ngroup_by; g++) {
		vals[g] = NULL;
		for (size_t i = 0; i < nls; i++)
			if (strcmp(ls[i].name, q->group_by[g]) == 0)
				vals[g] = ls[i].value;
		klen += snprintf(key + klen, klen < sizeof(key) ? sizeof(key) - klen : 0, "%s%s\x1f",
				 vals[g] ? "=" : "!", vals[g] ? vals[g] : "");
		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
	}
	key[klen] = '\0';
	uint32_t before = q->keys.n;
	int64_t idx = strset_add(&q->keys, key);
	if (idx < 0)
		return -ENOMEM;
	if (q->keys.n > before) {
		if (q->keys.n > PYROSCOPE_MAX_SERIES || (uint64_t)q->keys.n * q->npoints > PYROSCOPE_MAX_SERIES_POINTS) {
			q->too_many = true;
			return -E2BIG;
		}
		struct series *grown = realloc(q->series, q->keys.n * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		q->series = grown;
		struct series *s = &q->series[idx];
		memset(s, 0, sizeof(*s));
		q->nseries = q->keys.n;
		s->label_names = calloc(q->ngroup_by + 1, sizeof(char *));
		s->label_values = calloc(q->ngroup_by + 1, sizeof(char *));
		s->sums = calloc(q->npoints, sizeof(*s->sums));
		s->profiles = calloc(q->npoints, sizeof(*s->profiles));
		if (!s->label_names || !s->label_values || !s->sums || !s->profiles)
			return -ENOMEM;
		for (size_t g = 0; g < q->ngroup_by; g++) {
			if (!vals[g])
				continue;
			s->label_names[s->nlabels] = q->group_by[g];
			s->label_values[s->nlabels] = strdup(vals[g]);
			if (!s->label_values[s->nlabels++])
				return -ENOMEM;
		}
	}
	q->labels_series[labels_id] = (int32_t)idx + 1;
	return idx;
}

/* Point k stands for the step (T - step, T] before its time T = start + k * step, as Pyroscope's
 * rangeSeries counts a profile in the first step at or after it; the first and last points also take
 * what lies before and after the range. A window is spread over the steps it covers in proportion to
 * its time in each: a step finer than the window gets the window's rate at each point it covers
 * (the ring keeps nothing finer) instead of one point with all of it and empty ones around, and a
 * step that is no multiple of the window (Grafana's 15 s) does not alias a steady load into points of
 * alternately one and two windows. Totals stay those of the whole windows. */
static size_t window_shares(struct series_query *q, int64_t start_ns, int64_t end_ns)
{
	const int64_t first = q->start_ms * SELECTION_NS_PER_MS, step = q->step_ms * SELECTION_NS_PER_MS;
	const size_t last = q->npoints - 1;
	size_t k0 = start_ns <= first ? 0 : (size_t)((start_ns - first + step - 1) / step);
	size_t k1 = end_ns <= first ? 0 : (size_t)((end_ns - first + step - 1) / step), n = 0;

	k0 = k0 > last ? last : k0;
	k1 = k1 > last ? last : k1;
	if (end_ns <= start_ns) {
		q->shares[0] = (struct share){ k0, 1.0 };
		return 1;
	}
	for (size_t k = k0; k <= k1; k++) {
		int64_t t = first + (int64_t)k * step;
		int64_t lo = k == 0 ? INT64_MIN : t - step, hi = k == last ? INT64_MAX : t;
		int64_t overlap = (end_ns < hi ? end_ns : hi) - (start_ns > lo ? start_ns : lo);

		if (overlap > 0)
			q->shares[n++] = (struct share){ k, (double)overlap / (double)(end_ns - start_ns) };
	}
	return n;
}

static int series_add_window(void *ctx, const struct history_window *w)
{
	struct series_query *q = ctx;

	q->window++;
	q->ntouched = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *rec = &w->records[i];
		int64_t idx;

		if (!selection_keeps(q->sel, w, rec))
			continue;
		idx = find_series(q, w, rec->labels);
		if (idx < 0)
			return (int)idx;
		struct series *s = &q->series[idx];
		if (s->last_window != q->window) {
			if (q->ntouched == q->touched_cap) {
				size_t cap = q->touched_cap ? 2 * q->touched_cap : 64;
				uint32_t *t = realloc(q->touched, cap * sizeof(*t));

				if (!t)
					return -ENOMEM;
				q->touched = t;
				q->touched_cap = cap;
			}
			q->touched[q->ntouched++] = (uint32_t)idx;
			s->last_window = q->window;
			s->in_window = 0;
		}
		s->in_window += (double)selection_value(q->sel, rec);
	}
	if (!q->ntouched)
		return 0;

	size_t nshares = window_shares(q, w->start_ns, w->end_ns);
	for (size_t i = 0; i < q->ntouched; i++) {
		struct series *s = &q->series[q->touched[i]];

		s->total += s->in_window;
		for (size_t k = 0; k < nshares; k++) {
			s->sums[q->shares[k].point] += s->in_window * q->shares[k].fraction;
			s->profiles[q->shares[k].point]++;
		}
	}
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	for (size_t i = 0; i < x->nlabels && i < y->nlabels; i++) {
		int c = strcmp(x->label_names[i], y->label_names[i]) ?: strcmp(x->label_values[i], y->label_values[i]);

		if (c)
			return c;
	}
	return (x->nlabels > y->nlabels) - (x->nlabels < y->nlabels);
}

static int cmp_series_total(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	return (x->total < y->total) - (x->total > y->total);
}

static void series_free(struct series_query *q)
{
	for (size_t i = 0; i < q->nseries; i++) {
		struct series *s = &q->series[i];

		for (size_t l = 0; s->label_values && l < s->nlabels; l++)
			free(s->label_values[l]);
		free(s->label_names);
		free(s->label_values);
		free(s->sums);
		free(s->profiles);
	}
	free(q->series);
	free(q->touched);
	free(q->shares);
	free(q->labels_series);
	strset_free(&q->keys);
}

static int series_reply(struct series_query *q, bool average, int64_t limit, struct http_reply *r)
{
	size_t n = q->keys.n, npoints_total = 0, p = 0, l = 0;
	int err = 0;

	if (limit > 0 && (size_t)limit < n) {
		qsort(q->series, n, sizeof(*q->series), cmp_series_total);
		for (size_t i = limit; i < n; i++) {
			for (size_t k = 0; k < q->series[i].nlabels; k++)
				free(q->series[i].label_values[k]);
			q->series[i].nlabels = 0;
		}
		/* The dropped ones stay allocated for series_free. */
		n = (size_t)limit;
	}
	if (n > 1)
		qsort(q->series, n, sizeof(*q->series), cmp_series);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < q->npoints; k++)
			npoints_total += q->series[i].profiles[k] != 0;

	Types__V1__Series *series = calloc(n + 1, sizeof(*series));
	Types__V1__Series **series_ptrs = calloc(n + 1, sizeof(*series_ptrs));
	Types__V1__Point *points = calloc(npoints_total + 1, sizeof(*points));
	Types__V1__Point **point_ptrs = calloc(npoints_total + 1, sizeof(*point_ptrs));
	size_t nlabels_total = 0;
	for (size_t i = 0; i < n; i++)
		nlabels_total += q->series[i].nlabels;
	Types__V1__LabelPair *pairs = calloc(nlabels_total + 1, sizeof(*pairs));
	Types__V1__LabelPair **pair_ptrs = calloc(nlabels_total + 1, sizeof(*pair_ptrs));

	if (!series || !series_ptrs || !points || !point_ptrs || !pairs || !pair_ptrs) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct series *s = &q->series[i];

		types__v1__series__init(&series[i]);
		series[i].labels = pair_ptrs + l;
		series[i].n_labels = s->nlabels;
		for (size_t k = 0; k < s->nlabels; k++, l++) {
			types__v1__label_pair__init(&pairs[l]);
			pairs[l].name = s->label_names[k];
			pairs[l].value = s->label_values[k];
			pair_ptrs[l] = &pairs[l];
		}
		series[i].points = point_ptrs + p;
		for (size_t k = 0; k < q->npoints; k++) {
			if (!s->profiles[k])
				continue;
			types__v1__point__init(&points[p]);
			points[p].value = average ? s->sums[k] / s->profiles[k] : s->sums[k];
			points[p].timestamp = q->start_ms + (int64_t)k * q->step_ms;
			point_ptrs[p] = &points[p];
			series[i].n_points++;
			p++;
		}
		series_ptrs[i] = &series[i];
	}
	Querier__V1__SelectSeriesResponse resp = QUERIER__V1__SELECT_SERIES_RESPONSE__INIT;
	resp.n_series = n;
	resp.series = series_ptrs;
	err = pyroscope_message_reply(r, &resp.base);
out:
	free(series);
	free(series_ptrs);
	free(points);
	free(point_ptrs);
	free(pairs);
	free(pair_ptrs);
	return err;
}

int series_select(struct history *h, const Querier__V1__SelectSeriesRequest *req, struct http_reply *r)
{
	struct selection sel = { 0 };
	struct series_query q = { .sel = &sel, .group_by = req->group_by, .ngroup_by = req->n_group_by };
	int err = selection_set_type(&sel, req->profile_typeid, r) ?: selection_add_selector(&sel, req->label_selector, r) ?:
		  selection_set_range(&sel, req->start, req->end, r);

	if (err)
		goto out;
	if (!req->start || req->n_group_by > SERIES_MAX_GROUP_BY || !(req->step >= 0.001) || req->step > 1e9) {
		err = connect_error_reply(r, "invalid_argument",
				  "SelectSeries needs start and end, a step of at least 1 ms and at most %d group_by labels",
				  SERIES_MAX_GROUP_BY);
		goto out;
	}
	q.start_ms = req->start;
	q.step_ms = (int64_t)llround(req->step * 1000);
	/* The points' times, one step past the end at most, are computed in nanoseconds. */
	if (req->end > INT64_MAX / SELECTION_NS_PER_MS - q.step_ms) {
		err = connect_error_reply(r, "invalid_argument", "end %lld plus a step of %lld ms is past the year 2262",
				  (long long)req->end, (long long)q.step_ms);
		goto out;
	}
	if ((req->end - req->start) / q.step_ms + 1 > PYROSCOPE_MAX_POINTS) {
		err = connect_error_reply(r, "invalid_argument",
				  "too many points: (end - start) / step is above %d, use a larger step", PYROSCOPE_MAX_POINTS);
		goto out;
	}
	q.npoints = (size_t)((req->end - req->start + q.step_ms - 1) / q.step_ms) + 1;
	q.shares = calloc(q.npoints, sizeof(*q.shares));
	if (!q.shares) {
		err = connect_error_reply(r, "resource_exhausted", "out of memory building the series");
		goto out;
	}
	err = history_query(h, sel.start_ns, sel.end_ns, series_add_window, &q, NULL, NULL);
	if (err == -ENOENT)
		err = 0;
	if (err == -E2BIG)
		err = connect_error_reply(r, "invalid_argument",
				  "more than %d series, or %d points in all: group by fewer labels or use a larger step",
				  PYROSCOPE_MAX_SERIES, PYROSCOPE_MAX_SERIES_POINTS);
	else if (!err)
		err = series_reply(&q, req->aggregation == TYPES__V1__TIME_SERIES_AGGREGATION_TYPE__TIME_SERIES_AGGREGATION_TYPE_AVERAGE,
				   req->limit, r);
	if (err == -ENOMEM)
		err = connect_error_reply(r, "resource_exhausted", "out of memory building the series");
out:
	series_free(&q);
	selection_free(&sel);
	return err < 0 && err != -ENOMEM ? 0 : err;
}
