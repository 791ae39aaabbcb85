#include "exporter/encode/pyroscope.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/text.h"

#include "common/htab.h"
#include "exporter/encode/flamegraph.h"
#include "exporter/encode/selection.h"
#include "exporter/encode/series.h"
#include "exporter/store/history.h"
#include "querier/v1/querier.pb-c.h"

/* --- replies --------------------------------------------------------------------------------------- */

static const struct {
	const char *code;
	int status;
} connect_codes[] = {
	{ "invalid_argument", 400 }, { "unimplemented", 501 }, { "internal", 500 },
	{ "resource_exhausted", 429 },
};

/* Connect's error: JSON {"code", "message"} with the code's HTTP status. The message often quotes
 * client input, so json-c escapes it: its output is sized from the escaped text, never guessed. */
/* JSON text is UTF-8 (RFC 8259) and a quoted request may not be: each byte outside a valid sequence
 * becomes '?', so the message keeps its length. */
static void valid_utf8_in_place(char *s)
{
	while (*s) {
		size_t n = text_utf8_seq_len(s);

		if (!n)
			*s = '?';
		s += n ? n : 1;
	}
}

int connect_error_reply(struct http_reply *r, const char *code, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	const char *text;
	char msg[512];
	size_t len;
	va_list ap;

	if (!o)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	valid_utf8_in_place(msg);
	if (json_object_object_add(o, "code", json_object_new_string(code)) ||
	    json_object_object_add(o, "message", json_object_new_string(msg)) ||
	    !(text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len)) ||
	    !(r->body = malloc(len + 1))) {
		json_object_put(o);
		return -ENOMEM;
	}
	memcpy(r->body, text, len + 1);
	json_object_put(o);
	r->status = 500;
	for (size_t i = 0; i < sizeof(connect_codes) / sizeof(connect_codes[0]); i++)
		if (strcmp(connect_codes[i].code, code) == 0)
			r->status = connect_codes[i].status;
	r->content_type = "application/json";
	r->len = len;
	return 0;
}

