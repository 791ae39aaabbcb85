// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * CPU sampler: attached to one cpu-clock perf event per CPU. Each sample is counted under
 * (tgid, tid, cgroup, user stack, kernel stack) in the active generation's maps; user space switches
 * generations, waits out the programs still using the old one, and drains it, so every sample is read
 * exactly once. User stacks come from the unwinder (unwind.bpf.c) with the Python frames of CPython
 * processes placed in them (python.bpf.c), trace and span ids from the trace context reader
 * (tracectx.bpf.c), all linked with this unit into one object.
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

/* Set by user space before load. */
const volatile bool include_idle = false;

/* The generation samples go to (0 or 1); flipped by user space. */
__u32 generation = 0;

struct count_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240); /* resized by user space before load */
	__type(key, struct sample_key);
	__type(value, __u64);
};

struct count_map counts_gen0 SEC(".maps");
struct count_map counts_gen1 SEC(".maps");

/* Samples reach the count maps through this array of maps: user space re-setting an entry makes the
 * kernel wait (synchronize_rcu) until no program still runs with the previous generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct count_map);
} counts SEC(".maps") = {
	.values = { &counts_gen0, &counts_gen1 },
};

/* Stacks by the hash of their frames. A hash table, unlike a stack-trace map, has no bucket
 * collisions that lose stacks, and holds memory only for the stacks it has. */
struct stack_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* resized by user space before load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct stack_trace);
};

struct stack_map stacks_gen0 SEC(".maps");
struct stack_map stacks_gen1 SEC(".maps");

/* Where a sample's kernel stack is built before it is stored: too large for the BPF stack. (The user
 * stack is built in the unwinder's own scratch.) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_trace);
} kernel_scratch SEC(".maps");

/* Bumped by every exec and exit, by user space when it drops a process, and by user space after it
 * writes a process's unwind, Python or trace-context entry: what a CPU remembers of a process is only
 * good within one epoch. */
__u64 announce_epoch = 0;

/* The last process a CPU sampled and what its samples need to know, each fact found by the first
 * sample that needs it: the process's entries in known_processes, unwind_procs, python_procs and
 * trace_slots, lookups of large hash maps that miss the caches. Each is looked up after the epoch was
 * read, and user space bumps the epoch after it writes one, so a remembered fact is never stale. */
struct announced {
	__u32 tgid;
	__u8 dropped;
	__u8 not_python;             /* python_stack found no interpreter entry */
	__u8 no_trace_slot;          /* read_trace_context found no slot */
	struct unwind_memo unwind;
	__u64 epoch;
};

/* The last process each CPU announced: most samples repeat it, and skip the lookups. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct announced);
} last_announced SEC(".maps");

/* What happened to samples, counted by every unit (outcome.bpf.h). */
struct outcome_map outcomes SEC(".maps");

/* Samples counted into each generation's count map, per CPU. Only programs that read generation g
 * write entry g, so after a switch and the wait for writers user space reads an exact total for the
 * generation it drains. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} generation_counted SEC(".maps");

/* Processes user space has been told about (enum known_process); a miss sends PROCESS_EVENT_SAMPLED. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* resized by user space before load */
	__type(key, __u32);
	__type(value, __u8);
} known_processes SEC(".maps");

/* cgroup id -> policy, written by user space. cgroup_policies_used is its number of entries: while it
 * is zero, as on hosts without dropped or high-frequency containers, samples skip the lookup. */
__u32 cgroup_policies_used = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* resized by user space before load */
	__type(key, __u64);
	__type(value, struct cgroup_policy);
} cgroup_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} process_events SEC(".maps");

