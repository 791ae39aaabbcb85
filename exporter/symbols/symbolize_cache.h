/*
 * The symbolizer's private parts, shared by its two files: symbolize_files.c keeps the ELF files the
 * processes map (a cache of open files and their symbol tables, evicted least recently used first, and
 * the vdso); symbolize.c takes snapshots of processes' mappings and looks addresses up in them.
 */
#ifndef ANORAK_SYMBOLIZE_CACHE_H
#define ANORAK_SYMBOLIZE_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "exporter/proc/elf_file.h"
#include "exporter/proc/procmaps.h"
#include "exporter/symbols/symbolize.h"
#include "exporter/symbols/symbolize_go.h"

struct perfmap;
struct kallsyms;

#define FILE_BUCKETS 1024

enum refusal {
	REFUSED_TOO_LARGE,
	REFUSED_TOO_MANY_SYMBOLS,
	REFUSED_BAD_ELF,
	REFUSED_OPEN_FAILED,
	REFUSED_NR
};

/* One mapped ELF file, shared by every snapshot that maps it. Guarded by symbolizer.lock. */
struct sym_file {
	struct sym_file *hnext;
	struct sym_file *lru_prev, *lru_next; /* linked while symtab or pcln is loaded */
	dev_t dev;
	uint64_t ino;
	int fd;              /* kept open: pins the inode (so the key stays valid) and allows reloading */
	int debug_fd;        /* separate debug file, -1 when none */
	bool debug_checked;  /* debuglink CRC verified (or found by build id: nothing to verify) */
	uint32_t debug_crc;
	bool debuginfod_wait;     /* no symbols on the local disk: asking debuginfod */
	uint64_t debuginfod_stamp;/* debuginfod_poll's */
	bool pinned;         /* the vdso: owned by the symbolizer, never in the hash or the LRU */
	unsigned refs;       /* snapshots mapping it */
	int64_t used_ns;     /* CLOCK_MONOTONIC of the last lookup in its tables, or of its unmapping */
	int load_err;        /* symbols could not be loaded: do not retry */
	struct elf_symtab *symtab;
	struct gopclntab *pcln; /* Go binaries: names, lines and inlined calls of Go code */
	size_t symtab_bytes;    /* of both tables */
	bool go;                /* a Go binary (pclntab section or Go build-id note) */
	char *go_path;          /* its path, for the one log line when its pclntab is refused */
	struct elf_load loads[ELF_MAX_LOADS];
	size_t nloads;
	char build_id[ELF_BUILD_ID_HEX];
};

struct pm_map {
	struct sym_mapping m; /* what proc_maps_find hands out */
	char *path;
	struct sym_file *file; /* NULL: anonymous, or the file could not be opened */
};

struct proc_maps {
	atomic_int refs;
	struct symbolizer *s;
	struct pm_map *maps; /* sorted by start, disjoint */
	size_t n, cap;
	struct perfmap *perfmap;
};

struct symbolizer {
	struct symbolizer_opts opts;
	char *proc_root, *kallsyms_path;
	pthread_mutex_t lock;
	struct sym_file *buckets[FILE_BUCKETS];
	struct sym_file lru; /* sentinel: lru.lru_next is the most recently used */
	size_t nfiles, idle_files;
	uint64_t cache_bytes;
	struct sym_file *vdso;
	uint64_t vdso_size;
	struct kallsyms *kallsyms;
	bool kallsyms_tried;
	uint64_t hits, misses, evictions, expired, unresolved, refused[REFUSED_NR];
	struct go_stats go;
	uint64_t mappings_dropped; /* atomic: counted while reading maps, outside the lock */
	uint64_t files_read;       /* atomic: ELF files opened and inspected, outside the lock */
	char elf_name[4096];       /* an ELF symbol's name read from its file, under the lock */
};


/* The vdso's symbols, from this process's own copy (the same image in every process on this kernel). */
void load_vdso(struct symbolizer *s);

/* The cached entry for e's file (of process pid, whose root is rootfd), referenced; created when
 * missing. NULL when it cannot be opened. */
struct sym_file *file_get(struct symbolizer *s, int pid, int rootfd, const struct procmaps_entry *e);

/* Drops a snapshot's reference: an unreferenced file stays cached, idle, until evicted. */
void file_unref(struct symbolizer *s, struct sym_file *f);

/* Closes f and frees its tables. */
void file_destroy(struct sym_file *f);

/* The symbol tables of f (ELF symbols, and pclntab for Go binaries), loading them on first use.
 * Called with the lock held; false when f has neither. */
bool file_tables(struct symbolizer *s, struct sym_file *f);

#endif
