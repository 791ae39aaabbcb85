#include "exporter/sampling/tracectx.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"

#define MAX_FILES 1024                 /* distinct executable files looked at per process */
#define MAX_SYMBOLS (1u << 22)         /* larger symbol tables are not searched */
#define MAX_RELOCS (1u << 20)          /* nor larger dynamic relocation sections (24 B each) */
#define TLS_MAX_BYTES (1ull << 30)     /* bound on PT_TLS memsz and align */
#define STATIC_TPOFF_MIN (-(1ll << 30)) /* static TLS sits below the thread pointer, well within this */
#define CUSTOM_LABELS_DSO "libcustomlabels"
#define PROC_ROOT_MAX 64               /* paths under it then fit in PROC_PATH_MAX */
#define PROC_PATH_MAX (PROC_ROOT_MAX + 64)

struct file_id {
	uint32_t major, minor;
	uint64_t ino;
};

struct scan {
	const char *proc_root;
	int pid;
	uint64_t elf_max_bytes;
	int rootfd, memfd;
	bool have_exe;
	struct stat exe;
	struct file_id seen[MAX_FILES];
	size_t nseen;
	bool otel_main, custom_main; /* the slot came from the main executable, which wins */
	struct tracectx_files *files; /* or NULL */
	struct tracectx_result *out;
};

/* One executable file mapping being looked at. */
struct mapped_file {
	const struct procmaps_entry *e;
	struct elf_file *f;
	struct elf_tls tls;
	bool main;
};

/* --- reading the process's memory ------------------------------------------------------------------ */

