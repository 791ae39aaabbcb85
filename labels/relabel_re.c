#include "labels/relabel_re.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* Go's limit on {n,m} counts. */
#define MAX_REPEAT 1000
/* Go's \s is [\t\n\f\r ]; PCRE2's also matches \v, so \s and \S are spelled out. */
#define SPACE_CHARS "\\t\\n\\f\\r "
#define NONSPACE_RANGES "\\x00-\\x08\\x0b\\x0e-\\x1f\\x21-\\x{10ffff}"

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_puts(b, tmp);
}

static int is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_octal(char c)
{
	return c >= '0' && c <= '7';
}

/* The translation of one pattern; parse state follows Go's regexp/syntax parser. */
struct xlate {
	const char *pat;
	size_t i;
	struct buf out;
	char **names;
	unsigned ngroups;
	int depth;
	int have_atom;     /* a repetition operator has something to repeat */
	long last_repeat;  /* start of the repetition operator just before, or -1 */
	char *err;
	size_t errlen;
};

static int go_error(struct xlate *x, const char *code, const char *expr, size_t n)
{
	snprintf(x->err, x->errlen, "error parsing regexp: %s: `%.*s`", code, (int)n, expr);
	return -EINVAL;
}

/* Errors Go reports with the rest of the expression from pat[*from], or all of it when from is NULL. */
static int go_error_rest(struct xlate *x, const char *code, const size_t *from)
{
	snprintf(x->err, x->errlen, "error parsing regexp: %s: `%s`", code, x->pat + (from ? *from : 0));
	return -EINVAL;
}

/* Go's parseEscape at x->pat[x->i] == '\\': a single character (*cp), emitted as \x{...}. */
static int single_escape(struct xlate *x, unsigned long *cp)
{
	const char *s = x->pat + x->i, *t = s + 1;
	unsigned long r = 0;
	char c = *t;

	if (!c)
		return go_error(x, "trailing backslash at end of expression", "", 0);
	t += text_utf8_char_len(t);
	if ((unsigned char)c < 0x80 && !is_alnum(c)) {
		r = (unsigned char)c;
		goto done;
	}
	switch (c) {
	case '1': case '2': case '3': case '4': case '5': case '6': case '7':
		/* A lone non-zero digit is a backreference, which RE2 does not have. */
		if (!is_octal(*t))
			break;
		/* fallthrough */
	case '0':
		r = c - '0';
		for (int k = 1; k < 3 && is_octal(*t); k++)
			r = r * 8 + (unsigned long)(*t++ - '0');
		goto done;
	case 'x':
		if (!*t)
			break;
		c = *t;
		t += text_utf8_char_len(t);
		if (c == '{') {
			int nhex = 0;

			while (*t) {
				c = *t;
				t += text_utf8_char_len(t);
				if (c == '}') {
					if (nhex)
						goto done;
					break;
				}
				if (text_hex_digit(c) < 0)
					break;
				r = r * 16 + (unsigned long)text_hex_digit(c);
				if (r > 0x10ffff)
					break;
				nhex++;
			}
			break;
		}
		if (text_hex_digit(c) >= 0 && text_hex_digit(*t) >= 0) {
			r = (unsigned long)(text_hex_digit(c) * 16 + text_hex_digit(*t));
			t++;
			goto done;
		}
		if (*t)
			t += text_utf8_char_len(t);
		break;
	case 'a': r = '\a'; goto done;
	case 'f': r = '\f'; goto done;
	case 'n': r = '\n'; goto done;
	case 'r': r = '\r'; goto done;
	case 't': r = '\t'; goto done;
	case 'v': r = '\v'; goto done;
	}
	return go_error(x, "invalid escape sequence", s, (size_t)(t - s));
done:
	*cp = r;
	buf_printf(&x->out, "\\x{%lx}", r);
	x->i = (size_t)(t - x->pat);
	return 0;
}

/* \pN, \p{Name}, \P{^Name}: Go accepts Unicode categories and scripts; PCRE2 knows more names
 * (its X... and L& pseudo-properties), which are refused here. Returns 1 when one was copied. */
