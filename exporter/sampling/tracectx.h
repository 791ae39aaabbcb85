/*
 * Trace context discovery: where a process keeps the TLS pointer to its current trace context, as an
 * offset from the thread pointer that a BPF program can read at sample time (fsbase + tpoff on x86-64).
 * Two ABIs: OpenTelemetry Thread Context v1 (`otel_thread_ctx_v1`) and Polar Signals' custom-labels v1
 * (`custom_labels_current_set`, with `custom_labels_abi_version` == 1).
 */
#ifndef ANORAK_TRACECTX_H
#define ANORAK_TRACECTX_H

#include <stdint.h>

enum tracectx_kind {
	TRACECTX_NONE = 0,
	TRACECTX_OTEL_V1 = 1,
	TRACECTX_CUSTOM_LABELS_V1 = 2,
};

enum tracectx_tls {
	TRACECTX_TLS_STATIC_EXE = 1,   /* in the main executable: static TLS, offset from PT_TLS */
	TRACECTX_TLS_TLSDESC_DSO = 2,  /* in a DSO loaded at startup, static TLS through TLSDESC */
	TRACECTX_TLS_DYNAMIC = 3,      /* found, but only reachable through the DTV: unsupported */
};

struct tracectx_slot {
	enum tracectx_kind kind;  /* TRACECTX_NONE: the process does not export it */
	enum tracectx_tls tls;
	int64_t tpoff;            /* offset from the thread pointer (x86-64 fs base) of the TLS pointer;
				   * valid for TRACECTX_TLS_STATIC_EXE and TRACECTX_TLS_TLSDESC_DSO */
};

struct tracectx_result {
	struct tracectx_slot otel, custom;
};

/* Scans the executable file mappings of pid (under proc_root, normally "/proc") for both ABIs. Files
 * larger than elf_max_bytes, unreadable or malformed are skipped. Returns 0 (slots of kind
 * TRACECTX_NONE when absent); -EAGAIN when a TLSDESC slot is not relocated yet (the process is still
 * starting: try again later); -EOPNOTSUPP on other architectures than x86-64; another negative errno
 * when the process could not be read. */
int tracectx_discover(const char *proc_root, int pid, uint64_t elf_max_bytes, struct tracectx_result *out);

/* Files known to define no trace context variable, by identity (device, inode, size, change times) and
 * by how they were looked at (as the main executable, under a custom-labels library name): most
 * processes map the same libc and loader, whose symbol tables were searched for every process learnt.
 * Direct-mapped by inode; one thread at a time (the counters may be read from any). */
#define TRACECTX_FILES 1024

struct tracectx_file_key {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	uint8_t main, custom_name, used;
};

struct tracectx_files {
	struct tracectx_file_key keys[TRACECTX_FILES];
	_Atomic uint64_t skipped;   /* file mappings not opened: known to define none */
	_Atomic uint64_t evictions; /* entries replaced by another file of their slot */
};

/* tracectx_discover, skipping the files in *files and adding those found to define none. */
int tracectx_discover_files(const char *proc_root, int pid, uint64_t elf_max_bytes, struct tracectx_files *files,
			    struct tracectx_result *out);

#endif
