/* /proc/PID/stat identity fields (exporter/proc/maps_snapshot.c): any text parses or is refused, and a
 * parse reads only what follows the last ')' (the command name can hold anything). */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/proc/maps_snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t id[MAPS_SNAPSHOT_IDENTITY_FIELDS], again[MAPS_SNAPSHOT_IDENTITY_FIELDS];
	char *text = fuzz_strdup(data, size);
	char *after = strrchr(text, ')');
	int err = maps_snapshot_parse_identity(text, id);

	FUZZ_CHECK(err == 0 || err == -EINVAL);
	if (after) {
		/* The same fields behind a different command name. */
		char *renamed = malloc(strlen(after) + 8);

		if (!renamed)
			abort();
		snprintf(renamed, strlen(after) + 8, "1 (x y)%s", after + 1);
		FUZZ_CHECK(maps_snapshot_parse_identity(renamed, again) == err);
		FUZZ_CHECK(err || memcmp(id, again, sizeof(id)) == 0);
		free(renamed);
	}
	free(text);
	return 0;
}