static int unicode_class(struct xlate *x)
{
	const char *s = x->pat + x->i, *t = s + 2;
	const char *name;
	size_t n;

	if (s[0] != '\\' || (s[1] != 'p' && s[1] != 'P'))
		return 0;
	if (!*t)
		return go_error(x, "invalid character class range", s, strlen(s));
	if (*t == '{') {
		const char *end = strchr(t, '}');

		if (!end)
			return go_error(x, "invalid character class range", s, strlen(s));
		name = t + 1 + (t[1] == '^');
		n = (size_t)(end - name);
		t = end + 1;
	} else {
		/* One letter: only the one-letter categories exist. */
		name = t;
		n = text_utf8_char_len(t);
		t += n;
		if (n != 1 || !strchr("CLMNPSZ", *name))
			return go_error(x, "invalid character class range", s, (size_t)(t - s));
	}
	if (n == 0 || (name[0] == 'X' && n == 3) || memchr(name, '&', n) || memchr(name, ' ', n) ||
	    memchr(name, '-', n) || memchr(name, ':', n) || memchr(name, '=', n) ||
	    (name[0] >= 'a' && name[0] <= 'z'))
		return go_error(x, "invalid character class range", s, (size_t)(t - s));
	buf_add(&x->out, s, (size_t)(t - s));
	x->i = (size_t)(t - x->pat);
	return 1;
}

/* \d \D \s \S \w \W. Returns 1 when one was copied. */
static int perl_class(struct xlate *x, int in_class)
{
	const char *s = x->pat + x->i;

	if (s[0] != '\\' || !s[1] || !strchr("dDsSwW", s[1]))
		return 0;
	if (s[1] == 's')
		buf_puts(&x->out, in_class ? SPACE_CHARS : "[" SPACE_CHARS "]");
	else if (s[1] == 'S')
		buf_puts(&x->out, in_class ? NONSPACE_RANGES : "[^" SPACE_CHARS "]");
	else
		buf_add(&x->out, s, 2);
	x->i += 2;
	return 1;
}

/* One character of a class (*cp), escaped so that PCRE2 reads it as that character. */
static int class_char(struct xlate *x, size_t class_start, unsigned long *cp)
{
	const char *s = x->pat + x->i;
	size_t n;

	if (!*s)
		return go_error_rest(x, "missing closing ]", &class_start);
	if (*s == '\\')
		return single_escape(x, cp);
	*cp = text_utf8_decode(s, &n);
	if ((unsigned char)*s < 0x80 && !is_alnum(*s)) {
		char esc[2] = { '\\', *s };

		buf_add(&x->out, esc, 2);
		x->i++;
	} else {
		buf_add(&x->out, s, n);
		x->i += n;
	}
	return 0;
}

static const char *const posix_classes[] = { "alnum", "alpha", "ascii", "blank", "cntrl", "digit",
					     "graph", "lower", "print", "punct", "space", "upper",
					     "word", "xdigit" };

/* [:name:] or [:^name:] inside a class. Returns 1 when one was copied. */
static int posix_class(struct xlate *x)
{
	const char *s = x->pat + x->i, *end;
	const char *name;
	size_t n;

	if (s[0] != '[' || s[1] != ':' || !s[2])
		return 0;
	end = strstr(s + 2, ":]");
	if (!end)
		return 0;
	name = s + 2 + (s[2] == '^');
	n = (size_t)(end - name);
	for (size_t k = 0; k < sizeof(posix_classes) / sizeof(posix_classes[0]); k++) {
		if (strlen(posix_classes[k]) == n && !memcmp(posix_classes[k], name, n)) {
			buf_add(&x->out, s, (size_t)(end + 2 - s));
			x->i = (size_t)(end + 2 - x->pat);
			return 1;
		}
	}
	return go_error(x, "invalid character class range", s, (size_t)(end + 2 - s));
}

/* Go's parseClass at '['. */
static int char_class(struct xlate *x)
{
	size_t start = x->i;
	int first = 1, err;

	buf_puts(&x->out, "[");
	x->i++;
	if (x->pat[x->i] == '^') {
		buf_puts(&x->out, "^");
		x->i++;
	}
	while (x->pat[x->i] != ']' || first) {
		size_t range = x->i;
		unsigned long lo, hi;

		first = 0;
		if ((err = posix_class(x)) || (err = unicode_class(x)) || perl_class(x, 1)) {
			if (err < 0)
				return err;
			continue;
		}
		if ((err = class_char(x, start, &lo)))
			return err;
		if (x->pat[x->i] == '-' && x->pat[x->i + 1] && x->pat[x->i + 1] != ']') {
			buf_puts(&x->out, "-");
			x->i++;
			if ((err = class_char(x, start, &hi)))
				return err;
			if (hi < lo)
				return go_error(x, "invalid character class range", x->pat + range,
						x->i - range);
		}
	}
	buf_puts(&x->out, "]");
	x->i++;
	return 0;
}

