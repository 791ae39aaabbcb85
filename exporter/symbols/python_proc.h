/*
 * Recognizing a CPython process: its interpreter (a python3.N executable or a libpython3.N.so mapping,
 * the minor from the file name, confirmed by Py_Version), _PyRuntime and _PyEval_EvalFrameDefault from
 * the file's symbols, the layout (python_offsets.h), and where each thread's state is: the TSS key
 * autoTSSkey (pthread-specific data; on 3.13 too, whose _Py_tss_tstate is cleared while the thread
 * lets the GIL go, in a wait or C code without it). What the
 * BPF walker needs goes in a struct python_proc; everything comes from the files, none from the
 * process's memory, so a process still starting is recognized as well as a running one.
 */
#ifndef ANORAK_PYTHON_PROC_H
#define ANORAK_PYTHON_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/types.h>

#include "bpf/python.h"
#include "exporter/symbols/python_offsets.h"

/* Why a process is not walked (metrics: anorak_python_processes_failed_total{reason}). */
enum python_failure {
	PYTHON_FAIL_NONE,
	PYTHON_FAIL_UNREADABLE,  /* its maps or interpreter file could not be read */
	PYTHON_FAIL_NO_SYMBOLS,  /* no _PyRuntime or _PyEval_EvalFrameDefault (stripped .dynsym) */
	PYTHON_FAIL_VERSION,     /* a minor without a known layout */
	PYTHON_FAIL_LAYOUT,      /* _Py_DebugOffsets missing or not as expected */
	PYTHON_FAIL_TSTATE,      /* where thread states live could not be found */
	PYTHON_FAIL_REASONS,
};

struct python_target {
	int minor;                  /* 0: not a Python process */
	uint64_t runtime;           /* _PyRuntime in the process */
	struct python_layout layout;
	struct python_proc proc;    /* for BPF */
	enum python_failure failure;
};

struct maps_snapshot;

/* Looks at pid's mappings (under proc_root; from snap when not NULL, the mappings already read). 0 with out->failure set when it maps an interpreter that
 * cannot be walked, 0 with out->minor 0 and no failure when it runs no CPython 3.10+, negative errno
 * when its maps cannot be read. */
int python_discover(const char *proc_root, int pid, uint64_t elf_max_bytes, const struct maps_snapshot *snap,
		    struct python_target *out);

/* The minor of an interpreter file name (python3.N, libpython3.N.so...), 0 when it is none. */
int python_minor_of_path(const char *path);

/* The offset of specific_1stblock[0].data in glibc's struct pthread, measured on this process's own
 * thread (the profiled processes share the host's glibc layout); -ENOENT when it cannot be found. */
int python_pthread_specific_offset(uint32_t *out);

#endif
