/* Relabeling against Prometheus 2.42's semantics. The tables below are also printed as JSON lines by
 * `test_relabel --cases`, and tests/integration/test_relabel_promtool.py checks each expectation
 * against promtool of Prometheus 2.42, so a case here is what Prometheus does, not what we think. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels/config.h"
#include "labels/relabel.h"

#define DROPPED "dropped"
#define ERROR "error: "

/* A target: its labels "name=value|name=value" (with __address__, as static_configs give it), the
 * relabel_configs entries (YAML, one "  - {...}" per line), and the final labels (sorted, without
 * the __ ones), DROPPED, or ERROR and the message. Every target is prepared with job_name "test". */
struct target_case {
	const char *name, *labels, *rules, *want;
};

static const struct target_case target_cases[] = {
	{ "replace copies by default", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], target_label: x}\n", "foo=bar|instance=a:80|job=test|x=bar" },
	{ "replace without a match does nothing", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: baz, target_label: foo, replacement: x}\n",
	  "foo=bar|instance=a:80|job=test" },
	{ "regex is anchored", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: a, target_label: x, replacement: y}\n",
	  "foo=bar|instance=a:80|job=test" },
	{ "missing source with (.*) deletes the target", "__address__=a|foo=bar",
	  "  - {source_labels: [nope], target_label: foo}\n", "instance=a:80|job=test" },
	{ "empty replacement deletes the target", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], target_label: foo, replacement: ''}\n", "instance=a:80|job=test" },
	{ "static replacement without sources", "__address__=a",
	  "  - {target_label: foo, replacement: static}\n", "foo=static|instance=a:80|job=test" },
	{ "$1_c names group 1_c, ${1}_c does not", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: '(b)(.*)', target_label: x, replacement: $1_c}\n"
	  "  - {source_labels: [foo], regex: '(b)(.*)', target_label: y, replacement: '${1}_c'}\n",
	  "foo=bar|instance=a:80|job=test|y=b_c" },
	{ "named groups and $$", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: '(?P<first>b)(?P<rest>.*)', target_label: x,"
	  " replacement: '$rest-${first}'}\n"
	  "  - {source_labels: [foo], target_label: y, replacement: '$$$1'}\n"
	  "  - {source_labels: [foo], target_label: z, replacement: '${1'}\n",
	  "foo=bar|instance=a:80|job=test|x=ar-b|y=$bar|z=${1" },
	{ "unset and out-of-range groups expand empty", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: '(x)?bar', target_label: y, replacement: '[$1]'}\n"
	  "  - {source_labels: [foo], target_label: z, replacement: '[$5]'}\n",
	  "foo=bar|instance=a:80|job=test|y=[]|z=[]" },
	{ "separators", "__address__=a|foo=bar|baz=qux",
	  "  - {source_labels: [foo, baz], separator: '-', target_label: x}\n"
	  "  - {source_labels: [foo, missing, baz], target_label: y}\n",
	  "baz=qux|foo=bar|instance=a:80|job=test|x=bar-qux|y=bar;;qux" },
	{ "target label template", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], target_label: t_$1, replacement: v}\n",
	  "foo=bar|instance=a:80|job=test|t_bar=v" },
	{ "expanded target that is no label name does nothing", "__address__=a|foo=1x",
	  "  - {source_labels: [foo], target_label: $1, replacement: v}\n",
	  "foo=1x|instance=a:80|job=test" },
	{ "keep", "__address__=a|foo=bar", "  - {source_labels: [foo], regex: ba., action: keep}\n",
	  "foo=bar|instance=a:80|job=test" },
	{ "keep without a match drops", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: b, action: keep}\n", DROPPED },
	{ "drop, action case-insensitive", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: bar, action: DROP}\n", DROPPED },
	{ "keepequal", "__address__=a|foo=bar|baz=bar",
	  "  - {source_labels: [foo], target_label: baz, action: keepequal}\n"
	  "  - {source_labels: [nope], target_label: none, action: keepequal}\n",
	  "baz=bar|foo=bar|instance=a:80|job=test" },
	{ "dropequal", "__address__=a|foo=bar|baz=bar",
	  "  - {source_labels: [foo], target_label: baz, action: dropequal}\n", DROPPED },
	{ "hashmod", "__address__=a:80|foo=foo|x=x",
	  "  - {source_labels: [foo], modulus: 1000, target_label: h1, action: hashmod}\n"
	  "  - {source_labels: [__address__, x], modulus: 7, target_label: h2, action: hashmod}\n"
	  "  - {source_labels: [nope], modulus: 10, target_label: h3, action: hashmod}\n",
	  "foo=foo|h1=696|h2=4|h3=8|instance=a:80|job=test|x=x" },
	{ "hashmod with the largest modulus", "__address__=127.0.0.1:8080",
	  "  - {source_labels: [__address__], modulus: 18446744073709551615, target_label: h,"
	  " action: hashmod}\n",
	  "h=12398641385235045098|instance=127.0.0.1:8080|job=test" },
	{ "labelmap overwrites", "__address__=a|__meta_kubernetes_pod_label_app=web|"
	  "__meta_kubernetes_pod_label_tier=db|app=old",
	  "  - {action: labelmap, regex: __meta_kubernetes_pod_label_(.+)}\n",
	  "app=web|instance=a:80|job=test|tier=db" },
	{ "labelmap: the last name in order wins", "__address__=a|__meta_a_x=1|__meta_b_x=2",
	  "  - {action: labelmap, regex: '__meta_(a|b)_(.*)', replacement: $2}\n",
	  "instance=a:80|job=test|x=2" },
	{ "labelmap keeps names that are not valid", "__address__=a|__meta_9x=v",
	  "  - {action: labelmap, regex: '__meta_(.*)', replacement: $1}\n",
	  "9x=v|instance=a:80|job=test" },
	{ "labeldrop", "__address__=a|foo=bar|foo2=x|baz=1", "  - {action: labeldrop, regex: foo.*}\n",
	  "baz=1|instance=a:80|job=test" },
	{ "labelkeep", "__address__=a|foo=bar|baz=1", "  - {action: labelkeep, regex: '__.*|job|foo'}\n",
	  "foo=bar|instance=a:80|job=test" },
	{ "lowercase and uppercase are Unicode", "__address__=a|foo=BaR-ÄÖ-ß",
	  "  - {source_labels: [foo], target_label: lo, action: lowercase}\n"
	  "  - {source_labels: [foo], target_label: up, action: uppercase}\n",
	  "foo=BaR-ÄÖ-ß|instance=a:80|job=test|lo=bar-äö-ß|up=BAR-ÄÖ-ß" },
	{ "job is set before relabeling and can be rewritten", "__address__=a",
	  "  - {source_labels: [job], target_label: j}\n  - {target_label: job, replacement: other}\n",
	  "instance=a:80|j=test|job=other" },
	{ "instance set by a rule stays", "__address__=a",
	  "  - {target_label: instance, replacement: me}\n", "instance=me|job=test" },
	{ "scrape defaults are visible to rules", "__address__=a",
	  "  - {source_labels: [__scheme__, __metrics_path__, __scrape_interval__, __scrape_timeout__],"
	  " target_label: s}\n",
	  "instance=a:80|job=test|s=http;/metrics;1m;10s" },
	{ "address with a port", "__address__=127.0.0.1:8080", "", "instance=127.0.0.1:8080|job=test" },
	{ "bracketed IPv6 gets a port", "__address__=[::1]", "", "instance=[::1]:80|job=test" },
	{ "bare IPv6 gets none", "__address__=fe80::1", "", "instance=fe80::1|job=test" },
	{ "https port", "__address__=a", "  - {target_label: __scheme__, replacement: https}\n",
	  "instance=a:443|job=test" },
	{ "__ labels are removed", "__address__=a|__tmp_x=1|foo=bar",
	  "  - {source_labels: [foo], target_label: __tmp_y}\n", "foo=bar|instance=a:80|job=test" },
	{ "no address", "__address__=a", "  - {target_label: __address__, replacement: ''}\n",
	  ERROR "no address" },
	{ "invalid scheme", "__address__=a", "  - {target_label: __scheme__, replacement: ftp}\n",
	  ERROR "invalid scheme: \"http\"" },
	{ "slash in the address", "__address__=a",
	  "  - {target_label: __address__, replacement: a/b}\n",
	  ERROR "\"a/b:80\" is not a valid hostname" },
	{ "bad scrape interval", "__address__=a",
	  "  - {target_label: __scrape_interval__, replacement: x}\n",
	  ERROR "error parsing scrape interval: not a valid duration string: \"x\"" },
	{ "timeout above the interval", "__address__=a",
	  "  - {target_label: __scrape_timeout__, replacement: 2m}\n",
	  ERROR "scrape timeout cannot be greater than scrape interval (\"2m\" > \"1m\")" },
	{ "zero timeout", "__address__=a", "  - {target_label: __scrape_timeout__, replacement: '0'}\n",
	  ERROR "scrape timeout cannot be 0" },
	{ "durations in units", "__address__=a",
	  "  - {target_label: __scrape_interval__, replacement: 1h30m}\n"
	  "  - {target_label: __scrape_timeout__, replacement: 1h29m59s999ms}\n",
	  "instance=a:80|job=test" },
	{ "\\s does not match \\v", "__address__=a|foo=a\vb",
	  "  - {source_labels: [foo], regex: 'a\\sb', action: keep}\n", DROPPED },
	{ "$ is the end of the text", "__address__=a|foo=bar\n",
	  "  - {source_labels: [foo], regex: 'bar', action: keep}\n", DROPPED },
	{ "dot and newline", "__address__=a|foo=a\nb",
	  "  - {source_labels: [foo], regex: 'a.b', target_label: x, replacement: 1}\n"
	  "  - {source_labels: [foo], regex: '(?s)a.b', target_label: y, replacement: 1}\n"
	  "  - {source_labels: [foo], regex: '(?m)^b$|a\\n^b', target_label: z, replacement: 1}\n",
	  "foo=a\nb|instance=a:80|job=test|y=1|z=1" },
	{ "case-insensitive flag", "__address__=a|foo=bar",
	  "  - {source_labels: [foo], regex: '(?i)BAR', action: keep}\n",
	  "foo=bar|instance=a:80|job=test" },
	{ "octal escape and literal braces", "__address__=a|foo=A{,2}x{01}",
	  "  - {source_labels: [foo], regex: '\\101{,2}x{01}', action: keep}\n",
	  "foo=A{,2}x{01}|instance=a:80|job=test" },
	{ "dot is one code point, \\pL letters", "__address__=a|foo=é|bar=héllo",
	  "  - {source_labels: [foo], regex: '.', action: keep}\n"
	  "  - {source_labels: [bar], regex: '\\pL+', action: keep}\n",
	  "bar=héllo|foo=é|instance=a:80|job=test" },
	{ "\\Q quotes", "__address__=a|foo=a.b|bar=axb",
	  "  - {source_labels: [foo], regex: '\\Qa.b\\E', target_label: x, replacement: 1}\n"
	  "  - {source_labels: [bar], regex: '\\Qa.b\\E', target_label: y, replacement: 1}\n",
	  "bar=axb|foo=a.b|instance=a:80|job=test|x=1" },
	{ "leftmost-first alternation and lazy repetition", "__address__=a|foo=abab",
	  "  - {source_labels: [foo], regex: '(a|ab)(.*)', target_label: x, replacement: $1}\n"
	  "  - {source_labels: [foo], regex: '(.+?)(b.*)', target_label: y, replacement: $1}\n",
	  "foo=abab|instance=a:80|job=test|x=a|y=a" },
};

