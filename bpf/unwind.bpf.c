// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * User stacks from unwind tables (x86-64), for processes user space has given tables to; frame
 * pointers for code without a table (JIT, hand-written asm, binaries without .eh_frame) and for
 * processes without an entry yet. Called by profiler.bpf.c through unwind.bpf.h; linked with it.
 *
 * Each frame: take the row found at the same depth of the last walk if its pc matches, else the one
 * in the per-CPU row cache, else find the mapping of the pc (the last one is cached: most callers are
 * in the same binary) and binary-search its table's rows (UNWIND_SEARCH_STEPS bounded halvings over
 * an array map, whose lookups the verifier inlines); apply the row. The frame loop is a bpf_loop, so
 * the verifier checks one step, not PROFILER_MAX_STACK_DEPTH of them. The stack pointer strictly grows
 * from frame to frame, so a walk cannot cycle.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "profiler.h"
#include "stack.bpf.h"
#include "unwind.h"
#include "unwind.bpf.h"

/* Bumped by user space when it evicts a table, before it reuses the rows: every cached row is stale. */
__u64 unwind_epoch = 0;

/* A process whose stacks leave its known mappings asks user space to look again at most this often. */
#define UNWIND_MISS_INTERVAL_NS 5000000000ULL
/* A table's last-use time is refreshed at most this often (one write per table per second). */
#define UNWIND_USED_GRANULE_NS 1000000000ULL

/* BPF_F_MMAPABLE: the values start on a page, so a block of rows is one page, and user space writes a
 * table's rows through a short-lived mapping of their pages. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* sized by user space from --unwind.table-memory */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

/* Block b of unwind_rows starts with a row at pc unwind_index[b] (relative to its table). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* sized by user space: one per block of unwind_rows */
	__type(key, __u32);
	__type(value, __u32);
} unwind_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, UNWIND_MAX_TABLES);
	__type(key, __u32);
	__type(value, struct unwind_table_info);
} unwind_tables SEC(".maps");

/* tgid -> its executable mappings with tables; written by user space, deleted here on exec/exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* sized by user space */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct unwind_process);
} unwind_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwind_counter_values);
} unwind_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} unwind_events SEC(".maps");

/* User space re-sets this entry before it reuses rows of an evicted table: the update returns after
 * synchronize_rcu(), when no program can still be reading the old rows. */
struct unwind_sync_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} unwind_sync_dummy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct unwind_sync_inner);
} unwind_sync SEC(".maps") = {
	.values = { &unwind_sync_dummy },
};

static __always_inline void unwind_count(__u32 counter, __u32 n)
{
	__u32 zero = 0;
	struct unwind_counter_values *c = bpf_map_lookup_elem(&unwind_counters, &zero);

	if (c && counter < UNWIND_COUNTERS)
		c->n[counter] += n;
}

/* Ends the walk, counting why. Not kept in the walk's state: a constant there would differ between
 * the verifier's states at the loop and make it check the step once per reason. */
static __always_inline long unwind_stop(__u32 reason)
{
	unwind_count(reason, 1);
	return 1;
}

/* The state of one walk. It lives in a per-CPU map, not on the BPF stack: the verifier knows nothing
 * about map contents, so its states at each step of the loop are all alike and it checks the step
 * about once; values on the stack (constants like a stop reason, ranges learnt from comparisons)
 * would make it check the step again for each combination. */
struct unwind_cached_row {
	__u64 pc;
	__u64 epoch;
	__u32 tgid;
	__u32 gen;
	struct unwind_row row;
};

/* The row found for frame i of an earlier walk of the same process entry (path_owner). */
struct unwind_path_row {
	__u64 pc;
	__u64 owner;
	struct unwind_row row;
};

#define UNWIND_PATH_SIZE 128 /* PROFILER_MAX_STACK_DEPTH rounded up to a power of two */

