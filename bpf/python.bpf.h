/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The CPython walker (python.bpf.c) as the sampler calls it; linked with it like the unwinder. */
#ifndef ANORAK_PYTHON_BPF_H
#define ANORAK_PYTHON_BPF_H

#include <bpf/bpf_helpers.h>

#include "profiler.h"

/*
 * The native user stack with the Python frames of the current thread placed in it: those of each
 * activation of _PyEval_EvalFrameDefault just leafward of that native frame (the code it runs), the
 * rest after the last native frame. Returns native itself (unchanged, with *hash and *depth) when the
 * process is not a known CPython one or its thread runs no Python code; otherwise per-CPU scratch,
 * good until the next call on this CPU, with *hash and *depth set for it. Sets *not_python when the
 * process is not a known CPython one, which the caller may remember until announce_epoch changes.
 */
extern struct stack_trace *python_stack(struct stack_trace *native, __u64 *hash, __u32 *depth,
					__u8 *not_python) __hidden;

/* The process exec'd or exited: its interpreter, if any, is gone. */
extern void python_forget(__u32 tgid) __hidden;

#endif
