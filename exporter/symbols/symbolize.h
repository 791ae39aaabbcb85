/*
 * Symbolization: process mappings, ELF symbols (symtab, dynsym, separate debug files), kernel symbols
 * from kallsyms, JIT symbols from perf maps. Thread-safe: called from the event thread (loading maps)
 * and from HTTP threads (encoding profiles).
 */
#ifndef ANORAK_SYMBOLIZE_H
#define ANORAK_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_buf;
struct debuginfod;

struct symbolizer_opts {
	uint64_t cache_max_bytes;     /* symbol tables kept in memory, all files together */
	uint64_t idle_ttl_ns;         /* tables unused this long are let go (their files too, unmapped) */
	uint64_t elf_max_bytes;       /* ELF files larger than this are not parsed (counted) */
	uint32_t max_symbols_per_file;/* larger symbol tables are refused (counted) */
	const char *proc_root;        /* "/proc"; tests may point elsewhere */
	const char *kallsyms_path;    /* "/proc/kallsyms" */
	struct debuginfod *debuginfod;/* asked for debug files not on the local disk; NULL: none */
};

/* One executable mapping of a process, as /proc/PID/maps shows it. */
struct sym_mapping {
	uint64_t start, end, offset;
	const char *path;      /* as the process sees it: "/usr/lib/.../libc.so.6", "[vdso]", "" (anon) */
	const char *build_id;  /* GNU build id, lowercase hex, "" when none */
	bool jit;              /* anonymous executable memory: symbols come from /tmp/perf-PID.map */
};

struct symbolizer;
struct maps_snapshot;
struct proc_maps; /* an immutable, refcounted snapshot of one process's executable mappings */

struct symbolizer *symbolizer_new(const struct symbolizer_opts *opts);
void symbolizer_free(struct symbolizer *s);

/* Reads /proc/PID/maps and opens (or finds in the cache) every executable file it maps, through
 * /proc/PID/map_files or /proc/PID/root so files inside containers and deleted files work. Files stay
 * open while a snapshot references them, so an exited process still symbolizes. */
/* Lets go of the symbol tables no lookup used (and no process unmapped) for opts.idle_ttl_ns, and of
 * their files when no snapshot maps them: what processes that are gone or asleep leave in the cache.
 * A table still mapped is loaded again when it shows up in a stack. Called after each drain. */
void symbolizer_expire_idle(struct symbolizer *s);
int symbolizer_load_maps(struct symbolizer *s, int pid, struct proc_maps **out);
/* The same from snap, pid's mappings read once for several consumers (NULL: read afresh). */
int symbolizer_load_snapshot(struct symbolizer *s, int pid, const struct maps_snapshot *snap,
			     struct proc_maps **out);
struct proc_maps *proc_maps_get(struct proc_maps *m);
void proc_maps_put(struct proc_maps *m);
/* The mapping holding addr, or NULL. */
const struct sym_mapping *proc_maps_find(const struct proc_maps *m, uint64_t addr);

#define SYM_MAX_FRAMES 16

/* One source frame: a function, and where in its source file when known. */
struct sym_frame {
	const char *name;
	const char *file; /* "" when unknown */
	uint32_t line;    /* 0 when unknown */
};

/* The frames at one address, innermost inlined call first, the function the code belongs to last. */
struct sym_frames {
	size_t n;
	struct sym_frame frames[SYM_MAX_FRAMES];
	char buf[8192]; /* the strings */
};

/* The frames at the runtime address addr of mapping map (callers pass return address - 1 for non-leaf
 * frames): inlined calls, files and lines where the binary says (Go's pclntab); one frame with a name
 * alone for ELF symbols and perf maps. Returns out->n, 0 when unknown. */
size_t symbolizer_user_frames(struct symbolizer *s, const struct proc_maps *m, const struct sym_mapping *map,
			      uint64_t addr, struct sym_frames *out);
/* Kernel symbol for addr; module gets the module name ("" for the core kernel). 0 when unknown. */
size_t symbolizer_kernel(struct symbolizer *s, uint64_t addr, char *name, size_t len, char *module,
			 size_t modlen);

/* anorak_symbol_* families: cache entries/bytes/hits/misses/evictions, files refused by reason. */
void symbolizer_write_metrics(struct metrics_buf *b, void *symbolizer);

#endif