/* A rule and what loading it gives: NULL when Prometheus accepts it, else Prometheus' message. */
struct rule_case {
	const char *rule, *err;
};

static const struct rule_case rule_cases[] = {
	{ "{action: hashmod, target_label: h}",
	  "relabel configuration for hashmod requires non-zero modulus" },
	{ "{action: hashmod, modulus: 2, target_label: 1h}",
	  "\"1h\" is invalid 'target_label' for hashmod action" },
	{ "{source_labels: [a]}", "relabel configuration for replace action requires 'target_label' value" },
	{ "{target_label: a-b}", "\"a-b\" is invalid 'target_label' for replace action" },
	{ "{target_label: a-$1}", "\"a-$1\" is invalid 'target_label' for replace action" },
	{ "{target_label: $$}", "\"$$\" is invalid 'target_label' for replace action" },
	{ "{target_label: '${1}a'}", NULL },
	{ "{target_label: 1$a}", "\"1$a\" is invalid 'target_label' for replace action" },
	{ "{action: lowercase, target_label: a, replacement: x}",
	  "'replacement' can not be set for lowercase action" },
	{ "{action: uppercase, target_label: '1'}", "\"1\" is invalid 'target_label' for uppercase action" },
	{ "{action: Lowercase, target_label: a}", NULL },
	{ "{action: keepequal}", "relabel configuration for keepequal action requires 'target_label' value" },
	{ "{action: dropequal, target_label: a, regex: '(.*)'}",
	  "dropequal action requires only 'source_labels' and `target_label`, and no other fields" },
	{ "{action: keepequal, target_label: a, separator: ','}",
	  "keepequal action requires only 'source_labels' and `target_label`, and no other fields" },
	{ "{action: keepequal, target_label: a, separator: ';', replacement: $1}", NULL },
	{ "{action: keepequal, target_label: a, replacement: x}",
	  "'replacement' can not be set for keepequal action" },
	{ "{action: labelmap, replacement: 1a}", "\"1a\" is invalid 'replacement' for labelmap action" },
	{ "{action: labeldrop, source_labels: []}", "labeldrop action requires only 'regex', and no other fields" },
	{ "{action: labelkeep, target_label: x}", "labelkeep action requires only 'regex', and no other fields" },
	{ "{action: labeldrop, regex: foo, target_label: ''}", NULL },
	{ "{action: foo}", "unknown relabel action \"foo\"" },
	{ "{action: }", "relabel action cannot be empty" },
	{ "{source_labels: [a-b], target_label: x}", "\"a-b\" is not a valid label name" },
	{ "{regex: '(?=a)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`" },
	{ "{regex: '(?!a)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?!`" },
	{ "{regex: '(?<=a)b', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?<`" },
	{ "{regex: '(?<!a)b', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?<`" },
	{ "{regex: '(?<n>a)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?<`" },
	{ "{regex: '(a)\\1', target_label: x}", "error parsing regexp: invalid escape sequence: `\\1`" },
	{ "{regex: '(?P<n>a)\\k<n>', target_label: x}", "error parsing regexp: invalid escape sequence: `\\k`" },
	{ "{regex: '(?P=n)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?P`" },
	{ "{regex: 'a++', target_label: x}", "error parsing regexp: invalid nested repetition operator: `++`" },
	{ "{regex: 'a*?+', target_label: x}", "error parsing regexp: invalid nested repetition operator: `*?+`" },
	{ "{regex: 'x{2}{3}', target_label: x}",
	  "error parsing regexp: invalid nested repetition operator: `{2}{3}`" },
	{ "{regex: '(?>a)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?>`" },
	{ "{regex: '(?R)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?R`" },
	{ "{regex: '(?(1)a|b)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?(`" },
	{ "{regex: '(?#c)', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?#`" },
	{ "{regex: '(?x)a', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?x`" },
	{ "{regex: '(?i-)a', target_label: x}", "error parsing regexp: invalid or unsupported Perl syntax: `(?i-)`" },
	{ "{regex: '(*UTF)a', target_label: x}", "error parsing regexp: missing argument to repetition operator: `*`" },
	{ "{regex: '\\C', target_label: x}", "error parsing regexp: invalid escape sequence: `\\C`" },
	{ "{regex: '\\Z', target_label: x}", "error parsing regexp: invalid escape sequence: `\\Z`" },
	{ "{regex: '\\8', target_label: x}", "error parsing regexp: invalid escape sequence: `\\8`" },
	{ "{regex: '\\xZZ', target_label: x}", "error parsing regexp: invalid escape sequence: `\\xZZ`" },
	{ "{regex: '\\x{110000}', target_label: x}", "error parsing regexp: invalid escape sequence: `\\x{110000`" },
	{ "{regex: '[\\b]', target_label: x}", "error parsing regexp: invalid escape sequence: `\\b`" },
	{ "{regex: '[\\Q]\\E]', target_label: x}", "error parsing regexp: invalid escape sequence: `\\Q`" },
	{ "{regex: 'a{1001}', target_label: x}", "error parsing regexp: invalid repeat count: `{1001}`" },
	{ "{regex: 'a{3,2}', target_label: x}", "error parsing regexp: invalid repeat count: `{3,2}`" },
	{ "{regex: '(?P<a-b>x)', target_label: x}", "error parsing regexp: invalid named capture: `(?P<a-b>`" },
	{ "{regex: '(?P<a', target_label: x}", "error parsing regexp: invalid named capture: `(?P<a)$`" },
	{ "{regex: '\\p{Xan}', target_label: x}", "error parsing regexp: invalid character class range: `\\p{Xan}`" },
	{ "{regex: '[[:foo:]]', target_label: x}", "error parsing regexp: invalid character class range: `[:foo:]`" },
	{ "{regex: '*a', target_label: x}", "error parsing regexp: missing argument to repetition operator: `*`" },
	{ "{regex: 'a|*', target_label: x}", "error parsing regexp: missing argument to repetition operator: `*`" },
	{ "{regex: '(a', target_label: x}", "error parsing regexp: missing closing ): `^(?:(a)$`" },
	{ "{regex: '(?i', target_label: x}", "error parsing regexp: missing closing ): `^(?:(?i)$`" },
	{ "{regex: 'a)', target_label: x}", "error parsing regexp: unexpected ): `^(?:a))$`" },
	{ "{regex: '[a', target_label: x}", "error parsing regexp: missing closing ]: `[a)$`" },
	{ "{regex: '(?P<1a>x)(?P<n>a)(?P<n>b)', target_label: x}", NULL },
	{ "{regex: '(?)a\\12\\v\\x{41}\\x41a{,3}x{2}?(|a)+()*', target_label: x}", NULL },
	{ "{regex: '\\p{Greek}\\P{^Greek}\\pN[[:word:]][^]a][]a](?U)a+(?i:a)(?sm-i:a)', target_label: x}",
	  NULL },
	{ "{regex: '\\Qa(\\E\\A\\z\\b\\B[\\d\\s\\S\\w-]', target_label: x}", NULL },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *config_text(const char *rules)
{
	char *s;

	assert_true(asprintf(&s, "job_name: test\nrelabel_configs:\n%s", rules) > 0);
	return s;
}

static void parse_labels(const char *spec, struct labelset *ls)
{
	char *copy = strdup(spec), *save = NULL;

	assert_non_null(copy);
	for (char *kv = strtok_r(copy, "|", &save); kv; kv = strtok_r(NULL, "|", &save)) {
		char *eq = strchr(kv, '=');

		assert_non_null(eq);
		*eq = '\0';
		assert_int_equal(labelset_set(ls, kv, eq + 1), 0);
	}
	free(copy);
}

static char *format_labels(const struct labelset *ls)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < ls->n; i++)
		len += strlen(ls->labels[i].name) + strlen(ls->labels[i].value) + 2;
	s = p = calloc(1, len);
	assert_non_null(s);
	for (size_t i = 0; i < ls->n; i++)
		p += sprintf(p, "%s%s=%s", i ? "|" : "", ls->labels[i].name, ls->labels[i].value);
	return s;
}

