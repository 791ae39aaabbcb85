// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * CPython frames in user stacks, for processes user space recognized as CPython 3.10+ (python_procs,
 * exporter/symbols/python_proc.c). From the sampled thread's state (found through the TSS key
 * autoTSSkey, which holds it even while the thread waits or runs C code without the GIL) the current
 * frame, then `previous` frames, each written as (code object, instruction offset) (python.h) for user
 * space to resolve. The native stack the unwinder walked is copied around them: an activation's Python
 * frames go leafward of its _PyEval_EvalFrameDefault frame, up to the activation's entry frame (3.11:
 * is_entry; 3.12+: the frame owned by the C stack; 3.10: one frame per activation).
 *
 * Bounds: the walk is one bpf_loop of PYTHON_WALK_STEPS steps, each placing one frame (native or
 * Python) or skipping one entry frame; the stack holds PROFILER_MAX_STACK_DEPTH frames. The state lives
 * in a per-CPU map, as the unwinder's, so the verifier checks the step about once.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "profiler.h"
#include "python.h"
#include "python.bpf.h"
#include "stack.bpf.h"

/* Set by user space when it first writes python_procs: until then samples skip the lookup. */
__u32 python_procs_used = 0;

/* tgid -> its interpreter; written by user space, deleted here on exec/exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* sized by user space */
	__type(key, __u32);
	__type(value, struct python_proc);
} python_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct python_counter_values);
} python_counters SEC(".maps");

enum walk_mode {
	WALK_NATIVE,       /* copying native frames */
	WALK_PYTHON,       /* placing the Python frames of the activation at the current native frame */
	WALK_EVAL_PENDING, /* the activation's frames are placed: its native frame comes next */
	WALK_TAIL,         /* native frames ran out: the remaining Python frames go last */
};

struct python_walk {
	__u64 native[PROFILER_MAX_STACK_DEPTH];
	struct stack_trace out;
	struct python_proc proc;
	__u64 frame;  /* the next Python frame to place; 0: none left */
	__u64 hash;
	__u32 nnative, in, nout, mode;
	__u32 python_frames, fault;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct python_walk);
} python_scratch SEC(".maps");

static __always_inline void python_count(__u32 counter, __u32 n)
{
	__u32 zero = 0;
	struct python_counter_values *c = bpf_map_lookup_elem(&python_counters, &zero);

	if (c && counter < PYTHON_COUNTERS)
		c->n[counter] += n;
}

static __always_inline __u64 read_u64(__u64 addr, bool *ok)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		*ok = false;
	return v;
}

/* The current thread's PyThreadState; 0 when it has none (or it could not be read: *ok false). */
static __always_inline __u64 thread_state(const struct python_proc *p, bool *ok)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fs = BPF_CORE_READ(task, thread.fsbase);
	struct {
		__s32 initialized;
		__u32 key;
	} tss;

	if (bpf_probe_read_user(&tss, sizeof(tss), (void *)p->tss_addr)) {
		*ok = false;
		return 0;
	}
	/* Keys past glibc's first block of 32 live in a second-level array: not followed. */
	if (!tss.initialized || tss.key >= 32)
		return 0;
	return read_u64(fs + p->pthread_specific + tss.key * 16, ok);
}

/* The thread's current Python frame; 0 when it runs none. */
static __always_inline __u64 current_frame(const struct python_proc *p, bool *ok)
{
	__u64 tstate = thread_state(p, ok), cframe;

	if (!tstate)
		return 0;
	if (p->cframe_frame == PYTHON_NO_CFRAME)
		return read_u64(tstate + p->tstate_frame, ok);
	cframe = read_u64(tstate + p->tstate_frame, ok);
	return cframe ? read_u64(cframe + p->cframe_frame, ok) : 0;
}

static __always_inline void emit(struct python_walk *w, __u64 frame)
{
	__u32 n = w->nout;

	if (n >= PROFILER_MAX_STACK_DEPTH)
		return;
	w->out.frames[n] = frame;
	w->hash = stack_hash_mix(w->hash, frame);
	w->nout = n + 1;
}

/* The instruction offset in code units of a frame whose code object is at code. */
static __always_inline __u64 frame_lasti(const struct python_proc *p, __u64 frame, __u64 code, bool *ok)
{
	__u64 instr, start = code + p->code_adaptive;
	__s32 lasti;

	if (p->frames_kind == PYTHON_FRAMES_310) {
		if (bpf_probe_read_user(&lasti, sizeof(lasti), (void *)(frame + p->frame_instr)))
			*ok = false;
		return lasti > 0 ? (__u64)lasti : 0;
	}
	instr = read_u64(frame + p->frame_instr, ok);
	return instr > start ? (instr - start) / 2 : 0;
}

