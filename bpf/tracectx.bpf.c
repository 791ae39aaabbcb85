// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The trace context of the sampled thread, read where its process publishes it (user space finds the
 * TLS variables, exporter/sampling/tracectx.c): an OpenTelemetry Thread Context v1 record, else a
 * custom-labels v1 label set. Called by profiler.bpf.c through tracectx.bpf.h; linked with it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

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

/* OpenTelemetry Thread Context v1 record header (packed, host endianness). */
struct otel_ctx_header {
	__u8 trace_id[TRACE_ID_LEN];
	__u8 span_id[SPAN_ID_LEN];
	__u8 valid;
	__u8 trace_flags;
};

/* custom-labels v1, LP64. */
struct custom_string {
	__u64 len;
	const __u8 *buf;
};

struct custom_label {
	struct custom_string key, value;
};

struct custom_label_set {
	const struct custom_label *storage;
	__u64 count, capacity;
};

static __always_inline bool all_zero(const __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

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
	if (h.valid != 1 || all_zero(h.trace_id, TRACE_ID_LEN)) {
		count_outcome(SAMPLE_TRACE_INVALID);
		return;
	}
	__builtin_memcpy(key->trace_id, h.trace_id, TRACE_ID_LEN);
	__builtin_memcpy(key->span_id, h.span_id, SPAN_ID_LEN);
}

static __always_inline int hex_nibble(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes 2*n hex characters at the user address into out; false on a bad character or fault. */
static __always_inline bool read_hex(const __u8 *user, __u8 *out, int n)
{
	__u8 text[2 * TRACE_ID_LEN];

	if (bpf_probe_read_user(text, 2 * n, user))
		return false;
	for (int i = 0; i < TRACE_ID_LEN && i < n; i++) {
		int hi = hex_nibble(text[2 * i]), lo = hex_nibble(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (__u8)(hi << 4 | lo);
	}
	return true;
}

/* "trace_id" and "span_id" as little-endian words, zero-padded to 8 bytes. */
#define KEY_TRACE_ID 0x64695f6563617274ULL
#define KEY_SPAN_ID 0x0064695f6e617073ULL

/* The key of a custom label: 1 for "trace_id", 2 for "span_id", 0 for anything else. */
static __always_inline int custom_key(const struct custom_label *l)
{
	__u64 name = 0;

	if (l->key.len == 8) {
		if (bpf_probe_read_user(&name, 8, l->key.buf))
			return 0;
		return name == KEY_TRACE_ID ? 1 : 0;
	}
	if (l->key.len == 7) {
		if (bpf_probe_read_user(&name, 7, l->key.buf))
			return 0;
		return name == KEY_SPAN_ID ? 2 : 0;
	}
	return 0;
}

static __always_inline void read_custom_labels(struct task_struct *task, __s64 tpoff, struct sample_key *key)
{
	struct custom_label_set set;
	struct custom_label label;
	bool have_trace = false, have_span = false;
	void *ptr;
	long found = read_tls_pointer(task, tpoff, &ptr);

	if (found == 0)
		return;
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
		/* On duplicate keys the first wins. */
		switch (custom_key(&label)) {
		case 1:
			if (!have_trace && label.value.len == 2 * TRACE_ID_LEN)
				have_trace = read_hex(label.value.buf, key->trace_id, TRACE_ID_LEN);
			break;
		case 2:
			if (!have_span && label.value.len == 2 * SPAN_ID_LEN)
				have_span = read_hex(label.value.buf, key->span_id, SPAN_ID_LEN);
			break;
		}
	}
	if (!have_trace || all_zero(key->trace_id, TRACE_ID_LEN)) {
		if (have_trace || have_span)
			count_outcome(SAMPLE_TRACE_INVALID);
		__builtin_memset(key->trace_id, 0, TRACE_ID_LEN);
		__builtin_memset(key->span_id, 0, SPAN_ID_LEN);
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
	if (slot->has_custom && all_zero(key->trace_id, TRACE_ID_LEN))
		read_custom_labels(task, slot->custom_tpoff, key);
	if (!all_zero(key->trace_id, TRACE_ID_LEN))
		count_outcome(SAMPLE_TRACE_CONTEXT);
	return 0;
}

__hidden void tracectx_forget(__u32 tgid)
{
	bpf_map_delete_elem(&trace_slots, &tgid);
}