/* The whole of Prometheus' PopulateLabels on one target: its outcome as target_case.want. */
static char *run_target(const struct target_case *c)
{
	struct anorak_file_config *cfg;
	struct labelset ls = { 0 };
	char err[512], *yaml = config_text(c->rules), *out;
	int rc;

	rc = anorak_config_parse(yaml, strlen(yaml), &cfg, err, sizeof(err));
	if (rc)
		fail_msg("%s: config: %s", c->name, err);
	parse_labels(c->labels, &ls);
	assert_int_equal(relabel_prepare(&ls, cfg->job_name), 0);
	rc = relabel_process(&cfg->rules, &ls);
	assert_true(rc >= 0);
	if (rc == 0) {
		out = strdup(DROPPED);
	} else if (relabel_finalize(&ls, err, sizeof(err))) {
		assert_true(asprintf(&out, ERROR "%s", err) > 0);
	} else {
		out = format_labels(&ls);
	}
	labelset_free(&ls);
	anorak_config_free(cfg);
	free(yaml);
	return out;
}

static void test_targets(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(target_cases); i++) {
		char *got = run_target(&target_cases[i]);

		if (strcmp(got, target_cases[i].want))
			fail_msg("%s:\n  got  %s\n  want %s", target_cases[i].name, got, target_cases[i].want);
		free(got);
	}
}