static int add_group(struct xlate *x, const char *name, size_t n)
{
	char **names = realloc(x->names, (x->ngroups + 2) * sizeof(*names));

	if (!names)
		return -ENOMEM;
	x->names = names;
	x->ngroups++;
	names[x->ngroups] = NULL;
	if (name && !(names[x->ngroups] = strndup(name, n)))
		return -ENOMEM;
	return 0;
}

/* Go's parsePerlFlags at "(?": a named group, a flag change, or a non-capturing group. */
static int perl_group(struct xlate *x)
{
	const char *s = x->pat + x->i, *t;
	int sign = 1, saw_flag = 0;

	if (s[2] == 'P' && s[3] == '<') {
		const char *end = strchr(s, '>'), *name = s + 4;

		if (!end)
			return go_error_rest(x, "invalid named capture", &x->i);
		if (end == name)
			return go_error(x, "invalid named capture", s, (size_t)(end + 1 - s));
		for (const char *p = name; p < end; p++)
			if (*p != '_' && !is_alnum(*p))
				return go_error(x, "invalid named capture", s, (size_t)(end + 1 - s));
		/* Named groups become plain ones: Go allows names PCRE2 does not (leading digit,
		 * duplicates), and expansion looks names up in our own table. */
		if (add_group(x, name, (size_t)(end - name)))
			return -ENOMEM;
		buf_puts(&x->out, "(");
		x->depth++;
		x->have_atom = 0;
		x->i = (size_t)(end + 1 - x->pat);
		return 0;
	}
	for (t = s + 2; *t; t++) {
		char c = *t;

		if (c == 'i' || c == 'm' || c == 's' || c == 'U') {
			saw_flag = 1;
		} else if (c == '-') {
			if (sign < 0)
				break;
			sign = -1;
			saw_flag = 0;
		} else if (c == ':' || c == ')') {
			if (sign < 0 && !saw_flag)
				break;
			/* "(?)" changes nothing; PCRE2 need not see it. */
			if (t > s + 2 || c == ':')
				buf_add(&x->out, s, (size_t)(t + 1 - s));
			if (c == ':')
				x->depth++;
			x->have_atom = 0;
			x->i = (size_t)(t + 1 - x->pat);
			return 0;
		} else {
			break;
		}
	}
	if (*t)
		t += text_utf8_char_len(t);
	return go_error(x, "invalid or unsupported Perl syntax", s, (size_t)(t - s));
}

/* Go's parseInt: decimal without leading zeros; -1 when too large. */
static const char *parse_int(const char *s, long *n)
{
	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return NULL;
	*n = 0;
	for (; *s >= '0' && *s <= '9'; s++)
		if (*n >= 0)
			*n = *n >= 100000000 ? -1 : *n * 10 + (*s - '0');
	return s;
}

/* Go's parseRepeat at '{': the end of "{n}", "{n,}" or "{n,m}", or NULL when '{' is a literal. */
static const char *parse_repeat(const char *s, long *min, long *max)
{
	const char *t = parse_int(s + 1, min);

	if (!t)
		return NULL;
	if (*t != ',') {
		*max = *min;
	} else if (*++t == '}') {
		*max = -1;
	} else {
		if (!(t = parse_int(t, max)))
			return NULL;
		if (*max < 0)
			*min = -1;
	}
	return *t == '}' ? t + 1 : NULL;
}

/* A repetition operator pat[start..end), plus Go's lazy '?'. */
static int repetition(struct xlate *x, size_t start, size_t end)
{
	if (x->pat[end] == '?')
		end++;
	if (x->last_repeat >= 0)
		return go_error(x, "invalid nested repetition operator", x->pat + x->last_repeat,
				end - (size_t)x->last_repeat);
	if (!x->have_atom)
		return go_error(x, "missing argument to repetition operator", x->pat + start, end - start);
	buf_add(&x->out, x->pat + start, end - start);
	x->last_repeat = (long)start;
	x->i = end;
	return 0;
}

