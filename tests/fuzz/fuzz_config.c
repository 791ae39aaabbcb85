/* The YAML config file (labels/config.c): job_name and relabel_configs, validated as Prometheus does.
 * A config that loads is applied to a typical host and pod target, as the daemon would. */
#include <errno.h>

#include "labels/config.h"
#include "fuzz_common.h"

static const char *const target[][2] = {
	{ "__address__", "127.0.0.1:9760" },
	{ "__meta_process_comm", "nginx" },
	{ "__meta_kubernetes_namespace", "default" },
	{ "__meta_kubernetes_pod_name", "web-7d4b9c" },
	{ "__meta_kubernetes_pod_container_name", "web" },
	{ "__meta_kubernetes_pod_label_app_kubernetes_io_name", "web" },
	{ "__meta_kubernetes_pod_annotation_anorak_dev_sampling_frequency", "99" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct anorak_file_config *cfg = NULL;
	struct labelset ls = { 0 };
	char err[256];
	int ret;

	err[0] = '\0';
	ret = anorak_config_parse((const char *)data, size, &cfg, err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret == -EINVAL || ret == -EFBIG || ret == -ENOMEM);
		FUZZ_CHECK(!cfg && err[0] && memchr(err, '\0', sizeof(err)));
		return 0;
	}
	FUZZ_CHECK(cfg && cfg->job_name && cfg->rules.n <= ANORAK_CONFIG_MAX_RULES);
	for (size_t i = 0; i < sizeof(target) / sizeof(target[0]); i++)
		FUZZ_CHECK(labelset_set(&ls, target[i][0], target[i][1]) == 0);
	FUZZ_CHECK(relabel_prepare(&ls, cfg->job_name) == 0);
	ret = relabel_process(&cfg->rules, &ls);
	FUZZ_CHECK(ret == 0 || ret == 1);
	if (ret == 1 && relabel_finalize(&ls, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < ls.n; i++)
			FUZZ_CHECK(strncmp(ls.labels[i].name, "__", 2) != 0);
	}
	labelset_free(&ls);
	anorak_config_free(cfg);
	return 0;
}
