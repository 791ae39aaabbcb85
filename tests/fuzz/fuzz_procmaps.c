/* /proc/PID/maps parsing (exporter/proc/procmaps.c): whole files through procmaps_foreach, and each line on
 * its own through procmaps_parse_line; what parses must be a consistent mapping. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/proc/procmaps.h"

static int check_entry(const struct procmaps_entry *e, void *ctx)
{
	size_t *n = ctx;

	FUZZ_CHECK(e->start < e->end);
	FUZZ_CHECK(strlen(e->path) < sizeof(e->path));
	FUZZ_CHECK(!strchr(e->path, '\n'));
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procmaps_entry *e = malloc(sizeof(*e));
	FILE *f = fuzz_stream(data, size);
	char *text = fuzz_strdup(data, size);
	size_t n = 0;
	int err;

	if (!e)
		abort();
	if (f) {
		FUZZ_CHECK(procmaps_foreach(f, check_entry, &n) == 0);
		fclose(f);
	}
	/* Each line with its newline, as procmaps_foreach hands them over. */
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n');
		char saved = line[len];

		line[len] = '\0';
		err = procmaps_parse_line(line, e);
		FUZZ_CHECK(err == 0 || err == -EINVAL || err == -ENAMETOOLONG);
		if (err == 0)
			check_entry(e, &n);
		line[len] = saved;
		line += len;
	}
	free(text);
	free(e);
	return 0;
}
