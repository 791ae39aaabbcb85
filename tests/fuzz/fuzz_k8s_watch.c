/* The watch stream splitter and event handling of the Kubernetes client (labels/k8s_client.c): a
 * stream of newline-separated JSON events as the API server sends them, cut into pieces as the network
 * delivers them. Byte 0 picks the piece size, byte 1 the size limit of one event. The same stream in
 * one piece must give the same events, pods, skipped lines and outcome as in small pieces. */
#include "fuzz_common.h"
#include "labels/k8s_client_internal.h"

struct seen {
	size_t calls, deleted;
	uint64_t digest;
};

static void on_pod(void *ctx, const struct k8s_pod *pod, bool deleted)
{
	struct seen *s = ctx;

	FUZZ_CHECK(pod->name && *pod->name && pod->namespace && *pod->namespace);
	s->calls++;
	s->deleted += deleted;
	for (const char *p = pod->name; *p; p++)
		s->digest = s->digest * 131 + (unsigned char)*p;
	s->digest = s->digest * 131 + deleted;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_client_stats a, b;
	struct seen sa = { 0 }, sb = { 0 };
	size_t chunk, max_object;
	enum k8s_result ra, rb;

	if (size < 2)
		return 0;
	chunk = 1 + data[0] % 64;
	max_object = 16 + (size_t)data[1] * 64;
	data += 2;
	size -= 2;
	ra = k8s_watch_replay((const char *)data, size, chunk, max_object, on_pod, &sa, &a);
	rb = k8s_watch_replay((const char *)data, size, size ? size : 1, max_object, on_pod, &sb, &b);
	FUZZ_CHECK(ra == K8S_RES_SUCCESS || ra == K8S_RES_GONE || ra == K8S_RES_HTTP_ERROR);
	FUZZ_CHECK(ra == rb);
	FUZZ_CHECK(a.pods == b.pods && a.pods <= K8S_CLIENT_MAX_PODS);
	FUZZ_CHECK(memcmp(a.skipped, b.skipped, sizeof(a.skipped)) == 0);
	FUZZ_CHECK(sa.calls == sb.calls && sa.deleted == sb.deleted && sa.digest == sb.digest);
	return 0;
}
