/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The trace context reader (tracectx.bpf.c) as the sampler calls it; linked with it like the unwinder
 * (unwind.bpf.h). */
#ifndef ANORAK_TRACECTX_BPF_H
#define ANORAK_TRACECTX_BPF_H

#include <bpf/bpf_helpers.h>

#include "profiler.h"

/*
 * Sets key->trace_id and key->span_id to the trace and span the current thread works for, when its
 * process publishes them (user space found where: trace_slots); leaves them zero otherwise. Returns 0
 * when the process has no trace slot (which the caller may remember until announce_epoch changes), else 1.
 * A global function, so the verifier checks it once, on its own: inlined, its label loop was checked
 * again for every state the sampler reaches it in, and the program neared the verifier's limit.
 */
extern int read_trace_context(struct sample_key *key);

/* The process exec'd or exited: its new program has its own trace context variables, if any. */
extern void tracectx_forget(__u32 tgid) __hidden;

#endif
