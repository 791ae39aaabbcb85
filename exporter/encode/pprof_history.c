#include "exporter/encode/pprof_history.h"

#include <errno.h>
#include <stdlib.h>

#include "exporter/store/history.h"
#include "exporter/encode/pprof.h"
#include "exporter/encode/pprof_samples.h"

struct encoder {
	struct pprof_builder *builder;
	struct history_filter filter;
	uint64_t epoch;
	uint64_t *loc_ids, *map_ids; /* per epoch: pprof ids, 0 not yet */
	int64_t first_ns, last_ns;
	bool any;
	bool offcpu;
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

static uint64_t location_id(struct encoder *e, const struct history_epoch *ep, uint32_t id)
{
	struct history_location loc;
	struct pprof_line lines[PPROF_FRAME_LINES_MAX];
	uint64_t mapping = 0;

	if (e->loc_ids[id])
		return e->loc_ids[id];
	history_location(ep, id, &loc);
	if (loc.mapping) {
		struct history_mapping m;

		history_mapping(ep, loc.mapping - 1, &m);
		mapping = pprof_frame_mapping_id(e->builder, &m.where, m.has_functions, &e->map_ids[loc.mapping - 1]);
		if (!mapping)
			return 0;
	}
	if (pprof_frame_lines(e->builder, loc.lines, loc.nlines, lines))
		return 0;
	e->loc_ids[id] = pprof_location_lines(e->builder, mapping, loc.address, lines, loc.nlines);
	return e->loc_ids[id];
}

static int add_record(struct encoder *e, const struct history_epoch *ep, const struct history_record *r)
{
	const uint32_t *locs;
	size_t nlocs = history_stack(ep, r->stack, &locs);
	uint64_t ids[nlocs ? nlocs : 1];
	struct pprof_sample smp = { .locations = ids, .nlocations = nlocs, .trace_id = r->trace_id,
				    .span_id = r->span_id, .pid = r->pid, .tid = r->tid, .count = r->count,
				    .frequency = r->frequency, .kind = r->kind };

	for (size_t k = 0; k < nlocs; k++) {
		ids[k] = location_id(e, ep, locs[k]);
		if (!ids[k])
			return -ENOMEM;
	}
	smp.nlabels = history_labels(ep, r->labels, &smp.labels);
	return pprof_samples_add(e->builder, &smp);
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
		if (w->records[i].frequency && pprof_samples_kind_in(w->records[i].kind, e->offcpu) &&
		    history_filter_match(&e->filter, w, w->records[i].labels))
			err = add_record(e, w->epoch, &w->records[i]);
	return err;
}

int history_profile_encode(struct history *h, const struct history_range_query *q, unsigned base_frequency,
			   void **out, size_t *outlen, int64_t *first_ns, int64_t *last_ns)
{
	struct encoder e = { .filter = { .selectors = q->selectors, .n = q->nselectors }, .offcpu = q->offcpu };
	int err;

	e.builder = pprof_samples_builder(base_frequency, q->offcpu);
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