static void test_rule_validation(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(rule_cases); i++) {
		struct anorak_file_config *cfg;
		char err[512], *rules, *yaml;
		const char *msg = err;
		int rc;

		assert_true(asprintf(&rules, "  - %s\n", rule_cases[i].rule) > 0);
		yaml = config_text(rules);
		rc = anorak_config_parse(yaml, strlen(yaml), &cfg, err, sizeof(err));
		if (!rule_cases[i].err) {
			if (rc)
				fail_msg("%s: refused: %s", rule_cases[i].rule, err);
			anorak_config_free(cfg);
		} else {
			assert_int_equal(rc, -EINVAL);
			/* Past the "line N: " of the config parser. */
			assert_true(!strncmp(msg, "line 3: ", 8));
			if (strcmp(msg + 8, rule_cases[i].err))
				fail_msg("%s:\n  got  %s\n  want %s", rule_cases[i].rule, msg + 8,
					 rule_cases[i].err);
		}
		free(rules);
		free(yaml);
	}
}

static struct relabel_rules compile(const struct relabel_config *c)
{
	struct relabel_rules rules = { 0 };
	char err[256];

	if (relabel_rules_add(&rules, c, err, sizeof(err)))
		fail_msg("compile: %s", err);
	return rules;
}

/* relabel_process alone: no prepare, the label set as given, and the dropping rule stops it. */
static void test_process_api(void **state)
{
	(void)state;
	struct relabel_config c;
	struct relabel_rules rules;
	struct labelset ls = { 0 };
	char *srcs[] = { "a" };

	relabel_config_init(&c);
	c.action = RELABEL_LABELMAP;
	c.regex = "(.)";
	c.replacement = "${1}_x";
	rules = compile(&c);
	parse_labels("a=1|b=2", &ls);
	assert_int_equal(relabel_process(&rules, &ls), 1);
	assert_int_equal(ls.n, 4);
	assert_string_equal(labelset_get(&ls, "b_x"), "2");
	relabel_rules_free(&rules);

	relabel_config_init(&c);
	c.action = RELABEL_DROP;
	c.source_labels = srcs;
	c.nsource_labels = 1;
	c.regex = "1";
	rules = compile(&c);
	assert_int_equal(relabel_process(&rules, &ls), 0);
	relabel_rules_free(&rules);

	/* No rules keep everything. */
	assert_int_equal(relabel_process(&rules, &ls), 1);
	labelset_free(&ls);
}

