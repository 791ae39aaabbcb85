/* Structures shared by the BPF units (profiler.bpf.c, unwind.bpf.c, tracectx.bpf.c) and user space. */
#ifndef ANORAK_PROFILER_H
#define ANORAK_PROFILER_H

/* The kernel's default perf_event_max_stack. */
#define PROFILER_MAX_STACK_DEPTH 127

#define TRACE_ID_LEN 16
#define SPAN_ID_LEN 8
/* custom-labels v1: labels looked at per sample, as Parca Agent does. */
#define CUSTOM_LABELS_MAX 10

/* Where a process publishes its current trace context, found by user space (exporter/sampling/tracectx.c):
 * offsets from the thread pointer (x86-64 fs base) of the TLS pointer variables. */
struct trace_slot {
	__s64 otel_tpoff;       /* otel_thread_ctx_v1 */
	__s64 custom_tpoff;     /* custom_labels_current_set */
	__u8 has_otel;
	__u8 has_custom;
	__u8 pad[6];
};

/* A stack, leaf first, ending at the first zero frame (or at the depth limit). */
struct stack_trace {
	__u64 frames[PROFILER_MAX_STACK_DEPTH];
};

/* What one sample is counted under. Samples with equal keys in one generation share a counter.
 * Stacks are named by a 64-bit hash of their frames, the key of the generation's stack map. */
struct sample_key {
	__u32 tgid;
	__u32 tid;
	__u64 cgroup_id;        /* cgroup v2 id of the task */
	__u64 user_stack;       /* 0: none (kernel thread, or the walk failed: see counters) */
	__u64 kernel_stack;     /* 0: none (the sample hit user mode) */
	__u8 trace_id[TRACE_ID_LEN]; /* all zero: the thread published no trace context */
	__u8 span_id[SPAN_ID_LEN];
	__u32 frequency;        /* Hz of the events that took it; 0: the base frequency */
	__u32 kind;             /* enum sample_kind */
};

/* What a count map entry counts: CPU samples, or a stack's off-CPU waits (offcpu.bpf.c), whose number
 * and total nanoseconds are two entries with otherwise equal keys (the count maps hold one number). */
enum sample_kind {
	SAMPLE_KIND_CPU = 0,
	SAMPLE_KIND_OFFCPU_WAITS,   /* sampled waits */
	SAMPLE_KIND_OFFCPU_NS,      /* their nanoseconds off the CPU */
};

/* What user space decided about a cgroup v2 (a container), keyed by cgroup id. */
struct cgroup_policy {
	__u32 frequency;        /* nonzero: sampled by its own per-cgroup events at this rate */
	__u8 dropped;           /* its target is dropped by relabeling: not sampled */
	__u8 pad[3];
};

/* The BPF cookie of a per-cgroup event: the cgroup it was opened on (its id's low 44 bits) and its
 * rate. Events on a cgroup also fire for tasks in its descendants, and while a cgroup's rate changes its
 * old and new events overlap: only the events matching the task's own cgroup and current policy count. */
#define CGROUP_EVENT_FREQUENCY_BITS 20
#define CGROUP_EVENT_COOKIE(cgroup_id, frequency)                                                  \
	(((__u64)(cgroup_id) << CGROUP_EVENT_FREQUENCY_BITS) |                                     \
	 ((__u64)(frequency) & ((1ull << CGROUP_EVENT_FREQUENCY_BITS) - 1)))

/* Values of known_processes. */
enum known_process {
	KNOWN_PROCESS_SAMPLED = 1, /* announced to user space */
	KNOWN_PROCESS_DROPPED,     /* its target is dropped by relabeling: not sampled */
};

/* Per-CPU counters of what happened to samples, indexed by enum sample_outcome. */
enum sample_outcome {
	SAMPLE_COUNTED = 0,         /* counted in the active generation */
	SAMPLE_IDLE,                /* pid 0, dropped unless idle is included */
	SAMPLE_DROP_COUNT_MAP_FULL, /* the count map of the generation had no room */
	SAMPLE_STACK_MAP_FULL,      /* counted, one stack lost: the stack map had no room */
	SAMPLE_USER_STACK_MISSING,  /* counted without user stack: not even the leaf could be read */
	SAMPLE_USER_STACK_TRUNCATED,/* counted, user stack cut at the depth limit */
	SAMPLE_KERNEL_STACK_MISSING,/* counted without kernel stack: the kernel walk failed */
	SAMPLE_NEW_PROCESS_EVENT_LOST, /* the event ring buffer was full */
	SAMPLE_TRACE_CONTEXT,       /* counted with a trace context */
	SAMPLE_TRACE_READ_FAILED,   /* the context could not be read (page not present) */
	SAMPLE_TRACE_INVALID,       /* published but not valid: valid != 1 or a zero trace id; custom labels
	                             * whose first trace_id or span_id is not hex of its length */
	SAMPLE_FILTERED,            /* of a target relabeling dropped: stopped by the cgroup or process filter */
	SAMPLE_ELSEWHERE,           /* other events sample this cgroup (its own, or the base ones): not counted twice */
	SAMPLE_CGROUP_STALE,        /* a per-cgroup event fired after its policy was removed */
	SAMPLE_OFFCPU_COUNTED,      /* an off-CPU wait counted when its thread came back */
	SAMPLE_OFFCPU_WAITS_FULL,   /* a wait not followed: the map of waits in flight had no room */
	SAMPLE_OFFCPU_SHORT,        /* a wait shorter than the threshold, ignored */
	SAMPLE_OFFCPU_FILTERED,     /* a wait of a target relabeling dropped */
	SAMPLE_OFFCPU_DROP_COUNT_MAP_FULL, /* a wait lost: the generation's count map had no room */
	SAMPLE_OUTCOME_MAX,
};

/* Process life-cycle events sent to user space over a ring buffer. */
enum process_event_type {
	PROCESS_EVENT_SAMPLED = 1, /* first sample of a process (or first since exec) */
	PROCESS_EVENT_EXEC,
	PROCESS_EVENT_EXIT,        /* the whole thread group has exited */
};

struct process_event {
	__u32 type;
	__u32 tgid;
	__u64 ktime_ns;
	char comm[16];
};

#endif