/* "\Q...\E": every character literal. */
static void quoted(struct xlate *x)
{
	const char *s = x->pat + x->i + 2, *end = strstr(s, "\\E");
	const char *stop = end ? end : s + strlen(s);

	while (s < stop) {
		size_t n = text_utf8_char_len(s);

		if ((unsigned char)*s < 0x80 && !is_alnum(*s))
			buf_add(&x->out, "\\", 1);
		buf_add(&x->out, s, n);
		s += n;
		x->have_atom = 1;
	}
	x->i = (size_t)((end ? end + 2 : stop) - x->pat);
}

static int escape(struct xlate *x)
{
	const char *s = x->pat + x->i;
	unsigned long cp;
	int err;

	switch (s[1]) {
	case 'A': case 'z': case 'b': case 'B':
		buf_puts(&x->out, "(?:");
		buf_add(&x->out, s, 2);
		buf_puts(&x->out, ")");
		x->i += 2;
		return 0;
	case 'Q':
		quoted(x);
		return 0;
	case 'C':
		return go_error(x, "invalid escape sequence", s, 2);
	}
	if ((err = unicode_class(x)))
		return err < 0 ? err : 0;
	if (perl_class(x, 0))
		return 0;
	return single_escape(x, &cp);
}

static int translate_one(struct xlate *x)
{
	const char *s = x->pat + x->i;
	long min, max;
	const char *end;
	int err = 0;

	switch (*s) {
	case '(':
		if (s[1] == '?')
			return perl_group(x);
		if ((err = add_group(x, NULL, 0)))
			return err;
		buf_puts(&x->out, "(");
		x->depth++;
		x->have_atom = 0;
		x->i++;
		return 0;
	case ')':
		if (x->depth == 0)
			return go_error_rest(x, "unexpected )", NULL);
		x->depth--;
		break;
	case '|':
		buf_puts(&x->out, "|");
		x->have_atom = 0;
		x->i++;
		return 0;
	case '*': case '+': case '?':
		return repetition(x, x->i, x->i + 1);
	case '{':
		end = parse_repeat(s, &min, &max);
		if (!end) {
			/* Go reads a '{' that starts no valid count as a literal; PCRE2 might not. */
			buf_puts(&x->out, "\\{");
			x->i++;
			x->have_atom = 1;
			return 0;
		}
		if (min < 0 || min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && min > max))
			return go_error(x, "invalid repeat count", s, (size_t)(end - s));
		return repetition(x, x->i, (size_t)(end - x->pat));
	case '[':
		err = char_class(x);
		x->have_atom = 1;
		return err;
	case '\\':
		x->have_atom = 1;
		return escape(x);
	case '^': case '$':
		/* Go lets a repetition apply to an assertion ("^*"); PCRE2 only to a group. */
		buf_puts(&x->out, *s == '^' ? "(?:^)" : "(?:$)");
		x->i++;
		x->have_atom = 1;
		return 0;
	}
	buf_add(&x->out, s, text_utf8_char_len(s));
	x->i += text_utf8_char_len(s);
	x->have_atom = 1;
	return 0;
}

static int translate(struct xlate *x)
{
	x->last_repeat = -1;
	while (x->pat[x->i]) {
		long before = x->last_repeat;
		int err = translate_one(x);

		if (err)
			return err;
		/* Only a repetition directly after another one is "nested". */
		if (x->last_repeat == before)
			x->last_repeat = -1;
	}
	if (x->depth > 0)
		return go_error_rest(x, "missing closing )", NULL);
	return x->out.oom ? -ENOMEM : 0;
}

static void free_names(char **names, unsigned ngroups)
{
	if (!names)
		return;
	for (unsigned i = 1; i <= ngroups; i++)
		free(names[i]);
	free(names);
}

