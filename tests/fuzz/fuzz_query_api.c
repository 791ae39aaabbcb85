/* Pyroscope's query API (exporter/encode/pyroscope.c): the method and request body come from the network. The
 * first byte picks the method (the served ones and an unknown one), the rest is the body (protobuf, or
 * gzip'd protobuf when the method byte's top bit is set, as http.c inflates it), answered from a small
 * ring of two windows with traced and untraced samples of two targets. Every answer is a status Connect
 * uses with a body: protobuf for 200, Connect's JSON error otherwise. */
#include <errno.h>

#include "fuzz_common.h"
#include "exporter/web/gunzip.h"
#include "exporter/store/history.h"
#include "exporter/symbols/process.h"
#include "exporter/encode/pyroscope.h"
#include "exporter/store/slices.h"

#define S 1000000000LL

static const char *const methods[] = {
	"ProfileTypes", "LabelNames", "LabelValues", "SelectMergeStacktraces", "SelectSeries",
	"SelectMergeSpanProfile", "GetProfileStats", "SelectHeatmap",
};

static struct process *new_process(uint32_t tgid, const char *pod)
{
	struct process *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	atomic_init(&p->refs, 1);
	p->tgid = tgid;
	p->target = calloc(1, sizeof(*p->target));
	if (!p->target)
		abort();
	atomic_init(&p->target->refs, 1);
	labelset_set(&p->target->labels, "namespace", "shop");
	labelset_set(&p->target->labels, "pod", pod);
	return p;
}

static struct history *ring(void)
{
	static struct history *h;
	struct history_opts o = { .retention_ns = 3600 * S, .max_bytes = 64 << 20, .window_ns = 10 * S };
	struct process *procs[2];
	const int64_t t0 = 1700000000LL * S;

	if (h)
		return h;
	if (history_new(&o, &h))
		abort();
	procs[0] = new_process(10, "api-1");
	procs[1] = new_process(20, "db-0");
	for (int i = 0; i < 15; i++) {
		struct slice *s = slice_new(1, t0 + i * S, 100);

		for (int k = 0; k < 6 && s; k++) {
			uint64_t frames[3] = { 0x10 + k, 0x20 + k % 2, 0x30 };
			struct slice_sample smp = { .process = process_get(procs[k % 2]),
						    .target = target_get(procs[k % 2]->target), .tid = 7,
						    .count = 1 + k, .trace = { .trace_id = { (uint8_t)k }, .span_id = { 0xab, (uint8_t)k } } };

			slice_add(s, &smp, k + 1, frames, 3 - k % 2, 0, NULL, 0);
		}
		if (!s)
			abort();
		slice_seal(s, t0 + (i + 1) * S);
		history_add_slice(h, s);
		slice_free(s);
	}
	process_put(procs[0]);
	process_put(procs[1]);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct history *h = ring();
	struct http_reply r;
	void *body = NULL;
	size_t len;

	if (size < 1)
		return 0;
	const char *method = methods[(data[0] & 0x7f) % (sizeof(methods) / sizeof(methods[0]))];
	if (data[0] & 0x80) {
		int err = gunzip_bounded(data + 1, size - 1, 1 << 20, &body, &len);

		FUZZ_CHECK(err == 0 || err == -EINVAL || err == -EFBIG);
		if (err)
			return 0;
	} else {
		len = size - 1;
		body = malloc(len ? len : 1);
		if (!body)
			abort();
		memcpy(body, data + 1, len);
	}
	FUZZ_CHECK(pyroscope_serve(h, method, body, len, &r) == 0);
	FUZZ_CHECK(r.body && r.content_type);
	FUZZ_CHECK(r.status == 200 || r.status == 400 || r.status == 429 || r.status == 500 || r.status == 501);
	if (r.status == 200)
		FUZZ_CHECK(strcmp(r.content_type, "application/proto") == 0);
	else
		FUZZ_CHECK(strcmp(r.content_type, "application/json") == 0 && r.len > 10 &&
			   memcmp(r.body, "{\"code\":\"", 9) == 0 && ((char *)r.body)[r.len - 1] == '}');
	free(r.body);
	free(body);
	return 0;
}
