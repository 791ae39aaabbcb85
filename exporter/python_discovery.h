/*
 * CPython processes: each learnt process is looked at once (exporter/symbols/python_proc.c); an
 * interpreter that can be walked is handed to BPF (python_procs) and to the code object resolver,
 * which turns the raw Python frames of drained stacks into functions and lines.
 */
#ifndef ANORAK_PYTHON_DISCOVERY_H
#define ANORAK_PYTHON_DISCOVERY_H

#include <stdatomic.h>
#include <stdint.h>

#include "exporter/sampling/sampler.h"
#include "exporter/symbols/process.h"
#include "exporter/symbols/python_code.h"
#include "exporter/symbols/python_proc.h"

struct metrics_buf;

struct python_discovery {
	struct sampler *sampler;
	struct python_code *code;
	uint64_t elf_max_bytes;
	atomic_uint_fast64_t by_minor[PYTHON_MINOR_MAX + 1];
	atomic_uint_fast64_t failures[PYTHON_FAIL_REASONS];
};

/* -ENOMEM. */
int python_discovery_init(struct python_discovery *d, struct sampler *sampler, uint64_t elf_max_bytes,
			  uint32_t max_processes);
/* The process table's on_learnt hook (event thread). */
void python_discovery_learnt(struct python_discovery *d, struct process *p);
/* Resolves the Python frames of a drained user stack into out (drain thread); false when it has none
 * (out untouched). */
bool python_discovery_resolve(struct python_discovery *d, uint32_t tgid, const uint64_t *frames, uint32_t n,
			      uint64_t *out);
void python_discovery_write_metrics(struct metrics_buf *b, void *ctx);
void python_discovery_destroy(struct python_discovery *d);

#endif
