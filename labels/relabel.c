#include "labels/relabel.h"

#include <civetweb.h>
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "common/text.h"
#include "labels/relabel_re.h"

struct relabel_rule {
	enum relabel_action action;
	char **source_labels;
	size_t nsource_labels;
	char *separator, *target_label, *replacement;
	uint64_t modulus;
	struct relabel_re re;
};

static const char *const action_names[] = {
	[RELABEL_REPLACE] = "replace",     [RELABEL_KEEP] = "keep",
	[RELABEL_DROP] = "drop",           [RELABEL_KEEPEQUAL] = "keepequal",
	[RELABEL_DROPEQUAL] = "dropequal", [RELABEL_HASHMOD] = "hashmod",
	[RELABEL_LABELMAP] = "labelmap",   [RELABEL_LABELDROP] = "labeldrop",
	[RELABEL_LABELKEEP] = "labelkeep", [RELABEL_LOWERCASE] = "lowercase",
	[RELABEL_UPPERCASE] = "uppercase", [RELABEL_ACTION_NONE] = "",
};

#define DEFAULT_SEPARATOR ";"
#define DEFAULT_REGEX "(.*)"
#define DEFAULT_REPLACEMENT "$1"

void relabel_config_init(struct relabel_config *cfg)
{
	*cfg = (struct relabel_config){
		.separator = DEFAULT_SEPARATOR,
		.target_label = "",
		.replacement = DEFAULT_REPLACEMENT,
		.action = RELABEL_REPLACE,
	};
}

