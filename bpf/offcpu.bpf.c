// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Off-CPU sampler: where threads wait. sched_switch runs in the task that leaves the CPU, so a sampled
 * blocking switch takes that task's stacks there (the same walks as the CPU sampler: unwind tables or
 * frame pointers for user space, the kernel's walk for the kernel) and keeps them with the time. When
 * the task is switched back in (the next sched_switch that names it next) the wait is counted under
 * its stacks, weighed by the time away, in the generation active then: the stacks travel with the wait
 * so one that spans a drain is not lost. Only sched_switch is hooked (a BTF tracepoint, no kprobe on
 * the static finish_task_switch, no tracefs). Linked with profiler.bpf.c, whose maps it shares, and
 * python.bpf.c, whose walker places a Python thread's frames as on a CPU sample.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "maps.bpf.h"
#include "outcome.bpf.h"
#include "profiler.h"
#include "python.bpf.h"
#include "stack.bpf.h"
#include "tracectx.bpf.h"
#include "unwind.bpf.h"

#define PF_KTHREAD 0x00200000
#define TASK_RUNNING 0

/* Set by user space before load. A blocking switch is sampled when a random u32 is below threshold
 * (probability * 2^32); waits shorter than min_ns are not counted; self_tgid (the daemon) is left out
 * unless 0. */
const volatile __u64 offcpu_threshold = 0;
const volatile __u64 offcpu_min_ns = 0;
const volatile __u32 offcpu_self_tgid = 0;

/* Defined by profiler.bpf.c; the linker checks the definitions match. */
extern __u32 generation;
extern __u32 cgroup_policies_used;

struct count_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct sample_key);
	__type(value, __u64);
};

struct stack_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct stack_trace);
};

extern struct count_map counts_gen0 SEC(".maps");
extern struct count_map counts_gen1 SEC(".maps");
extern struct stack_map stacks_gen0 SEC(".maps");
extern struct stack_map stacks_gen1 SEC(".maps");

extern struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} known_processes SEC(".maps");

extern struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct cgroup_policy);
} cgroup_policies SEC(".maps");

extern struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} process_events SEC(".maps");

/* A sampled wait in flight: its stacks (key.user_stack and key.kernel_stack hold their hashes). */
struct offcpu_wait {
	__u64 start_ns;
	struct sample_key key;
	struct stack_trace user;
	struct stack_trace kernel;
};

/* Waits in flight by thread id; sampling keeps them few. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* resized by user space before load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct offcpu_wait);
} offcpu_waits SEC(".maps");

/* Where a wait is built before it is stored: too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct offcpu_wait);
} offcpu_scratch SEC(".maps");

/* Tells user space about a process it does not know yet, as the CPU sampler does: a thread that mostly
 * waits may never be caught on a CPU. */
static __always_inline void announce_process(__u32 tgid)
{
	__u8 seen = KNOWN_PROCESS_SAMPLED;
	struct process_event *e;

	if (bpf_map_update_elem(&known_processes, &tgid, &seen, BPF_NOEXIST))
		return; /* another CPU announced it first */
	e = bpf_ringbuf_reserve(&process_events, sizeof(*e), 0);
	if (!e) {
		count_outcome(SAMPLE_NEW_PROCESS_EVENT_LOST);
		return;
	}
	e->type = PROCESS_EVENT_SAMPLED;
	e->tgid = tgid;
	e->ktime_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* Forced, as the CPU sampler's: execs and exits left unread do not wake user space. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* False when relabeling dropped the task's process or container; announces new processes. */
static __always_inline bool offcpu_admits(__u32 tgid, __u64 cgroup_id)
{
	__u8 *known = bpf_map_lookup_elem(&known_processes, &tgid);
	struct cgroup_policy *policy;

	if (!known)
		announce_process(tgid);
	else if (*known == KNOWN_PROCESS_DROPPED)
		return false;
	if (!cgroup_policies_used)
		return true;
	policy = bpf_map_lookup_elem(&cgroup_policies, &cgroup_id);
	return !(policy && policy->dropped);
}

/* The current task's kernel stack into w->kernel; its hash, 0 when the walk failed. */
static __always_inline __u64 wait_kernel_stack(void *ctx, struct offcpu_wait *w)
{
	__u64 hash = STACK_HASH_SEED_KERNEL;
	/* Skips this program and the tracepoint's runner (bpf_trace_run4): the stack starts in __schedule. */
	long bytes = bpf_get_stack(ctx, w->kernel.frames, sizeof(w->kernel.frames), 2 & BPF_F_SKIP_FIELD_MASK);
	int n;

	if (bytes <= 0) {
		count_outcome(SAMPLE_KERNEL_STACK_MISSING);
		return 0;
	}
	n = bytes / sizeof(__u64);
	for (int i = 0; i < PROFILER_MAX_STACK_DEPTH && i < n; i++)
		hash = stack_hash_mix(hash, w->kernel.frames[i]);
	return hash ?: 1;
}

/* The task's user stack, from the registers it entered the kernel with, into w->user; its hash, 0
 * when it has none. */
static __always_inline __u64 wait_user_stack(struct task_struct *task, struct offcpu_wait *w)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct stack_trace *trace;
	struct unwind_regs at = { .ip = BPF_CORE_READ(regs, ip) };
	struct unwind_memo memo = {};
	__u8 not_python = 0;
	__u32 depth;
	__u64 hash;

	if (!at.ip) {
		count_outcome(SAMPLE_USER_STACK_MISSING);
		return 0;
	}
	at.sp = BPF_CORE_READ(regs, sp);
	at.bp = BPF_CORE_READ(regs, bp);
	trace = unwind_user_stack(&at, &hash, &depth, &memo);
	/* The task is still current here: a Python thread's frames are read as on a CPU sample, so a
	 * wait names the Python function that waited, not only the interpreter's C frames. */
	trace = python_stack(trace, &hash, &depth, &not_python);
	if (!trace || bpf_probe_read_kernel(&w->user, sizeof(w->user), trace))
		return 0;
	if (depth >= PROFILER_MAX_STACK_DEPTH)
		count_outcome(SAMPLE_USER_STACK_TRUNCATED);
	return hash ?: 1;
}

