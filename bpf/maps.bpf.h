/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Map helpers shared by the BPF units, after libbpf-tools' maps.bpf.h. */
#ifndef ANORAK_MAPS_BPF_H
#define ANORAK_MAPS_BPF_H

#include <bpf/bpf_helpers.h>
#include <asm-generic/errno.h>

/*
 * The value under key, inserted as *init first when there is none. Two CPUs can miss the same new key
 * at once: BPF_NOEXIST lets one insert, and the other finds its value (-EEXIST) instead of overwriting
 * it. NULL only when the map is full.
 */
static __always_inline void *bpf_map_lookup_or_try_init(void *map, const void *key, const void *init)
{
	void *val;
	long err;

	/* Most keys repeat: a lock-free lookup spares the update's bucket lock. */
	val = bpf_map_lookup_elem(map, key);
	if (val)
		return val;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

#endif
