/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The user-stack unwinder (unwind.bpf.c) as the other BPF units call it. It is linked with them into
 * one object (bpftool gen object); __hidden keeps its functions inside that object, so the verifier
 * checks them as static subprograms, in their caller's context, and they may return a map value.
 */
#ifndef ANORAK_UNWIND_BPF_H
#define ANORAK_UNWIND_BPF_H

#include <bpf/bpf_helpers.h>

#include "profiler.h"

/*
 * The current task's user stack from the registers it left user mode with (ip, sp, bp): leaf first,
 * ending at the first zero frame or at PROFILER_MAX_STACK_DEPTH frames. Walked by unwind tables when
 * user space gave the process some, else by frame pointers. Sets *depth to the number of frames and
 * *hash to the stack's name (stack.bpf.h). The trace is per-CPU scratch, good until the next call on
 * this CPU; NULL only if that scratch is missing.
 */
extern struct stack_trace *unwind_user_stack(__u64 ip, __u64 sp, __u64 bp, __u64 *hash,
					     __u32 *depth) __hidden;

/* The process exec'd or exited: its mappings, and so its unwind entry, are gone. */
extern void unwind_forget(__u32 tgid) __hidden;

#endif