int pyroscope_message_reply(struct http_reply *r, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	void *out = malloc(len ? len : 1);

	if (!out)
		return connect_error_reply(r, "internal", "out of memory");
	protobuf_c_message_pack(m, out);
	r->status = 200;
	r->content_type = "application/proto";
	r->body = out;
	r->len = len;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What sel selects, merged, packed as a SelectMergeStacktracesResponse (the same fields as
 * SelectMergeSpanProfileResponse): the flame graph, or with tree_format Pyroscope's tree bytes. */
static int merge_reply(struct history *h, struct selection *sel, int64_t max_nodes, bool tree_format,
		       struct http_reply *r)
{
	Querier__V1__SelectMergeStacktracesResponse resp = QUERIER__V1__SELECT_MERGE_STACKTRACES_RESPONSE__INIT;
	Querier__V1__FlameGraph fg_msg = QUERIER__V1__FLAME_GRAPH__INIT;
	struct flamegraph *fg = flamegraph_new(sel);
	int err = fg ? 0 : -ENOMEM;

	if (!err) {
		err = history_query(h, sel->start_ns, sel->end_ns, flamegraph_add_window, fg, NULL, NULL);
		if (err == -ENOENT)
			err = 0;
	}
	if (!max_nodes)
		max_nodes = PYROSCOPE_DEFAULT_MAX_NODES;
	if (!err && tree_format) {
		err = flamegraph_tree_bytes(fg, max_nodes, &resp.tree.data, &resp.tree.len);
	} else if (!err) {
		err = flamegraph_message(fg, max_nodes, &fg_msg);
		resp.flamegraph = &fg_msg;
	}
	if (!err)
		err = pyroscope_message_reply(r, &resp.base);
	free(resp.tree.data);
	flamegraph_free(fg);
	if (err == -ENOMEM)
		return connect_error_reply(r, "resource_exhausted", "out of memory merging the profiles");
	return err;
}

/* --- label names and values ----------------------------------------------------------------------- */

struct label_query {
	struct selection *sel;
	const char *name; /* NULL: collect names */
	struct strset found;
	uint64_t epoch;
	uint8_t *seen; /* per label set of the epoch */
};

static int labels_add_window(void *ctx, const struct history_window *w)
{
	struct label_query *q = ctx;

	if (q->epoch != history_epoch_id(w->epoch)) {
		free(q->seen);
		q->seen = calloc(w->sizes.labelsets + 1, 1);
		if (!q->seen)
			return -ENOMEM;
		q->epoch = history_epoch_id(w->epoch);
	}
	for (size_t i = 0; i < w->n; i++) {
		const struct history_record *rec = &w->records[i];
		const struct label *ls;
		size_t nls;

		if (q->seen[rec->labels] || !selection_keeps(q->sel, w, rec))
			continue;
		q->seen[rec->labels] = 1;
		nls = history_labels(w->epoch, rec->labels, &ls);
		for (size_t k = 0; k < nls; k++) {
			if (q->name && strcmp(ls[k].name, q->name) != 0)
				continue;
			if (strset_add(&q->found, q->name ? ls[k].value : ls[k].name) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int label_query(struct history *h, const char *name, char **matchers, size_t nmatchers, int64_t start,
		       int64_t end, struct http_reply *r)
{
	struct selection sel = { 0 };
	struct label_query q = { .sel = &sel, .name = name };
	int err = selection_set_range(&sel, start, end, r);

	for (size_t i = 0; i < nmatchers && !err; i++)
		err = selection_add_selector(&sel, matchers[i], r);
	if (!err) {
		err = history_query(h, sel.start_ns, sel.end_ns, labels_add_window, &q, NULL, NULL);
		if (err == -ENOENT)
			err = 0;
	}
	if (!err) {
		if (q.found.n > 1)
			qsort(q.found.strs, q.found.n, sizeof(char *), cmp_str);
		/* LabelNamesResponse and LabelValuesResponse are the same message: names = 1. */
		Types__V1__LabelNamesResponse resp = TYPES__V1__LABEL_NAMES_RESPONSE__INIT;
		resp.n_names = q.found.n;
		resp.names = q.found.strs;
		err = pyroscope_message_reply(r, &resp.base);
	} else if (err == -ENOMEM) {
		err = connect_error_reply(r, "resource_exhausted", "out of memory");
	}
	strset_free(&q.found);
	free(q.seen);
	selection_free(&sel);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

/* --- methods --------------------------------------------------------------------------------------- */

/* Sets bit k of *ctx for each kind (enum sample_kind) recorded in the window. */
static int collect_kinds(void *ctx, const struct history_window *w)
{
	uint32_t *kinds = ctx;

	for (size_t i = 0; i < w->n; i++)
		*kinds |= 1u << (w->records[i].kind & 31);
	return 0;
}

/* The types with profiles in the range, as Pyroscope answers: Grafana offers off-CPU only where the
 * daemon records it. */
static int profile_types_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__ProfileTypesRequest *req = querier__v1__profile_types_request__unpack(NULL, len, body);
	Types__V1__ProfileType types[SELECTION_NTYPES], *ptrs[SELECTION_NTYPES];
	Querier__V1__ProfileTypesResponse resp = QUERIER__V1__PROFILE_TYPES_RESPONSE__INIT;
	struct selection range = { 0 };
	uint32_t kinds = 0;
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.ProfileTypesRequest");
	err = selection_set_range(&range, req->start, req->end, r);
	querier__v1__profile_types_request__free_unpacked(req, NULL);
	if (err)
		return err < 0 && err != -ENOMEM ? 0 : err;
	err = history_query(h, range.start_ns, range.end_ns, collect_kinds, &kinds, NULL, NULL);
	if (err && err != -ENOENT)
		return connect_error_reply(r, "internal", "reading the history: %s", strerror(-err));
	for (size_t i = 0; i < SELECTION_NTYPES; i++) {
		const struct selection_profile_type *t = &selection_profile_types[i];

		if (!(kinds & (1u << t->kind)))
			continue;
		types__v1__profile_type__init(&types[resp.n_profile_types]);
		types[resp.n_profile_types].id = (char *)t->id;
		types[resp.n_profile_types].name = (char *)t->name;
		types[resp.n_profile_types].sample_type = (char *)t->sample_type;
		types[resp.n_profile_types].sample_unit = (char *)t->sample_unit;
		types[resp.n_profile_types].period_type = (char *)t->period_type;
		types[resp.n_profile_types].period_unit = "nanoseconds";
		ptrs[resp.n_profile_types] = &types[resp.n_profile_types];
		resp.n_profile_types++;
	}
	resp.profile_types = ptrs;
	return pyroscope_message_reply(r, &resp.base);
}

static int label_names_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__LabelNamesRequest *req = types__v1__label_names_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.LabelNamesRequest");
	err = label_query(h, NULL, req->matchers, req->n_matchers, req->start, req->end, r);
	types__v1__label_names_request__free_unpacked(req, NULL);
	return err;
}

static int label_values_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__LabelValuesRequest *req = types__v1__label_values_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.LabelValuesRequest");
	if (!*req->name)
		err = connect_error_reply(r, "invalid_argument", "LabelValues needs a label name");
	else
		err = label_query(h, req->name, req->matchers, req->n_matchers, req->start, req->end, r);
	types__v1__label_values_request__free_unpacked(req, NULL);
	return err;
}

static int merge_stacktraces_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectMergeStacktracesRequest *req =
		querier__v1__select_merge_stacktraces_request__unpack(NULL, len, body);
	struct selection sel = { 0 };
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectMergeStacktracesRequest");
	err = selection_set_type(&sel, req->profile_typeid, r) ?: selection_add_selector(&sel, req->label_selector, r) ?:
	      selection_set_range(&sel, req->start, req->end, r);
	if (!err)
		err = merge_reply(h, &sel, req->max_nodes, req->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE, r);
	selection_free(&sel);
	querier__v1__select_merge_stacktraces_request__free_unpacked(req, NULL);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

static int merge_span_profile_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectMergeSpanProfileRequest *req =
		querier__v1__select_merge_span_profile_request__unpack(NULL, len, body);
	struct selection sel = { 0 };
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectMergeSpanProfileRequest");
	err = selection_set_type(&sel, req->profile_typeid, r) ?: selection_add_selector(&sel, req->label_selector, r) ?:
	      selection_set_range(&sel, req->start, req->end, r) ?: selection_set_spans(&sel, req->span_selector, req->n_span_selector, r);
	if (!err)
		err = merge_reply(h, &sel, req->max_nodes, req->format == QUERIER__V1__PROFILE_FORMAT__PROFILE_FORMAT_TREE, r);
	selection_free(&sel);
	querier__v1__select_merge_span_profile_request__free_unpacked(req, NULL);
	return err < 0 && err != -ENOMEM ? 0 : err;
}

static int select_series_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Querier__V1__SelectSeriesRequest *req = querier__v1__select_series_request__unpack(NULL, len, body);
	int err;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode querier.v1.SelectSeriesRequest");
	err = series_select(h, req, r);
	querier__v1__select_series_request__free_unpacked(req, NULL);
	return err;
}

/* What the ring covers; Grafana asks it to tell "no data yet" from an empty range. */
static int profile_stats_method(struct history *h, const void *body, size_t len, struct http_reply *r)
{
	Types__V1__GetProfileStatsRequest *req = types__v1__get_profile_stats_request__unpack(NULL, len, body);
	Types__V1__GetProfileStatsResponse resp = TYPES__V1__GET_PROFILE_STATS_RESPONSE__INIT;
	int64_t first = 0, last = 0;

	if (!req)
		return connect_error_reply(r, "invalid_argument", "cannot decode types.v1.GetProfileStatsRequest");
	types__v1__get_profile_stats_request__free_unpacked(req, NULL);
	/* An empty range visits no window and only reports the covered range. */
	history_query(h, INT64_MIN, INT64_MIN, NULL, NULL, &first, &last);
	resp.data_ingested = last != 0;
	resp.oldest_profile_time = first / SELECTION_NS_PER_MS;
	resp.newest_profile_time = last / SELECTION_NS_PER_MS;
	return pyroscope_message_reply(r, &resp.base);
}

static const struct {
	const char *name;
	int (*serve)(struct history *h, const void *body, size_t len, struct http_reply *r);
} methods[] = {
	{ "ProfileTypes", profile_types_method },
	{ "LabelNames", label_names_method },
	{ "LabelValues", label_values_method },
	{ "SelectMergeStacktraces", merge_stacktraces_method },
	{ "SelectSeries", select_series_method },
	{ "SelectMergeSpanProfile", merge_span_profile_method },
	{ "GetProfileStats", profile_stats_method },
};

int pyroscope_serve(struct history *h, const char *method, const void *body, size_t len, struct http_reply *reply)
{
	memset(reply, 0, sizeof(*reply));
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(method, methods[i].name) != 0)
			continue;
		int err = methods[i].serve(h, body ? body : "", len, reply);

		/* Whatever failed without an answer of its own (a window that would not decode). */
		if (!reply->body)
			return connect_error_reply(reply, err == -ENOMEM ? "resource_exhausted" : "internal",
					   "%s failed: %s", method, strerror(err < 0 ? -err : EIO));
		return 0;
	}
	return connect_error_reply(reply, "unimplemented", "anorak does not serve querier.v1.QuerierService/%.100s",
			   method);
}
