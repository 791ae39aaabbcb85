#include "labels/selector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

struct parser {
	const char *start, *p;
	char *err;
	size_t errlen;
};

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "parse error at char %zu: %s", (size_t)(ps->p - ps->start) + 1, what);
	return -EINVAL;
}

static void skip_space(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static bool name_start(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
	return name_start(c, colon) || (c >= '0' && c <= '9');
}

/* A label name ([a-zA-Z_][a-zA-Z0-9_]*) or, with colon, a metric name. */
static char *parse_name(struct parser *ps, bool colon)
{
	const char *s = ps->p;

	if (!name_start(*s, colon))
		return NULL;
	while (name_char(*ps->p, colon))
		ps->p++;
	return strndup(s, ps->p - s);
}

/* One escape after the backslash (Go's strconv.Unquote rules); writes its bytes to out. */
static int parse_escape(struct parser *ps, char quote, char *out, size_t *n)
{
	static const char simple[] = "abfnrtv\\", values[] = "\a\b\f\n\r\t\v\\";
	char c = *ps->p;
	const char *hit = c ? strchr(simple, c) : NULL;
	uint32_t v = 0;
	int digits = 0, base = 16;

	if (hit) {
		ps->p++;
		out[0] = values[hit - simple];
		*n = 1;
		return 0;
	}
	if (c == quote) {
		ps->p++;
		out[0] = c;
		*n = 1;
		return 0;
	}
	if (c == 'x')
		digits = 2;
	else if (c == 'u')
		digits = 4;
	else if (c == 'U')
		digits = 8;
	else if (c >= '0' && c <= '7')
		digits = 3, base = 8;
	else
		return fail(ps, "unknown escape sequence \\%c", c ? c : ' ');
	if (base == 16)
		ps->p++;
	for (int i = 0; i < digits; i++, ps->p++) {
		int d = text_hex_digit(*ps->p);

		if (d < 0 || d >= base)
			return fail(ps, "invalid escape sequence");
		v = v * base + d;
	}
	if (c == 'x' || base == 8) {
		if (v > 255)
			return fail(ps, "octal escape value > 255");
		out[0] = (char)v;
		*n = 1;
		return 0;
	}
	if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
		return fail(ps, "invalid Unicode code point in escape");
	*n = text_utf8_encode(v, out);
	return 0;
}

/* A quoted string: "..." or '...' with escapes, `...` raw. */
static int parse_string(struct parser *ps, char **out)
{
	char quote = *ps->p;
	size_t cap = strlen(ps->p) + 1, len = 0;
	char *s;
	int err;

	if (quote != '"' && quote != '\'' && quote != '`')
		return fail(ps, "expected a quoted string");
	s = malloc(cap);
	if (!s)
		return -ENOMEM;
	ps->p++;
	while (*ps->p != quote) {
		size_t n = 0;

		if (!*ps->p || (quote != '`' && *ps->p == '\n')) {
			free(s);
			return fail(ps, "unterminated quoted string");
		}
		if (quote != '`' && *ps->p == '\\') {
			ps->p++;
			/* An escape never writes more bytes than it reads plus two (\x.. -> 1, \u.... -> 3). */
			err = parse_escape(ps, quote, s + len, &n);
			if (err) {
				free(s);
				return err;
			}
			len += n;
			continue;
		}
		s[len++] = *ps->p++;
	}
	ps->p++;
	s[len] = '\0';
	*out = s;
	return 0;
}

static int add_matcher(struct parser *ps, struct selector *sel, enum matcher_op op, char *name, char *value)
{
	struct matcher *m;
	char why[256];

	if (sel->n == SELECTOR_MAX_MATCHERS) {
		free(name);
		free(value);
		return fail(ps, "more than %d matchers", SELECTOR_MAX_MATCHERS);
	}
	m = &sel->matchers[sel->n];
	*m = (struct matcher){ .op = op, .name = name, .value = value };
	if ((op == MATCH_RE || op == MATCH_NRE) && relabel_re_compile(value, &m->re, why, sizeof(why))) {
		free(name);
		free(value);
		return fail(ps, "%s", why);
	}
	sel->n++;
	return 0;
}

static int parse_matcher(struct parser *ps, struct selector *sel)
{
	enum matcher_op op;
	char *name, *value = NULL;
	int err;

	name = parse_name(ps, false);
	if (!name)
		return errno == ENOMEM ? -ENOMEM : fail(ps, "expected a label name");
	skip_space(ps);
	if (ps->p[0] == '=' && ps->p[1] == '~')
		op = MATCH_RE, ps->p += 2;
	else if (ps->p[0] == '!' && ps->p[1] == '~')
		op = MATCH_NRE, ps->p += 2;
	else if (ps->p[0] == '!' && ps->p[1] == '=')
		op = MATCH_NE, ps->p += 2;
	else if (ps->p[0] == '=')
		op = MATCH_EQ, ps->p += 1;
	else {
		free(name);
		return fail(ps, "expected one of =, !=, =~, !~ after label name");
	}
	skip_space(ps);
	err = parse_string(ps, &value);
	if (err) {
		free(name);
		return err;
	}
	return add_matcher(ps, sel, op, name, value);
}

static int parse_body(struct parser *ps, struct selector *sel)
{
	char *metric;
	int err;

	skip_space(ps);
	if (!*ps->p)
		return 0;
	metric = parse_name(ps, true);
	if (metric) {
		char *value = strdup(metric), *name = strdup("__name__");

		free(metric);
		if (!value || !name) {
			free(value);
			free(name);
			return -ENOMEM;
		}
		err = add_matcher(ps, sel, MATCH_EQ, name, value);
		if (err)
			return err;
		skip_space(ps);
		if (!*ps->p)
			return 0;
	}
	if (*ps->p != '{')
		return fail(ps, "expected '{'");
	ps->p++;
	for (;;) {
		skip_space(ps);
		if (*ps->p == '}')
			break;
		err = parse_matcher(ps, sel);
		if (err)
			return err;
		skip_space(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != '}')
			return fail(ps, "expected ',' or '}' after a matcher");
	}
	ps->p++;
	skip_space(ps);
	if (*ps->p)
		return fail(ps, "unexpected text after '}'");
	return 0;
}

int selector_parse(const char *text, struct selector *sel, char *err, size_t errlen)
{
	struct parser ps = { .start = text ? text : "", .p = text ? text : "", .err = err, .errlen = errlen };
	int ret;

	sel->n = 0;
	sel->matchers = calloc(SELECTOR_MAX_MATCHERS, sizeof(*sel->matchers));
	if (!sel->matchers)
		return -ENOMEM;
	errno = 0;
	ret = parse_body(&ps, sel);
	if (ret) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		selector_free(sel);
	}
	return ret;
}

