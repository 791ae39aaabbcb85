/* The Authorization header against --web.config.file's basic_auth_users (webconfig_authorize in
 * exporter/web/webconfig.c): any client of the port sends it before it is authenticated. Only
 * alice:secret is let in; everything else is refused, never a crash. The user's bcrypt hash has the
 * lowest cost (4), so each refused try stays fast. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/web/webconfig.h"

static const char config[] = "basic_auth_users:\n"
			     "  alice: $2b$04$yHrjHFnEz5y4SUp7hSEje.Si19Pkj1d4NNocxtSHNZCN4B1.NxHBW\n";

static struct webconfig *load(void)
{
	static struct webconfig *w;
	char path[] = "/tmp/fuzz-web-auth-XXXXXX", err[256];
	int fd;

	if (w)
		return w;
	fd = mkstemp(path);
	if (fd < 0 || write(fd, config, sizeof(config) - 1) != (ssize_t)(sizeof(config) - 1))
		abort();
	close(fd);
	if (webconfig_load(path, &w, err, sizeof(err))) {
		fprintf(stderr, "fuzz_web_auth: %s\n", err);
		abort();
	}
	unlink(path);
	return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webconfig *w = load();
	char *header = fuzz_strdup(data, size);
	int ret = webconfig_authorize(w, header);

	FUZZ_CHECK(ret == 0 || ret == -EACCES);
	if (ret == 0)
		FUZZ_CHECK(strcasestr(header, "basic ") != NULL);
	free(header);
	return 0;
}