static void test_labelset_copy_equal(void **state)
{
	(void)state;
	struct labelset a = { 0 }, b = { 0 };

	parse_labels("x=1|y=2", &a);
	parse_labels("z=3", &b);
	assert_false(labelset_equal(&a, &b));
	assert_int_equal(labelset_copy(&b, &a), 0);
	assert_true(labelset_equal(&a, &b));
	assert_int_equal(labelset_set(&b, "y", "3"), 0);
	assert_false(labelset_equal(&a, &b));
	labelset_free(&a);
	labelset_free(&b);
}

/* Rules are shared by threads: matching must not write to them. Run one rule set from two
 * threads over many targets and compare with a single-threaded run. */
#include <pthread.h>

static struct anorak_file_config *shared_cfg;

static void *relabel_many(void *arg)
{
	long *mismatches = arg;

	for (int i = 0; i < 2000; i++) {
		struct labelset ls = { 0 };
		char v[32];

		snprintf(v, sizeof(v), "web-%d", i);
		assert_int_equal(labelset_set(&ls, "__meta_kubernetes_pod_name", v), 0);
		if (relabel_process(&shared_cfg->rules, &ls) != 1 || strcmp(labelset_get(&ls, "pod"), v))
			(*mismatches)++;
		labelset_free(&ls);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char err[256];
	pthread_t t[2];
	long mismatches[2] = { 0 };

	assert_int_equal(anorak_config_parse(anorak_default_config, strlen(anorak_default_config),
					     &shared_cfg, err, sizeof(err)),
			 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, relabel_many, &mismatches[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(mismatches[0] + mismatches[1], 0);
	anorak_config_free(shared_cfg);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* The tables as JSON lines for the promtool cross-check. */
static void print_cases(void)
{
	for (size_t i = 0; i < N(target_cases); i++) {
		char *copy = strdup(target_cases[i].labels), *save = NULL;

		printf("{\"kind\":\"target\",\"name\":");
		json_string(target_cases[i].name);
		printf(",\"labels\":{");
		for (char *kv = strtok_r(copy, "|", &save); kv; kv = strtok_r(NULL, "|", &save)) {
			char *eq = strchr(kv, '=');

			*eq = '\0';
			printf("%s", kv == copy ? "" : ",");
			json_string(kv);
			putchar(':');
			json_string(eq + 1);
		}
		printf("},\"rules\":");
		json_string(target_cases[i].rules);
		printf(",\"want\":");
		json_string(target_cases[i].want);
		printf("}\n");
		free(copy);
	}
	for (size_t i = 0; i < N(rule_cases); i++) {
		printf("{\"kind\":\"rule\",\"rule\":");
		json_string(rule_cases[i].rule);
		printf(",\"err\":");
		if (rule_cases[i].err)
			json_string(rule_cases[i].err);
		else
			printf("null");
		printf("}\n");
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_rule_validation),
		cmocka_unit_test(test_process_api),
		cmocka_unit_test(test_labelset_copy_equal),
		cmocka_unit_test(test_threads),
	};

	if (argc == 2 && !strcmp(argv[1], "--cases")) {
		print_cases();
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
