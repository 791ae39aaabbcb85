/* Prometheus series selectors: `{namespace="shop",pod=~"api-.*"}`, with =, !=, =~ and !~, an optional
 * metric name before the braces (`process_cpu{...}` means __name__="process_cpu"), and string literals
 * in double quotes, single quotes or backticks, escaped as in Go. Regexes have Go's syntax and are
 * anchored, as in Prometheus. A label a sample does not have matches as the empty string. */
#ifndef ANORAK_SELECTOR_H
#define ANORAK_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "labels/labelset.h"
#include "labels/relabel_re.h"

#define SELECTOR_MAX_MATCHERS 32

enum matcher_op { MATCH_EQ, MATCH_NE, MATCH_RE, MATCH_NRE };

struct matcher {
	enum matcher_op op;
	char *name, *value;
	struct relabel_re re; /* MATCH_RE, MATCH_NRE */
};

struct selector {
	struct matcher *matchers;
	size_t n;
};

/* Parses text (NULL or "" selects everything). On error returns -EINVAL with a message naming the
 * position and the problem in err, or -ENOMEM. */
int selector_parse(const char *text, struct selector *sel, char *err, size_t errlen);
/* Whether the labels (sorted by name, as in a labelset) satisfy every matcher. extra_name/extra_value:
 * one more label that is not in the set (NULL for none), e.g. the profile's __name__. */
bool selector_matches(const struct selector *sel, const struct label *labels, size_t n,
		      const char *extra_name, const char *extra_value);
void selector_free(struct selector *sel);

#endif
