#include "exporter/encode/pprof_history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporter/store/history.h"
#include "exporter/encode/pprof.h"
#include "exporter/web/query.h"

#define MAX_LABELS 30 /* Pyroscope's limit of label names per series, as the live encoder keeps */

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

static void hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * n] = '\0';
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
		hex(r->trace_id, sizeof(r->trace_id), trace_hex);
		labels[nlabels++] = (struct pprof_label){ .key = "trace_id", .str = trace_hex };
		if (!all_zero(r->span_id, sizeof(r->span_id))) {
			hex(r->span_id, sizeof(r->span_id), span_hex);
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
