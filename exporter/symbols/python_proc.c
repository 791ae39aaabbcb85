#include "exporter/symbols/python_proc.h"

#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporter/proc/elf_file.h"
#include "exporter/proc/maps_snapshot.h"
#include "exporter/proc/procfile.h"
#include "exporter/proc/procmaps.h"

#define MAX_SYMBOLS (1u << 22)
#define MAX_CANDIDATES 8       /* interpreter-named files looked into per process */
#define PTHREAD_SCAN_BYTES 4096 /* struct pthread is about 2.3 KiB */
#define PTHREAD_KEY_DATA_SIZE 16 /* struct pthread_key_data { uintptr_t seq; void *data; } */

int python_minor_of_path(const char *path)
{
	const char *base = strrchr(path, '/');
	const char *p;
	int minor = 0, n = 0;

	base = base ? base + 1 : path;
	if (strncmp(base, "libpython3.", 11) == 0)
		p = base + 11;
	else if (strncmp(base, "python3.", 8) == 0)
		p = base + 8;
	else
		return 0;
	if (sscanf(p, "%3d%n", &minor, &n) != 1 || minor < PYTHON_MINOR_MIN)
		return 0;
	/* python3.11, python3.11d, libpython3.11.so.1.0, libpython3.13t.so */
	if (p[n] && p[n] != '.' && p[n] != 'd' && p[n] != 't')
		return 0;
	return minor;
}

int python_pthread_specific_offset(uint32_t *out)
{
	static const char marker[] = "anorak-tss";
	const uint8_t *self = (const uint8_t *)pthread_self();
	pthread_key_t key;
	int err = -ENOENT;

	if (pthread_key_create(&key, NULL))
		return -EAGAIN;
	if (key < 32 && pthread_setspecific(key, marker) == 0) {
		for (uint32_t off = 0; off + 8 <= PTHREAD_SCAN_BYTES; off += 8) {
			const void *v;

			memcpy(&v, self + off, sizeof(v));
			if (v == marker && off >= key * PTHREAD_KEY_DATA_SIZE + 8) {
				*out = off - key * PTHREAD_KEY_DATA_SIZE;
				err = 0;
				break;
			}
		}
	}
	pthread_key_delete(key);
	return err;
}

struct interp_file {
	struct elf_file *f;
	const struct procmaps_entry *e;
	uint64_t bias;
};

static int load_bias(const struct interp_file *m, uint64_t *bias)
{
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct elf_load loads[ELF_MAX_LOADS];
	int n = elf_file_loads(m->f, loads, ELF_MAX_LOADS);

	for (int i = 0; i < n; i++) {
		if (m->e->offset < (loads[i].offset & ~(page - 1)) ||
		    (m->e->offset >= loads[i].offset && m->e->offset - loads[i].offset >= loads[i].filesz))
			continue;
		*bias = m->e->start - (loads[i].vaddr - loads[i].offset + m->e->offset);
		return 0;
	}
	return -ENOENT;
}

/* Py_Version (3.11+) is PY_VERSION_HEX: its minor must be the file name's. */
static bool version_matches(struct elf_file *f, int minor)
{
	struct elf_symbol sym;
	const void *data;
	uint32_t hex;
	size_t len;

	if (elf_file_find_symbol(f, SHT_DYNSYM, "Py_Version", MAX_SYMBOLS, &sym))
		return true; /* 3.10 has none: the name decides */
	if (elf_file_vaddr_data(f, sym.value, 4, &data, &len) || len < 4)
		return false;
	memcpy(&hex, data, 4);
	return (int)((hex >> 16) & 0xff) == minor;
}

static int find_runtime_layout(const struct interp_file *m, int minor, uint64_t runtime_vaddr,
			       struct python_layout *layout)
{
	const void *data;
	size_t len;

	if (minor <= 12)
		return python_layout_table(minor, layout);
	if (elf_file_vaddr_data(m->f, runtime_vaddr, PYTHON_DEBUG_OFFSETS_BYTES, &data, &len))
		return -EBADMSG;
	return python_layout_debug_offsets(minor, data, len, layout);
}

