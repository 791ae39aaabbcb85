/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * How the BPF units name a stack: a 64-bit hash of its frames, the key of the generation's stack map.
 * The kernel walk (profiler.bpf.c) and the user walk (unwind.bpf.c) hash the same way, from seeds of
 * their own, so a user and a kernel stack with the same frames are different stacks.
 */
#ifndef ANORAK_STACK_BPF_H
#define ANORAK_STACK_BPF_H

#define STACK_HASH_SEED_USER 0x9e3779b97f4a7c15ULL
#define STACK_HASH_SEED_KERNEL 0x2545f4914f6cdd1dULL

/* Mixes one frame into the hash. */
static __always_inline __u64 stack_hash_mix(__u64 h, __u64 frame)
{
	h ^= frame;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 32);
}

#endif