struct stack_unwind {
	__u64 ip, sp, bp;
	__u64 hash;
	__u64 now;          /* 0 until a mapping search needs it (unwind_now) */
	__u64 epoch;        /* unwind_epoch and the process entry's gen at the start of the walk */
	__u32 proc_gen;
	__u32 tgid;
	__u32 depth;        /* frames in trace */
	__u32 table_frames, fp_frames;
	/* The mapping of the last pc looked up: [map_start, map_end), rows [first, first + count) with
	 * pc 0 at map_base; count 0 when it has no usable table. */
	__u64 map_start, map_end, map_base;
	__u32 first, count;
	/* Successive samples of a thread mostly share their callers at the same depths: the rows of the
	 * last walks by depth, a few adjacent cache lines, are tried before the cache, whose entries a
	 * walk finds scattered over pages. path_owner changes with (tgid, gen, epoch), which invalidates
	 * them all. Kept from sample to sample. */
	__u64 path_owner, path_epoch;
	__u32 path_tgid, path_gen;
	struct unwind_path_row path[UNWIND_PATH_SIZE];
	struct stack_trace trace;
	struct unwind_cached_row cache[UNWIND_CACHE_SIZE]; /* kept from sample to sample */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_unwind);
} unwind_scratch SEC(".maps");

/* The walk's time, read on its first mapping search: most walks find all their rows cached. */
static __always_inline __u64 unwind_now(struct stack_unwind *s)
{
	if (!s->now)
		s->now = bpf_ktime_get_ns();
	return s->now;
}

static __always_inline void unwind_miss(struct stack_unwind *s, struct unwind_process *p)
{
	struct unwind_event *e;

	if (unwind_now(s) - p->last_miss_ns < UNWIND_MISS_INTERVAL_NS)
		return;
	p->last_miss_ns = s->now;
	e = bpf_ringbuf_reserve(&unwind_events, sizeof(*e), 0);
	if (!e) {
		unwind_count(UNWIND_EVENTS_LOST, 1);
		return;
	}
	e->tgid = s->tgid;
	bpf_ringbuf_submit(e, 0);
}

/* All ones when a < b, else zero, without a branch (user addresses and table offsets are below 2^63). */
static __always_inline __u32 below(__u64 a, __u64 b)
{
	return (__u32)((__s64)(a - b) >> 63);
}

/* Sets the cached mapping to the one holding pc, or to the hole around pc. */
static __always_inline void unwind_find_mapping(struct stack_unwind *s, __u64 pc)
{
	struct unwind_process *p = bpf_map_lookup_elem(&unwind_procs, &s->tgid);
	struct unwind_mapping *m;
	struct unwind_table_info *t;
	__u32 n, lo = 0, len, next;

	s->count = 0;
	s->map_start = 0;
	s->map_end = ~0ULL;
	if (!p)
		return;
	n = p->count;
	if (n > UNWIND_MAX_MAPPINGS)
		n = UNWIND_MAX_MAPPINGS;
	if (n == 0) {
		unwind_miss(s, p);
		return;
	}
	/* The last mapping that starts at or below pc. The halvings are branch-free and always all run
	 * (a step with len 1 changes nothing): an exit or a branch per step would give the verifier a
	 * state per step to follow through the rest of the walk. */
	len = n;
	for (int k = 0; k < 8; k++) {
		__u32 half = len / 2;

		lo += half & ~below(pc, p->mappings[(lo + half) & (UNWIND_MAX_MAPPINGS - 1)].start);
		len -= half;
	}
	m = &p->mappings[lo & (UNWIND_MAX_MAPPINGS - 1)];
	if (pc < m->start) {
		s->map_end = m->start;
		unwind_miss(s, p);
		return;
	}
	if (pc >= m->end) {
		s->map_start = m->end;
		next = lo + 1;
		if (next < n)
			s->map_end = p->mappings[next & (UNWIND_MAX_MAPPINGS - 1)].start;
		unwind_miss(s, p);
		return;
	}
	s->map_start = m->start;
	s->map_end = m->end;
	t = bpf_map_lookup_elem(&unwind_tables, &m->table);
	if (!t || t->gen != m->gen || !t->count) {
		unwind_miss(s, p); /* the table was evicted */
		return;
	}
	s->map_base = m->base;
	s->first = t->first;
	s->count = t->count;
	if (unwind_now(s) - t->last_used_ns > UNWIND_USED_GRANULE_NS)
		t->last_used_ns = s->now;
}