static void fill_proc(const struct python_layout *l, struct python_proc *p)
{
	p->frames_kind = l->frames_kind;
	p->owner_cstack = l->owner_cstack;
	p->owner_size = 1;
	p->tstate_frame = l->tstate_frame;
	p->cframe_frame = l->cframe_frame;
	p->frame_code = l->frame_code;
	p->frame_previous = l->frame_previous;
	p->frame_instr = l->frame_instr;
	p->frame_owner = l->frame_owner;
	p->code_adaptive = l->code_adaptive;
}

/* Fills out from an interpreter file; false when it is not the one holding the interpreter. */
static bool inspect(const struct interp_file *m, int minor, struct python_target *out)
{
	struct elf_symbol runtime, eval;

	if (elf_file_find_symbol(m->f, SHT_DYNSYM, "_PyRuntime", MAX_SYMBOLS, &runtime) ||
	    elf_file_find_symbol(m->f, SHT_DYNSYM, "_PyEval_EvalFrameDefault", MAX_SYMBOLS, &eval)) {
		out->failure = PYTHON_FAIL_NO_SYMBOLS;
		return false; /* a python3.N executable linked to libpython: the library has them */
	}
	out->minor = minor;
	out->failure = PYTHON_FAIL_NONE;
	out->runtime = runtime.value + m->bias;
	out->proc.eval_start = eval.value + m->bias;
	out->proc.eval_end = eval.value + eval.size + m->bias;
	if (!version_matches(m->f, minor)) {
		out->failure = PYTHON_FAIL_VERSION;
		return true;
	}
	if (minor > PYTHON_MINOR_MAX || find_runtime_layout(m, minor, runtime.value, &out->layout)) {
		out->failure = minor > PYTHON_MINOR_MAX ? PYTHON_FAIL_VERSION : PYTHON_FAIL_LAYOUT;
		return true;
	}
	fill_proc(&out->layout, &out->proc);
	out->proc.tss_addr = out->runtime + out->layout.runtime_tss;
	if (python_pthread_specific_offset(&out->proc.pthread_specific))
		out->failure = PYTHON_FAIL_TSTATE;
	return true;
}

struct scan {
	const char *proc_root;
	int pid, rootfd, candidates;
	uint64_t elf_max_bytes;
	struct python_target *out;
};

static int scan_mapping(const struct procmaps_entry *e, void *ctx)
{
	struct scan *sc = ctx;
	struct interp_file m = { .e = e };
	int minor = e->executable && e->path[0] == '/' ? python_minor_of_path(e->path) : 0;
	bool found = false;
	int fd;

	if (!minor)
		return 0;
	if (++sc->candidates > MAX_CANDIDATES)
		return 1;
	fd = procfile_open_mapped(sc->proc_root, sc->pid, sc->rootfd, e);
	if (fd < 0) {
		sc->out->failure = PYTHON_FAIL_UNREADABLE;
		return 0;
	}
	if (elf_file_open(fd, sc->elf_max_bytes, &m.f) == 0) {
		if (load_bias(&m, &m.bias) == 0)
			found = inspect(&m, minor, sc->out);
		elf_file_close(m.f);
	} else {
		sc->out->failure = PYTHON_FAIL_UNREADABLE;
	}
	close(fd);
	return found;
}

int python_discover(const char *proc_root, int pid, uint64_t elf_max_bytes, const struct maps_snapshot *snap,
		    struct python_target *out)
{
	struct scan sc = { .proc_root = proc_root, .pid = pid, .elf_max_bytes = elf_max_bytes, .out = out };
	FILE *maps;
	int err;

	memset(out, 0, sizeof(*out));
#ifndef __x86_64__
	return -EOPNOTSUPP;
#endif
	maps = maps_snapshot_open(snap, proc_root, pid);
	if (!maps)
		return -errno;
	sc.rootfd = procfile_open_root(proc_root, pid);
	err = procmaps_foreach(maps, scan_mapping, &sc);
	fclose(maps);
	if (sc.rootfd >= 0)
		close(sc.rootfd);
	return err < 0 ? err : 0;
}
