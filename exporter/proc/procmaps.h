/* /proc/PID/maps parsing. */
#ifndef ANORAK_PROCMAPS_H
#define ANORAK_PROCMAPS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct procmaps_entry {
	uint64_t start, end, offset;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	bool readable, writable, executable, shared;
	bool deleted;         /* the path ended with " (deleted)", now removed */
	char path[PATH_MAX];  /* "" for anonymous memory, "[vdso]", "/usr/lib/x.so" */
};

/* Parses one line (with or without its newline). -EINVAL on anything malformed, -ENAMETOOLONG. */
int procmaps_parse_line(const char *line, struct procmaps_entry *e);

/* Calls cb for every well-formed line of f, skipping malformed or overlong ones; stops at and returns
 * cb's first nonzero result. Returns 0, or -errno on a read error. */
int procmaps_foreach(FILE *f, int (*cb)(const struct procmaps_entry *e, void *ctx), void *ctx);

#endif