/* The row in effect at pc (the last with row.pc <= pc - map_base), or NULL: the last block starting
 * at or below it by the block index, then the row within that block. */
static __always_inline struct unwind_row *unwind_find_row(struct stack_unwind *s, __u64 pc)
{
	__u64 rel = pc - s->map_base;
	__u32 lo = 0, n = (s->count + UNWIND_BLOCK_ROWS - 1) >> UNWIND_BLOCK_SHIFT, idx, first;
	struct unwind_row *r;
	__u32 *start;

	if (pc < s->map_base || rel > 0xffffffffULL)
		return NULL;
	/* Branch-free and fixed-count like the mapping search; once n is 1 the steps re-read one entry. */
	for (int k = 0; k < UNWIND_INDEX_STEPS; k++) {
		__u32 half = n / 2;

		idx = (s->first >> UNWIND_BLOCK_SHIFT) + lo + half;
		start = bpf_map_lookup_elem(&unwind_index, &idx);
		if (!start)
			return NULL;
		lo += half & ~below(rel, *start);
		n -= half;
	}
	first = s->first + (lo << UNWIND_BLOCK_SHIFT);
	n = s->count - (lo << UNWIND_BLOCK_SHIFT);
	if (n > UNWIND_BLOCK_ROWS)
		n = UNWIND_BLOCK_ROWS;
	lo = 0;
	for (int k = 0; k < UNWIND_BLOCK_SHIFT; k++) {
		__u32 half = n / 2;

		idx = first + lo + half;
		r = bpf_map_lookup_elem(&unwind_rows, &idx);
		if (!r)
			return NULL;
		lo += half & ~below(rel, r->pc);
		n -= half;
	}
	idx = first + lo;
	r = bpf_map_lookup_elem(&unwind_rows, &idx);
	if (!r || r->pc > (__u32)rel)
		return NULL;
	return r;
}

/* Appends the caller's pc (s->ip) as frame i + 1; 1 ends the walk. */
static __always_inline long unwind_record(struct stack_unwind *s, __u32 i)
{
	__u32 d = i + 1;

	if (!s->ip)
		return unwind_stop(UNWIND_STACKS_COMPLETE);
	if (d >= PROFILER_MAX_STACK_DEPTH)
		return unwind_stop(UNWIND_TRUNC_DEPTH);
	s->trace.frames[d] = s->ip;
	s->hash = stack_hash_mix(s->hash, s->ip);
	s->depth = d + 1;
	return 0;
}

/* One frame by frame pointer; reason is what stopped the walk if it fails. */
static __always_inline long unwind_fp_step(struct stack_unwind *s, __u32 i, __u32 reason)
{
	struct {
		__u64 next_fp;
		__u64 ret;
	} frame;
	__u64 fp = s->bp;

	if (!fp) {
		/* A zero frame pointer: the outermost frame. */
		return unwind_stop(UNWIND_STACKS_COMPLETE);
	}
	if ((fp & 7) || fp < s->sp || bpf_probe_read_user(&frame, sizeof(frame), (void *)fp))
		return unwind_stop(reason);
	s->bp = frame.next_fp;
	s->sp = fp + 16;
	s->ip = frame.ret;
	s->fp_frames++;
	return unwind_record(s, i);
}

/* The row in effect at pc, frame i: from an earlier walk's frame i, else from the per-CPU cache, else
 * searched (and cached); NULL when pc has none. */
