/*
 * CPython processes: each learnt process is looked at (exporter/symbols/python_proc.c); an interpreter
 * that can be walked is handed to BPF (python_procs) and to the code object resolver, which turns the
 * raw Python frames of drained stacks into functions and lines. A python3.N executable whose shared
 * libpython the loader has not mapped yet (learnt at its exec or first sample) is looked at again
 * every 100 ms for 3 s. Looks and retries run on the discovery thread (exporter/discovery.h).
 */
#ifndef ANORAK_PYTHON_DISCOVERY_H
#define ANORAK_PYTHON_DISCOVERY_H

#include <stdatomic.h>
#include <stdint.h>

#include "exporter/proc/maps_snapshot.h"
#include "exporter/sampling/sampler.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/python_code.h"
#include "exporter/symbols/python_proc.h"

struct metrics_buf;

#define PYTHON_RETRIES_MAX 64

struct python_retry {
	struct process *process; /* referenced */
	struct proc_identity id;   /* the program it ran when learnt */
	int64_t until_ns, next_ns; /* CLOCK_MONOTONIC */
};

struct python_discovery {
	struct sampler *sampler;
	struct python_code *code;
	uint64_t elf_max_bytes;
	/* Discovery thread only. */
	struct python_retry retries[PYTHON_RETRIES_MAX];
	int nretries;
	atomic_uint_fast64_t by_minor[PYTHON_MINOR_MAX + 1];
	atomic_uint_fast64_t failures[PYTHON_FAIL_REASONS];
};

/* -ENOMEM. */
int python_discovery_init(struct python_discovery *d, struct sampler *sampler, uint64_t elf_max_bytes,
			  uint32_t max_processes);
/* Looks at a process learnt from its first sample, running the program id names (an interpreter found
 * after it left that program is taken back); maps may be NULL. */
void python_discovery_learnt(struct python_discovery *d, struct process *p, const struct maps_snapshot *maps,
			     const struct proc_identity *id);
/* Looks again at the interpreters whose libpython was not mapped yet, when their time came; when the next
 * one is due (CLOCK_MONOTONIC ns), 0 when none waits. */
int64_t python_discovery_retry(struct python_discovery *d);
/* Resolves the Python frames of a drained user stack into out (drain thread); false when it has none
 * (out untouched). */
bool python_discovery_resolve(struct python_discovery *d, uint32_t tgid, const uint64_t *frames, uint32_t n,
			      uint64_t *out);
void python_discovery_write_metrics(struct metrics_buf *b, void *ctx);
void python_discovery_destroy(struct python_discovery *d);

#endif