static int read_mem(struct scan *sc, uint64_t addr, void *buf, size_t len)
{
	char path[PROC_PATH_MAX];
	ssize_t n;

	if (sc->memfd < 0) {
		snprintf(path, sizeof(path), "%s/%d/mem", sc->proc_root, sc->pid);
		sc->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (sc->memfd < 0)
			return -errno;
	}
	if (addr > INT64_MAX)
		return -EIO;
	n = pread(sc->memfd, buf, len, (off_t)addr);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Load bias of the mapped file: the PT_LOAD holding the mapping's file offset is mapped at start. */
static int load_bias(const struct mapped_file *m, uint64_t *bias)
{
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct elf_load loads[ELF_MAX_LOADS];
	const struct procmaps_entry *e = m->e;
	int n;

	n = elf_file_loads(m->f, loads, ELF_MAX_LOADS);
	for (int i = 0; i < n; i++) {
		/* The mapping starts at the page holding p_offset, or further into the segment. */
		if (e->offset < (loads[i].offset & ~(page - 1)) ||
		    (e->offset >= loads[i].offset && e->offset - loads[i].offset >= loads[i].filesz))
			continue;
		*bias = e->start - (loads[i].vaddr - loads[i].offset + e->offset);
		return 0;
	}
	return -ENOENT;
}

/* --- finding the slot ----------------------------------------------------------------------------- */

static int find_symbol(const struct mapped_file *m, const char *name, struct elf_symbol *sym)
{
	int err = elf_file_find_symbol(m->f, SHT_DYNSYM, name, MAX_SYMBOLS, sym);

	/* Only the main executable may lack .dynsym (a static binary); a DSO's ABI symbols are dynamic. */
	if (err == -ENOENT && m->main)
		err = elf_file_find_symbol(m->f, SHT_SYMTAB, name, MAX_SYMBOLS, sym);
	return err;
}

/* The main executable's TLS block is the first one below the thread pointer (TLS variant II), laid
 * out by glibc and musl alike: it ends at the thread pointer, its start keeping p_vaddr's alignment. */
static int exe_tpoff(const struct mapped_file *m, const struct elf_symbol *sym, int64_t *tpoff)
{
	const struct elf_tls *tls = &m->tls;
	uint64_t align, firstbyte, off;

	align = tls->align ? tls->align : 1;
	if (tls->memsz > TLS_MAX_BYTES || align > TLS_MAX_BYTES || (align & (align - 1)) ||
	    sym->value > tls->memsz || tls->memsz - sym->value < sym->size)
		return -ENOENT;
	firstbyte = -(tls->vaddr & (align - 1)) & (align - 1);
	off = tls->memsz > firstbyte ? (tls->memsz - firstbyte + align - 1) & ~(align - 1) : 0;
	*tpoff = (int64_t)sym->value - (int64_t)(off + firstbyte);
	return 0;
}

/* A startup DSO reached through TLSDESC: once relocated, the descriptor is {resolver, argument} and
 * for static TLS the argument is the offset from the thread pointer. Anything else (general-dynamic
 * __tls_get_addr, or a descriptor whose argument is a pointer for _dl_tlsdesc_dynamic) needs the DTV. */
static int dso_tpoff(struct scan *sc, const struct mapped_file *m, const struct elf_symbol *sym,
		     struct tracectx_slot *slot)
{
	uint64_t r_offset, bias, desc[2];
	int err;

	err = elf_file_find_rela(m->f, R_X86_64_TLSDESC, sym->index, sym->value, MAX_RELOCS, &r_offset);
	if (err == -ENOENT) {
		slot->tls = TRACECTX_TLS_DYNAMIC;
		return 0;
	}
	if (err || load_bias(m, &bias))
		return -ENOENT;
	err = read_mem(sc, bias + r_offset, desc, sizeof(desc));
	if (err)
		return err;
	/* glibc fills descriptors before any code of the module runs; a null resolver is ld.so not
	 * having got there yet. */
	if (desc[0] == 0)
		return -EAGAIN;
	if ((int64_t)desc[1] < 0 && (int64_t)desc[1] >= STATIC_TPOFF_MIN) {
		slot->tls = TRACECTX_TLS_TLSDESC_DSO;
		slot->tpoff = (int64_t)desc[1];
	} else {
		slot->tls = TRACECTX_TLS_DYNAMIC;
	}
	return 0;
}

/* The TLS pointer called name: 0 with slot filled, -ENOENT when absent or unusable, or an error
 * reading the process. */
static int resolve_tls(struct scan *sc, const struct mapped_file *m, const char *name,
		       struct tracectx_slot *slot)
{
	struct elf_symbol sym;
	int err;

	if (find_symbol(m, name, &sym) || sym.type != STT_TLS || sym.size != sizeof(uint64_t))
		return -ENOENT;
	if (!m->main)
		return dso_tpoff(sc, m, &sym, slot);
	err = exe_tpoff(m, &sym, &slot->tpoff);
	if (!err)
		slot->tls = TRACECTX_TLS_STATIC_EXE;
	return err;
}

static bool custom_name(const struct procmaps_entry *e)
{
	const char *base = strrchr(e->path, '/');

	return !strncmp(base ? base + 1 : e->path, CUSTOM_LABELS_DSO, strlen(CUSTOM_LABELS_DSO));
}

/* custom-labels v1 lives in the main executable or in a libcustomlabels*.so, and says its version in
 * a 4-byte data object. */
static int resolve_custom(struct scan *sc, const struct mapped_file *m, struct tracectx_slot *slot)
{
	struct elf_symbol sym;
	uint64_t bias;
	uint32_t version;
	int err;

	if (!m->main && !custom_name(m->e))
		return -ENOENT;
	if (find_symbol(m, "custom_labels_abi_version", &sym) || sym.type != STT_OBJECT ||
	    sym.size != sizeof(version) || load_bias(m, &bias))
		return -ENOENT;
	err = read_mem(sc, bias + sym.value, &version, sizeof(version));
	if (err)
		return err;
	if (version != 1)
		return -ENOENT;
	return resolve_tls(sc, m, "custom_labels_current_set", slot);
}

/* Fills *slot from this file unless it is already set by the main executable (which the dynamic
 * linker's symbol lookup prefers too). Returns 0 or an error reading the process. */
static int try_slot(struct scan *sc, const struct mapped_file *m, enum tracectx_kind kind,
		    struct tracectx_slot *slot, bool *from_main)
{
	struct tracectx_slot found = { .kind = kind };
	int err;

	if (*from_main || (slot->kind != TRACECTX_NONE && !m->main))
		return 0;
	err = kind == TRACECTX_OTEL_V1 ? resolve_tls(sc, m, "otel_thread_ctx_v1", &found)
				       : resolve_custom(sc, m, &found);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	*slot = found;
	*from_main = m->main;
	return 0;
}

static bool is_main(const struct scan *sc, const struct mapped_file *m, int fd)
{
	struct stat st;

	if (sc->have_exe)
		return !fstat(fd, &st) && st.st_dev == sc->exe.st_dev && st.st_ino == sc->exe.st_ino;
	/* Without /proc/PID/exe: a fixed-address executable, or the first file mapped (this one was
	 * just added to the seen list). */
	return elf_file_type(m->f) == ET_EXEC || sc->nseen == 1;
}

static bool seen_before(struct scan *sc, const struct procmaps_entry *e)
{
	struct file_id id = { e->dev_major, e->dev_minor, e->inode };

	for (size_t i = 0; i < sc->nseen; i++) {
		if (sc->seen[i].ino == id.ino && sc->seen[i].major == id.major && sc->seen[i].minor == id.minor)
			return true;
	}
	sc->seen[sc->nseen++] = id;
	return false;
}

/* The key of a file mapping in sc->files; false when it cannot have one (no stat, or no
 * /proc/PID/exe to tell the main executable by). */
static bool file_key(const struct scan *sc, const struct procmaps_entry *e, const struct stat *st,
		     struct tracectx_file_key *k)
{
	if (!sc->files || !sc->have_exe)
		return false;
	*k = (struct tracectx_file_key){
		.dev = st->st_dev,
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.mtime_ns = st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		.ctime_ns = st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
		.main = st->st_dev == sc->exe.st_dev && st->st_ino == sc->exe.st_ino,
		.custom_name = custom_name(e),
		.used = 1,
	};
	return true;
}

static struct tracectx_file_key *file_slot(struct tracectx_files *files, const struct tracectx_file_key *k)
{
	return &files->keys[(k->ino ^ k->dev * 0x9e3779b97f4a7c15ULL) % TRACECTX_FILES];
}

static bool known_to_define_none(struct tracectx_files *files, const struct tracectx_file_key *k)
{
	const struct tracectx_file_key *s = file_slot(files, k);

	if (!s->used || s->dev != k->dev || s->ino != k->ino || s->size != k->size || s->mtime_ns != k->mtime_ns ||
	    s->ctime_ns != k->ctime_ns || s->main != k->main || s->custom_name != k->custom_name)
		return false;
	atomic_fetch_add(&files->skipped, 1);
	return true;
}

static void remember_defines_none(struct tracectx_files *files, const struct tracectx_file_key *k)
{
	struct tracectx_file_key *slot = file_slot(files, k);

	if (slot->used)
		atomic_fetch_add(&files->evictions, 1);
	*slot = *k;
}

/* Whether the file defines neither variable (after a search that found none here, so the searches are
 * repeated once per file, and skipped for every process after). */
static bool defines_none(const struct mapped_file *m)
{
	struct elf_symbol sym;

	if (!find_symbol(m, "otel_thread_ctx_v1", &sym))
		return false;
	return (!m->main && !custom_name(m->e)) || find_symbol(m, "custom_labels_abi_version", &sym);
}

/* Looks for both variables in an opened file; *none: it defines neither. */
static int scan_file(struct scan *sc, struct mapped_file *m, int fd, bool *none)
{
	int err;

	m->main = is_main(sc, m, fd);
	/* A module without a TLS segment defines no TLS variable: most files stop here, unsearched. */
	if (elf_file_tls(m->f, &m->tls)) {
		*none = true;
		return 0;
	}
	err = try_slot(sc, m, TRACECTX_OTEL_V1, &sc->out->otel, &sc->otel_main);
	if (!err)
		err = try_slot(sc, m, TRACECTX_CUSTOM_LABELS_V1, &sc->out->custom, &sc->custom_main);
	*none = !err && defines_none(m);
	return err;
}

static int scan_mapping(const struct procmaps_entry *e, void *ctx)
{
	struct scan *sc = ctx;
	struct mapped_file m = { .e = e };
	struct tracectx_file_key key;
	struct stat st;
	bool keyed, none = false;
	int pathfd, fd, err;

	if (!e->executable || e->path[0] != '/')
		return 0;
	if (sc->nseen == MAX_FILES)
		return 1; /* stop: a sane process maps far fewer files */
	if (seen_before(sc, e))
		return 0;
	pathfd = procfile_path_mapped(sc->proc_root, sc->pid, sc->rootfd, e, &st);
	if (pathfd < 0)
		return 0;
	/* Keyed by the path's stat: a file known to define none is not opened for reading at all (most
	 * mappings of a new process, libc's and the loader's every time). */
	keyed = file_key(sc, e, &st, &key);
	fd = keyed && known_to_define_none(sc->files, &key) ? -1 : procfile_reopen(pathfd);
	close(pathfd);
	if (fd < 0)
		return 0;
	if (elf_file_open(fd, sc->elf_max_bytes, &m.f)) {
		close(fd);
		return 0;
	}
	err = scan_file(sc, &m, fd, &none);
	if (keyed && none)
		remember_defines_none(sc->files, &key);
	elf_file_close(m.f);
	close(fd);
	return err;
}

int tracectx_discover(const char *proc_root, int pid, uint64_t elf_max_bytes, struct tracectx_result *out)
{
	return tracectx_discover_files(proc_root, pid, elf_max_bytes, NULL, out);
}

int tracectx_discover_files(const char *proc_root, int pid, uint64_t elf_max_bytes, struct tracectx_files *files,
			    struct tracectx_result *out)
{
	char path[PROC_PATH_MAX];
	struct scan *sc;
	FILE *maps;
	int err;

	memset(out, 0, sizeof(*out));
	/* The offsets are x86-64's (TLS variant II, R_X86_64_TLSDESC). */
#ifndef __x86_64__
	return -EOPNOTSUPP;
#endif
	if (strlen(proc_root) > PROC_ROOT_MAX)
		return -ENAMETOOLONG;
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid);
	maps = fopen(path, "re");
	if (!maps)
		return -errno;
	/* The seen-file list is too big for the stack of an HTTP or event thread. */
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		fclose(maps);
		return -ENOMEM;
	}
	sc->proc_root = proc_root;
	sc->pid = pid;
	sc->elf_max_bytes = elf_max_bytes;
	sc->files = files;
	sc->memfd = -1;
	sc->out = out;
	snprintf(path, sizeof(path), "%s/%d/exe", proc_root, pid);
	sc->have_exe = stat(path, &sc->exe) == 0;
	sc->rootfd = procfile_open_root(proc_root, pid);

	err = procmaps_foreach(maps, scan_mapping, sc);
	fclose(maps);
	if (sc->rootfd >= 0)
		close(sc->rootfd);
	if (sc->memfd >= 0)
		close(sc->memfd);
	free(sc);
	if (err < 0) {
		memset(out, 0, sizeof(*out));
		return err;
	}
	return 0;
}