/* prev (the current task) blocks: maybe follow this wait. */
static __always_inline void wait_begins(void *ctx, struct task_struct *prev)
{
	__u32 zero = 0, tid = prev->pid, tgid = prev->tgid;
	struct offcpu_wait *w;
	__u64 cgroup_id;

	if (tid == 0 || (prev->flags & PF_KTHREAD) || tgid == offcpu_self_tgid)
		return;
	if (bpf_get_prandom_u32() >= offcpu_threshold)
		return;
	cgroup_id = bpf_get_current_cgroup_id();
	if (!offcpu_admits(tgid, cgroup_id)) {
		count_outcome(SAMPLE_OFFCPU_FILTERED);
		return;
	}
	w = bpf_map_lookup_elem(&offcpu_scratch, &zero);
	if (!w)
		return;
	__builtin_memset(&w->key, 0, sizeof(w->key));
	w->key.tgid = tgid;
	w->key.tid = tid;
	w->key.cgroup_id = cgroup_id;
	w->key.kernel_stack = wait_kernel_stack(ctx, w);
	w->key.user_stack = wait_user_stack(prev, w);
	read_trace_context(&w->key);
	w->start_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&offcpu_waits, &tid, w, BPF_ANY))
		count_outcome(SAMPLE_OFFCPU_WAITS_FULL);
}

/* The stack's hash once stored in the generation's stack map, 0 when it could not be. */
static __always_inline __u64 store_wait_stack(void *stacks, struct stack_trace *trace, __u64 hash)
{
	if (!hash)
		return 0;
	if (!bpf_map_lookup_or_try_init(stacks, &hash, trace)) {
		count_outcome(SAMPLE_STACK_MAP_FULL);
		return 0;
	}
	return hash;
}

static __always_inline bool add_count(void *counts, struct sample_key *key, __u64 value)
{
	__u64 zero = 0, *count = bpf_map_lookup_or_try_init(counts, key, &zero);

	if (!count)
		return false;
	__sync_fetch_and_add(count, value);
	return true;
}

/* Counts the wait, weighed by its nanoseconds, in the active generation. */
static __always_inline void count_wait(struct offcpu_wait *w, __u64 ns)
{
	__u32 gen = generation & 1;
	void *stacks = gen ? (void *)&stacks_gen1 : (void *)&stacks_gen0;
	void *counts = gen ? (void *)&counts_gen1 : (void *)&counts_gen0;
	struct sample_key key = w->key;

	key.kernel_stack = store_wait_stack(stacks, &w->kernel, key.kernel_stack);
	key.user_stack = store_wait_stack(stacks, &w->user, key.user_stack);
	key.kind = SAMPLE_KIND_OFFCPU_WAITS;
	if (!add_count(counts, &key, 1)) {
		count_outcome(SAMPLE_OFFCPU_DROP_COUNT_MAP_FULL);
		return;
	}
	key.kind = SAMPLE_KIND_OFFCPU_NS;
	if (!add_count(counts, &key, ns)) {
		count_outcome(SAMPLE_OFFCPU_DROP_COUNT_MAP_FULL);
		return;
	}
	count_outcome(SAMPLE_OFFCPU_COUNTED);
}

/* next comes back: count its wait if it was followed. */
static __always_inline void wait_ends(struct task_struct *next)
{
	__u32 tid = next->pid;
	struct offcpu_wait *w;
	__u64 ns;

	/* Waits of the idle task and kernel threads are never followed: spare their lookup. */
	if (tid == 0 || (next->flags & PF_KTHREAD))
		return;
	w = bpf_map_lookup_elem(&offcpu_waits, &tid);
	if (!w)
		return;
	ns = bpf_ktime_get_ns() - w->start_ns;
	if (ns >= offcpu_min_ns)
		count_wait(w, ns);
	else
		count_outcome(SAMPLE_OFFCPU_SHORT);
	bpf_map_delete_elem(&offcpu_waits, &tid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(offcpu_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	/* A preempted task is runnable: it waits for a CPU, not for an event. */
	if (!preempt && prev_state != TASK_RUNNING)
		wait_begins(ctx, prev);
	wait_ends(next);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