static const char *value_of(const struct label *labels, size_t n, const char *name, const char *extra_name,
			    const char *extra_value)
{
	size_t lo = 0, hi = n;

	if (extra_name && strcmp(name, extra_name) == 0)
		return extra_value;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(labels[mid].name, name);

		if (c == 0)
			return labels[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return "";
}

static bool regex_matches(const struct relabel_re *re, const char *value)
{
	pcre2_match_data *md = relabel_re_match_data(re);
	/* A regex PCRE2 gives up on (match limit) selects nothing rather than everything. */
	bool hit = md && relabel_re_match(re, value, md) == 1;

	pcre2_match_data_free(md);
	return hit;
}

bool selector_matches(const struct selector *sel, const struct label *labels, size_t n,
		      const char *extra_name, const char *extra_value)
{
	for (size_t i = 0; i < sel->n; i++) {
		const struct matcher *m = &sel->matchers[i];
		const char *v = value_of(labels, n, m->name, extra_name, extra_value);
		bool ok;

		switch (m->op) {
		case MATCH_EQ:
			ok = strcmp(v, m->value) == 0;
			break;
		case MATCH_NE:
			ok = strcmp(v, m->value) != 0;
			break;
		case MATCH_RE:
			ok = regex_matches(&m->re, v);
			break;
		default:
			ok = !regex_matches(&m->re, v);
			break;
		}
		if (!ok)
			return false;
	}
	return true;
}

void selector_free(struct selector *sel)
{
	for (size_t i = 0; i < sel->n; i++) {
		free(sel->matchers[i].name);
		free(sel->matchers[i].value);
		if (sel->matchers[i].op == MATCH_RE || sel->matchers[i].op == MATCH_NRE)
			relabel_re_free(&sel->matchers[i].re);
	}
	free(sel->matchers);
	sel->matchers = NULL;
	sel->n = 0;
}