static __always_inline struct unwind_row *unwind_lookup_row(struct stack_unwind *s, __u64 pc, __u32 i)
{
	struct unwind_path_row *p = &s->path[i & (UNWIND_PATH_SIZE - 1)];
	struct unwind_cached_row *c;
	struct unwind_row *row = NULL;

	if (p->pc == pc && p->owner == s->path_owner)
		return &p->row;
	c = &s->cache[(pc ^ (pc >> 9) ^ s->tgid) & (UNWIND_CACHE_SIZE - 1)];
	if (c->pc == pc && c->tgid == s->tgid && c->gen == s->proc_gen && c->epoch == s->epoch) {
		row = &c->row;
	} else {
		if (pc < s->map_start || pc >= s->map_end)
			unwind_find_mapping(s, pc);
		if (s->count)
			row = unwind_find_row(s, pc);
		if (!row)
			return NULL;
		c->pc = pc;
		c->tgid = s->tgid;
		c->gen = s->proc_gen;
		c->epoch = s->epoch;
		c->row = *row;
	}
	p->pc = pc;
	p->owner = s->path_owner;
	p->row = *row;
	return &p->row;
}

/* Restores the caller's registers from the frame at cfa by the row; 1 ends the walk. */
static __always_inline long unwind_restore(struct stack_unwind *s, struct unwind_row *row, __u64 cfa)
{
	__u64 ra, bp;

	if (row->rbp_off == -2 && row->cfa != UNWIND_CFA_PLT) {
		/* rbp pushed right below the return address (push %rbp, the usual prologue): one read. */
		__u64 pair[2];

		if (bpf_probe_read_user(pair, sizeof(pair), (void *)(cfa - 16)))
			return unwind_stop(UNWIND_TRUNC_READ_FAULT);
		bp = pair[0];
		ra = pair[1];
		s->bp = bp;
	} else {
		if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8)))
			return unwind_stop(UNWIND_TRUNC_READ_FAULT);
		if (row->rbp_off && row->cfa != UNWIND_CFA_PLT) {
			if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + (__s64)row->rbp_off * 8)))
				return unwind_stop(UNWIND_TRUNC_READ_FAULT);
			s->bp = bp;
		}
	}
	s->sp = cfa;
	s->ip = ra;
	return 0;
}

/* One frame of the walk, frame i + 1 from frame i (the bpf_loop callback); 1 ends the walk. */
static long unwind_step(__u32 i, void *ctx)
{
	__u32 zero = 0;
	struct stack_unwind *s = bpf_map_lookup_elem(&unwind_scratch, &zero);
	struct unwind_row *row;
	__u64 pc, cfa;

	if (!s)
		return 1;
	/* Callers' pcs are return addresses: the call is the instruction before (it may be the last of
	 * a noreturn function). The leaf's pc is exact. */
	pc = i == 0 ? s->ip : s->ip - 1;
	row = unwind_lookup_row(s, pc, i);
	if (!row)
		return unwind_fp_step(s, i, UNWIND_TRUNC_NO_TABLE);
	switch (row->cfa) {
	case UNWIND_CFA_RSP:
		cfa = s->sp + row->cfa_off;
		break;
	case UNWIND_CFA_RBP:
		cfa = s->bp + row->cfa_off;
		break;
	case UNWIND_CFA_PLT:
		cfa = s->sp + row->cfa_off + ((s->ip & 15) >= (__u8)row->rbp_off ? 8 : 0);
		break;
	case UNWIND_CFA_END:
		/* rbp_off says why (enum unwind_end); unwind_count drops an index past the counters */
		if (row->rbp_off > 0)
			return unwind_stop(UNWIND_STACKS_GO_STACK_SWITCH - UNWIND_END_GO_STACK_SWITCH + (__u8)row->rbp_off);
		return unwind_stop(UNWIND_STACKS_COMPLETE);
	case UNWIND_CFA_UNSUPPORTED:
		return unwind_fp_step(s, i, UNWIND_TRUNC_BAD_RULE);
	default:
		return unwind_fp_step(s, i, UNWIND_TRUNC_NO_TABLE);
	}
	if (cfa <= s->sp) {
		/* Inconsistent registers: the stack only grows down. */
		return unwind_stop(UNWIND_TRUNC_BAD_RULE);
	}
	if (unwind_restore(s, row, cfa))
		return 1;
	s->table_frames++;
	return unwind_record(s, i);
}

