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

/* The current process's unwind entry as a CPU last saw it (profiler.bpf.c keeps one per CPU for the
 * process it last sampled, good while announce_epoch is unchanged); known 0: not looked up yet. */
struct unwind_memo {
	__u32 gen;        /* the entry's gen */
	__u8 known;       /* gen and has_entry are set */
	__u8 has_entry;
};

/* The registers a user stack is walked from. */
struct unwind_regs {
	__u64 ip, sp, bp;
};

/*
 * The current task's user stack from the registers it left user mode with (*regs): leaf first,
 * ending at the first zero frame or at PROFILER_MAX_STACK_DEPTH frames. Walked by unwind tables when
 * user space gave the process some, else by frame pointers. Sets *depth to the number of frames and
 * *hash to the stack's name (stack.bpf.h). The trace is per-CPU scratch, good until the next call on
 * this CPU; NULL only if that scratch is missing. The process's entry is taken from *memo when known,
 * else looked up and recorded there.
 */
extern struct stack_trace *unwind_user_stack(const struct unwind_regs *regs, __u64 *hash, __u32 *depth,
					     struct unwind_memo *memo) __hidden;

/* The process exec'd or exited: its mappings, and so its unwind entry, are gone. */
extern void unwind_forget(__u32 tgid) __hidden;

#endif
