/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The user-stack unwinder (unwind.bpf.c) as the other BPF units call it. It is linked with them into
 * one object (bpftool gen object); __hidden keeps a function inside that object, so the verifier
 * checks it as a static subprogram, in its caller's context, and it may return a map value. The walk
 * itself is global instead (checked once), and a hidden function hands out its result.
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
 * The walk of unwind_user_stack, into the per-CPU scratch whose trace unwind_user_trace returns; 0, or
 * -1 if that scratch or an argument is missing. A global function, so the verifier checks it once, on
 * its own: as a static subprogram it was checked again for each state its callers reach it in (the
 * frame-pointer loop alone was 40k of the 228k instructions the sampling program took to check).
 */
extern int unwind_walk_user(const struct unwind_regs *regs, __u64 *hash, __u32 *depth, struct unwind_memo *memo);
extern struct stack_trace *unwind_user_trace(void) __hidden;

/*
 * The current task's user stack from the registers it left user mode with (*regs): leaf first,
 * ending at the first zero frame or at PROFILER_MAX_STACK_DEPTH frames. Walked by unwind tables when
 * user space gave the process some, else by frame pointers. Sets *depth to the number of frames and
 * *hash to the stack's name (stack.bpf.h). The trace is per-CPU scratch, good until the next call on
 * this CPU; NULL only if that scratch is missing. The process's entry is taken from *memo when known,
 * else looked up and recorded there.
 */
static __always_inline struct stack_trace *unwind_user_stack(const struct unwind_regs *regs, __u64 *hash,
							     __u32 *depth, struct unwind_memo *memo)
{
	return unwind_walk_user(regs, hash, depth, memo) ? NULL : unwind_user_trace();
}

/* The process exec'd or exited: its mappings, and so its unwind entry, are gone. */
extern void unwind_forget(__u32 tgid) __hidden;

#endif