/* Places the Python frame at w->frame, or skips it when it is an entry frame; 1 ends the walk. */
static __always_inline long python_frame_step(struct python_walk *w)
{
	const struct python_proc *p = &w->proc;
	__u64 frame = w->frame, code, previous, lasti;
	bool ok = true, last = false;
	__u8 owner = 0;

	previous = read_u64(frame + p->frame_previous, &ok);
	if (p->frames_kind != PYTHON_FRAMES_310 &&
	    bpf_probe_read_user(&owner, sizeof(owner), (void *)(frame + p->frame_owner)))
		ok = false;
	if (!ok) {
		w->fault = 1;
		w->frame = 0;
		w->mode = w->mode == WALK_TAIL ? WALK_TAIL : WALK_EVAL_PENDING;
		return 0;
	}
	w->frame = previous;
	if (p->frames_kind == PYTHON_FRAMES_OWNER && owner == p->owner_cstack) {
		/* The C stack's shim below an activation: the activation's frames are all placed. */
		if (w->mode != WALK_TAIL)
			w->mode = WALK_EVAL_PENDING;
		return 0;
	}
	/* 3.14 tags f_executable (_PyStackRef): the low bits are not the address. */
	code = read_u64(frame + p->frame_code, &ok) & ~7ULL;
	lasti = frame_lasti(p, frame, code, &ok);
	if (!ok) {
		w->fault = 1;
		w->frame = 0;
	} else {
		emit(w, PYTHON_FRAME_ENCODE(code, lasti));
		w->python_frames++;
	}
	last = p->frames_kind == PYTHON_FRAMES_310 || (p->frames_kind == PYTHON_FRAMES_ENTRY && owner);
	if ((last || !w->frame) && w->mode != WALK_TAIL)
		w->mode = WALK_EVAL_PENDING;
	return 0;
}

/* One step of the walk (the bpf_loop callback); 1 ends it. */
static long python_step(__u32 i, void *ctx)
{
	__u32 zero = 0, in;
	struct python_walk *w = bpf_map_lookup_elem(&python_scratch, &zero);
	__u64 pc;

	if (!w || w->nout >= PROFILER_MAX_STACK_DEPTH)
		return 1;
	if (w->mode == WALK_PYTHON || w->mode == WALK_TAIL) {
		if (w->frame)
			return python_frame_step(w);
		if (w->mode == WALK_TAIL)
			return 1;
		w->mode = WALK_EVAL_PENDING;
		return 0;
	}
	in = w->in;
	if (in >= w->nnative || in >= PROFILER_MAX_STACK_DEPTH) {
		if (!w->frame)
			return 1;
		w->mode = WALK_TAIL;
		return 0;
	}
	pc = w->native[in];
	/* Return addresses point after the call: pc - 1 is inside the caller. */
	if (w->mode == WALK_NATIVE && w->frame && pc - (in > 0) >= w->proc.eval_start &&
	    pc - (in > 0) < w->proc.eval_end) {
		w->mode = WALK_PYTHON;
		return 0;
	}
	emit(w, pc);
	w->in = in + 1;
	w->mode = WALK_NATIVE;
	return 0;
}

__hidden struct stack_trace *python_stack(struct stack_trace *native, __u64 *hash, __u32 *depth,
					  __u8 *not_python)
{
	__u32 zero = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	struct python_proc *p;
	struct python_walk *w;
	bool ok = true;
	__u64 frame;

	if (!native)
		return native;
	p = python_procs_used ? bpf_map_lookup_elem(&python_procs, &tgid) : NULL;
	if (!p) {
		*not_python = 1;
		return native;
	}
	python_count(PYTHON_STACKS, 1);
	frame = current_frame(p, &ok);
	if (!ok) {
		python_count(PYTHON_STACKS_READ_FAULT, 1);
		return native;
	}
	w = bpf_map_lookup_elem(&python_scratch, &zero);
	if (!frame || !w) {
		python_count(PYTHON_STACKS_NO_THREAD, 1);
		return native;
	}
	/* One helper call, not 127 copies for the verifier to check in each state it gets here in. */
	if (bpf_probe_read_kernel(w->native, sizeof(w->native), native->frames))
		return native;
	w->proc = *p;
	w->frame = frame;
	w->nnative = *depth;
	w->hash = STACK_HASH_SEED_USER;
	w->in = 0;
	w->nout = 0;
	w->mode = WALK_NATIVE;
	w->python_frames = 0;
	w->fault = 0;
	bpf_loop(PYTHON_WALK_STEPS, python_step, NULL, 0);
	if (w->fault)
		python_count(PYTHON_STACKS_READ_FAULT, 1);
	if (w->nout >= PROFILER_MAX_STACK_DEPTH && (w->frame || w->in < w->nnative))
		python_count(PYTHON_STACKS_TRUNCATED, 1);
	python_count(PYTHON_FRAMES, w->python_frames);
	if (w->nout < PROFILER_MAX_STACK_DEPTH)
		w->out.frames[w->nout] = 0;
	*hash = w->hash;
	*depth = w->nout;
	return &w->out;
}

__hidden void python_forget(__u32 tgid)
{
	bpf_map_delete_elem(&python_procs, &tgid);
}
