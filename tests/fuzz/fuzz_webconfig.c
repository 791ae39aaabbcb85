/* The web config parser (exporter/web/webconfig.c, --web.config.file): YAML from the user, strict keys,
 * bcrypt hash checks. What parses must be consistent. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/web/webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webconfig_data *d = NULL;
	char err[256];
	int ret;

	err[0] = '\0';
	ret = webconfig_parse((const char *)data, size, "/etc/anorak", &d, err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret == -EINVAL || ret == -EFBIG || ret == -ENOMEM);
		FUZZ_CHECK(!d && err[0] && memchr(err, '\0', sizeof(err)));
		return 0;
	}
	FUZZ_CHECK(d->nusers <= WEBCONFIG_MAX_USERS);
	FUZZ_CHECK(!d->tls || (d->cert_file && d->key_file));
	/* Without TLS the versions are not used, and exporter-toolkit does not check them either. */
	FUZZ_CHECK(!d->tls || d->min_version <= d->max_version);
	for (size_t i = 0; i < d->nusers; i++)
		FUZZ_CHECK(*d->users[i].name && !strchr(d->users[i].name, ':') && strlen(d->users[i].hash) == 60);
	webconfig_data_free(d);
	return 0;
}
