/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The per-CPU counters of what happened to samples (enum sample_outcome), which user space reads.
 * profiler.bpf.c defines the map; the other units count into it through this declaration, which the
 * BPF linker resolves to that one map.
 */
#ifndef ANORAK_OUTCOME_BPF_H
#define ANORAK_OUTCOME_BPF_H

#include <bpf/bpf_helpers.h>

#include "profiler.h"

struct outcome_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SAMPLE_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
};

extern struct outcome_map outcomes SEC(".maps");

static __always_inline void count_outcome(__u32 outcome)
{
	__u64 *n = bpf_map_lookup_elem(&outcomes, &outcome);

	if (n)
		*n += 1;
}

#endif
