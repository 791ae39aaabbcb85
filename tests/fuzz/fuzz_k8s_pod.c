/* The pod decoder (labels/k8s_pod.c) on arbitrary JSON from the API server: whatever decodes must have
 * the required fields and stay within the documented bounds. */
#include <errno.h>

#include "fuzz_common.h"
#include "labels/k8s_pod.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_pod pod;
	int err;

	err = k8s_pod_parse((const char *)data, size, &pod);
	FUZZ_CHECK(err == 0 || err == -EINVAL || err == -ENOMEM);
	if (err == 0) {
		FUZZ_CHECK(pod.name && *pod.name && pod.namespace && *pod.namespace);
		FUZZ_CHECK(pod.uid && pod.resource_version && pod.pod_ip && pod.phase);
		FUZZ_CHECK(pod.ncontainers <= K8S_POD_MAX_CONTAINERS);
		FUZZ_CHECK(pod.ninit_containers <= K8S_POD_MAX_CONTAINERS);
		FUZZ_CHECK(pod.nlabels <= K8S_POD_MAX_LABELS && pod.nannotations <= K8S_POD_MAX_LABELS);
		for (size_t i = 0; i < pod.ncontainers; i++) {
			const struct k8s_container *c = &pod.containers[i];

			FUZZ_CHECK(c->name && c->image && c->nports <= K8S_POD_MAX_PORTS);
			for (size_t j = 0; j < c->nports; j++)
				FUZZ_CHECK(c->ports[j].name && c->ports[j].protocol);
		}
		for (size_t i = 0; i < pod.nlabels; i++)
			FUZZ_CHECK(pod.labels[i].key && pod.labels[i].value);
		for (size_t i = 0; i < pod.nstatuses; i++)
			FUZZ_CHECK(pod.statuses[i].name && pod.statuses[i].container_id);
	}
	k8s_pod_free(&pod);
	return 0;
}
