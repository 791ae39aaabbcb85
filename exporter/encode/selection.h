/* What a query of Pyroscope's API selects from the history ring (profile type, label selectors, time
 * range, span ids), shared by the API (pyroscope.c), its flame graph and its series. Each setter
 * answers a bad request with a Connect error in r and returns -EINVAL (-ENOMEM when memory ran out). */
#ifndef ANORAK_SELECTION_H
#define ANORAK_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporter/encode/http_reply.h"
#include "exporter/store/history.h"
#include "labels/selector.h"

#define SELECTION_NS_PER_MS 1000000LL
#define SELECTION_MAX_MATCHERS 16
#define SELECTION_MAX_SPANS 1024
#define SELECTION_NTYPES 4

struct selection_profile_type {
	const char *id, *name, *sample_type, *sample_unit, *period_type;
	bool cpu_ns;
	uint8_t kind; /* the records it selects (enum sample_kind) */
};

/* The profile types anorak serves. */
extern const struct selection_profile_type selection_profile_types[SELECTION_NTYPES];

struct selection {
	struct selector selectors[SELECTION_MAX_MATCHERS];
	size_t nselectors;
	struct history_filter filter;
	int64_t start_ns, end_ns;
	bool cpu_ns;      /* the value is cpu nanoseconds (else the count as kept) */
	uint8_t kind;     /* the records selected (enum sample_kind): CPU samples unless a type says */
	uint8_t (*spans)[8];
	size_t nspans;
};

void selection_free(struct selection *s);

/* Adds a label selector ({a="b", ...}); at most SELECTION_MAX_MATCHERS. */
int selection_add_selector(struct selection *s, const char *text, struct http_reply *r);

/* Milliseconds; 0 and 0 (not given) is everything kept. */
int selection_set_range(struct selection *s, int64_t start_ms, int64_t end_ms, struct http_reply *r);

/* One of selection_profile_types by id. */
int selection_set_type(struct selection *s, const char *id, struct http_reply *r);

/* Only records of these span ids (16 hex digits each). */
int selection_set_spans(struct selection *s, char **spans, size_t n, struct http_reply *r);

/* Whether the record is selected. */
bool selection_keeps(struct selection *s, const struct history_window *w,
		     const struct history_record *rec);

/* The record's value: cpu nanoseconds, samples, off-CPU waits or nanoseconds, as the profile type says. */
int64_t selection_value(const struct selection *s, const struct history_record *rec);

#endif
