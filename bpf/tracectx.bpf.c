// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The trace context of the sampled thread, read where its process publishes it (user space finds the
 * TLS variables, exporter/sampling/tracectx.c): an OpenTelemetry Thread Context v1 record, else a
 * custom-labels v1 label set. Called by profiler.bpf.c through tracectx.bpf.h; linked with it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "custom_labels.h"
#include "outcome.bpf.h"
#include "profiler.h"
#include "tracectx.bpf.h"

/* Set by user space when it first writes trace_slots: until then (a node where no process publishes
 * a trace context) samples skip the lookup, which misses the caches. */
__u32 trace_slots_used = 0;

/* tgid -> where the process publishes its trace context; written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* resized by user space before load */
	__type(key, __u32);
	__type(value, struct trace_slot);
} trace_slots SEC(".maps");

/* The ids of the label set being read. In a per-CPU map, not on the BPF stack: the verifier knows nothing
 * of map contents, so the flags (first trace_id met, first span_id met, invalid) do not split its states
 * and it checks each label's step about once instead of once per combination. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct custom_ids);
} custom_ids_scratch SEC(".maps");

/* OpenTelemetry Thread Context v1 record header (packed, host endianness). */
struct otel_ctx_header {
	__u8 trace_id[TRACE_ID_LEN];
	__u8 span_id[SPAN_ID_LEN];
	__u8 valid;
	__u8 trace_flags;
};

/* Reads the TLS pointer at fs base + tpoff: 0 when none, -1 when unreadable. */
static __always_inline long read_tls_pointer(struct task_struct *task, __s64 tpoff, void **out)
{
	__u64 fs = BPF_CORE_READ(task, thread.fsbase);

	if (bpf_probe_read_user(out, sizeof(*out), (void *)(fs + tpoff)))
		return -1;
	return *out ? 1 : 0;
}

static __always_inline void read_otel(struct task_struct *task, __s64 tpoff, struct sample_key *key)
{
	struct otel_ctx_header h;
	void *record;
	long found = read_tls_pointer(task, tpoff, &record);

	if (found == 0)
		return;
	if (found < 0 || bpf_probe_read_user(&h, sizeof(h), record)) {
		count_outcome(SAMPLE_TRACE_READ_FAILED);
		return;
	}
	if (h.valid != 1 || trace_id_is_zero(h.trace_id)) {
		count_outcome(SAMPLE_TRACE_INVALID);
		return;
	}
	__builtin_memcpy(key->trace_id, h.trace_id, TRACE_ID_LEN);
	__builtin_memcpy(key->span_id, h.span_id, SPAN_ID_LEN);
}

/* The key of a custom label (enum custom_label_key); a key that cannot be read is no key of ours. */
static __always_inline int custom_key(const struct custom_label *l)
{
	__u64 word = 0;

	if (l->key.len == 8) {
		if (bpf_probe_read_user(&word, 8, l->key.buf))
			return CUSTOM_LABEL_OTHER;
	} else if (l->key.len == 7) {
		if (bpf_probe_read_user(&word, 7, l->key.buf))
			return CUSTOM_LABEL_OTHER;
	} else {
		return CUSTOM_LABEL_OTHER;
	}
	return custom_label_key(l->key.len, word);
}

/* Hands the first label of key to ids, with its value when it has an id's length; false when that
 * value could not be read. */
static __always_inline bool read_custom_value(struct custom_ids *ids, int key, const struct custom_label *l)
{
	__u8 text[2 * TRACE_ID_LEN] = {};
	__u32 n = custom_label_value_len(key);

	if (l->value.len == n && bpf_probe_read_user(text, n, l->value.buf))
		return false;
	custom_ids_take(ids, key, l->value.len, text);
	return true;
}

/* The ids of a custom-labels v1 set: the first trace_id and span_id labels decide (custom_labels.h). */
static __always_inline void read_custom_labels(struct task_struct *task, __s64 tpoff, struct sample_key *key)
{
	__u32 zero = 0;
	struct custom_ids *ids = bpf_map_lookup_elem(&custom_ids_scratch, &zero);
	struct custom_label_set set;
	struct custom_label label;
	void *ptr;
	long found = read_tls_pointer(task, tpoff, &ptr);
	int k;

	if (found == 0 || !ids)
		return;
	__builtin_memset(ids, 0, sizeof(*ids));
	if (found < 0 || bpf_probe_read_user(&set, sizeof(set), ptr)) {
		count_outcome(SAMPLE_TRACE_READ_FAILED);
		return;
	}
	for (int i = 0; i < CUSTOM_LABELS_MAX && i < set.count; i++) {
		if (bpf_probe_read_user(&label, sizeof(label), &set.storage[i])) {
			count_outcome(SAMPLE_TRACE_READ_FAILED);
			return;
		}
		if (!label.key.buf)
			continue;
		k = custom_key(&label);
		if (!custom_ids_wants(ids, k))
			continue;
		if (!read_custom_value(ids, k, &label)) {
			count_outcome(SAMPLE_TRACE_READ_FAILED);
			return;
		}
	}
	switch (custom_ids_result(ids)) {
	case CUSTOM_IDS_VALID:
		__builtin_memcpy(key->trace_id, ids->trace_id, TRACE_ID_LEN);
		__builtin_memcpy(key->span_id, ids->span_id, SPAN_ID_LEN);
		break;
	case CUSTOM_IDS_INVALID:
		count_outcome(SAMPLE_TRACE_INVALID);
		break;
	}
}

int read_trace_context(struct sample_key *key)
{
	struct task_struct *task;
	struct trace_slot *slot;

	if (!key || !trace_slots_used)
		return 0;
	slot = bpf_map_lookup_elem(&trace_slots, &key->tgid);
	if (!slot)
		return 0;
	task = bpf_get_current_task_btf();
	if (slot->has_otel)
		read_otel(task, slot->otel_tpoff, key);
	if (slot->has_custom && trace_id_is_zero(key->trace_id))
		read_custom_labels(task, slot->custom_tpoff, key);
	if (!trace_id_is_zero(key->trace_id))
		count_outcome(SAMPLE_TRACE_CONTEXT);
	return 1;
}

__hidden void tracectx_forget(__u32 tgid)
{
	bpf_map_delete_elem(&trace_slots, &tgid);
}