int relabel_action_parse(const char *s, enum relabel_action *out)
{
	for (size_t i = 0; i < RELABEL_ACTION_NONE; i++) {
		if (!strcasecmp(s, action_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *relabel_action_name(enum relabel_action action)
{
	return action <= RELABEL_ACTION_NONE ? action_names[action] : "";
}

static int is_word(char c)
{
	return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int relabel_label_name_valid(const char *name)
{
	if (!*name || (*name >= '0' && *name <= '9'))
		return 0;
	for (; *name; name++)
		if (!is_word(*name))
			return 0;
	return 1;
}

/* Prometheus' relabelTarget, ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$: word characters and $name or
 * ${name} references, not starting with a digit. */
static int template_valid(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return 0;
	while (*s) {
		if (*s == '$' && s[1] == '{') {
			const char *e = s + 2;

			while (is_word(*e))
				e++;
			if (e == s + 2 || *e != '}')
				return 0;
			s = e + 1;
		} else if (*s == '$') {
			if (!is_word(*++s))
				return 0;
		} else if (is_word(*s)) {
			s++;
		} else {
			return 0;
		}
	}
	return 1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Prometheus' Config.Validate, in its order and with its messages. */
static int validate(const struct relabel_config *c, char *err, size_t errlen)
{
	enum relabel_action a = c->action;
	const char *name = relabel_action_name(a);
	int needs_target = a == RELABEL_REPLACE || a == RELABEL_HASHMOD || a == RELABEL_LOWERCASE ||
			   a == RELABEL_UPPERCASE || a == RELABEL_KEEPEQUAL || a == RELABEL_DROPEQUAL;
	int target_only = a == RELABEL_LOWERCASE || a == RELABEL_UPPERCASE ||
			  a == RELABEL_KEEPEQUAL || a == RELABEL_DROPEQUAL;
	int dollar = strchr(c->target_label, '$') != NULL;
	int default_sep = !strcmp(c->separator, DEFAULT_SEPARATOR);
	int default_repl = !strcmp(c->replacement, DEFAULT_REPLACEMENT);

	if (a == RELABEL_ACTION_NONE)
		return fail(err, errlen, "relabel action cannot be empty");
	if (a == RELABEL_HASHMOD && c->modulus == 0)
		return fail(err, errlen, "relabel configuration for hashmod requires non-zero modulus");
	if (needs_target && !*c->target_label)
		return fail(err, errlen,
			    "relabel configuration for %s action requires 'target_label' value", name);
	if ((a == RELABEL_REPLACE && !dollar && !relabel_label_name_valid(c->target_label)) ||
	    (a == RELABEL_REPLACE && dollar && !template_valid(c->target_label)) ||
	    (target_only && !relabel_label_name_valid(c->target_label)))
		return fail(err, errlen, "\"%s\" is invalid 'target_label' for %s action",
			    c->target_label, name);
	if (target_only && !default_repl)
		return fail(err, errlen, "'replacement' can not be set for %s action", name);
	if (a == RELABEL_LABELMAP && !template_valid(c->replacement))
		return fail(err, errlen, "\"%s\" is invalid 'replacement' for %s action",
			    c->replacement, name);
	if (a == RELABEL_HASHMOD && !relabel_label_name_valid(c->target_label))
		return fail(err, errlen, "\"%s\" is invalid 'target_label' for %s action",
			    c->target_label, name);
	/* Prometheus compares the regex by identity: any regex written in the file counts as set. */
	if ((a == RELABEL_KEEPEQUAL || a == RELABEL_DROPEQUAL) &&
	    (c->regex || c->modulus || !default_sep || !default_repl))
		return fail(err, errlen,
			    "%s action requires only 'source_labels' and `target_label`, and no other fields",
			    name);
	if ((a == RELABEL_LABELDROP || a == RELABEL_LABELKEEP) &&
	    (c->source_labels || *c->target_label || c->modulus || !default_sep || !default_repl))
		return fail(err, errlen, "%s action requires only 'regex', and no other fields", name);
	return 0;
}

static void rule_free(struct relabel_rule *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nsource_labels; i++)
		free(r->source_labels[i]);
	free(r->source_labels);
	free(r->separator);
	free(r->target_label);
	free(r->replacement);
	relabel_re_free(&r->re);
	free(r);
}

static struct relabel_rule *rule_copy(const struct relabel_config *c)
{
	struct relabel_rule *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->action = c->action;
	r->modulus = c->modulus;
	r->separator = strdup(c->separator);
	r->target_label = strdup(c->target_label);
	r->replacement = strdup(c->replacement);
	if (c->nsource_labels)
		r->source_labels = calloc(c->nsource_labels, sizeof(char *));
	if (!r->separator || !r->target_label || !r->replacement ||
	    (c->nsource_labels && !r->source_labels))
		goto nomem;
	for (; r->nsource_labels < c->nsource_labels; r->nsource_labels++) {
		r->source_labels[r->nsource_labels] = strdup(c->source_labels[r->nsource_labels]);
		if (!r->source_labels[r->nsource_labels])
			goto nomem;
	}
	return r;
nomem:
	rule_free(r);
	return NULL;
}

int relabel_rules_add(struct relabel_rules *rules, const struct relabel_config *cfg, char *err,
		      size_t errlen)
{
	struct relabel_rule *r, **v;
	int rc;

	/* Unmarshalling checks these before Validate runs. */
	for (size_t i = 0; i < cfg->nsource_labels; i++)
		if (!relabel_label_name_valid(cfg->source_labels[i]))
			return fail(err, errlen, "\"%s\" is not a valid label name",
				    cfg->source_labels[i]);
	r = rule_copy(cfg);
	if (!r)
		goto nomem;
	rc = relabel_re_compile(cfg->regex ? cfg->regex : DEFAULT_REGEX, &r->re, err, errlen);
	if (!rc)
		rc = validate(cfg, err, errlen);
	if (rc) {
		rule_free(r);
		return rc;
	}
	v = realloc(rules->v, (rules->n + 1) * sizeof(*v));
	if (!v) {
		rule_free(r);
		goto nomem;
	}
	rules->v = v;
	rules->v[rules->n++] = r;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

void relabel_rules_free(struct relabel_rules *rules)
{
	for (size_t i = 0; i < rules->n; i++)
		rule_free(rules->v[i]);
	free(rules->v);
	*rules = (struct relabel_rules){ 0 };
}

/* The source labels' values joined by the separator (a missing label is ""). */
static char *join_sources(const struct relabel_rule *r, const struct labelset *ls)
{
	size_t len = 1, seplen = strlen(r->separator);
	char *s, *p;

	for (size_t i = 0; i < r->nsource_labels; i++) {
		const char *v = labelset_get(ls, r->source_labels[i]);

		len += (v ? strlen(v) : 0) + (i ? seplen : 0);
	}
	s = p = malloc(len);
	if (!s)
		return NULL;
	*p = '\0';
	for (size_t i = 0; i < r->nsource_labels; i++) {
		const char *v = labelset_get(ls, r->source_labels[i]);

		if (i)
			p = stpcpy(p, r->separator);
		if (v)
			p = stpcpy(p, v);
	}
	return s;
}

static char *hashmod(const char *val, uint64_t modulus)
{
	char hex[33], *out;
	uint64_t h = 0;

	/* Prometheus keeps the big-endian uint64 of the digest's last 8 bytes (hex digits 16..31). */
	mg_md5(hex, val, NULL);
	for (int i = 16; i < 32; i++)
		h = h << 4 | (uint64_t)text_hex_digit(hex[i]);
	if (asprintf(&out, "%llu", (unsigned long long)(h % modulus)) < 0)
		return NULL;
	return out;
}

/* Go's strings.ToLower/ToUpper map each code point by Unicode's simple case mapping; glibc's
 * C.UTF-8 locale has the same tables. */
static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
	utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static char *change_case(const char *val, int upper)
{
	/* Each byte becomes at most 3 (an invalid byte becomes U+FFFD); a rune of n bytes at most 4. */
	char *out = malloc(strlen(val) * 4 + 1), *p = out;
	const unsigned char *s = (const unsigned char *)val;

	if (!out)
		return NULL;
	pthread_once(&utf8_locale_once, utf8_locale_init);
	while (*s) {
		size_t n;
		unsigned r = text_utf8_decode((const char *)s, &n);

		if (utf8_locale)
			r = (unsigned)(upper ? towupper_l((wint_t)r, utf8_locale)
					     : towlower_l((wint_t)r, utf8_locale));
		else if (r < 0x80)
			r = (unsigned)(upper ? (r >= 'a' && r <= 'z' ? r - 32 : r)
					     : (r >= 'A' && r <= 'Z' ? r + 32 : r));
		p += text_utf8_encode(r, p);
		s += n;
	}
	*p = '\0';
	return out;
}

/* Runs fn on every label of a snapshot of ls: Prometheus iterates the labels as they were before
 * the rule, whatever the rule sets meanwhile. */
static int each_label(const struct relabel_rule *r, struct labelset *ls, pcre2_match_data *md,
		      int (*fn)(const struct relabel_rule *, struct labelset *, const struct label *,
				int matched, pcre2_match_data *))
{
	struct labelset snap = { 0 };
	int err = labelset_copy(&snap, ls);

	for (size_t i = 0; !err && i < snap.n; i++) {
		int m = relabel_re_match(&r->re, snap.labels[i].name, md);

		err = m < 0 ? m : fn(r, ls, &snap.labels[i], m, md);
	}
	labelset_free(&snap);
	return err;
}

static int labelmap_one(const struct relabel_rule *r, struct labelset *ls, const struct label *l,
			int matched, pcre2_match_data *md)
{
	char *name;
	int err;

	if (!matched)
		return 0;
	/* The regex is anchored, so Go's ReplaceAllString is one expansion of the whole name; the
	 * result is used even when it is not a valid label name, as Prometheus 2.42 does. */
	name = relabel_re_expand(&r->re, r->replacement, l->name, md);
	if (!name)
		return -ENOMEM;
	err = labelset_set(ls, name, l->value);
	free(name);
	return err;
}

static int labeldrop_one(const struct relabel_rule *r, struct labelset *ls, const struct label *l,
			 int matched, pcre2_match_data *md)
{
	(void)md;
	if (matched == (r->action == RELABEL_LABELDROP))
		return labelset_set(ls, l->name, NULL);
	return 0;
}

static int replace(const struct relabel_rule *r, struct labelset *ls, const char *val,
		   pcre2_match_data *md)
{
	char *target, *res = NULL;
	int m = relabel_re_match(&r->re, val, md), err = 0;

	if (m <= 0)
		return m;
	target = relabel_re_expand(&r->re, r->target_label, val, md);
	if (!target)
		return -ENOMEM;
	/* An expanded target that is not a label name makes the rule do nothing. */
	if (relabel_label_name_valid(target)) {
		res = relabel_re_expand(&r->re, r->replacement, val, md);
		/* An empty result deletes the label. */
		err = res ? labelset_set(ls, target, res) : -ENOMEM;
	}
	free(target);
	free(res);
	return err;
}

/* One rule: 1 kept, 0 dropped, negative errno. */
static int apply(const struct relabel_rule *r, struct labelset *ls, pcre2_match_data *md)
{
	char *val = join_sources(r, ls), *s = NULL;
	const char *cur;
	int m, rc = 1;

	if (!val)
		return -ENOMEM;
	switch (r->action) {
	case RELABEL_KEEP:
	case RELABEL_DROP:
		m = relabel_re_match(&r->re, val, md);
		rc = m < 0 ? m : m == (r->action == RELABEL_KEEP);
		break;
	case RELABEL_KEEPEQUAL:
	case RELABEL_DROPEQUAL:
		cur = labelset_get(ls, r->target_label);
		rc = !strcmp(cur ? cur : "", val) == (r->action == RELABEL_KEEPEQUAL);
		break;
	case RELABEL_REPLACE:
		rc = replace(r, ls, val, md);
		rc = rc < 0 ? rc : 1;
		break;
	case RELABEL_LOWERCASE:
	case RELABEL_UPPERCASE:
		s = change_case(val, r->action == RELABEL_UPPERCASE);
		rc = s ? labelset_set(ls, r->target_label, s) : -ENOMEM;
		rc = rc < 0 ? rc : 1;
		break;
	case RELABEL_HASHMOD:
		s = hashmod(val, r->modulus);
		rc = s ? labelset_set(ls, r->target_label, s) : -ENOMEM;
		rc = rc < 0 ? rc : 1;
		break;
	case RELABEL_LABELMAP:
		rc = each_label(r, ls, md, labelmap_one);
		rc = rc < 0 ? rc : 1;
		break;
	case RELABEL_LABELDROP:
	case RELABEL_LABELKEEP:
		rc = each_label(r, ls, md, labeldrop_one);
		rc = rc < 0 ? rc : 1;
		break;
	case RELABEL_ACTION_NONE:
		rc = -EINVAL;
		break;
	}
	free(val);
	free(s);
	return rc;
}

int relabel_process(const struct relabel_rules *rules, struct labelset *ls)
{
	for (size_t i = 0; i < rules->n; i++) {
		/* Per call, so that threads can share the compiled rules. */
		pcre2_match_data *md = relabel_re_match_data(&rules->v[i]->re);
		int rc;

		if (!md)
			return -ENOMEM;
		rc = apply(rules->v[i], ls, md);
		pcre2_match_data_free(md);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

int relabel_prepare(struct labelset *ls, const char *job_name)
{
	/* The defaults of a scrape job without settings: scrape_interval 1m, scrape_timeout 10s. */
	const char *defaults[][2] = {
		{ "job", job_name },
		{ "__scrape_interval__", "1m" },
		{ "__scrape_timeout__", "10s" },
		{ "__metrics_path__", "/metrics" },
		{ "__scheme__", "http" },
	};

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (!labelset_get(ls, defaults[i][0])) {
			int err = labelset_set(ls, defaults[i][0], defaults[i][1]);

			if (err)
				return err;
		}
	}
	return 0;
}

/* Go's net.SplitHostPort succeeds on s. */
static int has_port(const char *s)
{
	const char *colon = strrchr(s, ':'), *k = s;

	if (!colon)
		return 0;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end + 1 != colon)
			return 0;
		s++;
		k = end + 1;
	} else if (memchr(s, ':', (size_t)(colon - s))) {
		return 0;
	}
	return !strchr(s, '[') && !strchr(k, ']');
}

/* Prometheus' model.ParseDuration, in milliseconds: [Ny][Nw][Nd][Nh][Nm][Ns][Nms], or "0". */
static int parse_duration(const char *s, int64_t *ms, char *err, size_t errlen, const char *what)
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{ "y", 365LL * 24 * 3600 * 1000 }, { "w", 7LL * 24 * 3600 * 1000 },
		{ "d", 24LL * 3600 * 1000 },       { "h", 3600LL * 1000 },
		{ "m", 60LL * 1000 },              { "s", 1000 },
		{ "ms", 1 },
	};
	/* Go's time.Duration counts nanoseconds in an int64. */
	const int64_t max_ms = INT64_MAX / 1000000;
	const char *p = s;
	size_t next = 0;

	*ms = 0;
	if (!strcmp(s, "0"))
		return 0;
	if (!*s)
		return fail(err, errlen, "error parsing %s: empty duration string", what);
	while (*p) {
		const char *d = p;
		int64_t n = 0;
		int big = 0;
		size_t u;

		while (*p >= '0' && *p <= '9') {
			big |= n > (INT64_MAX - 9) / 10;
			n = big ? n : n * 10 + (*p - '0');
			p++;
		}
		for (u = next; p > d && u < sizeof(units) / sizeof(units[0]); u++) {
			size_t len = strlen(units[u].unit);

			/* "m" must not take the "m" of "ms". */
			if (!strncmp(p, units[u].unit, len) && !(len == 1 && *p == 'm' && p[1] == 's'))
				break;
		}
		if (p == d || u == sizeof(units) / sizeof(units[0]))
			return fail(err, errlen, "error parsing %s: not a valid duration string: \"%s\"",
				    what, s);
		if (big || n > max_ms / units[u].ms || *ms > max_ms - n * units[u].ms)
			return fail(err, errlen, "error parsing %s: duration out of range", what);
		*ms += n * units[u].ms;
		p += strlen(units[u].unit);
		next = u + 1;
	}
	return 0;
}

static int check_scrape_settings(const struct labelset *ls, char *err, size_t errlen)
{
	const char *interval = labelset_get(ls, "__scrape_interval__");
	const char *timeout = labelset_get(ls, "__scrape_timeout__");
	int64_t ims, tms;
	int rc;

	interval = interval ? interval : "";
	timeout = timeout ? timeout : "";
	if ((rc = parse_duration(interval, &ims, err, errlen, "scrape interval")))
		return rc;
	if (ims == 0)
		return fail(err, errlen, "scrape interval cannot be 0");
	if ((rc = parse_duration(timeout, &tms, err, errlen, "scrape timeout")))
		return rc;
	if (tms == 0)
		return fail(err, errlen, "scrape timeout cannot be 0");
	if (tms > ims)
		return fail(err, errlen,
			    "scrape timeout cannot be greater than scrape interval (\"%s\" > \"%s\")",
			    timeout, interval);
	return 0;
}

int relabel_finalize(struct labelset *ls, char *err, size_t errlen)
{
	const char *addr = labelset_get(ls, "__address__"), *scheme;
	char *with_port = NULL;
	size_t i;
	int rc;

	if (!addr)
		return fail(err, errlen, "no address");
	scheme = labelset_get(ls, "__scheme__");
	scheme = scheme ? scheme : "";
	if (!has_port(addr)) {
		char *probe;
		bool port_makes_valid;

		/* Only an address that a port makes valid gets the scheme's default port. The address is
		 * a label value of any length: the probe lives on the heap, not the stack. */
		if (asprintf(&probe, "%s:1234", addr) < 0)
			return -ENOMEM;
		port_makes_valid = has_port(probe);
		free(probe);
		if (port_makes_valid) {
			const char *port = !strcmp(scheme, "http") || !*scheme ? "80"
					   : !strcmp(scheme, "https")          ? "443"
									       : NULL;

			/* Prometheus names the job's configured scheme here, which is http. */
			if (!port)
				return fail(err, errlen, "invalid scheme: \"http\"");
			if (asprintf(&with_port, "%s:%s", addr, port) < 0)
				return -ENOMEM;
			addr = with_port;
		}
	}
	if (strchr(addr, '/'))
		rc = fail(err, errlen, "\"%s\" is not a valid hostname", addr);
	else
		rc = check_scrape_settings(ls, err, errlen);
	if (!rc && !labelset_get(ls, "instance"))
		rc = labelset_set(ls, "instance", addr);
	free(with_port);
	if (rc)
		return rc;
	/* Prometheus checks every label but __meta_* ones, including __ labels it removes later. */
	for (i = 0; i < ls->n; i++)
		if (strncmp(ls->labels[i].name, "__meta_", 7) && !text_utf8_valid(ls->labels[i].value))
			return fail(err, errlen, "invalid label value for \"%s\": \"%s\"",
				    ls->labels[i].name, ls->labels[i].value);
	for (i = 0; i < ls->n;) {
		if (!strncmp(ls->labels[i].name, "__", 2))
			labelset_set(ls, ls->labels[i].name, NULL);
		else
			i++;
	}
	return 0;
}
