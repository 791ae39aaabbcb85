/* Prometheus relabel_configs (as of Prometheus 2.42) on a target's label set.
 *
 * A target's labels go through relabel_prepare (job and the scrape defaults Prometheus adds before
 * relabeling), relabel_process (the rules), then relabel_finalize (Prometheus' post-processing).
 * Rules are compiled once and are read-only afterwards, so several threads may process with them. */
#ifndef ANORAK_RELABEL_H
#define ANORAK_RELABEL_H

#include <stddef.h>
#include <stdint.h>

#include "labels/labelset.h"

enum relabel_action {
	RELABEL_REPLACE,
	RELABEL_KEEP,
	RELABEL_DROP,
	RELABEL_KEEPEQUAL,
	RELABEL_DROPEQUAL,
	RELABEL_HASHMOD,
	RELABEL_LABELMAP,
	RELABEL_LABELDROP,
	RELABEL_LABELKEEP,
	RELABEL_LOWERCASE,
	RELABEL_UPPERCASE,
	RELABEL_ACTION_NONE, /* "action:" given empty, which Prometheus refuses */
};

/* One relabel_config as written. Unset fields hold Prometheus' defaults: see relabel_config_init. */
struct relabel_config {
	char **source_labels;   /* NULL when the key is absent; an empty list is not NULL */
	size_t nsource_labels;
	const char *separator;  /* ";" */
	const char *regex;      /* NULL: the default "(.*)" (an explicit "(.*)" is not the default) */
	uint64_t modulus;       /* 0 */
	const char *target_label; /* "" */
	const char *replacement;  /* "$1" */
	enum relabel_action action; /* RELABEL_REPLACE */
};

void relabel_config_init(struct relabel_config *cfg);
/* Parses an action name, case-insensitively as Prometheus does; -EINVAL when unknown. */
int relabel_action_parse(const char *s, enum relabel_action *out);
const char *relabel_action_name(enum relabel_action action);
/* 1 for [a-zA-Z_][a-zA-Z0-9_]*. */
int relabel_label_name_valid(const char *name);

struct relabel_rule; /* compiled */

struct relabel_rules {
	struct relabel_rule **v;
	size_t n;
};

/* Validates cfg as Prometheus does on load, compiles it and appends it. On error returns -EINVAL
 * (-ENOMEM) and writes Prometheus' message, e.g. "relabel configuration for hashmod requires
 * non-zero modulus". cfg's strings are copied. */
int relabel_rules_add(struct relabel_rules *rules, const struct relabel_config *cfg, char *err,
		      size_t errlen);
void relabel_rules_free(struct relabel_rules *rules);

/* What Prometheus adds before relabeling, where not set: job=job_name, __scheme__=http,
 * __metrics_path__=/metrics, __scrape_interval__=1m, __scrape_timeout__=10s (the defaults of a
 * scrape job), so rules that read or rewrite them see what they would see in Prometheus. */
int relabel_prepare(struct labelset *ls, const char *job_name);
/* Applies the rules in order. 1 when the target is kept, 0 when a rule dropped it (ls is then
 * left as the dropping rule found it), negative errno on failure. */
int relabel_process(const struct relabel_rules *rules, struct labelset *ls);
/* Prometheus' PopulateLabels after relabeling: a target without __address__ fails ("no
 * address"); the address gets the scheme's default port when it has none; an address with '/',
 * an unparsable or zero scrape interval or timeout, or a timeout above the interval fails;
 * instance defaults to the address; then every label starting with "__" is removed (Prometheus
 * removes __meta_* here and the rest when it builds the target's labels). Label values must be
 * valid UTF-8. 0 on success, -EINVAL with Prometheus' message otherwise, or -ENOMEM. */
int relabel_finalize(struct labelset *ls, char *err, size_t errlen);

#endif
