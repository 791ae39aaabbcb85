#include "exporter/encode/selection.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "exporter/encode/pyroscope.h"

void selection_free(struct selection *s)
{
	for (size_t i = 0; i < s->nselectors; i++)
		selector_free(&s->selectors[i]);
	history_filter_free(&s->filter);
	free(s->spans);
}

int selection_add_selector(struct selection *s, const char *text, struct http_reply *r)
{
	char why[256];

	if (s->nselectors == SELECTION_MAX_MATCHERS)
		return connect_error_reply(r, "invalid_argument", "more than %d matchers",
					   SELECTION_MAX_MATCHERS) ?: -EINVAL;
	if (selector_parse(text, &s->selectors[s->nselectors], why, sizeof(why)))
		return connect_error_reply(r, "invalid_argument", "label selector %.200s: %s", text, why) ?: -EINVAL;
	s->nselectors++;
	s->filter.selectors = s->selectors;
	s->filter.n = s->nselectors;
	return 0;
}

/* Milliseconds; 0 and 0 (not given) is everything kept. */
int selection_set_range(struct selection *s, int64_t start_ms, int64_t end_ms, struct http_reply *r)
{
	if (!start_ms && !end_ms) {
		s->start_ns = INT64_MIN;
		s->end_ns = INT64_MAX;
		return 0;
	}
	if (end_ms <= start_ms || start_ms < 0 || end_ms > INT64_MAX / SELECTION_NS_PER_MS)
		return connect_error_reply(r, "invalid_argument", "invalid time range: start %lld, end %lld (ms)",
				   (long long)start_ms, (long long)end_ms) ?: -EINVAL;
	s->start_ns = start_ms * SELECTION_NS_PER_MS;
	s->end_ns = end_ms * SELECTION_NS_PER_MS;
	return 0;
}

const struct selection_profile_type selection_profile_types[SELECTION_NTYPES] = {
	{ "process_cpu:cpu:nanoseconds:cpu:nanoseconds", "process_cpu", "cpu", "nanoseconds", "cpu", true,
	  SAMPLE_KIND_CPU },
	{ "process_cpu:samples:count:cpu:nanoseconds", "process_cpu", "samples", "count", "cpu", false,
	  SAMPLE_KIND_CPU },
	{ "process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds", "process_offcpu", "offcpu", "nanoseconds",
	  "offcpu", false, SAMPLE_KIND_OFFCPU_NS },
	{ "process_offcpu:samples:count:offcpu:nanoseconds", "process_offcpu", "samples", "count", "offcpu",
	  false, SAMPLE_KIND_OFFCPU_WAITS },
};

int selection_set_type(struct selection *s, const char *id, struct http_reply *r)
{
	for (size_t i = 0; i < SELECTION_NTYPES; i++) {
		if (strcmp(id, selection_profile_types[i].id) == 0) {
			s->cpu_ns = selection_profile_types[i].cpu_ns;
			s->kind = selection_profile_types[i].kind;
			return 0;
		}
	}
	return connect_error_reply(r, "invalid_argument", "unknown profile type \"%.200s\": this server has %s, %s, "
			   "%s and %s", id, selection_profile_types[0].id, selection_profile_types[1].id,
			   selection_profile_types[2].id, selection_profile_types[3].id) ?: -EINVAL;
}

int selection_set_spans(struct selection *s, char **spans, size_t n, struct http_reply *r)
{
	if (n > SELECTION_MAX_SPANS)
		return connect_error_reply(r, "invalid_argument", "more than %d span ids", SELECTION_MAX_SPANS) ?: -EINVAL;
	s->spans = calloc(n ? n : 1, sizeof(*s->spans));
	if (!s->spans)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (strlen(spans[i]) != 16)
			return connect_error_reply(r, "invalid_argument", "span id \"%.40s\" is not 16 hex digits",
					   spans[i]) ?: -EINVAL;
		for (int k = 0; k < 8; k++) {
			int b = text_hex_byte(spans[i] + 2 * k);

			if (b < 0)
				return connect_error_reply(r, "invalid_argument", "span id \"%s\" is not 16 hex digits",
						   spans[i]) ?: -EINVAL;
			s->spans[i][k] = (uint8_t)b;
		}
	}
	s->nspans = n;
	return 0;
}

bool selection_keeps(struct selection *s, const struct history_window *w,
		     const struct history_record *rec)
{
	if (!rec->frequency || rec->kind != s->kind || !history_filter_match(&s->filter, w, rec->labels))
		return false;
	if (!s->spans)
		return true;
	if (!rec->traced)
		return false;
	for (size_t i = 0; i < s->nspans; i++)
		if (!memcmp(s->spans[i], rec->span_id, 8))
			return true;
	return false;
}

int64_t selection_value(const struct selection *s, const struct history_record *rec)
{
	return s->cpu_ns ? (int64_t)rec->count * (1000000000LL / rec->frequency) : (int64_t)rec->count;
}
