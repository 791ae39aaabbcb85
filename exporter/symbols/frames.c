#include "exporter/symbols/frames.h"

#include <stdio.h>

#include "exporter/symbols/python_functions.h"

#define KERNEL_START 0xffff800000000000ULL

void pprof_frame_mapping_of(const struct sym_mapping *map, struct pprof_frame_mapping *out)
{
	if (map)
		*out = (struct pprof_frame_mapping){ .start = map->start, .limit = map->end, .offset = map->offset,
						     .path = map->path, .build_id = map->build_id };
	else
		*out = (struct pprof_frame_mapping){ .start = KERNEL_START, .limit = UINT64_MAX,
						     .path = "[kernel.kallsyms]", .build_id = "" };
}

static size_t kernel_lines(struct symbolizer *sym, uint64_t addr, struct pprof_frame_function *out)
{
	out->module[0] = '\0';
	out->filename[0] = '\0';
	if (!symbolizer_kernel(sym, addr, out->name, sizeof(out->name), out->module, sizeof(out->module)))
		return 0;
	if (out->module[0])
		snprintf(out->filename, sizeof(out->filename), "[%s]", out->module);
	out->lines[0] = (struct pprof_frame_line){ .name = out->name, .filename = out->filename };
	return 1;
}

static size_t user_lines(struct symbolizer *sym, const struct proc_maps *maps, const struct sym_mapping *map,
			 uint64_t addr, struct pprof_frame_function *out)
{
	size_t n = symbolizer_user_frames(sym, maps, map, addr, &out->user);

	for (size_t i = 0; i < n; i++) {
		const struct sym_frame *f = &out->user.frames[i];

		out->lines[i] = (struct pprof_frame_line){ .name = f->name, .filename = f->file, .line = f->line };
	}
	return n;
}

/* A resolved Python frame: its function's qualified name and file from the process-wide table (which
 * holds the strings), its line from its address. */
static bool python_lines(uint64_t addr, struct pprof_frame_function *out)
{
	const char *qualname, *filename;

	if (!python_frame_function(addr, &qualname, &filename))
		return false;
	out->lines[0] = (struct pprof_frame_line){ .name = qualname, .filename = filename,
						   .line = python_frame_line(addr) };
	out->n = 1;
	return true;
}

size_t pprof_frame_symbolize(struct symbolizer *sym, const struct proc_maps *maps, const struct sym_mapping *map,
			     bool kernel, uint64_t addr, bool leaf, struct pprof_frame_function *out)
{
	uint64_t lookup = leaf ? addr : addr - 1;

	out->n = 0;
	if (!kernel && python_lines(addr, out))
		return out->n;
	if (sym && kernel)
		out->n = kernel_lines(sym, lookup, out);
	else if (sym && map)
		out->n = user_lines(sym, maps, map, lookup, out);
	return out->n;
}
