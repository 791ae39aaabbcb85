/*
 * Unwind tables shared by the BPF unwinder (unwind.bpf.c) and user space (exporter/sampling/unwind_table.c).
 *
 * Every binary with an .eh_frame gets a compact table: rows sorted by pc, each saying how to find the
 * caller's frame from this pc on (x86-64). Rows of all binaries live in one array map; a table is a
 * contiguous run of it, named by a slot in unwind_tables. Each process has a sorted list of its
 * executable mappings that have a table, with the runtime address of the table's pc 0.
 */
#ifndef ANORAK_UNWIND_H
#define ANORAK_UNWIND_H

/* Executable mappings with tables kept per process (sorted by address, searched in BPF). */
#define UNWIND_MAX_MAPPINGS 128
/* Table slots (binaries whose tables can be in BPF at once). */
#define UNWIND_MAX_TABLES 8192
/* Rows recently found, per CPU (direct-mapped by pc and process): most samples repeat the same
 * return addresses, and a hit spares the mapping and row searches, whose reads of a large map miss
 * the TLB and caches. */
#define UNWIND_CACHE_SIZE 256
/* Rows come in blocks of 4 KiB; a table starts on a block. A block index (one array entry per block:
 * the pc of its first row) is searched first, then one block: a row is found reading one page of
 * rows and a few cache lines of index, not a page per halving of a binary search over the table. */
#define UNWIND_BLOCK_SHIFT 9
#define UNWIND_BLOCK_ROWS (1u << UNWIND_BLOCK_SHIFT)
/* Rows of one table: the BPF search runs UNWIND_INDEX_STEPS halvings over its blocks, then
 * UNWIND_BLOCK_SHIFT within one. */
#define UNWIND_SEARCH_STEPS 23
#define UNWIND_INDEX_STEPS (UNWIND_SEARCH_STEPS - UNWIND_BLOCK_SHIFT)
#define UNWIND_MAX_TABLE_ROWS (1u << UNWIND_SEARCH_STEPS)

/* How the canonical frame address (the caller's stack pointer) is found at a pc. */
enum unwind_cfa {
	UNWIND_CFA_RSP = 0,     /* CFA = rsp + cfa_off */
	UNWIND_CFA_RBP,         /* CFA = rbp + cfa_off */
	UNWIND_CFA_PLT,         /* CFA = rsp + cfa_off + ((rip & 15) >= rbp_off ? 8 : 0): the PLT expression */
	UNWIND_CFA_END,         /* the return address is undefined: outermost frame (_start, clone) */
	UNWIND_CFA_NONE,        /* no FDE covers this pc: a gap between functions */
	UNWIND_CFA_UNSUPPORTED, /* a rule the BPF side does not apply (other register, expression, signal frame) */
};

/* Why an UNWIND_CFA_END row ends the stack, in its rbp_off. */
enum unwind_end {
	UNWIND_END_OUTERMOST = 0,   /* the outermost frame: _start, clone, Go's goexit/mstart/rt0_go */
	UNWIND_END_GO_STACK_SWITCH, /* Go's systemstack, mcall, morestack: the caller is on another stack */
	UNWIND_END_GO_CGO,          /* Go's asmcgocall, cgocallback: C code on the g0 stack */
	UNWIND_END_GO_SPWRITE,      /* another Go function that sets SP (gogo, ...) */
};

/* The return address is always at CFA - 8 (rows where it is not are UNSUPPORTED). */
struct unwind_row {
	__u32 pc;      /* offset from the table's pc 0 */
	__u16 cfa_off; /* RSP, RBP, PLT */
	__u8 cfa;      /* enum unwind_cfa */
	__s8 rbp_off;  /* rbp saved at CFA + 8 * rbp_off; 0: rbp unchanged. PLT: the rip & 15 threshold. END: enum unwind_end */
};

/* A slot of unwind_tables. count 0: free. gen changes whenever the slot is freed, so process entries
 * written for an evicted table are recognized as stale. */
struct unwind_table_info {
	__u32 first;         /* index of the first row in unwind_rows, a multiple of UNWIND_BLOCK_ROWS */
	__u32 count;
	__u32 gen;
	__u32 pad;
	__u64 last_used_ns;  /* bpf_ktime of the last sample that used it (coarse), for LRU eviction */
};

struct unwind_mapping {
	__u64 start, end;    /* runtime address range */
	__u64 base;          /* runtime address of the table's pc 0 */
	__u32 table;         /* slot in unwind_tables */
	__u32 gen;           /* the slot's gen when this was written */
};

struct unwind_process {
	__u32 count;
	__u32 gen;           /* changes with every write: rows cached for the process before are stale */
	__u64 last_miss_ns;  /* last unwind_event sent for this process (rate limit) */
	struct unwind_mapping mappings[UNWIND_MAX_MAPPINGS];
};

/* Sent when a sample of a process with an entry runs in code the entry does not cover (dlopen, a
 * new mapping) or whose table was evicted: user space re-reads its mappings. */
struct unwind_event {
	__u32 tgid;
};

/* Per-CPU counters, indexed by enum unwind_counter. */
enum unwind_counter {
	UNWIND_FRAMES_TABLE = 0,    /* frames found with a table row */
	UNWIND_FRAMES_FP,           /* frames found by frame pointer (no table, or a process without tables) */
	UNWIND_STACKS_COMPLETE,     /* ended at an outermost frame (table) or a zero frame pointer */
	UNWIND_TRUNC_NO_TABLE,      /* the frame-pointer step for code without a table failed */
	UNWIND_TRUNC_BAD_RULE,      /* an unsupported rule, and the frame-pointer step failed too */
	UNWIND_TRUNC_READ_FAULT,    /* a table rule pointed at unreadable memory */
	UNWIND_TRUNC_DEPTH,         /* the depth limit */
	UNWIND_STACKS_FP_ONLY,      /* a process without tables yet: frame pointers only */
	UNWIND_EVENTS_LOST,         /* unwind_events ring buffer full */
	/* Stacks stopped by a Go row of enum unwind_end, in its order. */
	UNWIND_STACKS_GO_STACK_SWITCH,
	UNWIND_STACKS_GO_CGO,
	UNWIND_STACKS_GO_SPWRITE,
	UNWIND_COUNTERS,
};

/* The value of the per-CPU counter map: one lookup per sample for all of them. */
struct unwind_counter_values {
	__u64 n[UNWIND_COUNTERS];
};

#endif