int relabel_re_compile(const char *pattern, struct relabel_re *re, char *err, size_t errlen)
{
	struct xlate x = { .err = err, .errlen = errlen };
	pcre2_compile_context *ctx;
	char *anchored;
	int rc, code;
	PCRE2_SIZE off;

	*re = (struct relabel_re){ 0 };
	/* Prometheus parses the text "^(?:" pattern ")$", so a ')' in the pattern can close the
	 * anchoring group ("a)|(b" is valid and unanchored in part); parse the same text. */
	if (asprintf(&anchored, "^(?:%s)$", pattern) < 0) {
		snprintf(err, errlen, "out of memory compiling regex %s", pattern);
		return -ENOMEM;
	}
	x.pat = anchored;
	rc = translate(&x);
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory compiling regex %s", pattern);
		goto out;
	}
	ctx = pcre2_compile_context_create(NULL);
	if (!ctx) {
		rc = -ENOMEM;
		goto out;
	}
	/* Go: '.' excludes only \n, '$' is the very end, (?m)^ also matches after a final \n. */
	pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
	re->code = pcre2_compile((PCRE2_SPTR)x.out.p, PCRE2_ZERO_TERMINATED,
				 PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY |
					 PCRE2_ALT_CIRCUMFLEX | PCRE2_NEVER_BACKSLASH_C,
				 &code, &off, ctx);
	pcre2_compile_context_free(ctx);
	if (!re->code) {
		PCRE2_UCHAR msg[128];

		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "error parsing regexp: %s: `%s`", (char *)msg, pattern);
		rc = -EINVAL;
		goto out;
	}
	re->names = x.names;
	re->ngroups = x.ngroups;
	x.names = NULL;
out:
	free_names(x.names, x.ngroups);
	free(x.out.p);
	free(anchored);
	return rc;
}

pcre2_match_data *relabel_re_match_data(const struct relabel_re *re)
{
	return pcre2_match_data_create_from_pattern(re->code, NULL);
}

int relabel_re_match(const struct relabel_re *re, const char *s, pcre2_match_data *md)
{
	int rc = pcre2_match(re->code, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);

	if (rc > 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -ERANGE;
}

/* Matches Go's group-name characters (unicode.IsLetter, unicode.IsDigit, '_'). */
static pcre2_code *name_chars;
static pthread_once_t name_chars_once = PTHREAD_ONCE_INIT;

static void name_chars_init(void)
{
	int code;
	PCRE2_SIZE off;

	name_chars = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nd}_]*", PCRE2_ZERO_TERMINATED,
				   PCRE2_ANCHORED | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off,
				   NULL);
}

/* Length of the group name at s. */
static size_t name_len(const char *s)
{
	pcre2_match_data *md;
	size_t n = 0;

	pthread_once(&name_chars_once, name_chars_init);
	if (!name_chars || !(md = pcre2_match_data_create(1, NULL)))
		return 0;
	if (pcre2_match(name_chars, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) > 0)
		n = pcre2_get_ovector_pointer(md)[1];
	pcre2_match_data_free(md);
	return n;
}

/* The group a name refers to: a number (no leading zero, below 1e8) or the first group so named;
 * -1 for none. */
static long group_of(const struct relabel_re *re, const char *name, size_t n)
{
	long num = 0;

	for (size_t i = 0; i < n; i++) {
		if (name[i] < '0' || name[i] > '9' || num >= 100000000) {
			num = -1;
			break;
		}
		num = num * 10 + (name[i] - '0');
	}
	if (name[0] == '0' && n > 1)
		num = -1;
	if (num >= 0)
		return num;
	for (unsigned i = 1; i <= re->ngroups; i++)
		if (re->names[i] && strlen(re->names[i]) == n && !memcmp(re->names[i], name, n))
			return i;
	return -1;
}

char *relabel_re_expand(const struct relabel_re *re, const char *tmpl, const char *s,
			pcre2_match_data *md)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	struct buf b = { 0 };
	const char *dollar;

	buf_add(&b, "", 0);
	while ((dollar = strchr(tmpl, '$'))) {
		const char *name = dollar + 1, *rest;
		int brace = *name == '{';
		size_t n;
		long g;

		buf_add(&b, tmpl, (size_t)(dollar - tmpl));
		if (*name == '$') {
			buf_add(&b, "$", 1);
			tmpl = name + 1;
			continue;
		}
		name += brace;
		n = name_len(name);
		rest = name + n + brace;
		/* Malformed: an empty name or a missing '}' leaves the '$' as text. */
		if (n == 0 || (brace && name[n] != '}')) {
			buf_add(&b, "$", 1);
			tmpl = dollar + 1;
			continue;
		}
		g = group_of(re, name, n);
		if (g >= 0 && (unsigned long)g <= re->ngroups && ov[2 * g] != PCRE2_UNSET)
			buf_add(&b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
		tmpl = rest;
	}
	buf_puts(&b, tmpl);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

void relabel_re_free(struct relabel_re *re)
{
	pcre2_code_free(re->code);
	free_names(re->names, re->ngroups);
	*re = (struct relabel_re){ 0 };
}