/* The walk by the process's tables (its entry at gen), from the registers in s; frame 0 is already in
 * the trace. */
static __always_inline void unwind_by_tables(struct stack_unwind *s, __u32 gen)
{
	s->proc_gen = gen;
	s->epoch = unwind_epoch;
	if (s->path_tgid != s->tgid || s->path_gen != gen || s->path_epoch != s->epoch) {
		s->path_owner++;
		s->path_tgid = s->tgid;
		s->path_gen = gen;
		s->path_epoch = s->epoch;
	}
	s->now = 0;
	s->table_frames = 0;
	s->fp_frames = 0;
	s->map_start = 1; /* an empty cached mapping */
	s->map_end = 0;
	s->count = 0;
	bpf_loop(PROFILER_MAX_STACK_DEPTH - 1, unwind_step, NULL, 0);
	/* A walk that stopped recorded no frame in its last step: only one that ran out fills the trace. */
	if (s->depth >= PROFILER_MAX_STACK_DEPTH)
		unwind_count(UNWIND_TRUNC_DEPTH, 1);
	unwind_count(UNWIND_FRAMES_TABLE, s->table_frames);
	unwind_count(UNWIND_FRAMES_FP, s->fp_frames);
}

/* The walk of a process without tables (yet): frame pointers from s->bp, the same walk as the kernel's
 * perf callchain without its fixed costs. */
static __always_inline void unwind_by_frame_pointers(struct stack_unwind *s)
{
	__u64 fp = s->bp;
	__u32 depth;

	for (depth = 1; depth < PROFILER_MAX_STACK_DEPTH; depth++) {
		struct {
			__u64 next_fp;
			__u64 ret;
		} frame;

		if (!fp || (fp & 7) || bpf_probe_read_user(&frame, sizeof(frame), (void *)fp) || !frame.ret)
			break;
		s->trace.frames[depth] = frame.ret;
		s->hash = stack_hash_mix(s->hash, frame.ret);
		/* Callers' frames lie above: anything else is not a frame-pointer chain. */
		if (frame.next_fp <= fp)
			break;
		fp = frame.next_fp;
	}
	s->depth = depth;
	unwind_count(UNWIND_STACKS_FP_ONLY, 1);
	unwind_count(UNWIND_FRAMES_FP, depth - 1);
}

int unwind_walk_user(const struct unwind_regs *regs, __u64 *hash, __u32 *depth, struct unwind_memo *memo)
{
	__u32 zero = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	struct stack_unwind *s = bpf_map_lookup_elem(&unwind_scratch, &zero);
	struct unwind_process *p;
	__u32 end;

	if (!s || !regs || !hash || !depth || !memo)
		return -1;
	s->tgid = tgid;
	s->ip = regs->ip;
	s->sp = regs->sp;
	s->bp = regs->bp;
	s->trace.frames[0] = regs->ip;
	s->hash = stack_hash_mix(STACK_HASH_SEED_USER, regs->ip);
	s->depth = 1;
	if (!memo->known) {
		p = bpf_map_lookup_elem(&unwind_procs, &tgid);
		memo->has_entry = p != NULL;
		memo->gen = p ? p->gen : 0;
		memo->known = 1;
	}
	if (memo->has_entry)
		unwind_by_tables(s, memo->gen);
	else
		unwind_by_frame_pointers(s);
	end = s->depth;
	if (end < PROFILER_MAX_STACK_DEPTH)
		s->trace.frames[end] = 0;
	*hash = s->hash;
	*depth = end;
	return 0;
}

__hidden struct stack_trace *unwind_user_trace(void)
{
	__u32 zero = 0;
	struct stack_unwind *s = bpf_map_lookup_elem(&unwind_scratch, &zero);

	return s ? &s->trace : NULL;
}

__hidden void unwind_forget(__u32 tgid)
{
	bpf_map_delete_elem(&unwind_procs, &tgid);
}
