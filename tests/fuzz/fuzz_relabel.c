/* The relabel engine (labels/relabel.c, labels/relabel_re.c) with fuzzed rules and fuzzed discovered
 * labels: the input is a config (YAML) and, after a NUL byte, "name=value" lines, the target's labels.
 * Label names that Prometheus could not have discovered are left out. */
#include <errno.h>

#include "labels/config.h"
#include "fuzz_common.h"

static void add_labels(struct labelset *ls, char *text)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = '\0';
		if (relabel_label_name_valid(line))
			FUZZ_CHECK(labelset_set(ls, line, eq + 1) == 0);
	}
}

/* Well-formed UTF-8 lead and continuation bytes (a necessary condition of Go's utf8.ValidString). */
static int utf8_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;

		if (!n)
			return 0;
		for (int i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += n;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t cfg_len = nul ? (size_t)(nul - data) : size;
	struct anorak_file_config *cfg = NULL;
	struct labelset ls = { 0 };
	char err[256], *labels;
	int ret;

	if (anorak_config_parse((const char *)data, cfg_len, &cfg, err, sizeof(err)))
		return 0;
	labels = nul ? fuzz_strdup(nul + 1, size - cfg_len - 1) : fuzz_strdup(data, 0);
	add_labels(&ls, labels);
	free(labels);
	FUZZ_CHECK(relabel_prepare(&ls, cfg->job_name) == 0);
	ret = relabel_process(&cfg->rules, &ls);
	FUZZ_CHECK(ret == 0 || ret == 1);
	if (ret == 1 && relabel_finalize(&ls, err, sizeof(err)) == 0) {
		FUZZ_CHECK(labelset_get(&ls, "instance") != NULL);
		for (size_t i = 0; i < ls.n; i++)
			FUZZ_CHECK(strncmp(ls.labels[i].name, "__", 2) != 0 && utf8_ok(ls.labels[i].value));
	}
	labelset_free(&ls);
	anorak_config_free(cfg);
	return 0;
}