static __always_inline void send_process_event(__u32 type, __u32 tgid)
{
	struct process_event *e = bpf_ringbuf_reserve(&process_events, sizeof(*e), 0);

	if (!e) {
		count_outcome(SAMPLE_NEW_PROCESS_EVENT_LOST);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->ktime_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/* Only a sampled process wakes user space (it must be read while it lives); execs and exits wait
	 * for the next poll, so a node starting many processes does not wake the daemon for each. Forced:
	 * the adaptive wake-up skips a consumer that has records it has not read. */
	bpf_ringbuf_submit(e, type == PROCESS_EVENT_SAMPLED ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* Announces a process user space does not know yet; true when user space dropped its target. */
static __always_inline bool announce_process(struct announced *last, __u32 tgid)
{
	__u64 epoch = announce_epoch;
	__u8 seen = KNOWN_PROCESS_SAMPLED, *known;

	if (last->tgid == tgid && last->epoch == epoch)
		return last->dropped;
	last->tgid = tgid;
	last->epoch = epoch;
	last->not_python = 0;
	last->no_trace_slot = 0;
	last->unwind.known = 0;
	known = bpf_map_lookup_elem(&known_processes, &tgid);
	last->dropped = known && *known == KNOWN_PROCESS_DROPPED;
	/* BPF_NOEXIST: when two CPUs race on a new process only one of them sends the event (the one whose
	 * insert succeeds, which bpf_map_lookup_or_try_init would not tell). */
	if (!known && bpf_map_update_elem(&known_processes, &tgid, &seen, BPF_NOEXIST) == 0)
		send_process_event(PROCESS_EVENT_SAMPLED, tgid);
	return last->dropped;
}

/* Stores the stack under its hash and returns the hash; 0 when it could not be stored. */
static __always_inline __u64 store_stack(void *stacks, struct stack_trace *trace, __u64 hash)
{
	if (hash == 0)
		hash = 1; /* 0 means "no stack" in the sample key */
	if (!bpf_map_lookup_or_try_init(stacks, &hash, trace)) {
		count_outcome(SAMPLE_STACK_MAP_FULL);
		return 0;
	}
	return hash;
}

/* The user stack, walked by the unwinder (unwind.bpf.c) from the registers the task left user mode
 * with: the sample's own when it hit user mode, else those saved on kernel entry. */
static __always_inline __u64 user_stack(struct bpf_perf_event_data *ctx, struct task_struct *task,
					bool user_mode, void *stacks, struct announced *proc)
{
	struct stack_trace *trace;
	struct unwind_regs at;
	__u32 depth;
	__u64 hash;

	if (user_mode) {
		at.ip = ctx->regs.ip;
		at.sp = ctx->regs.sp;
		at.bp = ctx->regs.bp;
	} else {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

		at.ip = BPF_CORE_READ(regs, ip);
		at.sp = BPF_CORE_READ(regs, sp);
		at.bp = BPF_CORE_READ(regs, bp);
	}
	if (!at.ip) {
		count_outcome(SAMPLE_USER_STACK_MISSING);
		return 0;
	}
	trace = unwind_user_stack(&at, &hash, &depth, &proc->unwind);
	if (!trace)
		return 0;
	if (!proc->not_python)
		trace = python_stack(trace, &hash, &depth, &proc->not_python);
	if (depth >= PROFILER_MAX_STACK_DEPTH)
		count_outcome(SAMPLE_USER_STACK_TRUNCATED);
	return store_stack(stacks, trace, hash);
}

/* The kernel stack of a sample taken in kernel mode, by the kernel's own walk. */
static __always_inline __u64 kernel_stack(struct bpf_perf_event_data *ctx, void *stacks)
{
	__u32 zero = 0;
	struct stack_trace *trace = bpf_map_lookup_elem(&kernel_scratch, &zero);
	__u64 hash = STACK_HASH_SEED_KERNEL;
	long bytes;
	int n;

	if (!trace)
		return 0;
	bytes = bpf_get_stack(ctx, trace->frames, sizeof(trace->frames), 0);
	if (bytes <= 0) {
		count_outcome(SAMPLE_KERNEL_STACK_MISSING);
		return 0;
	}
	/* bpf_get_stack zeroes the rest of the buffer: the stack ends at the first zero frame. */
	n = bytes / sizeof(__u64);
	for (int i = 0; i < PROFILER_MAX_STACK_DEPTH && i < n; i++)
		hash = stack_hash_mix(hash, trace->frames[i]);
	return store_stack(stacks, trace, hash);
}

static __always_inline bool in_user_mode(struct bpf_perf_event_data *ctx)
{
#if defined(__TARGET_ARCH_x86)
	/* volatile: the context only allows full-width loads, clang would narrow this one. */
	return (*(volatile unsigned long *)&ctx->regs.cs & 3) == 3;
#else
	return true;
#endif
}

/* Applies the cgroup's policy: false when the sample is not to be counted here. A base-rate sample
 * (cgroup_event false) of a cgroup with its own events is theirs; a per-cgroup sample takes its rate
 * from the policy. */
static __always_inline bool cgroup_admits(struct bpf_perf_event_data *ctx, struct sample_key *key,
					  bool cgroup_event)
{
	struct cgroup_policy *policy;

	if (!cgroup_policies_used && !cgroup_event)
		return true;
	policy = bpf_map_lookup_elem(&cgroup_policies, &key->cgroup_id);
	if (policy && policy->dropped) {
		count_outcome(SAMPLE_FILTERED);
		return false;
	}
	if (cgroup_event) {
		if (!policy || !policy->frequency) {
			count_outcome(SAMPLE_CGROUP_STALE);
			return false;
		}
		if (bpf_get_attach_cookie(ctx) != CGROUP_EVENT_COOKIE(key->cgroup_id, policy->frequency)) {
			count_outcome(SAMPLE_ELSEWHERE);
			return false;
		}
		key->frequency = policy->frequency;
		return true;
	}
	if (policy && policy->frequency) {
		count_outcome(SAMPLE_ELSEWHERE);
		return false;
	}
	return true;
}

/* Adds the sample to its key's counter in generation gen. */
static __always_inline void count_sample(__u32 gen, struct sample_key *key)
{
	void *count_map = bpf_map_lookup_elem(&counts, &gen);
	__u64 zero = 0, *count, *in_gen;

	if (!count_map)
		return;
	count = bpf_map_lookup_or_try_init(count_map, key, &zero);
	if (!count) {
		count_outcome(SAMPLE_DROP_COUNT_MAP_FULL);
		return;
	}
	/* Atomic: CPUs share the counter of a key (the other per-CPU counters here are not shared). */
	__sync_fetch_and_add(count, 1);
	count_outcome(SAMPLE_COUNTED);
	in_gen = bpf_map_lookup_elem(&generation_counted, &gen);
	if (in_gen)
		*in_gen += 1;
}

static __always_inline int sample(struct bpf_perf_event_data *ctx, bool cgroup_event)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sample_key key = {
		.tgid = pid_tgid >> 32,
		.tid = (__u32)pid_tgid,
	};
	struct announced *proc = NULL;
	struct task_struct *task;
	__u32 gen, zero = 0;
	bool user_mode;
	void *stacks;

	if (key.tid == 0 && !include_idle) {
		count_outcome(SAMPLE_IDLE);
		return 0;
	}
	key.cgroup_id = bpf_get_current_cgroup_id();
	if (!cgroup_admits(ctx, &key, cgroup_event))
		return 0;
	task = bpf_get_current_task_btf();
	if (!(task->flags & PF_KTHREAD)) {
		proc = bpf_map_lookup_elem(&last_announced, &zero);
		if (!proc)
			return 0; /* a per-CPU array's entry 0 always exists */
		if (announce_process(proc, key.tgid)) {
			count_outcome(SAMPLE_FILTERED);
			return 0;
		}
	}
	gen = generation & 1;
	stacks = gen ? (void *)&stacks_gen1 : (void *)&stacks_gen0;
	user_mode = in_user_mode(ctx);
	/* A sample taken in user mode has no kernel stack to walk. */
	if (!user_mode)
		key.kernel_stack = kernel_stack(ctx, stacks);
	if (proc) {
		key.user_stack = user_stack(ctx, task, user_mode, stacks, proc);
		if (!proc->no_trace_slot)
			proc->no_trace_slot = !read_trace_context(&key);
	}
	count_sample(gen, &key);
	return 0;
}

/* One program for the base events and the per-cgroup events of containers sampled at their own rate
 * (the verifier checks it once, which is most of the daemon's start-up): only the latter carry a
 * cookie, never 0. */
SEC("perf_event")
int profile_cpu(struct bpf_perf_event_data *ctx)
{
	return sample(ctx, bpf_get_attach_cookie(ctx) != 0);
}

/* BTF tracepoints attach without tracefs, which nodes and containers often do not mount. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, struct task_struct *task)
{
	__u32 tgid = task->tgid;

	/* The old mappings are gone: the next sample must announce the process again, and its new
	 * program has its own trace context variables, if any. */
	bpf_map_delete_elem(&known_processes, &tgid);
	tracectx_forget(tgid);
	unwind_forget(tgid);
	python_forget(tgid);
	__sync_fetch_and_add(&announce_epoch, 1);
	send_process_event(PROCESS_EVENT_EXEC, tgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit, struct task_struct *task)
{
	__u32 tgid = task->tgid;

	/* do_exit has already taken this thread out of signal->live: zero means the group is gone. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	bpf_map_delete_elem(&known_processes, &tgid);
	tracectx_forget(tgid);
	unwind_forget(tgid);
	python_forget(tgid);
	__sync_fetch_and_add(&announce_epoch, 1);
	send_process_event(PROCESS_EVENT_EXIT, tgid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
